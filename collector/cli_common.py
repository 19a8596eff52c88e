"""Shared plumbing of the thin CLI: global options, output, and the error → exit code table.

Commands call library code and print; only :func:`run` catches
:class:`~collector.errors.FedledgerError`, prints its one-line message on stderr
and exits with the family's code. Results go to stdout, diagnostics to stderr.
Under ``--format json`` an error also writes one ``fedledger.error`` object on
stdout (:func:`report_error`), unless the command already wrote its result.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer
from typer.core import TyperGroup

from collector.errors import EXIT_INTERNAL, FedledgerError, UsageError, exit_code_for, family_of
from collector.timeutil import format_time, parse_time, utc_now

if TYPE_CHECKING:
    from collector.config import FedledgerConfig

try:  # recent typer parses with its own copy of click
    from typer._click import Context
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # older typer uses click itself
    from click import Context  # type: ignore[assignment]
    from click.exceptions import UsageError as ClickUsageError  # type: ignore[assignment]

OUTPUT_VERSION = 1
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE
EXIT_TERMINATED = 128 + 15  # what a shell reports for a process ended by SIGTERM
DEFAULT_LEDGER = "fedledger.db"


class Terminated(BaseException):
    """SIGTERM reached the command (systemd stopping the unit, Kubernetes ending the pod): it ends
    like Ctrl-C, unwinding open transactions and locks, with one line and one JSON error."""


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While a command runs in the main thread, SIGTERM raises :class:`Terminated` in it. A process
    forked from this one (a worker pool) that gets SIGTERM is ended by it as before: the handler
    belongs to the process that installed it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def on_sigterm(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class GlobalOptions:
    ledger: Path | str = Path(DEFAULT_LEDGER)  # a file Path, or a postgresql:// URL kept as a string
    ledger_given: bool = False  # --ledger or $FEDLEDGER_LEDGER named it (else a --config's ledger.path wins)
    format: str = "human"
    as_of: datetime | None = None
    result_written: bool = False  # emit_json wrote this command's result: a later error adds no second document

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
                   "or a service is unavailable · 4 internal error (a bug: please report it) · 130 interrupted · "
                   "143 stopped by SIGTERM.")


def exit_codes(failed: str = "the ledger or the evidence fails a check") -> str:
    """The --help epilog of a command: the one exit-code table, with what 1 means for that command."""
    return EXIT_CODES_HELP.format(failed=failed)


COLLECT_FAILED = "a record was quarantined or failed verification (the good records are still committed)"


def run(func: F) -> F:
    """Run a command body; map fedledger errors to exit codes, never show locals."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_unwinds():
                return func(*args, **kwargs)
        except typer.Exit:
            raise
        except FedledgerError as exc:
            raise report_error(exc) from None
        except KeyboardInterrupt:
            err("interrupted")
            emit_error(130, "interrupted", "interrupted")
            raise typer.Exit(130) from None
        except Terminated:
            err("terminated (SIGTERM)")
            emit_error(EXIT_TERMINATED, "terminated", "terminated (SIGTERM)")
            raise typer.Exit(EXIT_TERMINATED) from None
        except BrokenPipeError:
            # The reader of stdout stopped early (`| head`, `| grep -q`): not a bug. Point stdout
            # at /dev/null so the flush at exit does not fail again, and exit as SIGPIPE would.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:  # a bug: say so, without values that might be secret
            message = f"internal error: {type(exc).__name__} (please report with the command that caused it)"
            err(message)
            emit_error(EXIT_INTERNAL, INTERNAL_FAMILY, message)
            if os.environ.get("FEDLEDGER_DEBUG"):
                raise
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


INTERNAL_FAMILY = "internal-error"


def family_name(error: BaseException) -> str:
    """The stable name of *error*'s family in JSON output: ``MalformedInput`` → ``malformed-input``;
    ``internal-error`` for anything outside the families (a bug)."""
    family = family_of(error)
    return INTERNAL_FAMILY if family is None else re.sub(r"(?<!^)(?=[A-Z])", "-", family.__name__).lower()


_FILE_LINE = re.compile(r"(?P<file>.+):(?P<line>[0-9]+)")


def location_fields(location: str | None) -> dict[str, Any]:
    """``file`` and, when *location* ends in ``:N`` (and is not a URL, whose ``:N`` is a port), ``line``."""
    if not location:
        return {}
    match = _FILE_LINE.fullmatch(location)
    if match is None or "://" in location:
        return {"file": location}
    return {"file": match["file"], "line": int(match["line"])}


def emit_error(exit_code: int, family: str, message: str, *, location: str | None = None,
               problems: list[str] | None = None) -> None:
    """Under --format json, the error as one versioned ``fedledger.error`` object on stdout, unless
    this command already wrote its JSON result (one document per run). The caller prints the human
    line on stderr; *message* is that line's text, which never holds a secret."""
    if not OPTIONS.json or OPTIONS.result_written:
        return
    error: dict[str, Any] = {"exit": exit_code, "family": family, "message": message, **location_fields(location)}
    if problems:
        error["problems"] = problems
    emit_json("fedledger.error", {"error": error})


def report_error(exc: FedledgerError, *, human: list[str] | None = None) -> typer.Exit:
    """Report *exc*: its one-line ``error: ...`` on stderr (or the *human* lines), the error object
    under --format json (with ``problems`` when the error lists several, e.g. an invalid config).
    Returns the Exit with the family's code, for the caller to raise."""
    code = exit_code_for(exc)
    for line in human if human is not None else [f"error: {exc}"]:
        err(line)
    problems = getattr(exc, "problems", None)
    emit_error(code, family_name(exc), str(exc), location=exc.location,
               problems=list(problems) if isinstance(problems, list) else None)
    return typer.Exit(code)


def format_requested(argv: Sequence[str]) -> str | None:
    """The value of the last ``--format`` in *argv* (the global one, or a command's own), read before
    click parses anything: click's own usage errors honour ``--format json`` too."""
    found = None
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token == "--format" and i + 1 < len(argv):
            found = argv[i + 1]
        elif token.startswith("--format="):
            found = token.split("=", 1)[1]
    return found


_FORMAT_REQUESTED = "fedledger.format"  # the root context's meta: what the arguments asked, before parsing


class FedledgerGroup(TyperGroup):
    """The root command and its command groups: click's own usage errors (an unknown option or
    command, a value it cannot convert, a missing argument, a group without its command) also
    write the ``fedledger.error`` object when the arguments ask for ``--format json``. Click still
    prints its message on stderr and exits 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: Context | None = None,
                     **extra: Any) -> Context:
        if parent is not None:
            return super().make_context(info_name, args, parent, **extra)
        OPTIONS.result_written = False  # a new invocation (tests run several in one process)
        requested = format_requested(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except ClickUsageError as exc:
            _report_usage_error(exc, requested)
            raise
        ctx.meta[_FORMAT_REQUESTED] = requested
        return ctx

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and ctx.find_root().meta.get(_FORMAT_REQUESTED) == "json":
            # typer would print this group's --help on stdout, where the reader expects one JSON object
            raise ClickUsageError(f"missing command (see `{ctx.command_path} --help`)", ctx=ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Context) -> Any:
        if ctx.parent is not None:
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except ClickUsageError as exc:
            _report_usage_error(exc, ctx.meta.get(_FORMAT_REQUESTED))
            raise


def _report_usage_error(exc: ClickUsageError, requested: str | None) -> None:
    OPTIONS.format = "json" if requested == "json" else "human"  # the global --format may not be parsed yet
    emit_error(exc.exit_code, "usage-error", " ".join(exc.format_message().split()))


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
    """One versioned JSON object on stdout: the command's result (or its error)."""
    body = {"version": OUTPUT_VERSION, "kind": kind, **doc}
    OPTIONS.result_written = True
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    sys.stdout.flush()


def parse_as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    return parse_time(text, field="--as-of")


def apply_local_options(format: str | None, as_of: str | None = None) -> None:
    """Let --format and --as-of also be given after the command name (they win over the global ones)."""
    if format is not None:
        if format not in ("human", "json"):
            OPTIONS.format = "human"
            raise UsageError("--format must be human or json")
        OPTIONS.format = format
    if as_of is not None:
        OPTIONS.as_of = parse_as_of(as_of)


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


def party_names_text(organization: str | None, assessor: str | None) -> str:
    """The organization and assessor a bundle names (OSCAL prepared-for / assessor), as `config check`
    and `fedledger bundle` print them."""
    if not organization and not assessor:
        return "none (set [bundle] organization and assessor to name them)"
    return (f"organization {organization!r} (OSCAL prepared-for)" if organization else "organization not named") + (
        f", assessor {assessor!r} (OSCAL assessor)" if assessor else ", assessor not named")
