"""One track's requests, errors and latency over one analysis window, whatever the metric source.

:mod:`rollout_operator.pod_metrics` builds a :class:`TrackStats` from counter deltas and
histogram buckets, :mod:`rollout_operator.prometheus` from PromQL answers (the quantile computed
there); :mod:`rollout_operator.verdict` judges them. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrackStats:
    """Requests, errors and latency of one track over one window."""

    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), sorted
    p99_override: float | None = None  # from Prometheus: the quantile is computed there

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else math.nan

    def quantile(self, q: float) -> float:
        if self.p99_override is not None:
            return self.p99_override
        return histogram_quantile(q, self.buckets)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` on cumulative ``(le, count)`` pairs: linear interpolation
    inside the bucket; NaN without observations; the highest finite bound if it lands in +Inf."""
    pairs = sorted(buckets)
    if not pairs or not math.isinf(pairs[-1][0]):
        return math.nan
    total = pairs[-1][1]
    if total <= 0 or math.isnan(total):
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for i, (le, count) in enumerate(pairs):
        if count >= rank:
            if math.isinf(le):
                return pairs[i - 1][0] if i > 0 else math.nan
            if i == 0 and le <= 0:
                return le
            in_bucket = count - lower_count
            if in_bucket <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / in_bucket
        lower_bound, lower_count = le, count
    return pairs[-1][0]
