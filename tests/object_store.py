"""Real object stores on loopback for the tests: moto's S3 server, fake-gcs-server, and a TCP relay.

* :class:`MotoS3` runs ``python -m moto.server`` (Apache-2.0) as its own process on 127.0.0.1;
* :class:`FakeGcs` runs fake-gcs-server (built and cached by ``scripts/tools/fake-gcs-server``)
  on 127.0.0.1 with the memory backend;
* :class:`TcpRelay` sits between a server under test and a store, so a test can make the store
  unreachable (connections refused) and bring it back with its data intact.

Both stores' ``env`` is what a Modelship server (or the exporter) needs to reach them; it always
carries credentials or an emulator host, so no client ever falls back to instance metadata.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from model.manifest import MANIFEST_NAME
from tests.fixtures import free_port
from tests.k8s import run_script

BUCKET = "models"


def _wait_port(
    port: int, proc: subprocess.Popen[bytes], what: str, host: str = "127.0.0.1", timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout}s")


class TcpRelay:
    """Forwards 127.0.0.1:``port`` to ``target``; :meth:`cut` refuses connections, :meth:`restore` resumes."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the port and every open connection: the store is unreachable."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class MotoS3:
    """moto's S3 server in its own process, with one bucket, on ``host`` (loopback by default)."""

    def __init__(self, log: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_PORT": str(self.port)},
        )
        _wait_port(self.port, self.proc, "moto server", host)
        self.endpoint = f"http://{host}:{self.port}"
        self.relay = TcpRelay(self.port)
        httpx.put(f"{self.endpoint}/{BUCKET}", timeout=10).raise_for_status()

    def env(self, through_relay: bool = False) -> dict[str, str]:
        endpoint = f"http://127.0.0.1:{self.relay.port}" if through_relay else self.endpoint
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "modelship-test",
            "AWS_SECRET_ACCESS_KEY": "modelship-test-secret",
            "AWS_REGION": "us-east-1",
        }

    def store(self) -> Any:
        from obstore.store import S3Store

        return S3Store(
            BUCKET,
            endpoint=self.endpoint,
            region="us-east-1",
            access_key_id="modelship-test",
            secret_access_key="modelship-test-secret",
            client_options={"allow_http": True},
        )

    def put(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.store(), key, data)

    def delete(self, key: str) -> None:
        import obstore

        obstore.delete(self.store(), key)

    def get(self, key: str) -> bytes:
        import obstore

        return bytes(obstore.get(self.store(), key).bytes())

    def close(self) -> None:
        self.relay.cut()
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


class FakeGcs:
    """fake-gcs-server on 127.0.0.1 (memory backend), with one bucket."""

    def __init__(self, log: Path) -> None:
        binary = run_script("scripts/tools/fake-gcs-server", timeout=1800).strip().splitlines()[-1]
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                *("-host", "127.0.0.1", "-port", str(self.port), "-scheme", "http", "-backend", "memory"),
                *("-public-host", f"127.0.0.1:{self.port}", "-external-url", self.endpoint),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _wait_port(self.port, self.proc, "fake-gcs-server")
        httpx.post(f"{self.endpoint}/storage/v1/b", json={"name": BUCKET}, timeout=10).raise_for_status()

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def put(self, key: str, data: bytes) -> None:
        # fake-gcs-server takes uploads on the JSON API only (obstore uploads with the XML API)
        name = urllib.parse.quote(key, safe="")
        url = f"{self.endpoint}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}"
        httpx.post(url, content=data, timeout=30).raise_for_status()

    def delete(self, key: str) -> None:
        name = urllib.parse.quote(key, safe="")
        httpx.delete(f"{self.endpoint}/storage/v1/b/{BUCKET}/o/{name}", timeout=30).raise_for_status()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


def publish(store: MotoS3 | FakeGcs, prefix: str, version_dir: Path, manifest: bool = True) -> list[str]:
    """Upload a version directory below ``prefix``, ``manifest.json`` last (or not at all)."""
    keys = []
    files = sorted(p for p in version_dir.rglob("*") if p.is_file())
    for path in sorted(files, key=lambda p: p.name == MANIFEST_NAME):
        rel = path.relative_to(version_dir).as_posix()
        if rel == MANIFEST_NAME and not manifest:
            continue
        key = f"{prefix}/{rel}"
        store.put(key, path.read_bytes())
        keys.append(key)
    return keys


@contextlib.contextmanager
def moto_s3(log: Path, host: str = "127.0.0.1") -> Iterator[MotoS3]:
    server = MotoS3(log, host)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def fake_gcs(log: Path) -> Iterator[FakeGcs]:
    server = FakeGcs(log)
    try:
        yield server
    finally:
        server.close()
