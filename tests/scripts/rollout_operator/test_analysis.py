"""Analysis math on the server's real metrics output: snapshots, deltas, quantiles, verdicts, NaN."""

from __future__ import annotations

import math

import pytest

from rollout_operator.disagreement import DisagreementOutcome, compare_predictions, judge_disagreement
from rollout_operator.pod_metrics import delta, parse_pod_metrics
from rollout_operator.prometheus import prometheus_queries, prometheus_value
from rollout_operator.spec import DEFAULT_NON_ERROR_CODES, DisagreementCheck, parse_spec
from rollout_operator.verdict import evaluate
from rollout_operator.window import TrackStats, histogram_quantile
from service.errors import Code
from service.metrics import Metrics
from tests.scripts.rollout_operator.sim import spec_dict

INF = math.inf


def server_metrics(requests: list[tuple[str, str, Code, float]], model: str = "linear") -> str:
    """What a real server's /metrics says after serving ``(api, transport, code, seconds)`` requests."""
    m = Metrics()
    for api, transport, code, seconds in requests:
        m.observe(model, "2", api, code, transport, seconds)
    m.observe(model, "", "status", Code.OK, "rest", 0.0001)  # status calls never count
    m.observe("other", "1", "predict", Code.INTERNAL, "rest", 9.0)  # another model never counts
    return m.render().decode()


def test_snapshot_of_a_real_server() -> None:
    text = server_metrics(
        [("predict", "rest", Code.OK, 0.003)] * 8
        + [("predict", "grpc", Code.INTERNAL, 0.2)]
        + [("predict", "rest", Code.INVALID_ARGUMENT, 0.001)]
        + [("classify", "rest", Code.UNAUTHENTICATED, 0.001)]
    )
    snap = parse_pod_metrics(text, "linear", DEFAULT_NON_ERROR_CODES)
    assert snap["requests"] == 11
    assert snap["errors"] == 2  # INTERNAL and INVALID_ARGUMENT; UNAUTHENTICATED is the client's
    assert snap["buckets"]["+Inf"] == 11
    assert snap["buckets"]["0.005"] == 10  # cumulative: everything but the 0.2 s request
    stats = delta({"pod": snap}, None)
    assert stats.error_ratio == pytest.approx(2 / 11)
    assert 0.0 < stats.quantile(0.5) <= 0.005
    assert 0.1 < stats.quantile(0.99) <= 0.25


def test_empty_server_gives_zeroes() -> None:
    snap = parse_pod_metrics(Metrics().render().decode(), "linear", DEFAULT_NON_ERROR_CODES)
    assert snap == {"requests": 0.0, "errors": 0.0, "buckets": {}}
    stats = delta({"p": snap}, None)
    assert math.isnan(stats.error_ratio)
    assert math.isnan(stats.quantile(0.99))


def snap(requests: float, errors: float, buckets: dict[str, float] | None = None) -> dict[str, object]:
    return {"requests": requests, "errors": errors, "buckets": buckets or {"0.1": requests, "+Inf": requests}}


def test_delta_handles_new_pods_and_counter_resets() -> None:
    base = {"a": snap(100, 1), "b": snap(50, 0), "gone": snap(999, 999)}
    cur = {"a": snap(130, 4), "b": snap(5, 1), "new": snap(7, 0)}
    d = delta(cur, base)
    assert d.requests == 30 + 5 + 7  # b restarted: counts from zero, as Prometheus' increase()
    assert d.errors == 3 + 1 + 0
    assert dict(d.buckets)[INF] == 42


@pytest.mark.parametrize(
    ("q", "buckets", "want"),
    [
        (0.5, [(0.1, 50), (0.2, 100), (INF, 100)], 0.1),
        (0.99, [(0.1, 50), (0.2, 100), (INF, 100)], 0.198),
        (0.5, [(1.0, 0), (2.0, 10), (INF, 10)], 1.5),
        (0.99, [(0.1, 0), (INF, 10)], 0.1),  # lands in +Inf: the highest finite bound
        (0.5, [(INF, 10)], math.nan),
        (0.5, [(0.1, 0), (INF, 0)], math.nan),
        (0.5, [], math.nan),
        (0.5, [(0.1, 5)], math.nan),  # no +Inf bucket
        (0.5, [(0.0, 10), (INF, 10)], 0.0),
    ],
)
def test_histogram_quantile_matches_prometheus(
    q: float, buckets: list[tuple[float, float]], want: float
) -> None:
    got = histogram_quantile(q, buckets)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


def analysis(**overrides: object) -> object:
    base: dict[str, object] = {
        "interval": "30s",
        "minRequests": 10,
        "errorRatio": {"max": 0.05},
        "latencyP99": {"maxSeconds": 0.5, "maxRatioToStable": 2},
    }
    base.update(overrides)
    spec = parse_spec(spec_dict(analysis=base)).analysis
    assert spec is not None
    return spec


def track(requests: float, errors: float = 0, p99: float = 0.01) -> TrackStats:
    return TrackStats(requests=requests, errors=errors, buckets=((p99, requests), (INF, requests)))


def phases(m: object) -> dict[str, str]:
    return {x["name"]: x["phase"] for x in m.metrics}  # type: ignore[attr-defined]


def test_healthy_canary_passes() -> None:
    m = evaluate(analysis(), track(100, 1, 0.02), track(300, 3, 0.02), None)  # type: ignore[arg-type]
    assert m.phase == "Successful"
    assert m.kind == "result"
    assert phases(m) == {"requests": "Successful", "errorRatio": "Successful", "latencyP99": "Successful"}
    err = next(x for x in m.metrics if x["name"] == "errorRatio")
    assert err["value"] == 0.01
    assert err["stable"] == 0.01


def test_error_ratio_over_the_limit_fails() -> None:
    m = evaluate(analysis(), track(100, 20), track(100), None)  # type: ignore[arg-type]
    assert m.phase == "Failed"
    assert "error ratio 0.2000 > 0.05" in m.message


def test_too_few_requests_is_inconclusive_not_a_pass() -> None:
    m = evaluate(analysis(), track(3, 3, 9.0), track(100), None)  # type: ignore[arg-type]
    assert m.phase == "Inconclusive"
    assert phases(m) == {
        "requests": "Inconclusive",
        "errorRatio": "Inconclusive",
        "latencyP99": "Inconclusive",
    }
    assert "only 3 canary requests" in m.message


def test_no_data_is_inconclusive() -> None:
    m = evaluate(analysis(minRequests=0), TrackStats(0, 0, ()), None, None)  # type: ignore[arg-type]
    assert m.phase == "Inconclusive"
    values = {x["name"]: x.get("value") for x in m.metrics}
    assert values["errorRatio"] is None
    assert values["latencyP99"] is None


def test_nan_from_prometheus_is_inconclusive() -> None:
    nan = TrackStats(requests=50, errors=0, p99_override=math.nan)
    m = evaluate(analysis(), nan, track(50), None)  # type: ignore[arg-type]
    assert phases(m)["latencyP99"] == "Inconclusive"


def test_unreadable_canary_metrics_are_an_error() -> None:
    m = evaluate(analysis(), None, track(100), None, notes=["GET /metrics on c0: timed out"])  # type: ignore[arg-type]
    assert m.phase == "Error"
    assert "timed out" in m.message


def test_latency_absolute_and_relative() -> None:
    slow = evaluate(analysis(), track(100, p99=0.9), track(100, p99=0.01), None)  # type: ignore[arg-type]
    assert slow.phase == "Failed"
    assert "> 500 ms" in slow.message
    relative = evaluate(analysis(), track(100, p99=0.2), track(100, p99=0.05), None)  # type: ignore[arg-type]
    assert relative.phase == "Failed"
    assert "x stable" in relative.message
    only_ratio = analysis(latencyP99={"maxRatioToStable": 2})
    no_stable = evaluate(only_ratio, track(100, p99=0.2), None, None)  # type: ignore[arg-type]
    assert phases(no_stable)["latencyP99"] == "Inconclusive"
    quiet_stable = evaluate(analysis(), track(100, p99=0.2), track(2, p99=0.01), None)  # type: ignore[arg-type]
    assert phases(quiet_stable)["latencyP99"] == "Successful"  # too few stable requests to compare


def test_disagreement_decides() -> None:
    spec = analysis(disagreement={"inputs": [[1, 2, 3]]})
    bad = DisagreementOutcome("Failed", 1.0, "1/1 predictions differ")
    m = evaluate(spec, track(100), track(100), bad)  # type: ignore[arg-type]
    assert m.phase == "Failed"
    assert "predictions differ" in m.message
    m = evaluate(spec, track(1), track(100), bad)  # type: ignore[arg-type]
    assert m.phase == "Failed"  # wrong answers fail even without traffic


def check(**kw: float) -> DisagreementCheck:
    return DisagreementCheck(inputs=([1.0, 2.0, 3.0],), **kw)


def test_compare_predictions() -> None:
    assert compare_predictions([1.0, 2.0], [1.0, 2.0000001], 1e-6, 1e-3)[0] == 0
    assert compare_predictions([1.0, 2.5], [1.0, 2.0], 1e-6, 1e-3)[:2] == (1, 2)
    assert compare_predictions([[1, 2]], [[1, 2, 3]], 0, 0)[0] == 1
    assert compare_predictions([1.0], [1.0, 2.0], 0, 0)[:2] == (2, 2)
    assert compare_predictions([{"y": 1.0, "c": "a"}], [{"y": 1.0, "c": "a"}], 0, 0)[0] == 0
    assert compare_predictions([{"y": 1.0, "c": "a"}], [{"y": 1.0, "c": "b"}], 0, 0)[0] == 1
    assert compare_predictions([math.nan], [math.nan], 0, 0)[0] == 0
    assert compare_predictions([math.nan], [1.0], 0, 0)[0] == 1
    assert compare_predictions("x", [1.0], 0, 0)[0] == 1


def test_judge_disagreement() -> None:
    same = judge_disagreement(check(), (200, {"predictions": [3.0]}), (200, {"predictions": [3.0]}))
    assert same.phase == "Successful"
    assert same.ratio == 0.0
    wrong = judge_disagreement(check(), (200, {"predictions": [-3.0]}), (200, {"predictions": [3.0]}))
    assert wrong.phase == "Failed"
    assert "row 0" in wrong.message
    tolerated = judge_disagreement(
        check(max_ratio=1.0), (200, {"predictions": [-3.0]}), (200, {"predictions": [3.0]})
    )
    assert tolerated.phase == "Successful"
    broken = judge_disagreement(
        check(), (400, {"error": "Expected shape [-1,4]"}), (200, {"predictions": [3.0]})
    )
    assert broken.phase == "Failed"
    assert "HTTP 400" in broken.message
    assert "[-1,4]" in broken.message
    bad_inputs = judge_disagreement(check(), (200, {"predictions": [1]}), (400, {"error": "bad input"}))
    assert bad_inputs.phase == "Error"
    assert "analysis.disagreement.inputs" in bad_inputs.message


def test_prometheus_queries_and_values() -> None:
    q = prometheus_queries("ml", "linear", ["p-2", "p.1"], 30, ["OK", "CANCELLED"])
    assert 'pod=~"p-2|p\\\\.1"' in q["requests"]  # the PromQL string p\\\\.1 is the regex p\\.1
    assert q["requests"].startswith("sum(increase(modelship_requests_total{")
    assert "[30s]" in q["requests"]
    assert 'code!~"CANCELLED|OK"' in q["errors"]
    assert q["latency"].startswith("histogram_quantile(0.99, sum by (le) (rate(modelship_request_duration")
    assert (
        prometheus_value(
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "0.25"]}]}}
        )
        == 0.25
    )
    assert math.isnan(prometheus_value({"status": "success", "data": {"resultType": "vector", "result": []}}))
    assert math.isnan(
        prometheus_value(
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "NaN"]}]}}
        )
    )
    assert prometheus_value({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}) == 3
    with pytest.raises(ValueError, match="query failed"):
        prometheus_value({"status": "error", "error": "parse error"})
