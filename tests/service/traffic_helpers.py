"""What the traffic and shadow server tests share: a model with several versions, a live traffic file."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.fixtures import expected_linear

X = np.array([[1.0, 2.0, 3.0]], np.float32)
PREDICT = {"instances": X.tolist()}
TRAFFIC = "/v1/modelship/traffic"


def model_config(base: Path, labels: dict[str, int], policy: str = "all {}") -> str:
    entries = "".join(f" version_labels {{ key: '{k}' value: {v} }}" for k, v in labels.items())
    return (
        f"model_config_list {{ config {{ name: 'linear' base_path: '{base / 'linear'}' "
        f"model_version_policy {{ {policy} }}{entries} }} }}"
    )


def expected(base: Path, versions: list[int]) -> dict[int, float]:
    return {v: float(expected_linear(base / "linear" / str(v), X)[0]) for v in versions}


def write_traffic(path: Path, doc: dict[str, Any]) -> None:
    """Atomic, as a ConfigMap update: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def status(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(url + TRAFFIC, timeout=5).json()
    return body


def apply(url: str, path: Path, doc: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
    """Write ``doc`` and wait until the server reports its generation applied."""
    write_traffic(path, doc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = status(url)
        if now["generation"] == doc["generation"]:
            return now
        time.sleep(0.05)
    raise TimeoutError(f"generation {doc['generation']} not applied: {status(url)}")


def metric(url: str, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when absent)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_until(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not met")
