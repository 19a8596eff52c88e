"""Random sequences of writes, logrotate rotations and collection runs (for the rotation property tests).

A run writes three new lines at a time to ``logs/<live>``, rotates the way logrotate does
(``create``: rename; ``rotate-gz``: compress at once; ``copytruncate``) with numbered
generations shifted up (``.1`` → ``.2``; nothing deleted), and collects with the file
named or its folder given. After every collection nothing may be reported as tampered
or read twice; at the end every line written must be in the ledger.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from hypothesis import strategies as st

STEPS = st.lists(st.sampled_from(["write", "write", "collect", "rotate", "rotate-gz", "copytruncate"]), max_size=12)


def shift(logs: Path, live: str) -> None:
    """logrotate's numbering: ``<live>.N`` (and ``.N.gz``) becomes N+1, highest first so nothing is overwritten."""
    numbered = sorted((p for p in logs.iterdir() if p.name != live), key=lambda p: -int(p.name[len(live) + 1:].split(".")[0]))
    for path in numbered:
        number, _, rest = path.name[len(live) + 1:].partition(".")
        path.rename(logs / f"{live}.{int(number) + 1}{'.' + rest if rest else ''}")


def rotate(logs: Path, live: Path, how: str) -> None:
    shift(logs, live.name)
    if how == "rotate":
        live.rename(logs / f"{live.name}.1")
    elif how == "rotate-gz":
        (logs / f"{live.name}.1.gz").write_bytes(gzip.compress(live.read_bytes()))
        live.unlink()
    else:  # copytruncate
        shutil.copyfile(live, logs / f"{live.name}.1")
        live.write_bytes(b"")
    live.touch()


def run_steps(root: Path, live_name: str, steps: list[str], as_folder: bool, lines: Iterator[bytes],
              collect: Callable[[list[str]], tuple[int, list[object]]], stored: Callable[[], set[bytes]]) -> None:
    """Play *steps*; *collect(inputs)* returns (duplicates, tampered) of one run, *stored()* the
    lines the ledger holds (as the test identifies them)."""
    logs = root / "logs"
    logs.mkdir()
    live = logs / live_name
    written: list[bytes] = []

    def write() -> None:
        new = [next(lines) for _ in range(3)]
        written.extend(new)
        with open(live, "ab") as handle:
            handle.write(b"".join(new))

    inputs = [str(logs if as_folder else live)]
    write()
    collect(inputs)
    for step in [*steps, "collect"]:
        if step == "write":
            write()
        elif step == "collect":
            duplicates, tampered = collect(inputs)
            assert tampered == [], (steps, as_folder, tampered)
            assert duplicates == 0, (steps, as_folder)
        else:
            rotate(logs, live, step)
    missing = [line for line in written if line not in stored()]
    assert not missing, (steps, as_folder, len(missing))
