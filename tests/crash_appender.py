"""Child process for crash and concurrency tests: append batches, acknowledge each commit on stdout.

Usage: python -m tests.crash_appender LEDGER TAG BATCHES BATCH_SIZE
Prints ``ack <tag> <batch> <size-after>`` after each committed batch.
"""

from __future__ import annotations

import sys

from collector.ledger import Ledger
from tests.ledger_fixtures import manual_entry, manual_raw, raw_index_for


def main() -> None:
    path, tag, batches, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with Ledger.open(path) as ledger:
        for b in range(batches):
            entries = []
            for i in range(batch_size):
                e = manual_entry(i)
                event = dict(e.event, resource=f"{tag}-{b}-{i}")
                entries.append(type(e)(e.source, e.observed, event, e.raw_sha256, e.raw_size, f"{tag}:{b}:{i}"))
            raws = [manual_raw(i) for i in range(batch_size)]
            result = ledger.append(entries, cursors={tag: str(b)}, raw_index=raw_index_for(ledger, entries, raws))
            sys.stdout.write(f"ack {tag} {b} {result.size}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
