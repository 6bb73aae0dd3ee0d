"""A thread-safe work queue of object keys, like client-go's: deduplicated, delayed, rate-limited.

A key is never handed to two workers at once: re-adding a key that is being processed marks it
dirty, and ``done`` queues it again. ``add_after`` schedules a key; ``retry_delay`` gives the
per-key exponential backoff after a failure (reset by ``forget``).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable


class WorkQueue:
    def __init__(
        self, base_delay: float = 1.0, max_delay: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._seq = 0
        self._failures: dict[str, int] = {}
        self._shutdown = False
        self.base_delay, self.max_delay, self.clock = base_delay, max_delay, clock

    def add(self, key: str) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: str) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (self.clock() + delay, self._seq, key))
            self._cond.notify()

    def _promote_due_locked(self) -> float | None:
        """Move due delayed keys to the queue; seconds until the next one (None: none left)."""
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self._add_locked(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float | None = None) -> str | None:
        """The next key to process (mark it done afterwards); None on shutdown or timeout."""
        deadline = None if timeout is None else self.clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    left = deadline - self.clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key)

    def retry_delay(self, key: str) -> float:
        """Record a failure of ``key``; the delay before its next attempt (1 s, 2 s, 4 s ... max)."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        return float(min(self.max_delay, self.base_delay * 2.0**n))

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)
