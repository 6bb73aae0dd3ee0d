"""The servers under test, in the order they run, and how to start and probe each one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs, traffic
from bench.load import tfs

ROOT = Path(__file__).resolve().parent.parent
REST, GRPC = "REST", "gRPC"
BATCH_METRIC = "modelship_batch_size"  # histogram of rows per model call, when batching is on
DEFAULT_BATCHING = (
    "max_batch_size { value: 64 } batch_timeout_micros { value: 0 } "
    "max_enqueued_batches { value: 100 } num_batch_threads { value: 2 }\n"
)


@dataclass(frozen=True)
class Target:
    key: str  # command-line id
    name: str  # label in the table
    transport: str  # REST or gRPC
    kind: str  # seed | bare-asgi | bare-grpc | modelship | peer (bench/peers.py)
    batching: bool = False
    traffic: str = ""  # "split" or "shadow": two versions and a traffic file (bench/traffic.py)
    v2: bool = False  # REST: KServe V2 ``/v2/models/<name>/infer`` instead of TF Serving's ``:predict``
    grpc_server: str = "grpcio"  # gRPC: grpcio (grpc.aio) or modelship (service.grpc.h2)

    @property
    def is_ceiling(self) -> bool:
        """A fixed answer, no model: the bare servers (``x ceiling`` is against ``bare-asgi`` for
        REST and ``bare-grpc``, grpc.aio, for gRPC; ``bare-grpc-h2`` is the h2 server's own)."""
        return self.kind.startswith("bare-")

    @property
    def is_baseline(self) -> bool:
        return self.kind == "seed"


H2 = "modelship"  # --grpc_server=modelship
TARGETS = (
    Target("seed", "seed baseline", REST, "seed"),
    Target("bare-asgi", "bare ASGI", REST, "bare-asgi"),
    Target("modelship-rest", "modelship", REST, "modelship"),
    Target("modelship-rest-batching", "modelship+batching", REST, "modelship", batching=True),
    Target("modelship-v2", "modelship V2 infer", REST, "modelship", v2=True),
    Target("modelship-rest-split", "modelship 90/10 split", REST, "modelship", traffic=traffic.SPLIT),
    Target("modelship-rest-shadow", "modelship shadow 10%", REST, "modelship", traffic=traffic.SHADOW),
    Target("bare-grpc", "bare grpc.aio", GRPC, "bare-grpc"),
    Target("bare-grpc-h2", "bare h2 server", GRPC, "bare-grpc", grpc_server=H2),
    Target("modelship-grpc", "modelship", GRPC, "modelship"),
    Target("modelship-grpc-batching", "modelship+batching", GRPC, "modelship", batching=True),
    Target("modelship-grpc-h2", "modelship h2 server", GRPC, "modelship", grpc_server=H2),
    Target(
        "modelship-grpc-h2-batching",
        "modelship+batching h2 server",
        GRPC,
        "modelship",
        batching=True,
        grpc_server=H2,
    ),
)
BY_KEY = {t.key: t for t in TARGETS}
DEFAULT_TARGETS = tuple(t for t in TARGETS if not t.traffic)  # the traffic ones on request


@dataclass
class Context:
    """What every target is started with: the same model, the same CPUs, one scratch directory."""

    model_name: str
    base_path: Path  # <base_path>/<version>/saved_model.pb
    version_dir: Path
    work: Path
    cpus: list[int] | None
    batching_file: Path
    modelship_args: list[str] = field(default_factory=list)
    rows: int = 1
    ready_timeout: float = 180.0
    input_name: str = "x"  # the serving_default input, [batch, features] float (tfs.signature_input)
    features: int = 3


@dataclass
class Running:
    target: Target
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""  # REST predict URL
    address: str = ""  # gRPC host:port
    metrics_url: str = ""  # Prometheus endpoint (Modelship only)
    body: bytes = b""  # REST request body when it is not TF Serving's (peers in their own protocol)

    def batches(self) -> tuple[float, float] | None:
        """(requests, batches) the server's batch-size histogram has counted, when it has one."""
        if not self.metrics_url:
            return None
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in (f"{BATCH_METRIC}_sum", f"{BATCH_METRIC}_count"):
                values[name] = float(value)
        if len(values) < 2:
            return None
        return values[f"{BATCH_METRIC}_sum"], values[f"{BATCH_METRIC}_count"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    """The harness's environment minus any MODELSHIP_* server setting, with TF's C++ logs quiet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIP_") or k == "MODELSHIP_CACHE"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(target: Target, ctx: Context, rest_port: int, grpc_port: int) -> list[str]:
    py = sys.executable
    if target.kind == "seed":
        return [
            py,
            "-m",
            "bench.servers.seed_baseline",
            f"--model-dir={ctx.version_dir}",
            f"--model-name={ctx.model_name}",
            f"--port={rest_port}",
        ]
    if target.kind == "bare-asgi":
        return [py, "-m", "bench.servers.bare_asgi", f"--port={rest_port}"]
    if target.kind == "bare-grpc":
        module = "bench.servers.bare_grpc"
        return [
            py,
            "-m",
            module,
            f"--port={grpc_port}",
            f"--model-name={ctx.model_name}",
            f"--server={target.grpc_server}",
        ]
    if target.traffic:
        config, traffic_file = traffic.files(ctx.work, ctx.model_name, ctx.version_dir, target.traffic)
        models = [f"--model_config_file={config}", f"--traffic_config_file={traffic_file}"]
    else:
        models = [f"--model_name={ctx.model_name}", f"--model_base_path={ctx.base_path}"]
    argv = [
        py,
        "-m",
        "service",
        *models,
        f"--rest_api_port={rest_port}",
        f"--port={grpc_port}",
        "--host=127.0.0.1",
        f"--grpc_server={target.grpc_server}",
    ]
    if target.batching:
        argv += ["--enable_batching=true", f"--batching_parameters_file={ctx.batching_file}"]
    return argv + ctx.modelship_args


def rest_ok(url: str, body: bytes) -> bool:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: Any = json.loads(response.read())
        return response.status == 200 and isinstance(answer.get("predictions"), list)


def v2_ok(url: str, body: bytes) -> bool:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: Any = json.loads(response.read())
        return response.status == 200 and isinstance(answer.get("outputs"), list)


def launch(target: Target, ctx: Context) -> Running:
    """Start ``target`` bound to 127.0.0.1 and wait until a real predict succeeds on its transport."""
    rest_port, grpc_port = free_port(), free_port()
    log = ctx.work / f"{target.key}.log"
    proc = procs.start(command(target, ctx, rest_port, grpc_port), log, server_env(), ROOT, ctx.cpus)
    running = Running(target, proc, log)
    if target.kind == "modelship":
        running.metrics_url = f"http://127.0.0.1:{rest_port}/metrics"
    try:
        if target.transport == REST:
            if target.v2:
                running.url = f"http://127.0.0.1:{rest_port}/v2/models/{ctx.model_name}/infer"
                body = running.body = tfs.v2_body(ctx.rows, ctx.features, ctx.input_name)
                probe = lambda: v2_ok(running.url, body)  # noqa: E731
            else:
                running.url = f"http://127.0.0.1:{rest_port}/v1/models/{ctx.model_name}:predict"
                body = tfs.rest_body(ctx.rows, ctx.features)
                probe = lambda: rest_ok(running.url, body)  # noqa: E731
            procs.wait_for(probe, ctx.ready_timeout, proc, log, target.key)
            if target.traffic:  # both versions serving before the split is measured
                name = ctx.model_name
                ready = lambda: traffic.both_available(rest_port, name)  # noqa: E731
                procs.wait_for(ready, ctx.ready_timeout, proc, log, target.key)
        else:
            running.address = f"127.0.0.1:{grpc_port}"
            request = tfs.predict_request(ctx.model_name, ctx.rows, ctx.features, ctx.input_name)
            procs.wait_for(
                lambda: tfs.predict_ok(running.address, request), ctx.ready_timeout, proc, log, target.key
            )
    except BaseException:
        procs.stop(proc)
        raise
    return running
