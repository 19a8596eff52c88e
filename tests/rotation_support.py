"""Random sequences of writes, logrotate rotations and collection runs (for the rotation property tests).

A run writes three new lines at a time to ``logs/<live>``, rotates the way logrotate does
(``create``: rename; ``rotate-gz``: compress at once; ``copytruncate``) with numbered
generations shifted up (``.1`` → ``.2``) and, with *keep*, the ones past it deleted as
logrotate's ``rotate N`` does; and collects with the file named or its folder given. After
every collection nothing may be reported as tampered or read twice; at the end every line
written must be in the ledger, except lines that sat only in a deleted file and had not
been collected before it was deleted. When a deletion since the last run dropped content
that run had read, the file whose cursor pointed at it is reported as tampered (fedledger
cannot tell that from someone deleting audit records): the operator then accepts it
(``--accept-changed``) and collection goes on.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from hypothesis import strategies as st

STEPS = st.lists(st.sampled_from(["write", "write", "collect", "rotate", "rotate-gz", "copytruncate"]), max_size=12)
KEEP = st.sampled_from([None, None, 1, 2, 3])  # logrotate's "rotate N" (None: nothing deleted)


def shift(logs: Path, live: str) -> None:
    """logrotate's numbering: ``<live>.N`` (and ``.N.gz``) becomes N+1, highest first so nothing is overwritten."""
    numbered = sorted((p for p in logs.iterdir() if p.name != live), key=lambda p: -int(p.name[len(live) + 1:].split(".")[0]))
    for path in numbered:
        number, _, rest = path.name[len(live) + 1:].partition(".")
        path.rename(logs / f"{live}.{int(number) + 1}{'.' + rest if rest else ''}")


def rotate(logs: Path, live: Path, how: str, keep: int | None = None) -> list[bytes]:
    """One rotation; returns the lines of the generations deleted past *keep*."""
    shift(logs, live.name)
    dropped: list[bytes] = []
    if keep is not None:
        for path in list(logs.iterdir()):
            if path.name != live.name and int(path.name[len(live.name) + 1:].split(".")[0]) > keep:
                data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
                dropped += data.splitlines(keepends=True)
                path.unlink()
    if how == "rotate":
        live.rename(logs / f"{live.name}.1")
    elif how == "rotate-gz":
        (logs / f"{live.name}.1.gz").write_bytes(gzip.compress(live.read_bytes()))
        live.unlink()
    else:  # copytruncate
        shutil.copyfile(live, logs / f"{live.name}.1")
        live.write_bytes(b"")
    live.touch()
    return dropped


def run_steps(root: Path, live_name: str, steps: list[str], as_folder: bool, lines: Iterator[bytes],
              collect: Callable[[list[str], list[str]], tuple[int, list[str]]], stored: Callable[[], set[bytes]],
              keep: int | None = None) -> None:
    """Play *steps*; *collect(inputs, accept_changed)* returns (duplicates, tampered paths) of one
    run, *stored()* the lines the ledger holds (as the test identifies them)."""
    logs = root / "logs"
    logs.mkdir()
    live = logs / live_name
    written: list[bytes] = []
    lost: set[bytes] = set()  # in a deleted file before any run collected them

    def write() -> None:
        new = [next(lines) for _ in range(3)]
        written.extend(new)
        with open(live, "ab") as handle:
            handle.write(b"".join(new))

    inputs = [str(logs if as_folder else live)]
    write()
    collect(inputs, [])
    read_then_dropped = False  # since the last run, a deletion dropped lines that had been read
    for step in [*steps, "collect"]:
        if step == "write":
            write()
        elif step == "collect":
            duplicates, tampered = collect(inputs, [])
            if tampered and read_then_dropped:
                extra = [name for name in tampered if name not in inputs]
                duplicates, tampered = collect(inputs + extra, tampered)
            assert tampered == [], (steps, as_folder, keep, tampered)
            assert duplicates == 0, (steps, as_folder, keep)
            read_then_dropped = False
        else:
            dropped = rotate(logs, live, step, keep)
            if dropped:
                have = stored()
                lost.update(line for line in dropped if line not in have)
                read_then_dropped = read_then_dropped or any(line in have for line in dropped)
    missing = [line for line in written if line not in stored() and line not in lost]
    assert not missing, (steps, as_folder, keep, len(missing))
