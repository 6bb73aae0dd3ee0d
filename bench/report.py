"""Turn measured points into the console table, Markdown, JSON, a PNG plot and the issue's target checks.

Ratios are taken at the same connection count, within one run: ``x seed`` against the seed-style
baseline (REST), ``x ceiling`` against the bare server of the same transport.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Point:
    target: str  # key
    name: str
    transport: str
    connections: int
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    server_cpu: float = 0.0  # cores used by the server during the point
    loadgen_cpu: float = 0.0  # cores used by the load generator
    other_cpu: float = 0.0  # cores used by everything else on the machine (noise indicator)
    mean_batch: float = 0.0  # rows per model call during the point (Modelship with batching on)
    duration_s: float = 0.0
    ok: int = 0
    failure: str = ""  # the point (or its target) could not be measured
    skipped: str = ""  # why the target was not run (an optional peer not installed): not a failure
    x_seed: float | None = None
    x_ceiling: float | None = None
    x_compute: float | None = None  # rows/s over the model's compute ceiling (bench/ceiling.py)
    round: int = 1  # which round (for one measurement); how many rounds (for an aggregate)
    rps_min: float = 0.0  # spread of req/s over the rounds of an aggregate
    rps_max: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def flagged(self) -> bool:
        return bool(self.failure) or self.error_count > 0

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU per successful request, in µs: its CPU seconds over the point / responses.

        ``server_cpu`` is those CPU seconds over the measured time and ``rps`` the responses over
        the same time, so their ratio is the same quotient (for an aggregate: of the medians).
        """
        return self.server_cpu / self.rps * 1e6 if self.rps > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.update(
            error_count=self.error_count, flagged=self.flagged, cpu_us_per_request=self.cpu_us_per_request
        )
        return d


def aggregate(points: list[Point]) -> list[Point]:
    """One point per (target, connections): medians over the rounds, errors summed, peak RSS max."""
    groups: dict[tuple[str, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p.target, p.connections), []).append(p)
    out = []
    for group in groups.values():
        good = [p for p in group if not p.failure]
        first = group[0]
        agg = Point(first.target, first.name, first.transport, first.connections, round=len(group))
        agg.skipped = first.skipped
        if not good:
            agg.failure = first.failure
            out.append(agg)
            continue
        (
            agg.rps,
            agg.p50_ms,
            agg.p90_ms,
            agg.p99_ms,
            agg.server_cpu,
            agg.loadgen_cpu,
            agg.other_cpu,
            agg.mean_batch,
        ) = (
            statistics.median(getattr(p, f) for p in good)
            for f in (
                "rps",
                "p50_ms",
                "p90_ms",
                "p99_ms",
                "server_cpu",
                "loadgen_cpu",
                "other_cpu",
                "mean_batch",
            )
        )
        agg.rps_min, agg.rps_max = min(p.rps for p in good), max(p.rps for p in good)
        agg.peak_rss_mib = max(p.peak_rss_mib for p in good)
        agg.ok, agg.duration_s = sum(p.ok for p in good), sum(p.duration_s for p in good)
        for p in group:
            for kind, n in p.errors.items():
                agg.errors[kind] = agg.errors.get(kind, 0) + n
        if len(good) < len(group):
            agg.failure = f"{len(group) - len(good)} of {len(group)} rounds failed: " + next(
                p.failure for p in group if p.failure
            )
            agg.errors["failed_rounds"] = len(group) - len(good)
        out.append(agg)
    return out


def add_ratios(points: list[Point], baseline_key: str, ceilings: dict[str, str]) -> None:
    """Fill ``x_seed`` and ``x_ceiling`` from points of the same run, round and connection count."""
    by = {(p.target, p.connections, p.round): p for p in points if p.rps > 0}
    for p in points:
        if not p.rps:
            continue
        seed = by.get((baseline_key, p.connections, p.round))
        ceiling = by.get((ceilings.get(p.transport, ""), p.connections, p.round))
        p.x_seed = p.rps / seed.rps if seed else None
        p.x_ceiling = p.rps / ceiling.rps if ceiling else None


def add_compute_share(points: list[Point], ceiling_rows_per_s: float, rows: int, keys: set[str]) -> None:
    """Fill ``x_compute`` for the targets in ``keys`` (those that run the model): rows/s, that is
    req/s x ``rows`` per request, over the rows/s of the model called in-process."""
    for p in points:
        if p.rps and p.target in keys and ceiling_rows_per_s > 0:
            p.x_compute = p.rps * rows / ceiling_rows_per_s


HEADERS = (
    "target",
    "transport",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "peak RSS MiB",
    "server CPU",
    "CPU µs/req",
    "other CPU",
    "batch",
    "x seed",
    "x ceiling",
)


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}x"


def headers(points: list[Point]) -> tuple[str, ...]:
    """The table's columns; ``x compute`` only when a compute ceiling was measured."""
    return (*HEADERS, "x compute") if any(p.x_compute is not None for p in points) else HEADERS


def rows(points: list[Point]) -> list[tuple[str, ...]]:
    compute = len(headers(points)) > len(HEADERS)
    out: list[tuple[str, ...]] = []
    for p in points:
        if p.skipped:
            out.append((p.name, p.transport, str(p.connections), "skipped", *[""] * (len(HEADERS) - 4)))
            continue
        if p.failure and not p.rps:
            blank = [""] * (len(headers(points)) - 7)
            out.append((p.name, p.transport, str(p.connections), "FAILED", "", "", "!", *blank))
            continue
        errors = f"{p.error_count} !" if p.flagged else "0"
        rps = f"{p.rps:,.0f}"
        if p.round > 1 and p.rps_max:
            rps += f" ±{(p.rps_max - p.rps_min) / 2 / p.rps * 100:.0f}%"
        out.append(
            (
                p.name,
                p.transport,
                str(p.connections),
                rps,
                f"{p.p50_ms:.2f}",
                f"{p.p99_ms:.2f}",
                errors,
                f"{p.peak_rss_mib:,.0f}",
                f"{p.server_cpu:.2f}",
                f"{p.cpu_us_per_request:,.0f}",
                f"{p.other_cpu:.2f}",
                f"{p.mean_batch:.1f}" if p.mean_batch else "—",
                _ratio(p.x_seed),
                _ratio(p.x_ceiling),
                *([_ratio(p.x_compute)] if compute else []),
            )
        )
    return out


def text_table(points: list[Point]) -> str:
    table = [headers(points), *rows(points)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    left = {0, 1}
    lines = []
    for n, r in enumerate(table):
        cells = [c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(points: list[Point]) -> str:
    lines = [
        "| " + " | ".join(headers(points)) + " |",
        "|" + "|".join(":--" if i < 2 else "--:" for i in range(len(headers(points)))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(points)]
    return "\n".join(lines)


@dataclass
class Check:
    text: str
    met: bool | None  # None: not measured in this run
    detail: str


def checks(points: list[Point], at: int = 32, high: int = 256) -> list[Check]:
    """The issue's targets, evaluated on this run (informational: nothing is gated on them)."""
    by = {(p.target, p.connections): p for p in points if p.rps > 0}
    out: list[Check] = []

    def get(key: str, conns: int) -> Point | None:
        return by.get((key, conns))

    for key, label in (("modelship-rest", "REST"), ("modelship-rest-batching", "REST+batching")):
        p = get(key, at)
        if p is None:
            continue
        out.append(
            Check(
                f"{label} c={at}: >= 10x seed baseline",
                None if p.x_seed is None else p.x_seed >= 10,
                _ratio(p.x_seed),
            )
        )
        out.append(
            Check(
                f"{label} c={at}: >= 0.5x bare ASGI",
                None if p.x_ceiling is None else p.x_ceiling >= 0.5,
                _ratio(p.x_ceiling),
            )
        )
        out.append(
            Check(f"{label} c={at}: p99 < 5 ms", p.p99_ms < 5 and not p.error_count, f"{p.p99_ms:.2f} ms")
        )
    for key, label in (("modelship-grpc", "gRPC"), ("modelship-grpc-batching", "gRPC+batching")):
        p = get(key, at)
        if p is not None:
            out.append(
                Check(
                    f"{label} c={at}: >= 0.5x bare grpc.aio",
                    None if p.x_ceiling is None else p.x_ceiling >= 0.5,
                    _ratio(p.x_ceiling),
                )
            )
    out += _issue13_checks(get, at)
    for off, on, label in (
        ("modelship-rest", "modelship-rest-batching", "REST"),
        ("modelship-grpc", "modelship-grpc-batching", "gRPC"),
        ("modelship-grpc-h2", "modelship-grpc-h2-batching", "gRPC --grpc_server=modelship"),
    ):
        a, b = get(off, high), get(on, high)
        if a is not None and b is not None:
            out.append(
                Check(
                    f"{label} c={high}: batching on > off",
                    b.rps > a.rps and not b.error_count,
                    f"{b.rps:,.0f} vs {a.rps:,.0f} req/s",
                )
            )
    return out


def _issue13_checks(get: Callable[[str, int], Point | None], at: int) -> list[Check]:
    """Issue 13: REST v1 near its ceiling, V2 as cheap as v1, gRPC near its ceiling and batching."""
    out: list[Check] = []
    v1, v2, grpc = get("modelship-rest", at), get("modelship-v2", at), get("modelship-grpc", at)
    if v1 is not None and v1.x_ceiling is not None:
        out.append(Check(f"REST v1 c={at}: >= 0.6x bare ASGI", v1.x_ceiling >= 0.6, _ratio(v1.x_ceiling)))
    if v1 is not None and v2 is not None and v1.cpu_us_per_request > 0:
        ratio = v2.cpu_us_per_request / v1.cpu_us_per_request
        out.append(
            Check(
                f"V2 infer c={at}: server CPU per request <= 1.2x REST v1's",
                ratio <= 1.2,
                f"{ratio:.2f}x: {v2.cpu_us_per_request:,.0f} vs {v1.cpu_us_per_request:,.0f} µs",
            )
        )
    h2 = get("modelship-grpc-h2", at)
    for point, where in ((grpc, ""), (h2, " --grpc_server=modelship")):
        if point is not None and point.x_ceiling is not None:
            text = f"gRPC{where} c={at}: >= 0.9x bare grpc.aio"
            out.append(Check(text, point.x_ceiling >= 0.9, _ratio(point.x_ceiling)))
    bare_h2 = get("bare-grpc-h2", at)
    if h2 is not None and bare_h2 is not None and bare_h2.rps:
        ratio = h2.rps / bare_h2.rps
        text = f"gRPC --grpc_server=modelship c={at}: >= 0.9x its own bare h2 server"
        out.append(Check(text, ratio >= 0.9, _ratio(ratio)))
    for key, where in (
        ("modelship-grpc-batching", ""),
        ("modelship-grpc-h2-batching", " --grpc_server=modelship"),
    ):
        batched = get(key, 64)
        if batched is not None and batched.mean_batch:
            out.append(
                Check(
                    f"gRPC+batching{where} c=64: mean batch >= 4 (meant for --model heavy)",
                    batched.mean_batch >= 4,
                    f"{batched.mean_batch:.1f} rows per model call",
                )
            )
    return out


def checks_text(items: list[Check], bullet: str = "  ") -> str:
    mark = {True: "met", False: "NOT met", None: "not measured"}
    return "\n".join(f"{bullet}{c.text}: {mark[c.met]} ({c.detail})" for c in items)


def write_json(
    path: Path, meta: dict[str, Any], points: list[Point], items: list[Check], measurements: list[Point]
) -> None:
    """``points``: one per target and connection count (medians when there were several rounds);
    ``measurements``: every single measurement."""
    data = {
        "meta": meta,
        "points": [p.as_dict() for p in points],
        "checks": [c.__dict__ for c in items],
        "measurements": [p.as_dict() for p in measurements],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def compute_notes(ceiling: dict[str, Any] | None) -> list[str]:
    """The Markdown paragraph on the compute ceiling (``bench.ceiling.Ceiling``'s dict), if any."""
    if not ceiling:
        return []
    share = " `x compute` is a target's rows/s (req/s x rows per request) over it."
    return [ceiling["headline"] + share, "", *(f"- {line}" for line in ceiling["summary"]), ""]


def write_markdown(path: Path, meta: dict[str, Any], points: list[Point], items: list[Check]) -> None:
    notes = [
        f"Command: `{meta['command']}`",
        "",
        f"Run {meta['started']} on {meta['machine']}; commit {meta['commit']}. "
        f"{meta['duration_s']} s per point after a {meta['warmup_s']} s warm-up, "
        f"{meta['rounds']} round(s) (medians; ± is half the req/s range); "
        f"{meta['rows']} row(s) of {meta.get('features', '?')} features per request. "
        f"REST load: {meta['rest_loadgen']}; gRPC load: {meta['grpc_loadgen']}. "
        f"CPUs: {meta['pinning']}. Load average at start/end: "
        f"{meta['loadavg_start']} / {meta['loadavg_end']}.",
        "",
        "req/s counts successful responses only; `errors` are HTTP answers with status >= 400, "
        "socket errors and timeouts, or non-OK gRPC codes (a `!` flags the point). Peak RSS is "
        "VmHWM summed over the server's process tree; `server CPU` is cores the server used during "
        "the point (its process tree, from `/proc/<pid>/stat`), `CPU µs/req` the server's CPU "
        "seconds over the point divided by its successful responses, `other CPU` cores used by "
        "everything else on the machine except the load generator (other tenants: noise). "
        "`batch` is the mean rows per model call from the server's batch-size histogram, where "
        "it has one. "
        "`x seed` is req/s over the seed-style baseline (REST) at the same connections, "
        "`x ceiling` over the bare server of the same transport.",
        "",
        *compute_notes(meta.get("compute_ceiling")),
    ]
    body = "\n".join(notes) + "\n" + markdown_table(points) + "\n"
    failures = [f"- {p.name} ({p.transport}) c={p.connections}: {p.failure}" for p in points if p.failure]
    if failures:
        body += "\nFailures:\n\n" + "\n".join(failures) + "\n"
    skips = {p.name: p.skipped for p in points if p.skipped}
    if skips:
        body += "\nSkipped:\n\n" + "\n".join(f"- {name}: {why}" for name, why in skips.items()) + "\n"
    if items:
        body += "\nTargets of issues 3, 12 and 13 in this run:\n\n" + checks_text(items, "- ") + "\n"
    path.write_text(body)


def write_plot(path: Path, points: list[Point]) -> None:
    """Grouped bars: req/s and p99 latency by target and connection count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [p for p in points if p.rps > 0]
    series: dict[str, dict[int, Point]] = {}
    for p in good:
        series.setdefault(f"{p.name} ({p.transport})", {})[p.connections] = p
    conns = sorted({p.connections for p in good})
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / max(1, len(series))
    for i, (label, pts) in enumerate(series.items()):
        xs = [n + i * width - 0.4 + width / 2 for n in range(len(conns))]
        ax_rps.bar(xs, [pts[c].rps if c in pts else 0 for c in conns], width, label=label)
        ax_p99.bar(xs, [pts[c].p99_ms if c in pts else 0 for c in conns], width, label=label)
    for ax, title in (
        (ax_rps, "throughput (req/s, higher is better)"),
        (ax_p99, "p99 latency (ms, log scale, lower is better)"),
    ):
        ax.set_xticks(range(len(conns)), [f"{c} conns" for c in conns])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    ax_p99.set_yscale("log")
    ax_rps.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
