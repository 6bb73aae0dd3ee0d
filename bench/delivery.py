"""How long publishing a version takes to reach a serving pod: object storage against a directory.

    .venv/bin/python -m bench.delivery [--versions 8] [--poll 1] [--size-mib 0]

Starts a real S3 server (moto, on 127.0.0.1) and two real Modelship servers: one polling an
``s3://`` base path, one polling a local directory (the baseline, in the same run). Each new
version is published to both (the bucket through ``python -m model export``'s uploader, files
then manifest; the directory by an atomic rename) and the time until it is AVAILABLE is measured.
Prints median / p90 per source, the ratio to the directory, the requests sent to the store per
poll and per version, and the server's CPU while idle-polling. ``--size-mib`` pads each version
with an extra file (listed in its manifest) to see the download's share.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.procs import cpu_seconds, install_signal_handlers, start, stop, wait_for
from model import manifest as manifest_file
from model.data import synthetic
from model.linear import TrainConfig
from model.metrics import QualityGate
from model.pipeline import export_run, train_run
from model.publish import upload_version
from model.storage import ObjectURL

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "models"
STORE_ENV = {
    "AWS_ACCESS_KEY_ID": "modelship-bench",
    "AWS_SECRET_ACCESS_KEY": "modelship-bench-secret",
    "AWS_REGION": "us-east-1",
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    argv = [sys.executable, "-m", "service", f"--rest_api_port={port}", "--port=0", "--host=127.0.0.1", *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MODELSHIP_", "AWS_"))}
    proc = start(argv, log, {**clean, "TF_CPP_MIN_LOG_LEVEL": "2", **env}, ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/v2/health/ready").status_code == 200, 120, proc, log, "server")
    return proc, url


def _states(url: str) -> dict[int, str]:
    body = httpx.get(f"{url}/v1/models/linear", timeout=5).json()
    return {int(s["version"]): s["state"] for s in body["model_version_status"]}


def _until_available(url: str, version: int, timeout: float = 300) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _states(url).get(version) == "AVAILABLE":
            return time.monotonic() - start
        time.sleep(0.01)
    raise SystemExit(f"version {version} not AVAILABLE within {timeout}s at {url}")


def _metric(url: str, prefix: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _pad(version_dir: Path, mib: int) -> None:
    if mib <= 0:
        return
    (version_dir / "assets.extra" / "padding.bin").write_bytes(os.urandom(mib << 20))
    old = manifest_file.read(version_dir) or {}
    manifest_file.write(version_dir, {k: v for k, v in old.items() if k not in ("files", "format")})


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=8, help="versions published after the first")
    parser.add_argument("--poll", type=float, default=1.0, help="poll interval of both servers, seconds")
    parser.add_argument("--size-mib", type=int, default=0, help="pad each version with this many MiB")
    args = parser.parse_args()
    install_signal_handlers()
    work = Path(tempfile.mkdtemp(prefix="modelship-delivery-"))
    run = work / "run"
    train_run(synthetic(300, 3, 0.05, 0), TrainConfig(epochs=20, batch_size=16), 0.2, run)
    staged = work / "staged"
    for v in range(1, args.versions + 2):
        _pad(Path(export_run(run, staged, "linear", QualityGate(), v)), args.size_mib)
    local = work / "local" / "linear"
    local.mkdir(parents=True)
    shutil.copytree(staged / "linear" / "1", local / "1")
    moto_port = _port()
    moto = start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        work / "moto.log",
        dict(os.environ),
        ROOT,
    )
    endpoint = f"http://127.0.0.1:{moto_port}"
    wait_for(lambda: httpx.get(endpoint).status_code == 200, 60, moto, work / "moto.log", "moto")
    httpx.put(f"{endpoint}/{BUCKET}").raise_for_status()
    env = {**STORE_ENV, "AWS_ENDPOINT_URL": endpoint}
    model_url = ObjectURL.parse(f"s3://{BUCKET}/bench/linear")
    upload_version(staged / "linear" / "1", model_url.child("1"), env=env)
    common = [f"--file_system_poll_wait_seconds={args.poll}", f"--object_store_poll_wait_seconds={args.poll}"]
    procs = []
    try:
        remote, remote_url = _server(
            [
                "--model_name=linear",
                f"--model_base_path={model_url}",
                f"--model_cache_dir={work / 'cache'}",
                *common,
            ],
            env,
            work / "remote.log",
        )
        procs.append(remote)
        directory, directory_url = _server(
            ["--model_name=linear", f"--model_base_path={local}", *common], {}, work / "local.log"
        )
        procs.append(directory)
        requests = 'modelship_model_source_requests_total{model="linear",op="%s"}'
        times: dict[str, list[float]] = {"s3": [], "directory": []}
        lists0, gets0 = (_metric(remote_url, requests % op) for op in ("list", "get"))
        t0, cpu0 = time.monotonic(), cpu_seconds(remote.pid)
        for v in range(2, args.versions + 2):
            upload_version(staged / "linear" / str(v), model_url.child(str(v)), env=env)
            times["s3"].append(_until_available(remote_url, v))
            tmp = local / f".tmp-{v}"
            shutil.copytree(staged / "linear" / str(v), tmp)
            tmp.rename(local / str(v))
            times["directory"].append(_until_available(directory_url, v))
        elapsed = time.monotonic() - t0
        lists = _metric(remote_url, requests % "list") - lists0
        gets = _metric(remote_url, requests % "get") - gets0
        busy = cpu_seconds(remote.pid) - cpu0
        idle0 = cpu_seconds(remote.pid)
        time.sleep(10 * args.poll)
        idle = (cpu_seconds(remote.pid) - idle0) / (10 * args.poll)
    finally:
        for proc in (*procs, moto):
            stop(proc)
    base = statistics.median(times["directory"])
    print(f"\npublish -> AVAILABLE, {args.versions} versions, poll {args.poll:g}s, +{args.size_mib} MiB each")
    print(f"{'source':<10} {'median':>8} {'p90':>8} {'min':>8} {'max':>8} {'vs directory':>13}")
    for name, values in times.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        med = statistics.median(ordered)
        row = f"{med:>7.2f}s {p90:>7.2f}s {ordered[0]:>7.2f}s {ordered[-1]:>7.2f}s {med / base:>12.2f}x"
        print(f"{name:<10} {row}")
    print(
        f"store requests: {lists:.0f} LIST in {elapsed:.0f}s ({lists / (elapsed / args.poll):.2f} per poll "
        f"interval), {gets / args.versions:.1f} GET per version; server CPU {busy:.1f}s while publishing, "
        f"{idle * 100:.2f}% of a core idle-polling"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
