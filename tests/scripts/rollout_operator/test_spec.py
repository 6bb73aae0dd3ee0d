"""Spec parsing: defaults, every rejection, durations."""

from __future__ import annotations

from typing import Any

import pytest

from rollout_operator.durations import format_duration, parse_duration
from rollout_operator.spec import ImageSource, SpecError, Step, UrlSource, parse_spec
from tests.scripts.rollout_operator.sim import SHA_A, spec_dict


def minimal() -> dict[str, Any]:
    return {
        "targetRef": {"name": "prod-modelship"},
        "model": {"version": 3, "source": {"url": "https://models.example/m.tgz", "sha256": SHA_A.upper()}},
    }


def test_minimal_spec_gets_the_documented_defaults() -> None:
    spec = parse_spec(minimal())
    assert spec.container == "server"
    assert spec.model.source == UrlSource("https://models.example/m.tgz", SHA_A)  # lower-cased
    assert spec.strategy.type == "canary"
    assert spec.strategy.steps == (
        Step("setWeight", 20),
        Step("pause", duration=60.0),
        Step("setWeight", 50),
        Step("pause", duration=60.0),
    )
    assert spec.strategy.canary.traffic_gate is True
    assert spec.strategy.canary.max_replicas is None
    assert spec.analysis is None
    assert (spec.progress_deadline, spec.paused, spec.abort) == (600.0, False, False)


def test_full_spec() -> None:
    spec = parse_spec(
        spec_dict(
            analysis={
                "interval": "1m",
                "count": 5,
                "minRequests": 0,
                "errorRatio": {"max": 0.02, "nonErrorCodes": ["OK"]},
                "latencyP99": {"maxRatioToStable": 1.5},
                "disagreement": {"inputs": [[1, 2, 3]], "maxRatio": 0.1},
                "prometheus": {"url": "http://prometheus:9090/", "timeout": "3s"},
            }
        )
    )
    a = spec.analysis
    assert a is not None
    assert (a.interval, a.count, a.min_requests, a.failure_limit, a.inconclusive_limit) == (60.0, 5, 0, 0, 2)
    assert a.error_ratio is not None
    assert a.error_ratio.non_error_codes == ("OK",)
    assert a.latency is not None
    assert a.latency.max_seconds is None
    assert a.latency.max_ratio_to_stable == 1.5
    assert a.disagreement is not None
    assert a.disagreement.inputs == ([1, 2, 3],)
    assert a.disagreement.max_ratio == 0.1
    assert a.prometheus is not None
    assert a.prometheus.url == "http://prometheus:9090"
    assert a.prometheus.timeout == 3
    assert spec.strategy.steps[3] == Step("pause", duration=None)


def test_image_source() -> None:
    d = minimal()
    d["model"]["source"] = {"image": "registry.local/models:3", "path": "/models/linear/3"}
    spec = parse_spec(d)
    assert spec.model.source == ImageSource("registry.local/models:3", "/models/linear/3")
    assert spec.model.source_dict() == {"image": "registry.local/models:3", "path": "/models/linear/3"}


def test_revision_depends_on_version_and_source_only() -> None:
    a = parse_spec(minimal())
    b = parse_spec({**minimal(), "strategy": {"type": "rolling"}})
    assert a.model.revision() == b.model.revision()
    c = minimal()
    c["model"]["version"] = 4
    assert parse_spec(c).model.revision() != a.model.revision()
    d = minimal()
    d["model"]["source"]["sha256"] = "b" * 64
    assert parse_spec(d).model.revision() != a.model.revision()


def _with(path: str, value: Any) -> dict[str, Any]:
    d = spec_dict()
    node = d
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("targetRef.name", ..., "spec.targetRef.name"),
        ("targetRef.name", "Bad_Name", "spec.targetRef.name"),
        ("model.version", ..., "spec.model.version: required"),
        ("model.version", 0, "must be >= 1"),
        ("model.version", "2", "expected an integer"),
        ("model.version", True, "expected an integer"),
        ("model.source", {}, "exactly one of url or image"),
        ("model.source", {"url": "http://a/b", "image": "x"}, "exactly one of url or image"),
        ("model.source", {"url": "ftp://a/b", "sha256": "a" * 64}, "http:// or https://"),
        ("model.source", {"url": "http://a/b"}, "sha256"),
        ("model.source", {"url": "http://a/b", "sha256": "xyz"}, "sha256"),
        ("model.source", {"image": "a b"}, "not an image reference"),
        ("model.source", {"image": "img", "path": "relative"}, "must be absolute"),
        ("model.name", "../x", "not a model name"),
        ("strategy.type", "blue-green", "rolling, canary or traffic"),
        ("strategy.canary.steps", [{"pause": {}}], "at least one setWeight"),
        ("strategy.canary.steps", [{"setWeight": 100}], "<= 99"),
        ("strategy.canary.steps", [{"setWeight": 10, "pause": {}}], "exactly one of setWeight or pause"),
        ("strategy.canary.steps", [{"setWeight": 10}, {"pause": {"duration": "soon"}}], "not a duration"),
        ("strategy.canary.steps", [{"setWeight": 10}] * 33, "at most 32"),
        ("strategy.canary.maxReplicas", 0, ">= 1"),
        ("strategy.canary.trafficGate", "yes", "true or false"),
        ("analysis.interval", "0.5s", "at least 1s"),
        ("analysis.count", -1, ">= 0"),
        ("analysis.errorRatio", {"max": 2}, "<= 1"),
        ("analysis.errorRatio", {"max": float("nan")}, "finite"),
        ("analysis.latencyP99", {}, "maxSeconds, maxRatioToStable or both"),
        ("analysis.latencyP99", {"maxRatioToStable": 0.5}, ">= 1"),
        ("analysis.disagreement", {"inputs": []}, "non-empty list"),
        ("analysis.prometheus", {"url": "prometheus:9090"}, "http(s) URL"),
        ("progressDeadlineSeconds", 5, ">= 10"),
        ("abort", "true", "true or false"),
    ],
)
def test_rejections(path: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(_with(path, value))


def test_not_an_object() -> None:
    with pytest.raises(SpecError, match="expected an object"):
        parse_spec("nope")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("90", 90.0),
        (45, 45.0),
        ("1.5m", 90.0),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 m", "m", "-3s", "3d", "1h 2m", True, -1])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.2, 45, 60, 90, 3600, 3720)] == [
        "0s",
        "45s",
        "1m",
        "1m30s",
        "1h",
        "1h2m",
    ]
