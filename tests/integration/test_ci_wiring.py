"""The integration suite, the users' GitHub workflow, scripts/kind-up and scripts/ci-integration
agree with each other (no cluster needed: these run with the unit tests).

- the workflow's integration step sets only MODELSHIP_* settings the suite reads, and points
  MODELSHIP_IMAGE at the image it loaded into kind;
- metrics-server is installed (scripts/kind-up) before the suite, which has an HPA test;
- scripts/kind-up pins the same kind version and node image as the workflow;
- scripts/ci-integration runs pytest over paths that exist, and both scripts parse and answer --help.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "tests" / "integration"


def _e2e_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yaml").read_text())
    steps: list[dict[str, Any]] = workflow["jobs"]["e2e"]["steps"]
    return steps


def _workflow_env() -> dict[str, str]:
    env: dict[str, str] = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yaml").read_text())["env"]
    return env


def _suite_settings() -> set[str]:
    text = "\n".join(p.read_text() for p in SUITE.glob("*.py") if p.name != "test_ci_wiring.py")
    return set(re.findall(r"\bMODELSHIP_[A-Z_]+\b", text))


def test_the_workflow_passes_only_settings_the_suite_reads() -> None:
    steps = _e2e_steps()
    (suite,) = [s for s in steps if "pytest -m integration tests/integration" in s.get("run", "")]
    given = set(suite.get("env", {})) | set(re.findall(r"\b(MODELSHIP_[A-Z_]+)=", suite["run"]))
    assert given, "the integration step passes no settings"
    assert given <= _suite_settings(), f"settings the suite never reads: {given - _suite_settings()}"
    assert suite["env"]["MODELSHIP_IMAGE"] == "${{ env.IMAGE_REPOSITORY }}:${{ env.IMAGE_TAG }}"
    (load,) = [s for s in steps if "kind load docker-image" in s.get("run", "")]
    assert '"${IMAGE_REPOSITORY}:${IMAGE_TAG}"' in load["run"]


def test_metrics_server_comes_before_the_suite() -> None:
    runs = [s.get("run", "") for s in _e2e_steps()]
    kind_up = next(i for i, r in enumerate(runs) if "scripts/kind-up" in r)
    suite = next(i for i, r in enumerate(runs) if "pytest -m integration tests/integration" in r)
    assert kind_up < suite
    assert "--no-metrics-server" not in runs[kind_up]


def test_kind_up_pins_match_the_workflow() -> None:
    script = (REPO / "scripts" / "kind-up").read_text()
    pins = dict(re.findall(r"^(KIND_VERSION|KIND_NODE_IMAGE)=(\S+)$", script, flags=re.MULTILINE))
    env = _workflow_env()
    assert pins == {"KIND_VERSION": env["KIND_VERSION"], "KIND_NODE_IMAGE": env["KIND_NODE_IMAGE"]}
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", pins["KIND_NODE_IMAGE"])


def test_ci_integration_runs_existing_paths_with_the_cluster_markers() -> None:
    script = (REPO / "scripts" / "ci-integration").read_text()
    (paths,) = re.findall(r"^paths=\(([^)]*)\)$", script, flags=re.MULTILINE)
    for path in paths.split():
        assert (REPO / path).exists(), path
    assert "tests/integration" in paths.split()
    assert '-m "integration or cluster"' in script
    assert "rc == 5" in script  # "no tests collected" is a failure


def test_scripts_parse_and_answer_help() -> None:
    for name in ("kind-up", "ci-integration"):
        script = REPO / "scripts" / name
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
        proc = subprocess.run(
            [str(script), "--help"], capture_output=True, text=True, timeout=30, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"Usage: scripts/{name}")
        bad = subprocess.run(
            [str(script), "--no-such-flag"], capture_output=True, text=True, timeout=30, check=False
        )
        assert bad.returncode == 2, bad.stderr
