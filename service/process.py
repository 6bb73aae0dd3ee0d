"""Facts about this server process for start-up logs: seconds since it started, resident memory.

Both read ``/proc`` (Linux); elsewhere they return ``None`` and the logs leave them out.
"""

from __future__ import annotations

import os
import time


def uptime_seconds() -> float | None:
    """Seconds since the kernel started this process (so the interpreter's own start counts)."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22, starttime, counted after the ")" of comm
        boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, IndexError, ValueError, AttributeError):
        return None
    return max(0.0, boot - started_ticks / os.sysconf("SC_CLK_TCK"))


def rss_mib() -> float | None:
    """Resident set size in MiB."""
    try:
        with open("/proc/self/statm") as fh:
            resident_pages = int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def describe() -> str:
    """``process up 0.93s, RSS 98 MiB`` (what is known of it)."""
    parts = []
    up = uptime_seconds()
    if up is not None:
        parts.append(f"process up {up:.2f}s")
    rss = rss_mib()
    if rss is not None:
        parts.append(f"RSS {rss:.0f} MiB")
    return ", ".join(parts)
