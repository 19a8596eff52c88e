"""One exception base for fedledger, in families that map to exit codes.

Only the CLI catches :class:`FedledgerError`; :data:`EXIT_CODES` is the one table
from family to exit code. Messages carry evidence (file, line, seq, expected vs
actual) and never a secret value.
"""

from __future__ import annotations


class FedledgerError(Exception):
    """Base of every error fedledger raises on purpose."""

    exit_code = 4

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class MalformedInput(FedledgerError):
    """The input cannot be read as what it claims to be (exit 2)."""

    exit_code = 2


class UsageError(FedledgerError):
    """The command was asked something it cannot do (exit 2)."""

    exit_code = 2


class IntegrityError(FedledgerError):
    """The evidence does not verify (exit 1)."""

    exit_code = 1


class SourceUnavailable(FedledgerError):
    """A source, the ledger, a key or a service could not be reached (exit 3)."""

    exit_code = 3


class InternalError(FedledgerError):
    """A bug in fedledger itself (exit 4)."""

    exit_code = 4


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 4

EXIT_CODES: dict[type[FedledgerError], int] = {
    IntegrityError: EXIT_FAILED,
    MalformedInput: EXIT_USAGE,
    UsageError: EXIT_USAGE,
    SourceUnavailable: EXIT_UNAVAILABLE,
    InternalError: EXIT_INTERNAL,
}


def family_of(error: BaseException) -> type[FedledgerError] | None:
    """The family of *error* (a key of :data:`EXIT_CODES`); ``None`` for anything unexpected."""
    return next((family for family in EXIT_CODES if isinstance(error, family)), None)


def exit_code_for(error: BaseException) -> int:
    """The exit code for *error*: the family table, 4 for anything unexpected."""
    family = family_of(error)
    return EXIT_INTERNAL if family is None else EXIT_CODES[family]
