"""Typed metric results and what they store: keys present exactly when known, plain strings."""

from __future__ import annotations

from rollout_operator.phases import Verdict
from rollout_operator.spec import parse_spec
from rollout_operator.verdict import MetricResult, evaluate
from rollout_operator.window import TrackStats
from tests.scripts.rollout_operator.sim import spec_dict


def test_as_dict_states_value_and_stable_only_when_known() -> None:
    unread = MetricResult(
        "errorRatio", Verdict.ERROR, "canary metrics unavailable", threshold="<= 0.01", measured=False
    )
    assert unread.as_dict() == {
        "name": "errorRatio",
        "phase": "Error",
        "threshold": "<= 0.01",
        "message": "canary metrics unavailable",
    }
    nan = MetricResult(
        "latencyP99", Verdict.INCONCLUSIVE, "x", threshold="", value=None, stable=0.1, has_stable=True
    )
    assert nan.as_dict() == {
        "name": "latencyP99",
        "phase": "Inconclusive",
        "threshold": "",
        "stable": 0.1,
        "value": None,
        "message": "x",
    }
    assert type(nan.as_dict()["phase"]) is str


def test_evaluate_stores_dicts_for_the_status() -> None:
    spec = parse_spec(spec_dict()).analysis
    assert spec is not None
    m = evaluate(spec, None, TrackStats(requests=50, errors=0), None)
    assert m.phase == Verdict.ERROR
    assert m.metrics[0] == {
        "name": "requests",
        "phase": "Error",
        "message": "no canary pod's metrics could be read",
    }
    assert all(isinstance(x, dict) for x in m.metrics)
