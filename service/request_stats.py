"""Per-request counters and latency histograms, kept as plain numbers and exported at scrape time.

Every answered request updates a request counter and two latency histograms (Modelship's, in
seconds, and TF Serving's, in microseconds). Through ``prometheus_client``'s ``Counter`` and
``Histogram`` children that costs ~5 µs per request (a lock and a bucket search per metric); here
it is one dict lookup, two ``bisect`` calls and a few additions on the event loop, and the
Prometheus families are built from these numbers when ``/metrics`` is read. The exposition is the
same as the client library's: ``<name>_total`` for the counter, cumulative ``_bucket{le}``,
``_sum`` and ``_count`` for the histograms, bucket bounds formatted the same way.

Updates come from the event loop (REST and gRPC handlers run there); a scrape from another thread
reads a consistent-enough snapshot (each number is updated under the GIL), as with any counter.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from service.errors import Code

Key = tuple[str, str, str, Code, str]  # model, version, api, code, transport
Series = dict[tuple[str, ...], tuple[list[int], float]]  # label values -> (bucket counts, sum)


class _Stat:
    """One label set's numbers: requests, and both histograms' bucket counts and sums."""

    __slots__ = ("count", "micros", "micros_sum", "seconds", "seconds_sum")

    def __init__(self, seconds_buckets: int, micros_buckets: int) -> None:
        self.count = 0
        self.seconds = [0] * (seconds_buckets + 1)  # the last slot is +Inf
        self.seconds_sum = 0.0
        self.micros = [0] * (micros_buckets + 1)
        self.micros_sum = 0.0


class RequestStats(Collector):
    """``modelship_requests_total``, ``modelship_request_duration_seconds`` and TF Serving's two."""

    def __init__(self, seconds_buckets: Sequence[float], micros_buckets: Sequence[float]) -> None:
        self._seconds_bounds = tuple(seconds_buckets)
        self._micros_bounds = tuple(micros_buckets)
        self._stats: dict[Key, _Stat] = {}

    def observe(self, model: str, version: str, api: str, code: Code, transport: str, seconds: float) -> None:
        key = (model, version, api, code, transport)
        stat = self._stats.get(key)
        if stat is None:
            stat = self._stats[key] = _Stat(len(self._seconds_bounds), len(self._micros_bounds))
        stat.count += 1
        stat.seconds[bisect_left(self._seconds_bounds, seconds)] += 1
        stat.seconds_sum += seconds
        micros = seconds * 1e6
        stat.micros[bisect_left(self._micros_bounds, micros)] += 1
        stat.micros_sum += micros

    def collect(self) -> Iterable[Metric]:
        stats = list(self._stats.items())
        requests = CounterMetricFamily(
            "modelship_requests",
            "Requests by model, version, API, code and transport",
            labels=["model", "version", "api", "code", "transport"],
        )
        latency: Series = {}
        tf_latency: Series = {}
        tf_counts: dict[tuple[str, str], int] = {}
        for (model, version, api, code, transport), stat in stats:
            requests.add_metric([model, version, api, code.name, transport], stat.count)
            _merge(latency, (model, version, api, transport), stat.seconds, stat.seconds_sum)
            _merge(tf_latency, (model, api, transport.upper()), stat.micros, stat.micros_sum)
            tf_counts[(model, code.name)] = tf_counts.get((model, code.name), 0) + stat.count
        yield requests
        yield _histogram(
            "modelship_request_duration_seconds",
            "Request latency in seconds",
            ["model", "version", "api", "transport"],
            self._seconds_bounds,
            latency,
        )
        tf_count = Metric(
            ":tensorflow:serving:request_count", "TF Serving-compatible request count", "counter"
        )
        for (model, status), value in tf_counts.items():  # TF Serving's exact name: no _total suffix
            tf_count.add_sample(tf_count.name, {"model_name": model, "status": status}, value)
        yield tf_count
        yield _histogram(
            ":tensorflow:serving:request_latency",
            "TF Serving-compatible request latency in microseconds",
            ["model_name", "API", "entrypoint"],
            self._micros_bounds,
            tf_latency,
        )


def _merge(into: Series, labels: tuple[str, ...], counts: list[int], total: float) -> None:
    seen = into.get(labels)
    if seen is None:
        into[labels] = (list(counts), total)
        return
    merged, seen_total = seen
    for i, value in enumerate(counts):
        merged[i] += value
    into[labels] = (merged, seen_total + total)


def _histogram(
    name: str,
    documentation: str,
    labels: list[str],
    bounds: tuple[float, ...],
    series: Series,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    les = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
    for values, (counts, total) in series.items():
        cumulative, running = [], 0
        for le, count in zip(les, counts, strict=True):
            running += count
            cumulative.append((le, float(running)))
        family.add_metric(list(values), cumulative, total)
    return family
