"""HTTPS to serving pods: real certificates and a real local TLS server on 127.0.0.1.

The server's certificate names only ``modelship.serving.svc`` (what the chart's certificate names),
never 127.0.0.1, so a request passes only because the configured server name is what is checked.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

from rollout_operator.__main__ import build_parser, main, pod_tls
from rollout_operator.driver import Driver
from rollout_operator.kube import Kube, pod_proxy_path
from rollout_operator.metrics import OperatorMetrics
from rollout_operator.observations import PodView
from rollout_operator.phases import VerificationOutcome
from rollout_operator.pod_http import DirectPodHttp, ProbeError, ProxyPodHttp
from rollout_operator.pod_tls import PodTls, PodTlsError
from rollout_operator.probes import verify_pod
from tests.tls_certs import CertificateAuthority, Issued, SecretVolume

SERVICE = "modelship.serving.svc"
POD = PodView(name="serving-0", uid="u0", ip="127.0.0.1", containers_ready=True, ready=True)


class Handler(BaseHTTPRequestHandler):
    """A model server's REST port in miniature: with ``client_auth`` (the server's
    ``--tls_client_auth=require``) every path but health answers 401 without a client certificate."""

    server: TlsServer

    def do_GET(self) -> None:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        if self.server.client_auth and not peer and not self.path.startswith("/v2/health/"):
            self.answer(401, {"error": "a client certificate is required"})
            return
        rdns = cast("tuple[tuple[tuple[str, str], ...], ...]", peer["subject"] if peer else ())
        subject = {k: v for rdn in rdns for k, v in rdn}
        if self.path == "/v1/models/linear/versions/2":
            self.answer(200, {"model_version_status": [{"version": "2", "state": "AVAILABLE"}]})
            return
        self.answer(200, {"path": self.path, "client": subject.get("commonName", "")})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TlsServer(ThreadingHTTPServer):
    """HTTPS on 127.0.0.1; :meth:`use` swaps the certificate (what a restarted server would serve)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        self.ctx: ssl.SSLContext | None = None
        self.client_auth = False

    def use(self, issued: Issued, tmp: Path, client_ca: bytes | None = None, strict: bool = False) -> None:
        """Serve ``issued``; with ``client_ca`` ask for client certificates (``strict``: at the handshake)."""
        issued.write(tmp, "server.crt", "server.key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp / "server.crt", tmp / "server.key")
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED if strict else ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cadata=client_ca.decode())
        self.ctx, self.client_auth = ctx, client_ca is not None

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        assert self.ctx is not None
        # The handshake runs in the handler's thread, on its first read.
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes are what some tests are about


@pytest.fixture
def server() -> Iterator[TlsServer]:
    srv = TlsServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("serving CA")


def service_cert(ca: CertificateAuthority, **kwargs: Any) -> Issued:
    return ca.issue(SERVICE, dns_names=(SERVICE,), **kwargs)


def ca_file(tmp_path: Path, ca: CertificateAuthority, name: str = "ca.crt") -> str:
    path = tmp_path / name
    path.write_bytes(ca.pem)
    return str(path)


def client_files(tmp_path: Path, ca: CertificateAuthority) -> tuple[str, str]:
    d = ca.client("modelship-rollout-operator").write(tmp_path / "client")
    return str(d / "tls.crt"), str(d / "tls.key")


def get(tls: PodTls | None, port: int, path: str = "/v1/models/linear") -> tuple[int, Any]:
    status, data = DirectPodHttp(port, timeout=5, tls=tls).request(POD, "GET", path)
    return status, json.loads(data)


# ------------------------------------------------------------------------------------------------
# server verification


def test_https_with_the_service_name_succeeds(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(ca), tmp_path)
    status, body = get(PodTls(ca_file(tmp_path, ca), SERVICE), server.port)
    assert (status, body["path"]) == (200, "/v1/models/linear")


def test_without_a_server_name_the_chain_is_still_verified(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(ca), tmp_path)
    assert get(PodTls(ca_file(tmp_path, ca)), server.port)[0] == 200
    other = CertificateAuthority("someone else's CA")
    with pytest.raises(ProbeError, match=r"TLS verification .*no server name checked.*failed"):
        get(PodTls(ca_file(tmp_path, other, "other.crt")), server.port)


def test_a_wrong_server_name_is_a_tls_verification_error(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(ca), tmp_path)
    with pytest.raises(ProbeError) as err:
        get(PodTls(ca_file(tmp_path, ca), "other.serving.svc"), server.port)
    message = str(err.value)
    assert "pod serving-0 (127.0.0.1:" in message
    assert "TLS verification of the pod's certificate for server name 'other.serving.svc'" in message
    assert "Hostname mismatch" in message


def test_the_pod_ip_alone_is_not_a_valid_name(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """What plain http.client would check (the IP): the certificate does not name it."""
    server.use(service_cert(ca), tmp_path)
    with pytest.raises(ProbeError, match=r"TLS verification.*127.0.0.1"):
        get(PodTls(ca_file(tmp_path, ca), "127.0.0.1"), server.port)


def test_a_certificate_from_another_ca_is_refused(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(CertificateAuthority("rogue CA")), tmp_path)
    with pytest.raises(ProbeError, match=r"TLS verification.*failed: unable to get local issuer certificate"):
        get(PodTls(ca_file(tmp_path, ca), SERVICE), server.port)


def test_an_expired_certificate_is_refused(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(ca, expired=True), tmp_path)
    with pytest.raises(ProbeError, match=r"TLS verification.*failed: certificate has expired"):
        get(PodTls(ca_file(tmp_path, ca), SERVICE), server.port)


def test_tls_to_a_plain_http_port_says_so(ca: CertificateAuthority, tmp_path: Path) -> None:
    plain = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=plain.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with pytest.raises(ProbeError, match="TLS error"):
            get(PodTls(ca_file(tmp_path, ca), SERVICE), plain.server_address[1])
    finally:
        plain.shutdown()
        plain.server_close()
        thread.join(5)


def test_a_tls_failure_reaches_the_verification_message(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(ca, expired=True), tmp_path)
    http = DirectPodHttp(server.port, timeout=5, tls=PodTls(ca_file(tmp_path, ca), SERVICE))
    v = verify_pod(http, POD, None, "linear", 2, None)
    assert v.outcome == VerificationOutcome.ERROR
    assert "certificate has expired" in v.message
    server.use(service_cert(ca), tmp_path)
    assert verify_pod(http, POD, None, "linear", 2, None).outcome == VerificationOutcome.PASSED


# ------------------------------------------------------------------------------------------------
# client certificates (mTLS)


def test_mtls_without_a_client_certificate_gets_401(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    """The model server asks for a certificate and answers 401 per request (health stays open)."""
    server.use(service_cert(ca), tmp_path, client_ca=ca.pem)
    tls = PodTls(ca_file(tmp_path, ca), SERVICE)
    assert get(tls, server.port)[0] == 401
    assert get(tls, server.port, "/v2/health/ready")[0] == 200


def test_a_handshake_refused_for_want_of_a_client_certificate(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(ca), tmp_path, client_ca=ca.pem, strict=True)
    with pytest.raises(ProbeError, match="pod serving-0"):
        get(PodTls(ca_file(tmp_path, ca), SERVICE), server.port)


@pytest.mark.parametrize("strict", [False, True])
def test_mtls_with_the_client_certificate(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path, strict: bool
) -> None:
    server.use(service_cert(ca), tmp_path, client_ca=ca.pem, strict=strict)
    cert, key = client_files(tmp_path, ca)
    status, body = get(PodTls(ca_file(tmp_path, ca), SERVICE, cert, key), server.port)
    assert (status, body["client"]) == (200, "modelship-rollout-operator")


def test_a_client_certificate_from_another_ca_is_refused(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    server.use(service_cert(ca), tmp_path, client_ca=ca.pem, strict=True)
    cert, key = client_files(tmp_path, CertificateAuthority("rogue CA"))
    with pytest.raises(ProbeError, match="pod serving-0"):
        get(PodTls(ca_file(tmp_path, ca), SERVICE, cert, key), server.port)


def test_the_bearer_token_still_goes_along(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    seen: list[str | None] = []
    original = Handler.do_GET

    def recording(self: Handler) -> None:
        seen.append(self.headers.get("Authorization"))
        original(self)

    server.use(service_cert(ca), tmp_path)
    Handler.do_GET = recording  # type: ignore[method-assign]
    try:
        http = DirectPodHttp(
            server.port, timeout=5, token="s3cret", tls=PodTls(ca_file(tmp_path, ca), SERVICE)
        )
        assert http.request(POD, "GET", "/v1/models/linear")[0] == 200
    finally:
        Handler.do_GET = original  # type: ignore[method-assign]
    assert seen == ["Bearer s3cret"]


@pytest.mark.parametrize(
    ("reason", "client_auth", "hint"),
    [
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", False, "requires a client certificate: --pod-tls-cert-file"),
        ("TLSV1_ALERT_UNKNOWN_CA", True, "refused the operator's client certificate"),
        ("SSLV3_ALERT_BAD_CERTIFICATE", True, "refused the operator's client certificate"),
        ("WRONG_VERSION_NUMBER", False, "is TLS on at the pod?"),
        ("TLSV1_ALERT_INTERNAL_ERROR", True, ""),
    ],
)
def test_tls_errors_carry_a_hint(
    ca: CertificateAuthority, tmp_path: Path, reason: str, client_auth: bool, hint: str
) -> None:
    """The reasons OpenSSL gives when a handshake fails (a refused one races the connection's end)."""
    cert, key = client_files(tmp_path, ca) if client_auth else (None, None)
    http = DirectPodHttp(8501, tls=PodTls(ca_file(tmp_path, ca), SERVICE, cert, key))
    exc = ssl.SSLError(1, reason)
    exc.reason = reason
    assert (hint in http.tls_hint(exc)) if hint else http.tls_hint(exc) == ""


# ------------------------------------------------------------------------------------------------
# rotation


@pytest.mark.parametrize("layout", ["in place", "secret volume"])
def test_renewed_files_are_used_without_a_new_pod_tls(server: TlsServer, tmp_path: Path, layout: str) -> None:
    """A new CA: the server restarts with its certificate, the operator's files are rewritten."""
    volume = SecretVolume(tmp_path / "secret")

    def write(ca: CertificateAuthority) -> None:
        issued = ca.client("modelship-rollout-operator")
        if layout == "secret volume":
            volume.tls(issued, ca.pem)
        else:
            issued.write(volume.directory)
            (volume.directory / "ca.crt").write_bytes(ca.pem)

    old, new = CertificateAuthority("CA 1"), CertificateAuthority("CA 2")
    write(old)
    d = volume.directory
    tls = PodTls(str(d / "ca.crt"), SERVICE, str(d / "tls.crt"), str(d / "tls.key"))
    server.use(service_cert(old), tmp_path, client_ca=old.pem, strict=True)
    assert get(tls, server.port)[0] == 200
    first = tls.context()
    assert tls.context() is first  # unchanged files: the same context

    server.use(service_cert(new), tmp_path, client_ca=new.pem, strict=True)
    with pytest.raises(ProbeError, match="TLS verification"):
        get(tls, server.port)  # the operator still trusts only the old CA
    write(new)
    assert get(tls, server.port)[0] == 200
    assert tls.context() is not first


def test_a_half_renewed_pair_keeps_the_loaded_files(
    server: TlsServer, ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert, key = client_files(tmp_path, ca)
    tls = PodTls(ca_file(tmp_path, ca), SERVICE, cert, key)
    server.use(service_cert(ca), tmp_path, client_ca=ca.pem, strict=True)
    first = tls.context()
    Path(cert).write_bytes(ca.client("renewed").cert)  # the new certificate, its key not yet
    assert tls.context() is first
    assert get(tls, server.port)[0] == 200
    Path(cert).unlink()
    assert tls.context() is first


def test_files_that_do_not_load_at_first_are_an_error(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(PodTlsError, match="cannot read"):
        PodTls(str(tmp_path / "missing.crt"), SERVICE).context()
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(PodTlsError, match="cannot load"):
        PodTls(str(bad), SERVICE).context()
    with pytest.raises(ProbeError, match="pod serving-0: cannot read"):
        get(PodTls(str(tmp_path / "missing.crt"), SERVICE), 1)


def test_the_context_is_strict(ca: CertificateAuthority, tmp_path: Path) -> None:
    ctx = PodTls(ca_file(tmp_path, ca), SERVICE).context()
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert not PodTls(ca_file(tmp_path, ca)).context().check_hostname
    with pytest.raises(PodTlsError, match="both"):
        PodTls(ca_file(tmp_path, ca), SERVICE, cert_file="tls.crt")


# ------------------------------------------------------------------------------------------------
# flags


def parse(*argv: str) -> PodTls | None:
    return pod_tls(build_parser().parse_args(list(argv)))


def test_flags(ca: CertificateAuthority, tmp_path: Path) -> None:
    assert parse() is None
    ca_path = ca_file(tmp_path, ca)
    cert, key = client_files(tmp_path, ca)
    tls = parse(
        f"--pod-tls-ca-file={ca_path}",
        f"--pod-tls-server-name={SERVICE}",
        f"--pod-tls-cert-file={cert}",
        f"--pod-tls-key-file={key}",
    )
    assert tls is not None
    assert (tls.ca_file, tls.server_name, tls.cert_file, tls.key_file) == (ca_path, SERVICE, cert, key)
    assert tls.client_auth
    only_ca = parse(f"--pod-tls-ca-file={ca_path}")
    assert only_ca is not None
    assert only_ca.server_name is None
    assert not only_ca.client_auth
    assert "no server name checked" in only_ca.describe()
    proxied = parse("--pod-access=proxy", "--pod-tls-ca-file=/not/mounted/ca.crt")
    assert proxied is not None  # the API server connects: the operator never loads the file
    help_text = build_parser().format_help()
    for flag in ("--pod-tls-ca-file", "--pod-tls-server-name", "--pod-tls-cert-file", "--pod-tls-key-file"):
        assert flag in help_text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pod-tls-ca-file=CA", "--pod-tls-cert-file=c"], "--pod-tls-cert-file needs --pod-tls-key-file"),
        (["--pod-tls-ca-file=CA", "--pod-tls-key-file=k"], "--pod-tls-key-file needs --pod-tls-cert-file"),
        (["--pod-tls-server-name=x.svc"], "--pod-tls-server-name needs --pod-tls-ca-file"),
        (
            ["--pod-access=proxy", "--pod-tls-ca-file=CA", "--pod-tls-cert-file=c", "--pod-tls-key-file=k"],
            "does not work with --pod-access=proxy: the API server's pod proxy",
        ),
        (["--pod-tls-ca-file=/no/such/ca.crt"], "cannot read the pod TLS files"),
    ],
)
def test_the_operator_refuses_to_start(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# the pod proxy and the driver


def test_pod_proxy_paths() -> None:
    assert pod_proxy_path("ml", "p-0", 8501, "/v1/models/linear") == (
        "/api/v1/namespaces/ml/pods/p-0:8501/proxy/v1/models/linear"
    )
    assert pod_proxy_path("ml", "p-0", 8501, "/monitoring/prometheus/metrics", "https") == (
        "/api/v1/namespaces/ml/pods/https:p-0:8501/proxy/monitoring/prometheus/metrics"
    )
    with pytest.raises(ValueError, match="http or https"):
        pod_proxy_path("ml", "p-0", 8501, "/", "ftp")


class Response:
    status = 200
    data = b'{"ok": true}'


@pytest.fixture
def kube() -> Iterator[tuple[Kube, list[str]]]:
    """A Kube whose API client records the paths it is asked for instead of sending them."""
    api = client.ApiClient()
    calls: list[str] = []

    def call_api(resource: str, method: str, **kwargs: Any) -> Response:
        calls.append(f"{method} {resource}")
        return Response()

    api.call_api = call_api
    try:
        yield Kube(api), calls
    finally:
        api.close()


@pytest.mark.parametrize(("tls", "name"), [(False, "serving-0:8501"), (True, "https:serving-0:8501")])
def test_the_proxy_asks_for_https_with_tls(kube: tuple[Kube, list[str]], tls: bool, name: str) -> None:
    k, calls = kube
    assert ProxyPodHttp(k, "ml", 8501, tls=tls).request(POD, "GET", "/v1/models/linear") == (
        200,
        b'{"ok": true}',
    )
    assert calls == [f"GET /api/v1/namespaces/ml/pods/{name}/proxy/v1/models/linear"]


def test_the_driver_threads_the_tls_settings(
    kube: tuple[Kube, list[str]], ca: CertificateAuthority, tmp_path: Path
) -> None:
    k, _ = kube
    tls = PodTls(ca_file(tmp_path, ca), SERVICE)
    direct = Driver(k, OperatorMetrics(), "me", "direct", "tok", pod_tls=tls).http("ml", 8501)
    assert isinstance(direct, DirectPodHttp)
    assert (direct.tls, direct.token, direct.port) == (tls, "tok", 8501)
    proxy = Driver(k, OperatorMetrics(), "me", "proxy", pod_tls=tls).http("ml", 8501)
    assert isinstance(proxy, ProxyPodHttp)
    assert proxy.scheme == "https"
    plain = Driver(k, OperatorMetrics(), "me", "direct").http("ml", 8501)
    assert isinstance(plain, DirectPodHttp)
    assert plain.tls is None
