"""The traffic-split and shadow targets: their model files and their cost against plain Modelship.

``modelship-rest-split`` serves two identical versions with ``{"1": 90, "2": 10}`` weights;
``modelship-rest-shadow`` answers name-only requests from the latest version and shadows 10 % of
them on version 1. Both are compared with ``modelship-rest`` (one version, no traffic file) at the
same connection count in the same run and round: req/s ratio, and server CPU per request.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from bench.report import Check, Point

BASELINE = "modelship-rest"
SPLIT, SHADOW = "split", "shadow"
TRAFFIC = {
    SPLIT: {"weights": {"1": 90, "2": 10}},
    SHADOW: {"shadow": {"version": 1, "percent": 10}},
}
GOALS = {SPLIT: 0.95, SHADOW: 0.85}  # split >= 0.95x the baseline; shadow costs <= 15 %


def files(work: Path, model_name: str, version_dir: Path, kind: str) -> tuple[Path, Path]:
    """(model config, traffic file) for ``kind``; two copies of the benchmarked version, both served."""
    base = work / "traffic-models" / model_name
    for version in ("1", "2"):
        if not (base / version).exists():
            shutil.copytree(version_dir, base / version)
    config = work / "traffic-models.config"
    config.write_text(
        f"model_config_list {{ config {{ name: '{model_name}' base_path: '{base}' "
        "model_version_policy { all {} } } }\n"
    )
    traffic = work / f"traffic-{kind}.json"
    traffic.write_text(json.dumps({"generation": f"bench-{kind}", "models": {model_name: TRAFFIC[kind]}}))
    return config, traffic


def both_available(rest_port: int, model_name: str) -> bool:
    for version in (1, 2):
        url = f"http://127.0.0.1:{rest_port}/v1/models/{model_name}/versions/{version}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body: Any = json.loads(response.read())
        if body["model_version_status"][0]["state"] != "AVAILABLE":
            return False
    return True


def costs(points: list[Point], kinds: dict[str, str]) -> tuple[list[str], list[Check]]:
    """Lines comparing each traffic target with the baseline, and the issue's goals at 32 connections."""
    by = {(p.target, p.connections, p.round): p for p in points if p.rps > 0}
    lines, out = [], []
    for p in points:
        kind = kinds.get(p.target)
        base = by.get((BASELINE, p.connections, p.round))
        if kind is None or base is None or not p.rps:
            continue
        ratio = p.rps / base.rps
        lines.append(
            f"  {p.name} c={p.connections}: {ratio:.3f}x {BASELINE} req/s ({p.rps:,.0f} vs "
            f"{base.rps:,.0f}); server CPU {p.cpu_us_per_request:.0f} vs "
            f"{base.cpu_us_per_request:.0f} µs/request"
        )
        if p.connections == 32:
            goal = GOALS[kind]
            text = f"{p.name} c=32: >= {goal:.2f}x {BASELINE}"
            out.append(Check(text, ratio >= goal and not p.error_count, f"{ratio:.3f}x"))
    return lines, out
