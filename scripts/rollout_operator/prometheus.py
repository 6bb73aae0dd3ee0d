"""The Prometheus metric source (``analysis.prometheus``): PromQL over the window, instead of scrapes.

Assumes the usual ``namespace`` and ``pod`` target labels (ServiceMonitor/PodMonitor). The
quantile is computed by Prometheus, so a track's :class:`~rollout_operator.window.TrackStats`
carries it instead of buckets.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

from rollout_operator.durations import format_duration
from rollout_operator.pod_http import ProbeError
from rollout_operator.spec import MODEL_APIS, PrometheusSource
from rollout_operator.window import TrackStats


def _promql_regex(names: Iterable[str]) -> str:
    """An alternation of literal names inside a PromQL string: ``.`` (the only regex character a pod
    name or status code may hold) becomes ``\\.``, i.e. an escaped dot after PromQL's own unescaping."""
    return "|".join(n.replace(".", "\\\\.") for n in sorted(names)) or "^$"


def prometheus_queries(
    namespace: str,
    model: str,
    pods: Iterable[str],
    window: float,
    non_error_codes: Iterable[str],
    quantile: float = 0.99,
) -> dict[str, str]:
    """PromQL for one track: requests, errors and the latency quantile over ``window`` seconds."""
    apis = "|".join(MODEL_APIS)
    sel = f'namespace="{namespace}",pod=~"{_promql_regex(pods)}",model="{model}",api=~"{apis}"'
    w = format_duration(max(window, 1.0))
    codes = _promql_regex(non_error_codes)
    return {
        "requests": f"sum(increase(modelship_requests_total{{{sel}}}[{w}]))",
        "errors": f'sum(increase(modelship_requests_total{{{sel},code!~"{codes}"}}[{w}]))',
        "latency": f"histogram_quantile({quantile:g}, sum by (le) "
        f"(rate(modelship_request_duration_seconds_bucket{{{sel}}}[{w}])))",
    }


def prometheus_value(response: Any) -> float:
    """The single value of an instant-vector/scalar query response; NaN when empty."""
    if not isinstance(response, dict) or response.get("status") != "success":
        text = repr(response)
        raise ValueError(f"Prometheus query failed: {text if len(text) <= 200 else text[:197] + '...'}")
    data = response.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return float(result[1])
    if not result:
        return math.nan
    return float(result[0]["value"][1])


def prom_query(url: str, query: str, timeout: float) -> float:
    """One instant query. Raises ProbeError."""
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


def prometheus_track(
    source: PrometheusSource,
    namespace: str,
    model: str,
    pods: list[str],
    window: float,
    codes: Sequence[str],
    quantile: float,
) -> TrackStats:
    """One track's window from Prometheus (no data: zero requests, NaN latency). Raises ProbeError."""
    queries = prometheus_queries(namespace, model, pods, window, codes, quantile)
    values = {k: prom_query(source.url, q, source.timeout) for k, q in queries.items()}
    requests = 0.0 if math.isnan(values["requests"]) else values["requests"]
    errors = 0.0 if math.isnan(values["errors"]) else values["errors"]
    return TrackStats(requests=requests, errors=errors, p99_override=values["latency"])
