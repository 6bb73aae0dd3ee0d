"""``python -m model export --base-path s3://...``: the real CLI publishing to a real S3 server (moto)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model.manifest import MANIFEST_NAME
from tests.object_store import BUCKET, MotoS3

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _export(s3: MotoS3, run: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "model", "export", "--run-dir", str(run), "--name", "linear", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [*cmd, "--base-path", f"s3://{BUCKET}/published"],
        cwd=ROOT,
        env={**env, **s3.env(), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _puts(s3: MotoS3, version: int) -> list[str]:
    """Keys of version ``version`` in the order the S3 server received their uploads."""
    log = s3.log_path.read_text(errors="replace")  # moto logs one line per request, in order
    pattern = rf'"PUT /{BUCKET}/published/linear/{version}/(\S+) HTTP'
    return re.findall(pattern, log)


def test_export_uploads_every_file_then_the_manifest(s3: MotoS3, linear_run: Path) -> None:
    first = _export(s3, linear_run)
    assert first.returncode == 0, first.stderr
    assert f"s3://{BUCKET}/published/linear/1" in first.stderr
    puts = _puts(s3, 1)
    assert puts[-1] == MANIFEST_NAME, puts
    manifest = json.loads(s3.get(f"published/linear/1/{MANIFEST_NAME}"))
    assert sorted(puts[:-1]) == sorted(manifest["files"]), "exactly the manifest's files, each once"
    second = _export(s3, linear_run)
    assert second.returncode == 0, second.stderr
    assert f"s3://{BUCKET}/published/linear/2" in second.stderr  # the next version in the bucket


def test_export_refuses_a_version_that_exists(s3: MotoS3, linear_run: Path) -> None:
    assert _export(s3, linear_run, "--version", "7").returncode == 0
    again = _export(s3, linear_run, "--version", "7")
    assert again.returncode != 0
    assert "version 7 already exists at s3://models/published/linear/7" in again.stderr
