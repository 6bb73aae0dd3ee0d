"""skaffold.yaml, the users' GitHub workflow and the tool scripts around the chart.

The workflow is checked with actionlint (built from source by scripts/tools/actionlint). Skaffold
cannot be built here, so skaffold.yaml is checked structurally against the chart it deploys.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.chart

SCRIPTS = [
    "scripts/tools/helm",
    "scripts/tools/k8s-schemas",
    "scripts/tools/actionlint",
    "scripts/render-manifests",
]


@pytest.fixture(scope="module")
def actionlint(repo_dir: Path) -> str:
    proc = subprocess.run(
        [str(repo_dir / "scripts/tools/actionlint")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/tools/actionlint failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _workflow(repo_dir: Path) -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load((repo_dir / ".github/workflows/ci.yaml").read_text())
    return doc


def test_workflow_passes_actionlint(actionlint: str, repo_dir: Path) -> None:
    # shellcheck/pyflakes integration off: results must not depend on what else is installed.
    proc = subprocess.run(
        [actionlint, "-shellcheck=", "-pyflakes=", ".github/workflows/ci.yaml"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(actionlint: str, tmp_path: Path, repo_dir: Path) -> None:
    broken = (
        (repo_dir / ".github/workflows/ci.yaml")
        .read_text()
        .replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1)
    )
    path = tmp_path / "ci.yaml"
    path.write_text(broken)
    proc = subprocess.run(
        [actionlint, "-shellcheck=", "-pyflakes=", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "runs_on" in proc.stdout


def test_workflow_pins_every_action_to_a_release(repo_dir: Path) -> None:
    uses = re.findall(r"uses:\s*(\S+)", (repo_dir / ".github/workflows/ci.yaml").read_text())
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})", ref), f"not pinned: {ref}"
    assert "helm/kind-action@v1.14.0" in uses


def test_workflow_runs_the_whole_path(repo_dir: Path) -> None:
    """lint + unit tests, image build, kind cluster, kind load, helm install, integration, helm test."""
    jobs = _workflow(repo_dir)["jobs"]
    runs = {
        name: "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in job["steps"])
        for name, job in jobs.items()
    }
    unit, e2e = runs["lint-and-unit"], runs["e2e"]
    for needle in ("ruff check", "mypy", "scripts/tools/helm", "pytest -m"):
        assert needle in unit, needle
    order = [
        "docker build -f service/Dockerfile",
        "helm/kind-action",
        "kind load docker-image",
        "install modelship charts/modelship",
        "test modelship",
        "pytest -m integration tests/integration",
    ]
    positions = [e2e.find(n) for n in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions[:4] == sorted(positions[:4])
    assert jobs["e2e"]["needs"] == "lint-and-unit"
    env = _workflow(repo_dir)["env"]
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", env["KIND_NODE_IMAGE"])
    assert "--set image.pullPolicy=IfNotPresent" in e2e
    assert '--name "${KIND_CLUSTER}"' in e2e


def test_skaffold_builds_and_deploys_the_chart(repo_dir: Path, chart_dir: Path, render: Any) -> None:
    config = yaml.safe_load((repo_dir / "skaffold.yaml").read_text())
    assert re.fullmatch(r"skaffold/v4beta\d+", config["apiVersion"])
    assert config["kind"] == "Config"
    (artifact,) = config["build"]["artifacts"]
    assert artifact["image"] == "modelship"
    assert artifact["context"] == "."
    assert (repo_dir / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    (release,) = config["deploy"]["helm"]["releases"]
    assert (repo_dir / release["chartPath"]) == chart_dir
    assert release["setValueTemplates"] == {
        "image.repository": "{{.IMAGE_REPO_modelship}}",
        "image.tag": "{{.IMAGE_TAG_modelship}}",
    }
    # The values skaffold sets exist in the chart (the schema would reject them otherwise).
    sets = [f"{k}={v}" for k, v in release["setValues"].items()]
    sets += ["image.repository=registry.local/modelship", "image.tag=abc123"]
    rendered = render(release=release["name"], set_=sets)
    assert rendered.returncode == 0, rendered.stderr
    service = rendered.one("Service")
    forwards = {
        (f["resourceType"], f["resourceName"], f["port"], f["localPort"]) for f in config["portForward"]
    }
    assert forwards == {
        ("service", service["metadata"]["name"], 8501, 8501),
        ("service", service["metadata"]["name"], 8500, 8500),
    }
    assert {p["port"] for p in service["spec"]["ports"]} == {8501, 8500}


def test_skaffold_kind_profile(repo_dir: Path, render: Any) -> None:
    config = yaml.safe_load((repo_dir / "skaffold.yaml").read_text())
    (kind,) = [p for p in config["profiles"] if p["name"] == "kind"]
    assert kind["activation"] == [{"kubeContext": "kind-.*"}]
    assert kind["build"]["local"]["push"] is False
    assert kind["build"]["artifacts"] == config["build"]["artifacts"]
    sets = [
        f"{p['path'].rsplit('/', 1)[1]}={p['value']}"
        for p in kind["patches"]
        if p["path"].startswith("/deploy/helm/releases/0/setValues/")
    ]
    assert sets
    assert render(set_=sets).returncode == 0


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_strict_bash_with_help(repo_dir: Path, script: str) -> None:
    path = repo_dir / script
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert path.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(path)], check=True)
    proc = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: ")
    bad = subprocess.run(
        [str(path), "--no-such-flag"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2


@pytest.mark.parametrize("tool", ["helm", "k8s-schemas", "actionlint"])
def test_tool_scripts_are_cached_outside_the_repo(repo_dir: Path, tool: str) -> None:
    proc = subprocess.run(
        [str(repo_dir / "scripts/tools" / tool)], capture_output=True, text=True, timeout=1800, check=True
    )
    path = Path(proc.stdout.strip())
    assert path.exists()
    assert not path.resolve().is_relative_to(repo_dir.resolve())
    version = subprocess.run(
        [str(repo_dir / "scripts/tools" / tool), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version in str(path)
