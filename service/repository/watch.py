"""What the poller remembers of each model between polls, and when it lists the model's source next.

A model is listed every ``interval`` seconds (``<= 0``: once, until a listing succeeds), soon again
while a version settles, and after failures with exponential backoff, so a store that is down is
not hammered and one that comes back is seen within a bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.model_config import ModelConfig
from service.repository.source import Fingerprint, Source, VersionRef

MAX_BACKOFF_SECONDS = 300.0


def backoff(interval: float, failures: int) -> float:
    """Seconds before retrying a source after ``failures`` failed listings in a row.

    Doubles from the poll interval (at least 0.5 s), up to 16 intervals and at most 5 minutes.
    """
    base = max(0.5, interval)
    ceiling = max(base, min(MAX_BACKOFF_SECONDS, 16 * base))
    return float(min(base * 2.0 ** min(failures - 1, 30), ceiling))


@dataclass
class Candidate:
    """A version seen but not loaded: its files when first seen this way, and whether they failed."""

    fingerprint: Fingerprint
    first_seen: float
    failed_fingerprint: Fingerprint | None = None


@dataclass
class Watched:
    """What polling remembers of one model (forgotten on reconfiguration)."""

    config: ModelConfig
    source: Source
    interval: float
    candidates: dict[int, Candidate] = field(default_factory=dict)
    warned_empty: bool = False
    due: float = 0.0  # monotonic time of its next listing
    failures: int = 0  # consecutive failed listings (the backoff's exponent)
    found: dict[int, VersionRef] | None = None  # the last successful listing (None: none yet)

    def reschedule(self, now: float, settling: bool, settle_seconds: float) -> None:
        """Set :attr:`due` after a poll at ``now``."""
        if self.failures:
            self.due = now + backoff(self.interval, self.failures)
        elif settling:  # a version is settling: look again soon
            self.due = now + max(0.05, settle_seconds / 2)
        else:
            self.due = now + self.interval if self.interval > 0 else float("inf")
