"""What a worker process reports about itself (no imports beyond the standard library)."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb() -> int:
    """This process's peak resident set (VmHWM), which, unlike ru_maxrss, restarts at exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0
