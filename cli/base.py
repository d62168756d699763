"""What every ``livewitness`` command shares: consoles, error handling, the opened
stores and signal handling. The app and its command list are in :mod:`cli.main`."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from core.errors import IntegrityError, LiveWitnessError, disk_full_error, is_disk_full
from core.settings import load_settings, settings_error_line
from storage.file_modes import private_umask

if TYPE_CHECKING:
    from storage.stores import Stores

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
        except ValidationError as exc:
            if exc.title != "Settings":
                raise
            # Settings() built directly by a command: the same one line as load_settings.
            err.print(f"error: {settings_error_line(exc)}", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except sqlite3.DatabaseError as exc:
            # Raw sqlite3 errors come from the embedded search index (the catalog's are
            # DamagedFileError already): derived data, rebuilt from storage.
            err.print(f"error: {_damaged_index(exc)}", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            err.print(f"error: {disk_full_error(exc, '.')}", highlight=False, markup=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _damaged_index(exc: sqlite3.DatabaseError) -> str:
    from indexer.factory import damaged_index_line, embedded_index_path

    try:
        path: Path | str = embedded_index_path(load_settings())
    except LiveWitnessError:
        path = "file"
    return damaged_index_line(path, exc)


@contextmanager
def open_cli_stores() -> Iterator[Stores]:
    # Here, not at the top: `livewitness --help` and light commands skip SQLAlchemy.
    from storage.stores import open_stores

    opened = open_stores(load_settings())
    try:
        yield opened
    finally:
        opened.close()


def cli_actor() -> str:
    """Who acts from the command line: the operating-system user on this host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        user = str(os.getuid())
    return f"cli {user}@{socket.gethostname()}"


def audit_cli(stores: Stores, action: str, details: dict[str, Any]) -> None:
    """Audit a read of evidence from the command line, as the API audits its own: the
    actor is the operating-system user on this host (the CLI needs no API key)."""
    from storage.audit import AuditLog

    log = AuditLog(stores.catalog, stores.blobs, stores.chain.signer, stores.settings)
    log.record(cli_actor(), "operator", action, details)


def configure_logging(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """Runs before every command: logging, and files private to the service user."""
    private_umask()  # everything written under the data home: 0600 files, 0700 dirs
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(_signum: int, _frame: Any) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
