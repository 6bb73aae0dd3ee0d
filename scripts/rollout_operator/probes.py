"""HTTP to the serving pods (and to Prometheus): verification, metric scrapes, disagreement requests.

Two ways to reach a pod: ``direct`` (its IP and the container's REST port; what an in-cluster
operator uses, like Prometheus scraping) and ``proxy`` (through the API server's pod proxy; for an
operator running outside the cluster). The functions here return what the decision logic
consumes (:class:`~.observations.Verification`, :class:`~.observations.Measurement`).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

from rollout_operator.analysis import (
    DisagreementOutcome,
    Snapshot,
    TrackStats,
    delta,
    evaluate,
    judge_disagreement,
    parse_pod_metrics,
    prometheus_queries,
    prometheus_value,
)
from rollout_operator.kube import Kube
from rollout_operator.observations import Measurement, PodView, Verification
from rollout_operator.phases import Verdict, VerificationOutcome
from rollout_operator.spec import DEFAULT_NON_ERROR_CODES, AnalysisSpec, DisagreementCheck

log = logging.getLogger("modelship.rollout.probes")
TIMEOUT = 5.0


class ProbeError(Exception):
    """A pod or Prometheus could not be asked (connection, timeout, unparsable answer)."""


class PodHttp(Protocol):
    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request to ``pod``'s REST port; (HTTP status, body). Raises ProbeError."""
        ...


class DirectPodHttp:
    """Requests straight to the pod IP."""

    def __init__(self, port: int, timeout: float = TIMEOUT, token: str | None = None) -> None:
        self.port, self.timeout, self.token = port, timeout, token

    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if not pod.ip:
            raise ProbeError(f"pod {pod.name} has no IP yet")
        conn = http.client.HTTPConnection(pod.ip, self.port, timeout=self.timeout)
        headers = {"Connection": "close"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ProbeError(f"{method} {path} on pod {pod.name} ({pod.ip}:{self.port}): {exc}") from exc
        finally:
            conn.close()


class ProxyPodHttp:
    """Requests through the API server's ``pods/proxy`` subresource."""

    def __init__(self, kube: Kube, namespace: str, port: int, timeout: float = TIMEOUT) -> None:
        self.kube, self.namespace, self.port, self.timeout = kube, namespace, port, timeout

    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        try:
            status, data = self.kube.pod_proxy(
                self.namespace, pod.name, self.port, method, path, body, self.timeout
            )
        except Exception as exc:
            raise ProbeError(f"{method} {path} on pod {pod.name} via the API server: {exc}") from exc
        if status == 0 or (status in (502, 503) and not data.startswith(b"{")):
            raise ProbeError(
                f"{method} {path} on pod {pod.name} via the API server: HTTP {status} {data[:200]!r}"
            )
        return status, data


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def served_version(http: PodHttp, pod: PodView, model: str) -> str:
    """The highest AVAILABLE version of ``model`` on ``pod`` ("" if none)."""
    status, data = http.request(pod, "GET", f"/v1/models/{model}")
    body = _json(data)
    if status != 200 or not isinstance(body, dict):
        raise ProbeError(f"GET /v1/models/{model} on {pod.name}: HTTP {status}")
    versions = [
        int(v["version"]) for v in body.get("model_version_status", []) if v.get("state") == "AVAILABLE"
    ]
    return str(max(versions)) if versions else ""


def predict(
    http: PodHttp, pod: PodView, model: str, version: int | None, inputs: Sequence[Any]
) -> tuple[int, Any]:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    status, data = http.request(pod, "POST", path, {"instances": list(inputs)})
    return status, _json(data)


def disagreement(
    http: PodHttp, check: DisagreementCheck, model: str, version: int, canary: PodView, stable: PodView
) -> DisagreementOutcome:
    """Send the check's inputs to both pods and judge; transport failures are an Error outcome."""
    try:
        c = predict(http, canary, model, version, check.inputs)
        s = predict(http, stable, model, None, check.inputs)
    except ProbeError as exc:
        return DisagreementOutcome(Verdict.ERROR, None, str(exc))
    return judge_disagreement(check, c, s)


def verify_pod(
    http: PodHttp,
    pod: PodView,
    stable: PodView | None,
    model: str,
    version: int,
    check: DisagreementCheck | None,
) -> Verification:
    """Before a canary pod gets traffic: it must serve ``version`` AVAILABLE and (with a disagreement
    check) answer the check's inputs successfully and like stable."""
    try:
        status, data = http.request(pod, "GET", f"/v1/models/{model}/versions/{version}")
    except ProbeError as exc:
        return Verification(VerificationOutcome.ERROR, str(exc))
    body = _json(data)
    states = [v.get("state") for v in body.get("model_version_status", [])] if isinstance(body, dict) else []
    if status != 200 or "AVAILABLE" not in states:
        detail = body.get("error") if isinstance(body, dict) and "error" in body else f"states {states}"
        return Verification(
            VerificationOutcome.FAILED,
            f"model {model} version {version} is not AVAILABLE on the pod "
            f"(HTTP {status}: {detail}); with the latest-version policy the rolled-out "
            "version must be the highest one present",
        )
    if check is None:
        return Verification(VerificationOutcome.PASSED, f"serves {model} version {version}")
    if stable is None:
        return Verification(VerificationOutcome.ERROR, "no ready stable pod to compare predictions with")
    outcome = disagreement(http, check, model, version, pod, stable)
    if outcome.phase == Verdict.SUCCESSFUL:
        return Verification(
            VerificationOutcome.PASSED, f"serves {model} version {version}; {outcome.message}"
        )
    failed = outcome.phase == Verdict.FAILED
    return Verification(VerificationOutcome.FAILED if failed else VerificationOutcome.ERROR, outcome.message)


def scrape(http: PodHttp, pod: PodView, model: str, non_error_codes: Sequence[str]) -> Snapshot:
    status, data = http.request(pod, "GET", "/metrics")
    if status != 200:
        raise ProbeError(f"GET /metrics on {pod.name}: HTTP {status}")
    try:
        return parse_pod_metrics(data.decode("utf-8", "replace"), model, non_error_codes)
    except ValueError as exc:
        raise ProbeError(f"unparsable metrics from {pod.name}: {exc}") from exc


def prom_query(url: str, query: str, timeout: float) -> float:
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise ProbeError(f"Prometheus query failed: {exc}") from exc
    try:
        return prometheus_value(body)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProbeError(str(exc)) from exc


def measure(
    http: PodHttp,
    spec: AnalysisSpec,
    namespace: str,
    model: str,
    version: int,
    canary: Sequence[PodView],
    stable: Sequence[PodView],
    baseline: dict[str, Any] | None,
) -> Measurement:
    """Take one measurement of the serving ``canary`` pods against the serving ``stable`` pods.

    The first call (no baseline) only records the counters; later calls judge the window since."""
    codes = spec.error_ratio.non_error_codes if spec.error_ratio else DEFAULT_NON_ERROR_CODES
    notes: list[str] = []
    if spec.prometheus is not None:
        if baseline is None:
            return Measurement(kind="baseline", baseline={"prometheus": True})
        window = spec.interval
        canary_stats = _prom_track(
            spec, namespace, model, [p.name for p in canary], window, codes, notes, "canary"
        )
        stable_stats = (
            _prom_track(spec, namespace, model, [p.name for p in stable], window, codes, notes, "stable")
            if stable
            else None
        )
        new_baseline: dict[str, Any] = {"prometheus": True}
    else:
        snaps: dict[str, dict[str, Snapshot]] = {"canary": {}, "stable": {}}
        for track, pods in (("canary", canary), ("stable", stable)):
            for pod in pods:
                try:
                    snaps[track][pod.uid or pod.name] = scrape(http, pod, model, codes)
                except ProbeError as exc:
                    notes.append(str(exc))
        new_baseline = {"pods": {**snaps["canary"], **snaps["stable"]}}
        if baseline is None or "pods" not in baseline:
            return Measurement(kind="baseline", baseline=new_baseline)
        old = baseline["pods"]
        canary_stats = delta(snaps["canary"], old) if snaps["canary"] else None
        stable_stats = delta(snaps["stable"], old) if snaps["stable"] else None
    outcome = None
    if spec.disagreement is not None and canary:
        if stable:
            outcome = disagreement(http, spec.disagreement, model, version, canary[0], stable[0])
        else:
            outcome = DisagreementOutcome(
                Verdict.ERROR, None, "no ready stable pod to compare predictions with"
            )
    result = evaluate(spec, canary_stats, stable_stats, outcome, notes)
    return dataclasses.replace(result, baseline=new_baseline)


def _prom_track(
    spec: AnalysisSpec,
    namespace: str,
    model: str,
    pods: list[str],
    window: float,
    codes: Sequence[str],
    notes: list[str],
    track: str,
) -> TrackStats | None:
    assert spec.prometheus is not None
    quantile = spec.latency.quantile if spec.latency else 0.99
    queries = prometheus_queries(namespace, model, pods, window, codes, quantile)
    try:
        values = {k: prom_query(spec.prometheus.url, q, spec.prometheus.timeout) for k, q in queries.items()}
    except ProbeError as exc:
        notes.append(f"{track}: {exc}")
        return None
    requests = 0.0 if math.isnan(values["requests"]) else values["requests"]
    errors = 0.0 if math.isnan(values["errors"]) else values["errors"]
    return TrackStats(requests=requests, errors=errors, p99_override=values["latency"])
