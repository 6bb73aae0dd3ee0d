"""Benchmark Modelship side by side with a seed-style baseline and the bare HTTP/gRPC ceilings.

On one exported model (trained and exported into a temporary directory when none is given) it
starts, one at a time, each target bound to 127.0.0.1, waits until a real predict succeeds, and
drives it from a separate process (wrk for REST; ghz, or a multi-process Python client, for gRPC)
at each connection count for a fixed time after a warm-up. It prints req/s, p50/p99, errors, peak
RSS and ratios to the baseline and the ceiling, and writes bench/results/latest.{json,md,png}.
Nothing is gated on absolute numbers; the issue's targets are reported, never enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import ceiling, peers, procs, report, traffic
from bench.load import LoadResult, tfs
from bench.load import ghz as ghz_load
from bench.load import pygrpc as pygrpc_load
from bench.load import wrk as wrk_load
from bench.targets import (
    BY_KEY,
    DEFAULT_BATCHING,
    DEFAULT_TARGETS,
    GRPC,
    REST,
    ROOT,
    TARGETS,
    Context,
    Running,
    Target,
    launch,
)

Load = Callable[[Running, int, int], LoadResult]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model-base-path",
        type=Path,
        help="model base path holding <version>/ dirs (TF Serving's --model_base_path); "
        "default: train and export one into a temporary directory",
    )
    p.add_argument(
        "--model",
        choices=("linear", "heavy"),
        default="linear",
        help="model exported into the temporary directory when no --model-base-path is given: the "
        "trained linear regression (3 features), or the compute-heavy MLP of bench/heavy.py "
        "(64 features, two Dense 1,024 relu layers); heavy also measures its compute ceiling",
    )
    p.add_argument("--model-name", help="model name (route path and ModelSpec.name; default: --model)")
    p.add_argument(
        "--targets",
        default=",".join(t.key for t in DEFAULT_TARGETS),
        help="comma-separated targets to run, in the order given "
        "(default: all but the traffic ones): "
        + ", ".join(t.key for t in TARGETS)
        + "; the traffic targets (split, shadow) are compared with modelship-rest, so list it too; "
        + "every gRPC target's x ceiling is against bare-grpc (grpc.aio), the *-h2 ones "
        + "(--grpc_server=modelship) are also checked against bare-grpc-h2; "
        + "optional peer servers (bench/peers.py, skipped when not installed): "
        + ", ".join(t.key for t in peers.TARGETS),
    )
    p.add_argument(
        "--peers",
        action="store_true",
        help="add every peer server not listed in --targets (installed by bench/tools/setup --peers)",
    )
    p.add_argument(
        "--connections",
        help="comma-separated concurrent connections, one point each (default 1,32,256; 1,64,256 "
        "with --model heavy)",
    )
    p.add_argument("--duration", type=int, help="measured seconds per point, whole seconds (default 10)")
    p.add_argument("--warmup", type=int, help="warm-up seconds before each point, 0 for none (default 2)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: --duration and --warmup default to 3 and 1 instead"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole sequence this many times (servers restarted each round) and "
        "report medians: slow drift from other load on the machine averages out",
    )
    p.add_argument("--rows", type=int, default=1, help="instances (rows) per request")
    p.add_argument(
        "--compute-ceiling",
        action=argparse.BooleanOptionalAction,
        help="measure the model's compute ceiling in-process before each round (bench/ceiling.py) "
        "and add the `x compute` column; default: on with --model heavy, off otherwise",
    )
    p.add_argument(
        "--ceiling-batches", default="1,8,64,256", help="comma-separated batch sizes of the compute ceiling"
    )
    p.add_argument(
        "--ceiling-seconds",
        type=float,
        help="measured seconds per batch size of the compute ceiling (default 2; 1 with --quick)",
    )
    p.add_argument(
        "--timeout", type=float, default=5.0, help="per-request timeout in seconds (timeouts count as errors)"
    )
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: one core for load)")
    p.add_argument(
        "--grpc-loadgen",
        choices=("auto", "ghz", "python"),
        default="auto",
        help="gRPC load generator: ghz built from the Go module proxy, the Python multi-process "
        "client, or ghz with the Python client as fallback (auto)",
    )
    p.add_argument(
        "--grpc-connections",
        type=int,
        default=0,
        help="HTTP/2 connections for gRPC load (default 0: one per concurrent call, like wrk)",
    )
    p.add_argument("--python-client-procs", type=int, default=2, help="processes of the Python gRPC client")
    p.add_argument(
        "--batching-parameters",
        type=Path,
        help="BatchingParameters text proto for the +batching targets (default: "
        + DEFAULT_BATCHING.strip()
        + ")",
    )
    p.add_argument(
        "--modelship-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra flag for every Modelship target (repeatable), e.g. --modelship-arg=--model_threads=4",
    )
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin: by default, with >= 2 CPUs and taskset, the load generator gets the "
        "last CPU and the server the others",
    )
    p.add_argument(
        "--ready-timeout", type=float, default=180.0, help="seconds a server may take to become ready"
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=ROOT / "bench" / "results",
        help="where latest.json, latest.md and latest.png go",
    )
    p.add_argument("--no-plot", dest="plot", action="store_false", help="skip the PNG plot")
    args = p.parse_args(argv)
    args.model_name = args.model_name or args.model
    if args.connections is None:
        args.connections = "1,64,256" if args.model == "heavy" else "1,32,256"
    if args.compute_ceiling is None:
        args.compute_ceiling = args.model == "heavy"
    if args.ceiling_seconds is None:
        args.ceiling_seconds = 1.0 if args.quick else 2.0
    args.ceiling_batch_list = [int(b) for b in args.ceiling_batches.split(",")]
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    known = {**BY_KEY, **peers.BY_TARGET}
    keys = args.targets.split(",")
    keys += [t.key for t in peers.TARGETS if args.peers and t.key not in keys]
    unknown = [k for k in keys if k not in known]
    if unknown:
        p.error(f"unknown target(s): {', '.join(unknown)}")
    args.target_list = [known[k] for k in keys]
    args.connection_list = [int(c) for c in args.connections.split(",")]
    if min(args.duration, args.rounds, args.rows, *args.connection_list, *args.ceiling_batch_list) < 1:
        p.error("--duration, --rounds, --connections, --rows and --ceiling-batches must be >= 1")
    if args.warmup < 0 or args.ceiling_seconds <= 0:
        p.error("--warmup must be >= 0 and --ceiling-seconds > 0")
    return args


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare_model(args: argparse.Namespace, work: Path) -> Path:
    """The model base path to serve: the given one, or a freshly exported linear (trained) or heavy model."""
    if args.model_base_path is not None:
        given: Path = args.model_base_path
        return given.resolve()
    run_dir, base, name = str(work / "run"), str(work / "models"), str(args.model_name)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.model == "heavy":
        say("==> building and exporting the heavy MLP into a temporary directory")
        steps = [["bench.heavy", "--base-path", base, "--name", name]]
    else:
        say("==> training and exporting a linear model into a temporary directory")
        steps = [
            ["model", "train", "--run-dir", run_dir, "--no-progress"],
            ["model", "export", "--run-dir", run_dir, "--base-path", base, "--name", name],
        ]
    for cmd in steps:
        done = subprocess.run(
            [sys.executable, "-m", *cmd],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"python -m {' '.join(cmd[:2])} failed:\n{done.stderr[-3000:]}")
    return work / "models" / name


def latest_version(base_path: Path) -> Path:
    versions = sorted((int(d.name), d) for d in base_path.iterdir() if d.is_dir() and d.name.isdigit())
    if not versions:
        raise SystemExit(f"no numeric version directory under {base_path}")
    return versions[-1][1]


def grpc_loader(args: argparse.Namespace, ctx: Context, load_cpus: list[int] | None) -> tuple[Load, str]:
    """The gRPC load function and its description; ghz when it can be built (unless told otherwise)."""
    work = ctx.work
    request_file = work / "predict_request.bin"
    request = tfs.predict_request(ctx.model_name, ctx.rows, ctx.features, ctx.input_name)
    request_file.write_bytes(request.SerializeToString())

    def conns(c: int) -> int:
        return min(c, args.grpc_connections) if args.grpc_connections else c

    conn_note = (
        f"{args.grpc_connections} HTTP/2 connection(s)"
        if args.grpc_connections
        else "one HTTP/2 connection per concurrent call"
    )
    if args.grpc_loadgen in ("auto", "ghz"):
        try:
            binary = ghz_load.find_ghz()
            protoset = tfs.write_protoset(work / "tensorflow_serving.protoset")

            def run_ghz(r: Running, c: int, secs: int) -> LoadResult:
                return ghz_load.run(
                    binary, r.address, protoset, request_file, c, conns(c), secs, args.timeout, load_cpus
                )

            return run_ghz, f"{ghz_load.version(binary)} (closed loop, {conn_note})"
        except RuntimeError as exc:
            if args.grpc_loadgen == "ghz":
                raise
            say(f"  ghz unavailable ({exc}); falling back to the Python gRPC client")

    def run_py(r: Running, c: int, secs: int) -> LoadResult:
        return pygrpc_load.run(
            r.address, request_file, c, conns(c), secs, args.python_client_procs, args.timeout, load_cpus
        )

    return run_py, f"Python grpc.aio client, {args.python_client_procs} processes (closed loop, {conn_note})"


def compute_ceiling(ctx: Context, args: argparse.Namespace, cpus: list[int] | None) -> ceiling.Ceiling:
    """The model's compute ceiling, measured in a process pinned like the servers."""
    batches, seconds = args.ceiling_batch_list, args.ceiling_seconds
    listed = ",".join(str(b) for b in batches)
    say(f"==> compute ceiling: batches {listed}, {seconds:g} s each, pinned like the server")
    measured = ceiling.run(ctx.version_dir, batches, seconds, cpus, ctx.modelship_args)
    for line in measured.summary():
        say(f"    {line}")
    return measured


def _gist(exc: BaseException) -> str:
    """First line of an error and, for a server's log tail, its last line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [repr(exc)]
    return (lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}")[:300]


def measure_target(
    target: Target,
    ctx: Context,
    load: Load,
    args: argparse.Namespace,
    progress: Callable[[str], None],
    round_no: int,
) -> list[report.Point]:
    points: list[report.Point] = []

    def failed(conns: int, why: str) -> report.Point:
        return report.Point(target.key, target.name, target.transport, conns, failure=why, round=round_no)

    try:
        running = (peers.launch if target.kind == peers.KIND else launch)(target, ctx)
    except (RuntimeError, TimeoutError) as exc:
        say(f"  {target.key}: could not start: {exc}")
        return [failed(c, f"could not start: {_gist(exc)}") for c in args.connection_list]
    try:
        pid = running.proc.pid
        for conns in args.connection_list:
            progress(f"{target.name} ({target.transport}) c={conns}")
            if running.proc.poll() is not None:
                points.append(failed(conns, f"server exited with {running.proc.returncode}"))
                continue
            try:
                if args.warmup:
                    load(running, conns, args.warmup)
                batches0 = running.batches()
                cpu0, busy0 = procs.cpu_seconds(pid), procs.machine_busy_seconds()
                result = load(running, conns, args.duration)
                cpu1, busy1 = procs.cpu_seconds(pid), procs.machine_busy_seconds()
                batches1 = running.batches()
            except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
                say(f"    load failed: {exc!r}")
                points.append(failed(conns, f"load failed: {_gist(exc)}"))
                continue
            seconds = max(result.duration_s, 1e-9)
            point = report.Point(
                target.key,
                target.name,
                target.transport,
                conns,
                rps=result.rps,
                p50_ms=result.p50_ms,
                p90_ms=result.p90_ms,
                p99_ms=result.p99_ms,
                errors=result.errors,
                peak_rss_mib=procs.peak_rss_bytes(pid) / 2**20,
                server_cpu=(cpu1 - cpu0) / seconds,
                loadgen_cpu=result.loadgen_cpu_s / seconds,
                other_cpu=max(0.0, (busy1 - busy0 - (cpu1 - cpu0) - result.loadgen_cpu_s) / seconds),
                duration_s=result.duration_s,
                ok=result.ok,
                round=round_no,
            )
            if batches0 and batches1 and batches1[1] > batches0[1]:
                point.mean_batch = (batches1[0] - batches0[0]) / (batches1[1] - batches0[1])
            if running.proc.poll() is not None:
                point.failure = f"server exited with {running.proc.returncode} during the point"
            points.append(point)
            flag = f"  ERRORS {point.errors}" if point.error_count else ""
            say(
                f"    {point.rps:>9,.0f} req/s  p50 {point.p50_ms:7.2f} ms  p99 {point.p99_ms:7.2f} ms  "
                f"server {point.server_cpu:.2f} / load {point.loadgen_cpu:.2f} cores"
                + (f"  mean batch {point.mean_batch:.1f}" if point.mean_batch else "")
                + flag
            )
    finally:
        procs.stop(running.proc)
    return points


def environment(args: argparse.Namespace, pinning: str, rest_gen: str, grpc_gen: str) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        out = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", "service", "model", "bench"):
        commit += " (with uncommitted changes in service/, model/ or bench/)"
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    versions = {}
    for dist in ("tensorflow-cpu", "fastapi", "uvicorn", "grpcio", "uvloop", "httptools", "orjson"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {
        "command": "scripts/bench" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.cpu_count()} x {cpu}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        "commit": commit,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "rows": args.rows,
        "connections": args.connection_list,
        "rest_loadgen": rest_gen,
        "grpc_loadgen": grpc_gen,
        "pinning": pinning,
        "versions": versions,
        "loadavg_start": _loadavg(),
        "loadavg_end": None,
        "interrupted": False,
    }


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the gRPC stubs import TensorFlow here too
    procs.install_signal_handlers()
    server_cpus, load_cpus, pinning = procs.cpu_split(args.pin)
    wrk = wrk_load.find_wrk() if any(t.transport == REST for t in args.target_list) else ""
    measured: list[report.Point] = []
    ceilings: list[ceiling.Ceiling] = []
    with tempfile.TemporaryDirectory(prefix="modelship-bench-") as tmp:
        work = Path(tmp)
        base_path = prepare_model(args, work)
        version_dir = latest_version(base_path)
        try:
            with procs.quiet_stderr():  # TensorFlow's protos (and the gRPC stubs) greet on stderr
                input_name, features = tfs.signature_input(version_dir)
        except ValueError as exc:
            raise SystemExit(f"scripts/bench: {exc}") from None
        batching_file = args.batching_parameters or work / "batching.pbtxt"
        if args.batching_parameters is None:
            batching_file.write_text(DEFAULT_BATCHING)
        ctx = Context(
            args.model_name,
            base_path,
            version_dir,
            work,
            server_cpus,
            Path(batching_file).resolve(),
            list(args.modelship_arg),
            args.rows,
            args.ready_timeout,
            input_name=input_name,
            features=features,
        )
        body = tfs.rest_body(args.rows, features)

        def run_wrk(r: Running, c: int, secs: int) -> LoadResult:
            payload = r.body or body  # peers send their own protocol's body
            return wrk_load.run(wrk, r.url, payload, c, secs, args.wrk_threads, args.timeout, load_cpus)

        rest_gen = f"{wrk_load.version(wrk)}, {args.wrk_threads} thread(s) (closed loop)" if wrk else "—"
        run_grpc, grpc_gen = (
            grpc_loader(args, ctx, load_cpus)
            if any(t.transport == GRPC for t in args.target_list)
            else (run_wrk, "—")
        )
        meta = environment(args, pinning, rest_gen, grpc_gen)
        meta["features"] = features
        meta["peers"] = peers.describe(args.target_list)
        skips = {t.key: why for t in args.target_list if (why := peers.missing(t))}
        for key, why in skips.items():
            say(f"skipped {key}: {why}")
        total = args.rounds * (len(args.target_list) - len(skips)) * len(args.connection_list)
        per_point = args.duration + args.warmup
        say(
            f"==> {total} points x ({args.warmup}+{args.duration}) s, model {ctx.version_dir} "
            f"({features} features); {pinning}"
        )
        say(f"    REST load: {rest_gen}; gRPC load: {grpc_gen}")
        done = [0]
        started = time.monotonic()

        def progress(what: str) -> None:
            done[0] += 1
            left = (total - done[0] + 1) * per_point
            elapsed = time.monotonic() - started
            say(f"[{done[0]:>2}/{total}] {what}  (t+{elapsed:.0f}s, ~{left}s of load left)")

        try:
            for round_no in range(1, args.rounds + 1):
                if args.compute_ceiling:
                    ceilings.append(compute_ceiling(ctx, args, server_cpus))
                for target in args.target_list:
                    if target.key in skips:
                        why = skips[target.key]
                        measured += [
                            report.Point(target.key, target.name, REST, c, skipped=why, round=round_no)
                            for c in args.connection_list
                        ]
                        continue
                    load = run_wrk if target.transport == REST else run_grpc
                    say(f"==> {target.key}: starting" + (f" (round {round_no})" if args.rounds > 1 else ""))
                    measured += measure_target(target, ctx, load, args, progress, round_no)
        except KeyboardInterrupt:
            meta["interrupted"] = True
            say("interrupted: servers stopped; writing the points measured so far")
    meta["loadavg_end"] = _loadavg()
    points = report.aggregate(measured)
    for some in (measured, points):
        report.add_ratios(some, "seed", {REST: "bare-asgi", GRPC: "bare-grpc"})
    best = ceiling.median(ceilings)
    if best is not None:
        meta["compute_ceiling"] = {**best.as_dict(), "headline": best.headline(), "summary": best.summary()}
        runs_model = {t.key for t in args.target_list if not t.is_ceiling}
        for some in (measured, points):
            report.add_compute_share(some, best.rows_per_s, args.rows, runs_model)
    items = report.checks(points)
    kinds = {t.key: t.traffic for t in args.target_list if t.traffic}
    traffic_lines, traffic_checks = traffic.costs(points, kinds)
    items += traffic_checks
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out_dir / "latest.json", meta, points, items, measured)
    report.write_markdown(args.out_dir / "latest.md", meta, points, items)
    plotted = False
    if args.plot and any(p.rps for p in points):
        try:
            report.write_plot(args.out_dir / "latest.png", points)
            plotted = True
        except ImportError:
            say("plot skipped: matplotlib is not installed (pip install -e '.[plot]')")
    print()
    print(report.text_table(points))
    for p in points:
        if p.failure:
            print(f"! {p.name} ({p.transport}) c={p.connections}: {p.failure}")
    for key, why in skips.items():
        print(f"skipped {key}: {why}")
    if best is not None:
        print("\n" + best.headline() + "".join(f"\n  {line}" for line in best.summary()))
    if traffic_lines:
        print(f"\nTraffic split and shadow against {traffic.BASELINE} (same run):")
        print("\n".join(traffic_lines))
    if items:
        print("\nTargets of issues 3, 12 and 13 (informational, never gated):")
        print(report.checks_text(items))
    print(
        f"\nREST load: {rest_gen}\ngRPC load: {grpc_gen}\nCPUs: {pinning}; load average "
        f"{meta['loadavg_start']} -> {meta['loadavg_end']}"
    )
    print(f"Results: {args.out_dir}/latest.json, latest.md" + (", latest.png" if plotted else ""))
    if meta["interrupted"]:
        return 130
    return 1 if any(p.failure for p in points) else 0


if __name__ == "__main__":
    sys.exit(main())
