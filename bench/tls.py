"""What TLS costs: REST predict over HTTPS against plain HTTP, and one handshake, in one run.

Two Modelship servers on the same exported model (plaintext, and TLS from a throwaway
self-signed certificate made with ``openssl``) take the same wrk load in turn: server on CPU 0,
wrk on CPU 1 when there are two. Reported: req/s, server CPU µs per request, and HTTPS as a ratio
of HTTP; then the server CPU of one full handshake (a fresh connection per request, measured from
the server's own CPU time). Ratios only mean something from one quiet run: nothing here gates CI.

    python -m bench.tls [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procs
from bench.load import wrk
from bench.run import prepare_model
from bench.targets import ROOT, free_port, server_env

BODY = b'{"instances": [[1.0, 2.0, 3.0]]}'


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start(base: Path, work: Path, name: str, tls: list[str], cpus: list[int] | None) -> tuple[object, int]:
    rest = free_port()
    argv = [sys.executable, "-m", "service", "--model_name=linear", f"--model_base_path={base}"]
    argv += [f"--rest_api_port={rest}", f"--port={free_port()}", "--host=127.0.0.1", *tls]
    proc = procs.start(argv, work / f"{name}.log", server_env(), ROOT, cpus)
    scheme = "https" if tls else "http"
    context = ssl._create_unverified_context()  # the bench's own throwaway certificate
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = _connection(scheme, rest, context)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return proc, rest
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{name} server not ready: {procs.tail(work / f'{name}.log')}")


def _connection(scheme: str, port: int, context: ssl.SSLContext) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def handshake_cpu_us(proc: object, port: int, scheme: str, count: int) -> float:
    """Server CPU per request when every request opens a new connection (and, with TLS, handshakes)."""
    context = ssl._create_unverified_context()
    pid = proc.pid  # type: ignore[attr-defined]
    before = procs.cpu_seconds(pid)
    for _ in range(count):
        conn = _connection(scheme, port, context)
        conn.request("POST", "/v1/models/linear:predict", BODY, {"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
    return (procs.cpu_seconds(pid) - before) / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration of each point")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (keep-alive)")
    parser.add_argument(
        "--handshakes", type=int, default=2000, help="fresh connections for the handshake cost"
    )
    args = parser.parse_args()
    procs.install_signal_handlers()
    server_cpus, load_cpus, split = procs.cpu_split(pin=True)
    wrk_bin = wrk.find_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        work = Path(tmp)
        model = argparse.Namespace(model_base_path=None, model_name="linear", model="linear")
        base = prepare_model(model, work)
        cert, key = self_signed(work)
        print(f"CPUs: {split}; load average {os.getloadavg()[0]:.2f}; {wrk.version(wrk_bin)}")
        rows: dict[str, tuple[float, float, float]] = {}
        for name, tls in (("http", []), ("https", [f"--tls_cert_file={cert}", f"--tls_key_file={key}"])):
            proc, port = start(base, work, name, tls, server_cpus)
            try:
                url = f"{name}://127.0.0.1:{port}/v1/models/linear:predict"
                wrk.run(wrk_bin, url, BODY, args.connections, 2, cpus=load_cpus)  # warm-up
                before = procs.cpu_seconds(proc.pid)  # type: ignore[attr-defined]
                result = wrk.run(wrk_bin, url, BODY, args.connections, args.seconds, cpus=load_cpus)
                cpu = procs.cpu_seconds(proc.pid) - before  # type: ignore[attr-defined]
                if result.error_count:
                    raise SystemExit(f"{name}: {result.errors}")
                fresh = handshake_cpu_us(proc, port, name, args.handshakes)
                rows[name] = (result.rps, cpu / max(result.ok, 1) * 1e6, fresh)
            finally:
                procs.stop(proc)  # type: ignore[arg-type]
    print(f"\n{'':8} {'req/s':>9} {'server CPU/req':>15} {'new connection/req':>19}")
    for name, (rps, cpu_us, fresh) in rows.items():
        print(f"{name:8} {rps:9,.0f} {cpu_us:12.1f} µs {fresh:16.1f} µs")
    (h_rps, h_cpu, h_new), (s_rps, s_cpu, s_new) = rows["http"], rows["https"]
    print(
        f"\nHTTPS / HTTP: req/s {s_rps / h_rps:.2f}x, server CPU per request {s_cpu / h_cpu:.2f}x "
        f"(+{s_cpu - h_cpu:.1f} µs); a TLS handshake costs the server ~{s_new - h_new:,.0f} µs of CPU"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
