"""Certificates rotated under load on a real server: no restart, no failed request, no dropped connection.

The server reads a Secret-like directory that is updated the way the kubelet updates a mounted
Secret (:class:`tests.tls_certs.SecretVolume`). While REST (new and kept-alive connections) and
gRPC (one long channel, and fresh ones) run, the certificate is renewed, then replaced by a
broken pair (refused, the previous one keeps serving), then renewed again. Afterwards clients
must refuse an expired and a wrong-host certificate served the same way, and a new client CA
must take over from the old one.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fixtures import ServerProcess
from tests.tls_certs import CertificateAuthority, Issued, SecretVolume

pytestmark = pytest.mark.slow
PREDICT = b'{"instances": [[1.0, 2.0, 3.0]]}'
POLL = 0.2
SERVING = health_pb2.HealthCheckResponse.SERVING


class Fixture:
    def __init__(
        self, server: ServerProcess, volume: SecretVolume, ca: CertificateAuthority, root: Path
    ) -> None:
        self.server, self.volume, self.ca, self.root = server, volume, ca, root
        self.ca_file = root / "trusted-ca.crt"

    def client(self, cert: Issued | None = None, ca: CertificateAuthority | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            directory = cert.write(self.root / f"client-{cert.serial}")
            context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
        return context

    def serial(self, context: ssl.SSLContext | None = None) -> int:
        """Serial of the certificate a fresh REST connection is shown."""
        with (
            socket.create_connection(("127.0.0.1", self.server.rest_port), timeout=5) as raw,
            (context or self.client()).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return int(x509.load_der_x509_certificate(der).serial_number)

    def grpc_channel(self) -> grpc.Channel:
        return grpc.secure_channel(
            f"127.0.0.1:{self.server.grpc_port}", grpc.ssl_channel_credentials(self.ca_file.read_bytes())
        )


@pytest.fixture(params=("grpcio", "modelship"))
def rotating(request: pytest.FixtureRequest, model_base: Path, tmp_path: Path) -> Iterator[Fixture]:
    ca = CertificateAuthority()
    volume = SecretVolume(tmp_path / "secret")
    volume.tls(ca.server(), ca.pem)
    (tmp_path / "trusted-ca.crt").write_bytes(ca.pem)
    secret = volume.directory
    server = ServerProcess(
        [
            "--model_name=linear",
            f"--model_base_path={model_base / 'linear'}",
            f"--grpc_server={request.param}",
            f"--tls_cert_file={secret / 'tls.crt'}",
            f"--tls_key_file={secret / 'tls.key'}",
            f"--tls_client_ca_file={secret / 'ca.crt'}",
            "--tls_client_auth=optional",
            f"--tls_poll_wait_seconds={POLL}",
        ],
        log=tmp_path / "server.log",
        tls_ca=tmp_path / "trusted-ca.crt",
    )
    try:
        server.wait_ready()
        fx = Fixture(server, volume, ca, tmp_path)
        with fx.grpc_channel() as channel:  # gRPC health follows readiness within 0.2 s
            stub = health_pb2_grpc.HealthStub(channel)
            _until(lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING)
        yield fx
    finally:
        assert server.terminate() == 0, server.logs()


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met")


class Load:
    """Requests in three threads until stopped: outcomes counted by kind, failures kept."""

    def __init__(self, fx: Fixture) -> None:
        self.fx = fx
        self.ok: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=t, daemon=True) for t in (self._fresh, self._kept, self._grpc)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _record(self, kind: str, call: Callable[[], bool]) -> None:
        try:
            good = call()
        except Exception as exc:  # every failure is a finding
            self.failures.append(f"{kind}: {exc!r}")
            return
        if good:
            self.ok[kind] += 1
        else:
            self.failures.append(f"{kind}: bad answer")

    def _fresh(self) -> None:  # a new TLS connection (and handshake) per request
        context = self.fx.client()
        while not self.stop.is_set():

            def once() -> bool:
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.fx.server.rest_port, timeout=10, context=context
                )
                try:
                    conn.request(
                        "POST", "/v1/models/linear:predict", PREDICT, {"Content-Type": "application/json"}
                    )
                    return conn.getresponse().status == 200
                finally:
                    conn.close()

            self._record("rest-new-connection", once)

    def _kept(self) -> None:  # one keep-alive connection through every rotation
        with httpx.Client(base_url=self.fx.server.url, verify=self.fx.client(), timeout=10) as client:
            while not self.stop.is_set():
                self._record(
                    "rest-keep-alive",
                    lambda: client.post("/v1/models/linear:predict", content=PREDICT).status_code == 200,
                )

    def _grpc(self) -> None:
        request = health_pb2.HealthCheckRequest()
        long_lived = self.fx.grpc_channel()
        count = 0
        while not self.stop.is_set():
            count += 1
            self._record(
                "grpc-long-channel",
                lambda: health_pb2_grpc.HealthStub(long_lived).Check(request, timeout=10).status == SERVING,
            )
            if count % 10 == 0:
                with self.fx.grpc_channel() as fresh:
                    self._record(
                        "grpc-new-channel",
                        lambda ch=fresh: (
                            health_pb2_grpc.HealthStub(ch).Check(request, timeout=10).status == SERVING
                        ),
                    )
        long_lived.close()


def _tls_reload_errors(fx: Fixture) -> float:
    text = httpx.get(f"{fx.server.url}/metrics", verify=fx.client(), timeout=5).text
    for line in text.splitlines():
        if line.startswith('modelship_tls_reloads_total{result="error"}'):
            return float(line.split()[-1])
    return 0.0


def test_rotation_under_load_fails_no_request(rotating: Fixture, report: Callable[[str], None]) -> None:
    fx = rotating
    first = fx.serial()
    with Load(fx) as load:
        time.sleep(1.0)
        renewed = fx.ca.server()
        fx.volume.tls(renewed, fx.ca.pem)
        _until(lambda: fx.serial() == renewed.serial)
        time.sleep(0.5)
        broken = Issued(fx.ca.server().cert, renewed.key)  # a certificate with another key
        fx.volume.tls(broken, fx.ca.pem)
        _until(lambda: _tls_reload_errors(fx) > 0)
        assert fx.serial() == renewed.serial  # refused: the previous pair keeps serving
        again = fx.ca.server()
        fx.volume.tls(again, fx.ca.pem)
        _until(lambda: fx.serial() == again.serial)
        time.sleep(0.5)
    assert first != renewed.serial
    assert load.failures == [], load.failures[:5]
    assert all(load.ok[kind] > 0 for kind in ("rest-new-connection", "rest-keep-alive", "grpc-long-channel"))
    assert load.ok["grpc-new-channel"] > 0
    report(f"{fx.server.url}: 3 rotations under load, 0 failed of {sum(load.ok.values())} ({dict(load.ok)})")


def test_clients_refuse_expired_and_wrong_host_certificates(rotating: Fixture) -> None:
    fx = rotating
    long_lived = fx.grpc_channel()
    health = health_pb2_grpc.HealthStub(long_lived)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
    for bad, reason in (
        (fx.ca.server(expired=True), "certificate has expired"),
        (fx.ca.issue("other.example", dns_names=("other.example",)), "IP address mismatch"),
    ):
        fx.volume.tls(bad, fx.ca.pem)
        _until(lambda b=bad: fx.serial(_no_check(fx)) == b.serial)
        with pytest.raises(ssl.SSLCertVerificationError, match=reason):
            fx.serial()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{fx.server.url}/v2/health/ready", verify=fx.client(), timeout=5)
        with fx.grpc_channel() as fresh, pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # the connection made before both swaps was never dropped
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
    long_lived.close()


def test_a_new_client_ca_replaces_the_old_one(rotating: Fixture) -> None:
    fx = rotating
    old_client = fx.ca.client()
    assert fx.serial(fx.client(old_client))
    new_ca = CertificateAuthority("renewed CA")
    server = new_ca.server()
    fx.ca_file.write_bytes(fx.ca.pem + new_ca.pem)  # clients trust both while the CA rolls over
    fx.volume.tls(server, new_ca.pem)
    _until(lambda: fx.serial() == server.serial)
    new_client = new_ca.client()
    with httpx.Client(base_url=fx.server.url, verify=fx.client(new_client), timeout=5) as client:
        assert client.get("/v2/health/ready").status_code == 200
    with (
        pytest.raises(httpx.TransportError),
        httpx.Client(base_url=fx.server.url, verify=fx.client(old_client), timeout=5) as client,
    ):
        client.get("/v2/health/ready")


def _no_check(fx: Fixture) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
