"""Peer model servers as optional REST targets: KServe, MLServer and BentoML on the same SavedModel.

Each peer runs from its own virtualenv, pinned and cached outside the repository under
``${MODELSHIP_CACHE:-~/.cache/modelship}/bench/peers/<name>-<version>/`` (``bench/tools/setup
--peers``, i.e. ``python -m bench.peers install``), with the same ``tensorflow-cpu`` as the project.
Its server code is in ``bench/servers/peers/``, run by the peer env's interpreter from the
repository root. A peer whose env is missing is skipped with a note, never an error. Peers speak
their own protocol, so each has its own URL, request body and check of a predict answer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import tfs
from bench.targets import REST, ROOT, Context, Running, Target, free_port, server_env

KIND = "peer"  # Target.kind of every peer target
TF_PIN = "tensorflow-cpu==2.21.0"  # the project's TensorFlow (pyproject.toml: >=2.21,<2.22)
V1, V2, BENTO = "v1", "v2", "bentoml"  # TF Serving-style row format, Open Inference V2, BentoML JSON
INPUT_NAME = "x"  # the V2 tensor's name (the runtime feeds the signature's single input whatever it is)
MLSERVER_BATCHING = {"max_batch_size": 64, "max_batch_time": 0.001}  # seconds; 64 as Modelship's
SETUP_HINT = "run bench/tools/setup --peers"
STAMP = ".modelship-peer"  # written last by a successful install: the pins it installed


def cache_root() -> Path:
    return Path(os.environ.get("MODELSHIP_CACHE") or Path.home() / ".cache" / "modelship")


@dataclass(frozen=True)
class PeerEnv:
    """One pinned virtualenv: the peer's package, any extra pins, and the project's TensorFlow."""

    name: str
    package: str
    version: str
    extra: tuple[str, ...] = ()

    @property
    def pins(self) -> tuple[str, ...]:
        return (f"{self.package}=={self.version}", *self.extra, TF_PIN)

    @property
    def path(self) -> Path:
        return cache_root() / "bench" / "peers" / f"{self.name}-{self.version}"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def installed(self) -> bool:
        """True when a completed install of exactly these pins is there."""
        try:
            return (self.path / STAMP).read_text().split() == list(self.pins)
        except OSError:
            return False


ENVS = {
    env.name: env
    for env in (
        PeerEnv("kserve", "kserve", "0.21.0"),
        # MLServer 1.7.1's parallel workers crash-loop with uvloop >= 0.22 (SeldonIO/MLServer#2286)
        PeerEnv("mlserver", "mlserver", "1.7.1", ("uvloop==0.21.0",)),
        PeerEnv("bentoml", "bentoml", "1.4.40"),
    )
}


@dataclass(frozen=True)
class Peer:
    key: str  # target key
    name: str  # label in the table
    env: str  # key of ENVS
    protocol: str  # V1 | V2 | BENTO
    batching: bool = False


PEERS = (
    Peer("kserve", "KServe ModelServer", "kserve", V1),
    Peer("mlserver", "MLServer", "mlserver", V2),
    Peer("mlserver-batching", "MLServer+adaptive batching", "mlserver", V2, batching=True),
    Peer("bentoml", "BentoML", "bentoml", BENTO),
)
BY_KEY = {p.key: p for p in PEERS}
TARGETS = tuple(Target(p.key, p.name, REST, KIND, batching=p.batching) for p in PEERS)
BY_TARGET = {t.key: t for t in TARGETS}


def missing(target: Target) -> str:
    """Why ``target`` must be skipped (its peer env is not installed), or "" to run it."""
    if target.kind != KIND:
        return ""
    env = ENVS[BY_KEY[target.key].env]
    return "" if env.installed() else f"{SETUP_HINT} (no {env.name} env at {env.path})"


def describe(targets: Sequence[Target]) -> dict[str, str]:
    """The pinned versions of the peers among ``targets`` that will run, for the results' metadata."""
    out = {}
    for t in targets:
        if t.kind == KIND and not missing(t):
            out[t.key] = ", ".join(ENVS[BY_KEY[t.key].env].pins)
    return out


# --- the protocols: where to POST, what, and what a good answer looks like -------------------------


def url(peer: Peer, port: int, model_name: str) -> str:
    base = f"http://127.0.0.1:{port}"
    if peer.protocol == V1:
        return f"{base}/v1/models/{model_name}:predict"
    if peer.protocol == V2:
        return f"{base}/v2/models/{model_name}/infer"
    return f"{base}/predict"  # BentoML: one route per API method


def body(peer: Peer, rows: int, features: int = 3) -> bytes:
    """The request body for ``rows`` rows of the benchmark's input (the same rows as every target)."""
    if peer.protocol in (V1, BENTO):  # BentoML maps the JSON keys to the API's parameters
        return tfs.rest_body(rows, features)
    return tfs.v2_body(rows, features, INPUT_NAME)


def answer_ok(peer: Peer, answer: Any, rows: int) -> bool:
    """True when ``answer`` (parsed JSON) carries one prediction per input row."""
    if peer.protocol == V1:
        return isinstance(answer, dict) and _rows(answer.get("predictions")) == rows
    if peer.protocol == V2:
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        if not outputs or not isinstance(outputs, list):
            return False
        shape, data = outputs[0].get("shape") or [0], outputs[0].get("data")
        return bool(shape[0] == rows and isinstance(data, list) and len(data) >= rows)
    return _rows(answer) == rows


def _rows(value: Any) -> int:
    return len(value) if isinstance(value, list) else -1


def predict_ok(peer: Peer, target_url: str, payload: bytes, rows: int) -> bool:
    """One real predict: HTTP 200 and an answer with one prediction per row."""
    request = urllib.request.Request(target_url, data=payload, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status == 200 and answer_ok(peer, json.loads(response.read()), rows)


# --- starting a peer ------------------------------------------------------------------------------


def command(peer: Peer, ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, extra environment) that serve ``ctx``'s model on 127.0.0.1:``port``, one process."""
    env = ENVS[peer.env]
    extra = {"PYTHONPATH": str(ROOT)}  # bench.servers.peers.* from the peer env's interpreter
    if peer.env == "kserve":
        argv = [
            str(env.bin("python")),
            "-m",
            "bench.servers.peers.kserve_server",
            f"--model_dir={ctx.version_dir}",
            f"--model_name={ctx.model_name}",
            "--host=127.0.0.1",
            f"--http_port={port}",
            "--workers=1",
            "--enable_grpc=false",  # KServe binds gRPC to [::] in code; only REST is measured
        ]
        return argv, extra
    if peer.env == "mlserver":
        return [str(env.bin("mlserver")), "start", str(mlserver_repository(peer, ctx, port))], extra
    extra.update(
        BENCH_PEER_MODEL_DIR=str(ctx.version_dir),
        BENTOML_DO_NOT_TRACK="True",  # no usage statistics sent anywhere
        BENTOML_HOME=str(ctx.work / "bentoml-home"),
    )
    argv = [
        str(env.bin("bentoml")),
        "serve",
        "bench.servers.peers.bentoml_service:SavedModelService",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--working-dir={ROOT}",
    ]
    return argv, extra


def mlserver_repository(peer: Peer, ctx: Context, port: int) -> Path:
    """A model repository for ``mlserver start``: server settings and the model's settings."""
    repo = ctx.work / f"{peer.key}-repository"
    (repo / ctx.model_name).mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",  # REST, gRPC and metrics servers all bind this
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,  # inference in the server process (the default 1 adds a worker process)
        "environments_dir": str(ctx.work / f"{peer.key}-envs"),
        "metrics_dir": str(ctx.work / f"{peer.key}-metrics"),
    }
    model = {
        "name": ctx.model_name,
        "implementation": "bench.servers.peers.mlserver_runtime.SavedModelRuntime",
        "parameters": {"uri": str(ctx.version_dir)},
        **(MLSERVER_BATCHING if peer.batching else {}),
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    (repo / ctx.model_name / "model-settings.json").write_text(json.dumps(model, indent=2))
    return repo


def launch(target: Target, ctx: Context) -> Running:
    """Start a peer bound to 127.0.0.1 and wait until a real predict in its protocol succeeds."""
    peer = BY_KEY[target.key]
    port = free_port()
    argv, extra = command(peer, ctx, port)
    log = ctx.work / f"{target.key}.log"
    proc = procs.start(argv, log, {**server_env(), **extra}, ROOT, ctx.cpus)
    request_body = body(peer, ctx.rows, ctx.features)
    running = Running(target, proc, log, url=url(peer, port, ctx.model_name), body=request_body)
    try:
        ready = lambda: predict_ok(peer, running.url, running.body, ctx.rows)  # noqa: E731
        procs.wait_for(ready, ctx.ready_timeout, proc, log, target.key)
    except BaseException:
        procs.stop(proc)
        raise
    return running


# --- installing the envs (bench/tools/setup --peers) -----------------------------------------------


def install(env: PeerEnv) -> None:
    """Create or complete ``env``'s virtualenv; a no-op when its pins are already installed."""
    if env.installed():
        print(f"{env.name}: {', '.join(env.pins)} installed at {env.path}", file=sys.stderr)
        return
    print(f"==> {env.name}: installing {' '.join(env.pins)} into {env.path}", file=sys.stderr)
    (env.path / STAMP).unlink(missing_ok=True)
    env.path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(env.path)], check=True)
    pip = [str(env.bin("python")), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-q", *env.pins], check=True)
    freeze = subprocess.run([*pip, "freeze"], check=True, capture_output=True, text=True).stdout
    (env.path / "pip-freeze.txt").write_text(freeze)
    (env.path / STAMP).write_text("\n".join(env.pins) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("install", "install peer envs"), ("status", "show which peer envs are installed")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("names", nargs="*", metavar="NAME", help=f"{', '.join(ENVS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ENVS]
    if unknown:
        parser.error(f"unknown peer env(s): {', '.join(unknown)}; known: {', '.join(ENVS)}")
    envs = [ENVS[n] for n in args.names] if args.names else list(ENVS.values())
    for env in envs:
        if args.command == "install":
            install(env)
        else:
            state = "installed" if env.installed() else f"missing ({SETUP_HINT})"
            print(f"{env.name:<9} {' '.join(env.pins):<60} {state}: {env.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
