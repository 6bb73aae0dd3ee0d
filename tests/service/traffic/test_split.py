"""The per-request choice: smooth weighted round-robin is exact, sticky hashing is sticky."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from service.traffic.split import ShareCounter, WeightedSplit


def _counts(split: WeightedSplit, available: dict[int, str], n: int) -> list[Counter[str]]:
    """Running counts after every pick."""
    seen: Counter[str] = Counter()
    out = []
    for _ in range(n):
        pick = split.pick(available)
        assert pick is not None
        seen[pick] += 1
        out.append(Counter(seen))
    return out


@pytest.mark.parametrize(
    ("weights", "n"), [({1: 90, 2: 10}, 1000), ({1: 50, 2: 50}, 1000), ({1: 1, 2: 2}, 999)]
)
def test_exact_within_one_request_at_every_prefix(weights: dict[int, int], n: int) -> None:
    available = {v: f"v{v}" for v in weights}
    total = sum(weights.values())
    history = _counts(WeightedSplit(weights), available, n)
    for i, counts in enumerate(history, start=1):
        for version, weight in weights.items():
            assert abs(counts[f"v{version}"] - i * weight / total) < 1 + 1e-9, (i, counts)
    final = history[-1]
    assert {k: final[f"v{k}"] for k in weights} == {k: n * w // total for k, w in weights.items()}


def test_three_versions_every_cycle_is_exact() -> None:
    weights = {1: 5, 2: 3, 3: 2}
    history = _counts(WeightedSplit(weights), {1: "a", 2: "b", 3: "c"}, 100)
    for cycle in range(1, 11):
        assert history[cycle * 10 - 1] == Counter(a=5 * cycle, b=3 * cycle, c=2 * cycle)


def test_unavailable_versions_are_skipped_and_the_rest_renormalised() -> None:
    split = WeightedSplit({1: 70, 2: 20, 3: 10, 4: 0})
    final = _counts(split, {1: "a", 3: "c", 4: "d"}, 800)[-1]
    assert final == Counter(a=700, c=100)
    assert split.pick({4: "d"}) is None  # weight 0 is never picked: the caller falls back to latest
    assert split.pick({}) is None


def test_sticky_is_deterministic_and_roughly_weighted() -> None:
    split = WeightedSplit({1: 80, 2: 20})
    available = {1: "a", 2: "b"}
    first = {k: split.pick_sticky(f"user-{k}".encode(), available) for k in range(2000)}
    again = {k: split.pick_sticky(f"user-{k}".encode(), available) for k in range(2000)}
    assert first == again
    share = Counter(first.values())["b"] / 2000
    assert 0.16 < share < 0.24
    assert split.pick_sticky(b"user-1", {2: "b"}) == "b"  # only one available: everyone goes there
    assert split.pick_sticky(b"user-1", {}) is None


@pytest.mark.parametrize(
    ("percent", "n", "taken"), [(10, 1000, 100), (33.33, 10000, 3333), (0, 50, 0), (100, 7, 7)]
)
def test_share_counter_is_exact(percent: float, n: int, taken: int) -> None:
    counter = ShareCounter(percent)
    picks = [counter.take() for _ in range(n)]
    assert sum(picks) == taken
    if 0 < percent < 100:
        gaps = [i for i, p in enumerate(picks) if p]
        assert max(b - a for a, b in itertools.pairwise(gaps)) <= round(100 / percent) + 1
