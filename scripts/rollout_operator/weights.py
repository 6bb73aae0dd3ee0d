"""Canary weights as replica ratios: how many canary pods a weight needs, and the weight they give.

A canary without a mesh: the Service spreads connections over all ready pods, so the canary's
share is ``canary / (canary + stable)``. The stable Deployment is never scaled down. Pure.
"""

from __future__ import annotations

import math


def canary_replicas(stable: int, weight: int, cap: int | None) -> int:
    """Canary pods so that canary / (canary + stable) is closest to ``weight`` percent.

    The stable Deployment is never scaled down: the canary is extra capacity. At least one pod for
    any weight above 0; at most ``cap`` (default: as many as stable, i.e. a 50 % split)."""
    if weight <= 0:
        return 0
    limit = cap if cap is not None else max(stable, 1)
    if stable <= 0:
        return min(1, limit)
    want = max(1, math.floor(stable * weight / (100 - weight) + 0.5))
    return min(want, limit)


def weight_percent(canary: int, stable: int) -> int:
    """The canary's share of ``canary + stable`` serving pods, in whole percent (0 without pods)."""
    return round(100 * canary / (canary + stable)) if canary + stable > 0 else 0
