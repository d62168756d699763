"""What every ``livewitness`` command shares: consoles, error handling, the opened
stores and signal handling. The app and its command list are in :mod:`cli.main`."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from core.errors import IntegrityError, LiveWitnessError
from core.settings import Settings
from storage.stores import Stores, open_stores

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def clean_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn LiveWitness errors into one line on stderr and an exit code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except IntegrityError as exc:
            err.print(f"[bold red]FAILED[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
        except LiveWitnessError as exc:
            err.print(f"error: {exc}", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@contextmanager
def open_cli_stores() -> Iterator[Stores]:
    opened = open_stores(Settings())
    try:
        yield opened
    finally:
        opened.close()


def configure_logging(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(_signum: int, _frame: Any) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
