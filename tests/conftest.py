from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.moto_server import moto_server

REPO = Path(__file__).resolve().parent.parent
# The public test data: ../shared/data beside the checkout, or where FEDLEDGER_SHARED_DATA says
# (a checkout elsewhere, e.g. a git worktree).
SHARED_DATA = Path(os.environ.get("FEDLEDGER_SHARED_DATA") or REPO.parent / "shared" / "data")


def shared_data(*parts: str) -> Path:
    """A path under the public test data (:data:`SHARED_DATA`), or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public test data not present: {path} (../shared is not beside this checkout; "
                    f"FEDLEDGER_SHARED_DATA names another place)")
    return path


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-gov-west-1")
    with moto_server() as url:
        yield url
