"""Shared plumbing of the thin CLI: global options, output, and the error → exit code table.

Commands call library code and print; only :func:`run` catches
:class:`~collector.errors.FedledgerError`, prints its one-line message on stderr
and exits with the family's code. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer

from collector.errors import EXIT_INTERNAL, FedledgerError, UsageError, exit_code_for
from collector.timeutil import format_time, parse_time, utc_now

if TYPE_CHECKING:
    from collector.config import FedledgerConfig

OUTPUT_VERSION = 1
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE
DEFAULT_LEDGER = "fedledger.db"


@dataclass
class GlobalOptions:
    ledger: Path | str = Path(DEFAULT_LEDGER)  # a file Path, or a postgresql:// URL kept as a string
    ledger_given: bool = False  # --ledger or $FEDLEDGER_LEDGER named it (else a --config's ledger.path wins)
    format: str = "human"
    as_of: datetime | None = None

    @property
    def json(self) -> bool:
        return self.format == "json"

    def now(self) -> datetime:
        return self.as_of or utc_now()

    def now_text(self) -> str:
        return format_time(self.now())


OPTIONS = GlobalOptions()


def ledger_path_for(config: FedledgerConfig) -> Path | str:
    """The global --ledger / $FEDLEDGER_LEDGER when given (even as the default name), else the
    config's ledger.path: every command that takes --config opens the ledger `fedledger run` does."""
    if OPTIONS.ledger_given:
        return OPTIONS.ledger
    return config.ledger.path

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = ("Exit codes: 0 ok · 1 {failed} · 2 usage error or malformed input · 3 a source, the ledger, a key "
                   "or a service is unavailable · 4 internal error (a bug: please report it) · 130 interrupted.")


def exit_codes(failed: str = "the ledger or the evidence fails a check") -> str:
    """The --help epilog of a command: the one exit-code table, with what 1 means for that command."""
    return EXIT_CODES_HELP.format(failed=failed)


COLLECT_FAILED = "a record was quarantined or failed verification (the good records are still committed)"



def run(func: F) -> F:
    """Run a command body; map fedledger errors to exit codes, never show locals."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except FedledgerError as exc:
            err(f"error: {exc}")
            raise typer.Exit(exit_code_for(exc)) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader of stdout stopped early (`| head`, `| grep -q`): not a bug. Point stdout
            # at /dev/null so the flush at exit does not fail again, and exit as SIGPIPE would.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:  # a bug: say so, without values that might be secret
            err(f"internal error: {type(exc).__name__} (please report with the command that caused it)")
            if os.environ.get("FEDLEDGER_DEBUG"):
                raise
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def err(message: str) -> None:
    typer.echo(message, err=True)


def out(message: str) -> None:
    typer.echo(message)


NOTES_SHOWN = 50  # quarantined records named on stderr (JSON output lists more; the quarantine table keeps all)


def report_quarantined(notes: list[dict[str, Any]], total: int, *, mark: str = ":") -> None:
    """Name the first quarantined records on stderr, one line each: ``quarantined: FILE:LINE: reason``
    (*mark* ``#`` for a record index within a file), with the size when the note has one."""
    for note in notes[:NOTES_SHOWN]:
        where = note["location"] if note["line"] is None else f"{note['location']}{mark}{note['line']}"
        size = f" ({note['size']} bytes)" if "size" in note else ""
        err(f"quarantined: {where}: {note['reason']}{size}")
    if total > NOTES_SHOWN:
        err(f"quarantined: ... {total - NOTES_SHOWN} more (fedledger keeps them in its quarantine table)")


def emit_json(kind: str, doc: dict[str, Any]) -> None:
    """One versioned JSON object on stdout."""
    body = {"version": OUTPUT_VERSION, "kind": kind, **doc}
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    sys.stdout.flush()


def parse_as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    return parse_time(text, field="--as-of")


def key_paths(ledger: Path | str) -> tuple[Path, Path]:
    """(private key, public key PEM) beside the ledger file; a PostgreSQL ledger has none."""
    if isinstance(ledger, str) and ledger.startswith(("postgresql://", "postgres://")):
        raise UsageError("a PostgreSQL ledger has no key file beside it: give --key FILE (or, for `fedledger run`, "
                         "[signer] key_file in the config), e.g. the fedledger.key that `init` wrote")
    ledger = Path(ledger)
    stem = ledger.name[: -len(ledger.suffix)] if ledger.suffix else ledger.name
    return ledger.with_name(stem + ".key"), ledger.with_name(stem + ".pub")


def is_progress_wanted() -> bool:
    return not OPTIONS.json and sys.stderr.isatty()


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal; silent under --format json and when stderr is not a TTY."""
    if not is_progress_wanted():
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=None) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)
