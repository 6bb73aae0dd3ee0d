"""Choosing a version per name-only request: smooth weighted round-robin, or a sticky hash.

:class:`WeightedSplit` is nginx's smooth weighted round-robin: on each pick every eligible version's
``current`` grows by its weight, the largest wins and loses the eligible total. Over every cycle of
``sum(weights)`` picks each version is chosen exactly ``weight`` times, interleaved, and at any moment
a version's count is within one request of its exact share (two versions; more versions: within one
request per cycle). Versions with weight that are not AVAILABLE are skipped: the others share the
traffic in proportion to their weights. State is per process, so it is exact per pod whatever the
connections. A pick is a lock and a few integer operations, no allocation.

With a sticky key (a header value) the choice is a hash of the key over the cumulative weights:
the same key always gets the same version while the set of available versions stays the same;
across keys the split is statistical.

:class:`ShareCounter` makes the same exact, deterministic choice for "this share of requests"
(the shadow sample): a request is taken whenever the accumulated share passes 100 %.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import TypeVar

__all__ = ["ShareCounter", "WeightedSplit"]

T = TypeVar("T")


class WeightedSplit:
    """Smooth weighted round-robin over versions with positive weights."""

    def __init__(self, weights: Mapping[int, int]) -> None:
        kept = sorted((v, w) for v, w in weights.items() if w > 0)
        self.versions = tuple(v for v, _ in kept)
        self.weights = tuple(w for _, w in kept)
        self._current = [0] * len(kept)
        self._lock = threading.Lock()

    def pick(self, available: Mapping[int, T]) -> T | None:
        """The next version's servable, or None when no weighted version is available."""
        versions, weights, current = self.versions, self.weights, self._current
        with self._lock:
            best, total = -1, 0
            for i, version in enumerate(versions):
                if version in available:
                    current[i] += weights[i]
                    total += weights[i]
                    if best < 0 or current[i] > current[best]:
                        best = i
            if best < 0:
                return None
            current[best] -= total
        return available[versions[best]]

    def pick_sticky(self, key: bytes, available: Mapping[int, T]) -> T | None:
        """The version ``key`` hashes to over the available versions' cumulative weights."""
        total = sum(w for v, w in zip(self.versions, self.weights, strict=True) if v in available)
        if total == 0:
            return None
        point = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % total
        for version, weight in zip(self.versions, self.weights, strict=True):
            if version in available:
                if point < weight:
                    return available[version]
                point -= weight
        raise AssertionError("unreachable")  # point < total


class ShareCounter:
    """Says yes to exactly ``percent`` % of the calls, evenly spread (to 0.01 %)."""

    def __init__(self, percent: float) -> None:
        self._step = round(percent * 100)
        self._acc = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self._step <= 0:
            return False
        with self._lock:
            self._acc += self._step
            if self._acc >= 10_000:
                self._acc -= 10_000
                return True
        return False
