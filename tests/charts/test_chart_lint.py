"""`helm lint --strict` on the default values and on every ci/*-values.yaml, with the real helm."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.chart


def test_helm_is_the_pinned_version(helm: str, repo_dir: Path) -> None:
    pinned = subprocess.run(
        [str(repo_dir / "scripts/tools/helm"), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = subprocess.run(
        [helm, "version", "--template", "{{.Version}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == pinned
    assert out.startswith("v3.")


def test_lint_strict(helm: str, chart_dir: Path, values_file: Path | None) -> None:
    cmd = [helm, "lint", "--strict", str(chart_dir)] + (["-f", str(values_file)] if values_file else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout, proc.stdout
    assert "[ERROR]" not in proc.stdout, proc.stdout


def test_lint_strict_fails_on_a_broken_template(helm: str, chart_copy: Path) -> None:
    """The lint test can fail: a template with a syntax error is reported."""
    broken = "kind: ConfigMap\nmetadata: {{ .Values.nope.deeper }}\n"
    (chart_copy / "templates" / "broken.yaml").write_text(broken)
    proc = subprocess.run(
        [helm, "lint", "--strict", str(chart_copy)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0
    assert "broken.yaml" in proc.stdout + proc.stderr
