"""Run the real ``fedledger`` command in a subprocess (real stdout, stderr and exit code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES_CI = REPO / "samples" / "ci"
AS_OF = "2026-11-25T00:00:00Z"


def fedledger(*args: str, ledger: Path, stdin: bytes | None = None, as_of: str | None = AS_OF) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "collector.cli", "--ledger", str(ledger)]
    if as_of:
        command += ["--as-of", as_of]
    env = {k: v for k, v in os.environ.items() if k != "FEDLEDGER_LEDGER"}
    return subprocess.run([*command, *args], input=stdin, capture_output=True, cwd=REPO, env=env, timeout=600)


def new_ledger(tmp: Path) -> Path:
    ledger = tmp / "ledger.db"
    result = fedledger("init", "--origin", "test.agency.gov/ci", ledger=ledger)
    assert result.returncode == 0, result.stderr
    return ledger


def story_options() -> list[str]:
    keys = SAMPLES_CI / "keys"
    return ["--jwks", str(keys / "jwks.json"), "--audience", "sts.amazonaws.com", "--audience",
            "https://vault.agency.gov", "--webhook-secret-file", str(SAMPLES_CI / "webhook-secret.txt")]


def story_ci_options():  # type: ignore[no-untyped-def]
    """The same verification options as :func:`story_options`, for in-process collection."""
    from collector.oidc import TrustedJwks
    from collector.sources.ci import CiOptions, read_webhook_secrets

    keys = SAMPLES_CI / "keys"
    return CiOptions(
        jwks=TrustedJwks.from_bytes((keys / "jwks.json").read_bytes()),
        audiences=("sts.amazonaws.com", "https://vault.agency.gov"),
        webhook_secrets=read_webhook_secrets((SAMPLES_CI / "webhook-secret.txt").read_bytes(), location="secret"),
    )


def collect_in_process(tmp: Path, paths: list[str], options=None):  # type: ignore[no-untyped-def]
    """Create a ledger in *tmp* and run the library behind `fedledger collect ci` on *paths*."""
    from collector.commands.ci_cmds import collect_ci
    from collector.ledger import Ledger
    from collector.sources.ci import CiOptions

    path = tmp / "ledger.db"
    Ledger.create(path, "test.agency.gov/ci", created=AS_OF, key_type="ecdsa-p256").close()
    with Ledger.open(path) as ledger:
        total, tally = collect_ci(ledger, paths, options or CiOptions(), observed=AS_OF)
    assert total.balanced
    return path, total, tally
