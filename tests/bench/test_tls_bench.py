"""``python -m bench.tls`` end to end, briefly: both servers serve, the table and the ratios print."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.fixtures import ROOT

pytestmark = pytest.mark.slow


def test_tls_bench_prints_ratios_from_both_servers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.tls", "--seconds", "1", "--connections", "4", "--handshakes", "50"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {
        line.split()[0]: line for line in done.stdout.splitlines() if line.startswith(("http ", "https "))
    }
    assert set(rows) == {"http", "https"}, done.stdout
    assert re.search(r"HTTPS / HTTP: req/s \d+\.\d+x, server CPU per request \d+\.\d+x", done.stdout)
    assert "TLS handshake costs the server" in done.stdout
