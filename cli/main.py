"""The ``livewitness`` command: every command group, registered here and only here.

Each module of ``cli/`` defines its commands on a Typer of its own; this list is the
whole command line (``livewitness --help`` prints it in this order).
"""

from __future__ import annotations

import typer

from cli import (
    cases,
    compliance,
    doctor,
    events,
    evidence,
    keys,
    prices,
    recording,
    screen,
    serve,
    transcripts,
)
from cli.base import configure_logging

app = typer.Typer(
    help="LiveWitness: record livestreams as verifiable evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.callback()(configure_logging)
app.add_typer(recording.commands)
app.add_typer(transcripts.commands)
app.add_typer(screen.commands)
app.add_typer(prices.commands)
app.add_typer(recording.products_app, name="products")
app.add_typer(events.events_app, name="events")
app.add_typer(evidence.commands)
app.add_typer(cases.cases_app, name="cases")
app.add_typer(cases.commands)
app.add_typer(compliance.compliance_app, name="compliance")
app.add_typer(compliance.webhooks_app, name="webhooks")
app.add_typer(serve.commands)
app.add_typer(doctor.commands)
app.add_typer(keys.keys_app, name="keys")
