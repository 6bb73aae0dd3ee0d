"""Prometheus metrics of the server, in a registry of its own (one per server instance).

Names (the Helm chart's dashboard and the rollout operator read these):

* ``modelship_requests_total{model,version,api,code,transport}``
* ``modelship_request_duration_seconds{model,version,api,transport}`` (histogram)
* ``modelship_model_version_state{model,version,state}`` (1 for the current state, else 0)
* ``modelship_internal_errors_total{transport}``: requests that hit an unexpected server error
* ``modelship_memory_budget_bytes``, ``modelship_memory_in_use_bytes`` and
  ``modelship_memory_refusals_total{reason}``: the in-flight memory budget (``service.memory``)
* ``modelship_model_source_up{model}`` (0 while its base path cannot be listed),
  ``modelship_model_source_errors_total{model}``,
  ``modelship_model_source_last_success_timestamp_seconds{model}``,
  ``modelship_model_source_requests_total{model,op}`` (object storage: ``list``, ``get``) and
  ``modelship_model_cache_bytes`` / ``modelship_model_cache_limit_bytes``: model sources
* ``modelship_traffic_config_info{generation,hash}`` (1 for the applied traffic config: the
  ``generation`` the file sets and the hash of its normalized form) and
  ``modelship_traffic_config_errors_total``: new traffic files that could not be applied
* ``modelship_shadow_requests_total{model,version,result}``: shadow requests on candidate
  ``version`` by result: ``agree``, ``disagree``, ``shape_mismatch`` (an output missing, or another
  dtype or shape), ``error`` (the candidate failed), ``dropped`` (queue full or draining);
  ``modelship_shadow_duration_seconds{model,version}`` (histogram: the candidate's call and the
  comparison), ``modelship_shadow_max_abs_diff{model,version}`` (the largest absolute difference
  between candidate and primary outputs seen so far) and ``modelship_shadow_queue_length``.
  Shadows never touch the request metrics or the batch histogram.
* ``:tensorflow:serving:request_count{model_name,status}`` and
  ``:tensorflow:serving:request_latency{model_name,API,entrypoint}`` (microseconds), as TF Serving
  names them, so existing dashboards keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from service.errors import Code
from service.memory import MemoryBudget
from service.repository import State
from service.request_stats import RequestStats

if TYPE_CHECKING:
    from service.repository import ModelRepository
    from service.traffic import Traffic

_LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_TF_BUCKETS = tuple(10 * 1.8**k for k in range(33))

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Request and model-state metrics; ``observe`` is cheap enough for the hot path."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the scrape for no use here
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestStats(_LATENCY_BUCKETS, _TF_BUCKETS)  # the hot path's metrics
        self.registry.register(self.requests)
        self.state = Gauge(
            "modelship_model_version_state",
            "1 for the state a model version is in (TF Serving states)",
            ["model", "version", "state"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "modelship_batch_size",
            "Rows per model call with batching on",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.internal_errors = Counter(
            "modelship_internal_errors",
            "Requests that failed on an unexpected server error, by transport",
            ["transport"],
            registry=self.registry,
        )
        self.memory_refusals = Counter(
            "modelship_memory_refusals",
            "Requests refused by the in-flight memory budget (busy: retry later; too_large: can never fit)",
            ["reason"],
            registry=self.registry,
        )
        self.tls_reloads = Counter(
            "modelship_tls_reloads",
            "Changed TLS files seen: ok (new connections use them) or error (the previous stay)",
            ["result"],
            registry=self.registry,
        )
        self.memory_budget = Gauge(
            "modelship_memory_budget_bytes",
            "Bytes in-flight requests may hold at once",
            registry=self.registry,
        )
        self.memory_in_use = Gauge(
            "modelship_memory_in_use_bytes", "Bytes in-flight requests hold now", registry=self.registry
        )
        self.shadow_requests = Counter(
            "modelship_shadow_requests",
            "Shadow requests on a candidate version by comparison result",
            ["model", "version", "result"],
            registry=self.registry,
        )
        self.shadow_duration = Histogram(
            "modelship_shadow_duration_seconds",
            "Candidate call plus comparison of a shadow request, in seconds",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.shadow_max_abs_diff = Gauge(
            "modelship_shadow_max_abs_diff",
            "Largest absolute difference between candidate and primary outputs seen so far",
            ["model", "version"],
            registry=self.registry,
        )
        self._shadow_worst: dict[tuple[str, str], float] = {}

    def observe(self, model: str, version: str, api: str, code: Code, transport: str, seconds: float) -> None:
        """One answered request: its counter and both latency histograms (see ``request_stats``)."""
        self.requests.observe(model, version, api, code, transport, seconds)

    def watch_memory(self, budget: MemoryBudget) -> None:
        """Export ``budget``'s limit and use; count its refusals."""
        self.memory_budget.set(budget.limit)
        self.memory_in_use.set_function(lambda: budget.in_use)

    def watch_repository(self, repository: ModelRepository) -> None:
        """Export the health of every model's source and the download cache, read at scrape time."""
        self.registry.register(_SourceCollector(repository))

    def watch_traffic(self, traffic: Traffic, queue_length: Callable[[], int] | None = None) -> None:
        """Export the applied traffic config's generation and hash, and its reload errors."""
        self.registry.register(_TrafficCollector(traffic))
        if queue_length is not None:
            Gauge(
                "modelship_shadow_queue_length", "Shadow requests waiting", registry=self.registry
            ).set_function(queue_length)

    def shadow_result(self, model: str, version: str, result: str, seconds: float, diff: float) -> None:
        """One shadow request's outcome (called from the shadow thread; seconds/diff < 0: none)."""
        self.shadow_requests.labels(model, version, result).inc()
        if seconds >= 0:
            self.shadow_duration.labels(model, version).observe(seconds)
        key = (model, version)
        if diff >= 0 and diff >= self._shadow_worst.get(key, -1.0):
            self._shadow_worst[key] = diff
            self.shadow_max_abs_diff.labels(model, version).set(diff)

    def memory_refused(self, reason: str) -> None:
        self.memory_refusals.labels(reason).inc()

    def model_state(self, model: str, version: int, state: State) -> None:
        for candidate in (State.START, State.LOADING, State.AVAILABLE, State.UNLOADING, State.END):
            self.state.labels(model, str(version), candidate.name).set(1 if candidate == state else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SourceCollector(Collector):
    """Model sources' health and object-storage request counts, read from the repository."""

    def __init__(self, repository: ModelRepository) -> None:
        self._repository = repository

    def collect(self) -> Iterable[Metric]:
        up = Metric(
            "modelship_model_source_up", "1 while the model's base path lists, 0 while it fails", "gauge"
        )
        errors = Metric(
            "modelship_model_source_errors", "Failed listings of the model's base path", "counter"
        )
        last = Metric(
            "modelship_model_source_last_success_timestamp_seconds",
            "Unix time of the last good listing of the model's base path",
            "gauge",
        )
        for model in self._repository.model_names():
            health = self._repository.source_health(model)
            labels = {"model": model}
            up.add_sample("modelship_model_source_up", labels, 0 if health.error else 1)
            errors.add_sample("modelship_model_source_errors_total", labels, health.failures_total)
            if health.last_success is not None:
                last.add_sample(last.name, labels, health.last_success)
        requests = Metric(
            "modelship_model_source_requests",
            "Requests sent to object storage by model and operation",
            "counter",
        )
        for (model, op), count in sorted(self._repository.source_requests().items()):
            requests.add_sample("modelship_model_source_requests_total", {"model": model, "op": op}, count)
        cache = self._repository.cache
        used = Metric("modelship_model_cache_bytes", "Bytes in the object-storage download cache", "gauge")
        used.add_sample("modelship_model_cache_bytes", {}, cache.usage())
        limit = Metric("modelship_model_cache_limit_bytes", "Bound of the download cache (0: none)", "gauge")
        limit.add_sample("modelship_model_cache_limit_bytes", {}, cache.max_bytes or 0)
        yield from (up, errors, last, requests, used, limit)


class _TrafficCollector(Collector):
    """The applied traffic config (read at scrape time from :class:`service.traffic.Traffic`)."""

    def __init__(self, traffic: Traffic) -> None:
        self._traffic = traffic

    def collect(self) -> Iterable[Metric]:
        applied = self._traffic.applied
        info = Metric("modelship_traffic_config", "The applied traffic config (generation, hash)", "info")
        labels = {"generation": applied.config.generation, "hash": applied.hash}
        info.add_sample("modelship_traffic_config_info", labels, 1)
        errors = Metric(
            "modelship_traffic_config_errors", "Traffic config files that could not be applied", "counter"
        )
        errors.add_sample("modelship_traffic_config_errors_total", {}, self._traffic.errors_total)
        yield from (info, errors)
