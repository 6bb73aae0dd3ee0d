"""A real memory cgroup (v1 or v2) for running a server under a hard memory limit, as a pod does.

Needs root and a writable cgroup memory controller; :func:`memory_cgroup` skips the test otherwise.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path("/sys/fs/cgroup")


@dataclass
class MemoryCgroup:
    path: Path
    v2: bool

    @property
    def prefix(self) -> list[str]:
        """A command prefix that moves the process into this cgroup, then execs the command."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path)]

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this cgroup for exceeding its limit."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def peak_bytes(self) -> int:
        """The highest memory use the cgroup has seen (v2 ``memory.peak``, v1 ``max_usage_in_bytes``)."""
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        with contextlib.suppress(OSError):
            return int((self.path / name).read_text())
        return -1


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[MemoryCgroup]:
    """A fresh cgroup with ``limit_bytes`` of memory and no swap; removed afterwards."""
    name = f"modelship-test-{os.getpid()}-{time.monotonic_ns()}"
    if (ROOT / "cgroup.controllers").exists():
        if "memory" not in (ROOT / "cgroup.subtree_control").read_text().split():
            pytest.skip("cgroup v2 without the memory controller delegated")
        group = MemoryCgroup(ROOT / name, v2=True)
        limit_files = {"memory.max": limit_bytes, "memory.swap.max": 0}
    elif (ROOT / "memory").is_dir():
        group = MemoryCgroup(ROOT / "memory" / name, v2=False)
        limit_files = {"memory.limit_in_bytes": limit_bytes}
    else:
        pytest.skip("no cgroup memory controller on this machine")
    try:
        group.path.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup here ({exc}): needs root")
    try:
        for file, value in limit_files.items():
            with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to limit
                (group.path / file).write_text(str(value))
        yield group
    finally:
        for _ in range(50):  # the processes must have left before the directory can go
            try:
                group.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
