"""The ``fedledger`` command: a thin typer layer over the library.

Command modules each have ``register(app)``; this file only wires them and the
global options. Exit codes: 0 ok · 1 verification or control failure · 2 usage
or malformed input · 3 source unavailable · 4 internal error.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Optional

import typer

from collector import __version__, commands
from collector.cli_common import DEFAULT_LEDGER, OPTIONS, FedledgerGroup, format_requested, parse_as_of, report_error
from collector.errors import FedledgerError, UsageError
from collector.ledger_open import ledger_location

app = typer.Typer(
    cls=FedledgerGroup,
    name="fedledger",
    help="Collect FedRAMP pipeline evidence into a tamper-evident ledger and package it for assessors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
collect_app = typer.Typer(cls=FedledgerGroup, help="Collect evidence from a source into the ledger.",
                          no_args_is_help=True)
app.add_typer(collect_app, name="collect")

# Every module in collector/commands/ defines register(app, collect_app): a new source or
# command is a new module there, found here without editing this file.
# The ledger's own commands come first in --help, then the rest by module name.
COMMAND_MODULES = sorted(
    (f"collector.commands.{info.name}" for info in pkgutil.iter_modules(commands.__path__)
     if not info.name.startswith("_")),
    key=lambda name: (not name.endswith(".ledger_cmds"), name),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fedledger {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    ledger: Optional[str] = typer.Option(
        None,
        "--ledger",
        envvar="FEDLEDGER_LEDGER",
        help="Ledger file, or postgresql://USER@HOST/DB?ledger=NAME&store=/objects (env FEDLEDGER_LEDGER).",
        show_default=DEFAULT_LEDGER,
    ),
    format: str = typer.Option("human", "--format", help="Output: human or json."),
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="Reference time (RFC 3339, UTC) instead of the clock, for reproducible runs."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    if format not in ("human", "json"):
        OPTIONS.format = "human"
        raise report_error(UsageError("--format must be human or json"))
    # None only when neither --ledger nor $FEDLEDGER_LEDGER was given: a --config's ledger.path then wins
    OPTIONS.ledger_given = ledger is not None
    OPTIONS.format = format
    try:
        OPTIONS.ledger = ledger_location(ledger if ledger is not None else DEFAULT_LEDGER)
        OPTIONS.as_of = parse_as_of(as_of)
    except FedledgerError as exc:
        raise report_error(exc) from None


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app, collect_app)


GLOBAL_OPTIONS_WITH_VALUE = ("--ledger", "--format", "--as-of")


def misplaced_global_option(argv: list[str]) -> str | None:
    """What to say when a global option comes after a command that has no option of that name
    (`fedledger verify --format json`): click would answer "No such option" and suggest an
    unrelated option of the command; the fix is to move it before the command."""
    first = next((i for i, token in enumerate(argv) if not token.startswith("-")), len(argv))
    if not any(token.split("=", 1)[0] in GLOBAL_OPTIONS_WITH_VALUE for token in argv[first:]):
        return None  # the common case: nothing to look up
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in GLOBAL_OPTIONS_WITH_VALUE else 1
    node = typer.main.get_command(app)
    path: list[str] = []
    while i < len(argv) and isinstance(getattr(node, "commands", None), dict) and argv[i] in node.commands:  # type: ignore[attr-defined]
        node = node.commands[argv[i]]  # type: ignore[attr-defined]
        path.append(argv[i])
        i += 1
    if not path or isinstance(getattr(node, "commands", None), dict):
        return None
    accepted = {name for param in node.params for name in (*param.opts, *param.secondary_opts)}
    for token in argv[i:]:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if name in GLOBAL_OPTIONS_WITH_VALUE and name not in accepted:
            value = "json" if name == "--format" else name.lstrip("-").upper().replace("-", "_")
            return (f"{name} is a global option: put it before the command, "
                    f"e.g. `fedledger {name} {value} {' '.join(path)} ...`")
    return None


def main() -> None:
    hint = misplaced_global_option(sys.argv[1:])
    if hint is not None:
        OPTIONS.format = format_requested(sys.argv[1:]) or "human"  # `verify --format json`: its reader wants JSON
        raise SystemExit(report_error(UsageError(hint)).exit_code)
    app()


if __name__ == "__main__":
    main()
