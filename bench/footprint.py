"""The server's footprint per image flavor: size by layer, start-up (split), and memory once ready.

    .venv/bin/python -m bench.footprint [--runs 5] [--full IMAGE] [--slim IMAGE] [--cpus 1]

Starts each image (default ``modelship:<version>`` and ``modelship:<version>-slim``, built by
``scripts/docker/build-image [--flavor slim]``) ``--runs`` times, locked down as the chart runs it
(read-only root, tmpfs /tmp, UID 10001, no capabilities; ``--cpus`` like a pod's CPU limit), and
measures: ``docker run`` until ``/v2/health/ready`` answers 200; the server's own split from its
log (process start -> imports done -> version AVAILABLE, with the load, LiteRT and warm-up steps);
RSS of PID 1 once ready. Medians are printed with the slim/full ratio, the full image being the
baseline measured in the same run. Times depend on how busy the machine is: quote a quiet run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOCKED_DOWN = ["--read-only", "--tmpfs", "/tmp", "--user", "10001", "--cap-drop", "ALL"]
STEP = re.compile(r"([a-z][a-z -]*(?: \([a-z ]+\))?) (\d+\.\d+)s")


@dataclass
class Run:
    ready_s: float
    rss_mib: float
    imports_s: float
    available_s: float
    steps: dict[str, float] = field(default_factory=dict)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def _port(cid: str) -> int:
    return int(_docker("port", cid, "8501/tcp").split()[0].rsplit(":", 1)[1])


def one_run(image: str, cpus: float) -> Run:
    started = time.monotonic()
    cid = _docker("run", "-d", *LOCKED_DOWN, f"--cpus={cpus}", "-p", "127.0.0.1::8501", image).strip()
    try:
        url = f"http://127.0.0.1:{_port(cid)}/v2/health/ready"
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 120:
                raise SystemExit(f"{image} not ready after 120 s:\n{_docker('logs', cid)[-3000:]}")
            time.sleep(0.01)
        ready = time.monotonic() - started
        status = _docker("exec", cid, "cat", "/proc/1/status")
        rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024
        logs = subprocess.run(["docker", "logs", cid], capture_output=True, text=True, check=True).stderr
        imports = next(line for line in logs.splitlines() if "imports done" in line)
        available = next(line for line in logs.splitlines() if "is AVAILABLE" in line)
        loaded = available.split("loaded in ", 1)[1].split(";", 1)[0]
        return Run(
            ready,
            rss,
            float(re.search(r"process up (\d+\.\d+)s", imports).group(1)),  # type: ignore[union-attr]
            float(re.search(r"process up (\d+\.\d+)s", available).group(1)),  # type: ignore[union-attr]
            {name: float(value) for name, value in STEP.findall(loaded.split(": ", 1)[-1])},
        )
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def layers(image: str) -> tuple[int, list[tuple[int, str]]]:
    """Image size, and its own layers (size, instruction), oldest first, above the base image."""
    size = int(_docker("image", "inspect", "--format", "{{.Size}}", image))
    rows = [
        line.split("\t", 1)
        for line in _docker(
            "history", "--human=false", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image
        ).splitlines()
    ]
    own = next(i for i, (_, cmd) in enumerate(rows) if "groupadd" in cmd)
    base = sum(int(s) for s, _ in rows[own:])
    out = [(base, "base image")]
    for s, cmd in reversed(rows[:own]):
        if int(s) > 0:
            out.append((int(s), re.sub(r"^/bin/sh -c (#\(nop\) )?", "", cmd).strip()[:60]))
    return size, out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts per image (medians are reported)")
    parser.add_argument("--full", default=f"modelship:{version}", help="the full image (the baseline)")
    parser.add_argument("--slim", default=f"modelship:{version}-slim", help="the slim image")
    parser.add_argument("--cpus", type=float, default=1.0, help="docker run --cpus, like a pod's CPU limit")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    results: dict[str, dict[str, object]] = {}
    for flavor, image in (("full", args.full), ("slim", args.slim)):
        size, by_layer = layers(image)
        runs = [one_run(image, args.cpus) for _ in range(args.runs)]
        steps = sorted({k for r in runs for k in r.steps})
        results[flavor] = {
            "image": image,
            "size_mb": size / 1e6,
            "layers_mb": [(s / 1e6, what) for s, what in by_layer],
            "ready_s": _median([r.ready_s for r in runs]),
            "imports_s": _median([r.imports_s for r in runs]),
            "available_s": _median([r.available_s for r in runs]),
            "rss_mib": _median([r.rss_mib for r in runs]),
            "steps_s": {k: _median([r.steps[k] for r in runs if k in r.steps]) for k in steps},
        }
    full, slim = results["full"], results["slim"]
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"footprint, {args.runs} starts per image, --cpus {args.cpus}, load average {load} at the end")
    for flavor, r in results.items():
        print(f"\n{flavor}: {r['image']}  {r['size_mb']:.0f} MB")
        for mb, what in r["layers_mb"]:  # type: ignore[attr-defined]
            print(f"  {mb:8.1f} MB  {what}")
        step_text = ", ".join(f"{k} {v:.2f}s" for k, v in r["steps_s"].items())  # type: ignore[attr-defined]
        print(
            f"  docker run -> ready {r['ready_s']:.2f}s; in the process: imports done at "
            f"{r['imports_s']:.2f}s, version AVAILABLE at {r['available_s']:.2f}s ({step_text}); "
            f"RSS {r['rss_mib']:.0f} MiB"
        )
    print("\nslim / full:")
    for key, label in (
        ("size_mb", "size"),
        ("ready_s", "docker run -> ready"),
        ("available_s", "process start -> ready"),
        ("rss_mib", "RSS"),
    ):
        print(f"  {label:24s} {slim[key]:8.2f} / {full[key]:8.2f} = {slim[key] / full[key]:.2f}x")  # type: ignore[operator]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
