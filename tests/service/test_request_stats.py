"""The hot path's request metrics expose exactly what prometheus_client's own metrics would."""

from __future__ import annotations

import re

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.errors import Code
from service.metrics import _LATENCY_BUCKETS, _TF_BUCKETS, Metrics

CALLS = [
    ("linear", "1", "predict", Code.OK, "rest"),
    ("linear", "2", "predict", Code.OK, "rest"),
    ("linear", "1", "predict", Code.INVALID_ARGUMENT, "rest"),
    ("linear", "1", "Predict", Code.OK, "grpc"),
    ("other", "3", "infer", Code.NOT_FOUND, "rest"),
]


def _reference(observations: list[tuple[tuple[str, str, str, Code, str], float]]) -> str:
    """The same observations through prometheus_client's Counter and Histogram."""
    registry = CollectorRegistry()
    requests = Counter(
        "modelship_requests", "x", ["model", "version", "api", "code", "transport"], registry=registry
    )
    latency = Histogram(
        "modelship_request_duration_seconds",
        "x",
        ["model", "version", "api", "transport"],
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )
    tf_latency = Histogram(
        ":tensorflow:serving:request_latency",
        "x",
        ["model_name", "API", "entrypoint"],
        buckets=_TF_BUCKETS,
        registry=registry,
    )
    for (model, version, api, code, transport), seconds in observations:
        requests.labels(model, version, api, code.name, transport).inc()
        latency.labels(model, version, api, transport).observe(seconds)
        tf_latency.labels(model, api, transport.upper()).observe(seconds * 1e6)
    return generate_latest(registry).decode()


def _samples(text: str, prefixes: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(prefixes) and "_created" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_exposition_matches_prometheus_client_for_the_same_observations() -> None:
    rng = np.random.default_rng(1)
    # Values on bucket bounds too: a bound belongs to its own bucket (le is "less or equal").
    values = [*rng.lognormal(-7, 2, size=400), *_LATENCY_BUCKETS, 0.0, 30.0]
    observations = [(CALLS[i % len(CALLS)], float(v)) for i, v in enumerate(values)]
    metrics = Metrics()
    for key, seconds in observations:
        metrics.observe(*key, seconds)
    ours = metrics.render().decode()
    prefixes = (
        "modelship_requests_total",
        "modelship_request_duration_seconds",
        ":tensorflow:serving:request_latency",
    )
    want, got = _samples(_reference(observations), prefixes), _samples(ours, prefixes)
    assert len(want) > 100
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert np.isclose(got[name], value), name
    assert "# TYPE modelship_request_duration_seconds histogram" in ours
    assert "# TYPE modelship_requests_total counter" in ours


def test_tf_serving_request_count_keeps_its_exact_name_and_sums_versions() -> None:
    metrics = Metrics()
    for key in CALLS:
        metrics.observe(*key, 0.001)
    text = metrics.render().decode()
    counts = dict(re.findall(r"^:tensorflow:serving:request_count\{(.*)\} (\S+)$", text, re.MULTILINE))
    assert counts == {
        'model_name="linear",status="OK"': "3.0",
        'model_name="linear",status="INVALID_ARGUMENT"': "1.0",
        'model_name="other",status="NOT_FOUND"': "1.0",
    }
    assert ":tensorflow:serving:request_count_total{" not in text  # the samples keep TF Serving's name
