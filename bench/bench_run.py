"""`fedledger run` overhead against a floor measured in the same process.

Floor: ingest() of N manual events straight into a fresh ledger (no config, no lock,
no validation pass, no checkpoint). Measured: execute_run() over the same file via a
config (lock, all-or-nothing validation pass of the manual source, ingest, checkpoint
signing, journal). Prints both rates and the ratio, and how long `status`'s
read-only aggregate over the resulting ledger takes. Size: --events N (default 50,000).

    python bench/bench_run.py --events 50000
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.config import load_config  # noqa: E402
from collector.ingest import ingest  # noqa: E402
from collector.ledger import Ledger  # noqa: E402
from collector.run import RunRequest, execute_run  # noqa: E402
from collector.signing import generate_private_key, write_private_key, write_public_key  # noqa: E402
from collector.sources.manual import ManualEvents  # noqa: E402

AS_OF = datetime(2026, 1, 21, tzinfo=timezone.utc)


def write_events(path: Path, count: int) -> None:
    with open(path, "w") as handle:
        for i in range(count):
            hh, rest = divmod(i % 86400, 3600)
            handle.write(f'{{"time":"2026-01-20T{hh:02d}:{rest // 60:02d}:{rest % 60:02d}Z","kind":"manual.review",'
                         f'"actor":"isso@example.gov","resource":"job-{i}","n":{i}}}\n')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    gc.disable()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        events = root / "events.jsonl"
        write_events(events, args.events)

        floor_ledger = Ledger.create(root / "floor.db", "bench/run", created="2026-01-21T00:00:00Z", key_type="ecdsa-p256")
        source = ManualEvents(events)
        start = time.perf_counter()
        ingest(floor_ledger, source.collect({}), kind="manual", source_id=source.source_id, observed="2026-01-21T00:00:00Z")
        floor = time.perf_counter() - start
        floor_ledger.close()

        (root / "run").mkdir()
        Ledger.create(root / "run" / "l.db", "bench/run", created="2026-01-21T00:00:00Z", key_type="ecdsa-p256").close()
        key = generate_private_key("ecdsa-p256")
        write_private_key(root / "run" / "l.key", key)
        write_public_key(root / "run" / "l.pub", key.public_key())
        (root / "fedledger.toml").write_text(
            '[ledger]\npath = "run/l.db"\norigin = "bench/run"\n\n'
            f'[[sources]]\nname = "m"\nkind = "manual"\nlocation = "{events}"\n')
        config = load_config(root / "fedledger.toml")
        start = time.perf_counter()
        with open(root / "run.log", "w") as log:
            result = execute_run(RunRequest(config=config, ledger_path=config.ledger.path, as_of=AS_OF), log)
        measured = time.perf_counter() - start
        assert result.exit_code == 0 and result.checkpoint is not None and result.checkpoint.size == args.events
        from collector.ledger_stats import ledger_stats

        start = time.perf_counter()
        stats = ledger_stats(config.ledger.path)
        status_time = time.perf_counter() - start
        assert stats.size == args.events
        start = time.perf_counter()
        ledger_stats(config.ledger.path)
        cached_time = time.perf_counter() - start
    n = args.events
    print(f"events: {n}")
    print(f"floor (ingest only):     {floor:.2f}s  {n / floor:,.0f} events/s")
    print(f"fedledger run (all steps): {measured:.2f}s  {n / measured:,.0f} events/s")
    print(f"run / floor time ratio:  {measured / floor:.2f}x")
    print(f"status (ledger_stats) over {n} entries: {status_time:.3f}s  {n / status_time:,.0f} entries/s")
    print(f"status again (stats cache, no new entries): {cached_time:.3f}s")


if __name__ == "__main__":
    main()
