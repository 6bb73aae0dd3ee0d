"""The memory budget of in-flight requests: what request bodies and decoded tensors may hold at once.

Every request opens a :class:`Reservation` and takes bytes from the shared :class:`MemoryBudget`
*before* it allocates them: body bytes as they arrive, an upper bound of what parsing a JSON body
allocates, the elements a gRPC tensor's shape claims. Past the budget a request is refused at once
(HTTP 503 / gRPC ``RESOURCE_EXHAUSTED``), never queued; a request that could not fit even in an
empty budget is refused as too large. The default budget is a share of the container's memory
limit (cgroup v2 or v1, found through ``/proc/self/cgroup``), else of the machine's memory.

All requests run on one event loop, but model threads may release too, so counts take a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from service.errors import MemoryExhausted, PayloadTooLarge, ServingError

# A share of the memory limit for in-flight requests; the rest is for the interpreter, TensorFlow,
# the loaded models and what a model allocates while it runs (not counted here).
DEFAULT_SHARE = 0.5
MIN_BUDGET = 32 << 20
_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge page-aligned number


class MemoryBudget:
    """Bytes that in-flight requests may hold at once, shared by every transport."""

    def __init__(self, limit_bytes: int, on_refusal: Callable[[str], None] | None = None) -> None:
        if limit_bytes <= 0:
            raise ValueError("memory budget must be positive")
        self.limit = limit_bytes
        self.in_use = 0
        self._lock = threading.Lock()
        self._on_refusal = on_refusal

    def reservation(self) -> Reservation:
        return Reservation(self)

    def _take(self, held: int, nbytes: int, what: str, oversize: type[ServingError]) -> None:
        if held + nbytes > self.limit:
            self._refused("too_large")
            raise oversize(
                f"{what} needs about {nbytes + held} bytes, more than the server's memory "
                f"budget for in-flight requests ({self.limit} bytes)"
            )
        with self._lock:
            if self.in_use + nbytes > self.limit:
                in_use = self.in_use
            else:
                self.in_use += nbytes
                return
        self._refused("busy")
        raise MemoryExhausted(
            f"{what} needs about {nbytes} bytes but the server's memory budget for "
            f"in-flight requests is in use ({in_use} of {self.limit} bytes); "
            "retry later"
        )

    def _release(self, nbytes: int) -> None:
        with self._lock:
            self.in_use -= nbytes

    def _refused(self, reason: str) -> None:
        if self._on_refusal is not None:
            self._on_refusal(reason)


class Reservation:
    """What one request holds of the budget; :meth:`release` (idempotent) gives it all back."""

    __slots__ = ("_budget", "held")

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0

    def take(self, nbytes: int, what: str, oversize: type[ServingError] = PayloadTooLarge) -> None:
        """Hold ``nbytes`` more, or raise: ``oversize`` if it can never fit, else MemoryExhausted."""
        if nbytes <= 0:
            return
        self._budget._take(self.held, nbytes, what, oversize)
        self.held += nbytes

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self._budget._release(held)

    def __del__(self) -> None:  # a safety net: a reservation dropped unreleased gives its bytes back
        self.release()


def default_budget(share: float = DEFAULT_SHARE) -> int:
    """``share`` of the container's memory limit (or the machine's memory), at least 32 MiB."""
    return max(MIN_BUDGET, int(memory_limit() * share))


def memory_limit() -> int:
    """The tightest memory limit on this process: its cgroups (v2 or v1), else physical memory."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = [physical, *cgroup_limits()]
    return min(v for v in limits if v > 0)


def cgroup_limits(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> list[int]:
    """Memory limits of this process's cgroup and its ancestors (v2 ``memory.max``, v1 ``limit_in_bytes``)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2 unified hierarchy
            found += _walk(root, path, "memory.max")
        elif "memory" in controllers.split(","):
            found += _walk(root / "memory", path, "memory.limit_in_bytes")
    return found


def _walk(mount: Path, path: str, file: str) -> list[int]:
    """The limit ``file`` of ``path`` and each parent; inside a container the path is often ``/``."""
    out = []
    current = Path(path)
    while True:
        value = _read_limit(mount / current.relative_to("/") / file)
        if value is not None:
            out.append(value)
        if current == current.parent:
            return out
        current = current.parent


def _read_limit(file: Path) -> int | None:
    try:
        text = file.read_text().strip()
    except (OSError, ValueError):
        return None
    if not text.isdigit():  # "max" (v2) or unreadable
        return None
    value = int(text)
    return value if 0 < value < _UNLIMITED else None
