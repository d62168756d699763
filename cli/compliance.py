"""``livewitness compliance|webhooks|indexer``: banned words, reports, alerts."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.base import clean_errors, console, open_cli_stores
from core.errors import InvalidInputError
from core.timeutil import iso, parse_iso

compliance_app = typer.Typer(help="Banned advertising terms: lexicon, reports, rescans.")
webhooks_app = typer.Typer(help="Where banned-word alerts are posted (HMAC-signed JSON).")
SECRET_MIN_CHARS = 16  # as the API's WebhookIn.secret


@compliance_app.command("report")
@clean_errors
def compliance_report_command(
    stream: Annotated[str | None, typer.Option(help="One stream.")] = None,
    streamer: Annotated[str | None, typer.Option(help="Every stream of a streamer.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this time (ISO 8601).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file, not stdout.")
    ] = None,
) -> None:
    """Banned-word hits of a stream or streamer: counts by category and severity, and
    every hit with its time and a link to the moment."""
    from compliance.reports import compliance_report, report_csv
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    if output_format not in ("json", "csv"):
        raise InvalidInputError("--format must be json or csv")
    with open_cli_stores() as stores:
        index = open_search_index(stores)
        try:
            Indexer(stores, index).index_pending()  # what was transcribed until now
        finally:
            index.close()
        report = compliance_report(
            stores,
            stream=stream,
            streamer=streamer,
            since=parse_iso(since) if since else None,
            until=parse_iso(until) if until else None,
        )
    text = (
        report_csv(report)
        if output_format == "csv"
        else json.dumps(report, ensure_ascii=False, indent=2) + "\n"
    )
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"{report['total']} hits written to {output}", highlight=False)


@compliance_app.command("rescan")
@clean_errors
def compliance_rescan(
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
) -> None:
    """Find banned words in stored transcripts again with the current lexicon."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from compliance.matcher import load_lexicon
    from indexer.factory import open_search_index
    from indexer.service import Indexer

    with open_cli_stores() as stores:
        lexicon = load_lexicon(stores.settings.lexicon_path)
        chosen = [stores.catalog.get_stream(stream)] if stream else None
        index = open_search_index(stores)
        try:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
            ) as progress:
                task = progress.add_task(f"rescanning with lexicon {lexicon.version}", total=None)
                done = Indexer(stores, index).rescan(
                    chosen, lambda n, total: progress.update(task, completed=n, total=total)
                )
        finally:
            index.close()
        hits = stores.catalog.banned_hits([s.id for s in chosen] if chosen else None)
    console.print(f"rescanned {done} transcripts: {len(hits)} banned-word hits", highlight=False)


@compliance_app.command("lexicon")
@clean_errors
def compliance_lexicon() -> None:
    """Show the lexicon in use: version, terms per category and severity."""
    from compliance.matcher import LEXICON_FILE, load_lexicon
    from core.settings import Settings

    path = Settings().lexicon_path
    lexicon = load_lexicon(path)
    console.print(f"lexicon {lexicon.version} ({path or LEXICON_FILE})", highlight=False)
    table = Table("category", "terms", "critical", "high", "medium", "low")
    for category in lexicon.categories:
        terms = [t for t in lexicon.terms if t.category == category]
        counts = [
            sum(t.severity == s for t in terms) for s in ("critical", "high", "medium", "low")
        ]
        table.add_row(category, str(len(terms)), *map(str, counts))
    console.print(table)


@compliance_app.command("spikes")
@clean_errors
def compliance_spikes() -> None:
    """Check every streamer's banned-word rate over the last hour against their baseline
    now, once (the indexer does it after it stores new hits); each new spike is queued
    as a compliance.spike webhook event, posted by a running `serve` or `indexer`."""
    from compliance.spikes import raise_spikes
    from core.timeutil import utc_now

    with open_cli_stores() as stores:
        raised = raise_spikes(stores, utc_now())
    for check in raised:
        base = check.baseline.per_hour if check.baseline.recorded_seconds else 0.0
        console.print(
            f"spike: {check.streamer}: {check.recent.hits} hits in the last hour"
            f" ({check.recent.per_hour:.1f}/h on air, baseline {base:.1f}/h)",
            highlight=False,
        )
    if not raised:
        console.print("no new spike", highlight=False)


@webhooks_app.command("add")
@clean_errors
def webhooks_add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives POSTed JSON.")],
    secret: Annotated[
        str | None,
        typer.Option(
            help=f"HMAC secret, at least {SECRET_MIN_CHARS} characters; a new random one"
            " when not given."
        ),
    ] = None,
) -> None:
    """Register a webhook; prints its id and secret. The URL must pass the egress policy
    (a public address, or one LIVEWITNESS_EGRESS_ALLOW names)."""
    from core.egress import EgressPolicy

    chosen = secret or secrets.token_urlsafe(32)
    if len(chosen) < SECRET_MIN_CHARS:
        raise InvalidInputError(
            f"a webhook secret needs at least {SECRET_MIN_CHARS} characters, not {len(chosen)}"
        )
    with open_cli_stores() as stores:
        EgressPolicy.for_settings(stores.settings).check_url(url, what="webhook")
        webhook = stores.catalog.add_webhook(url, chosen)
    console.print(f"webhook {webhook.id} {url}\nsecret {chosen}", highlight=False)


@webhooks_app.command("list")
@clean_errors
def webhooks_list() -> None:
    with open_cli_stores() as stores:
        rows = stores.catalog.webhooks()
    table = Table("id", "url", "active", "created")
    for w in rows:
        table.add_row(str(w.id), w.url, "yes" if w.active else "no", iso(w.created_at))
    console.print(table)


@webhooks_app.command("remove")
@clean_errors
def webhooks_remove(webhook_id: Annotated[int, typer.Argument(help="Webhook id.")]) -> None:
    """Stop posting to a webhook (its delivery log stays)."""
    with open_cli_stores() as stores:
        stores.catalog.deactivate_webhook(webhook_id)
    console.print(f"webhook {webhook_id} deactivated")


@webhooks_app.command("log")
@clean_errors
def webhooks_log(
    webhook: Annotated[int | None, typer.Option(help="Only this webhook.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The delivery log: each event (alerts, receipts, time-stamps), its status and
    every attempt."""
    from compliance.alerts import delivery_json  # httpx only where it is needed

    with open_cli_stores() as stores:
        entries = [delivery_json(d) for d in stores.catalog.deliveries(webhook)]
    if as_json:
        print(json.dumps(entries, ensure_ascii=False))
        return
    table = Table("delivery", "webhook", "event", "about", "status", "attempts", "last")
    for e in entries:
        last = e["last_error"] or str(e["last_status"] or "")
        table.add_row(
            str(e["delivery"]),
            str(e["webhook"]),
            str(e["event"]),
            f"{e['subject']} {e['summary']}",
            str(e["status"]),
            str(e["attempts"]),
            last,
        )
    console.print(table)
