"""TLS and mTLS on a real server process: HTTPS predict, the official gRPC stubs, refusals.

Certificates are real (tests/tls_certs.py: a CA, a server certificate for 127.0.0.1/localhost, a
client certificate, and bad ones). Each server runs once per gRPC implementation; one takes its
material from the tls_*_file flags (mTLS required, bearer token on), one from TF Serving's
``--ssl_config_file``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from service.tensor_proto import from_numpy
from tests.fixtures import ServerProcess, expected_linear
from tests.tls_certs import CertificateAuthority, Issued, Pki, make_pki

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token"
X = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]


def client_context(pki: Pki, cert: Issued | None = None) -> ssl.SSLContext:
    """A client trusting the test CA, presenting ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if cert is not None:
        directory = cert.write(pki.ca_file.parent / f"client-{cert.serial}")
        context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    return context


def grpc_credentials(pki: Pki, cert: Issued | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(pki.ca.pem, cert.key if cert else None, cert.cert if cert else None)


def serving(channel: grpc.Channel, timeout: float = 5) -> bool:
    """The gRPC health check answers SERVING within ``timeout`` s (it follows readiness)."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        ):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module", params=("grpcio", "modelship"))
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls(
    model_base: Path, pki: Pki, implementation: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """mTLS required, bearer token on: the strictest configuration, from the tls_* flags."""
    directory = tmp_path_factory.mktemp("mtls")
    token = directory / "token"
    token.write_text(TOKEN)
    log = directory / "server.log"
    server = ServerProcess(
        [
            "--model_name=linear",
            f"--model_base_path={model_base / 'linear'}",
            f"--grpc_server={implementation}",
            f"--tls_cert_file={pki.server_dir / 'tls.crt'}",
            f"--tls_key_file={pki.server_dir / 'tls.key'}",
            f"--tls_client_ca_file={pki.server_dir / 'ca.crt'}",
            "--tls_client_auth=require",
            f"--auth_token_file={token}",
        ],
        log=log,
        tls_ca=pki.ca_file,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        assert server.terminate() == 0, server.logs()


def _https(server: ServerProcess, context: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=context, timeout=10)


def test_https_predict_with_client_certificate_and_token(
    mtls: ServerProcess, pki: Pki, model_base: Path
) -> None:
    with _https(mtls, client_context(pki, pki.client)) as client:
        reply = client.post(
            "/v1/models/linear:predict", json={"instances": X}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert reply.status_code == 200, reply.text
    want = expected_linear(model_base / "linear" / "1", np.asarray(X, np.float32))
    np.testing.assert_allclose(np.asarray(reply.json()["predictions"]).reshape(want.shape), want, rtol=1e-6)


def test_without_client_certificate_only_health_answers(mtls: ServerProcess, pki: Pki) -> None:
    with _https(mtls, client_context(pki)) as client:
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/v2/health/live").status_code == 200
        for path in ("/v1/models/linear", "/v2/models/linear", "/metrics"):
            reply = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert reply.status_code == 401, (path, reply.text)
            assert "client certificate is required" in reply.json()["error"]


def test_bearer_token_still_required_beside_the_certificate(mtls: ServerProcess, pki: Pki) -> None:
    with _https(mtls, client_context(pki, pki.client)) as client:
        reply = client.post("/v1/models/linear:predict", json={"instances": X})
    assert reply.status_code == 401
    assert "bearer token" in reply.json()["error"]


def test_certificate_from_another_ca_is_refused_at_the_handshake(mtls: ServerProcess, pki: Pki) -> None:
    stranger = CertificateAuthority("another CA").client()
    with pytest.raises(httpx.TransportError), _https(mtls, client_context(pki, stranger)) as client:
        client.get("/v2/health/ready")
    with (
        grpc.secure_channel(f"127.0.0.1:{mtls.grpc_port}", grpc_credentials(pki, stranger)) as channel,
        pytest.raises(grpc.RpcError) as err,
    ):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_gets_no_answer(mtls: ServerProcess) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{mtls.rest_port}/v2/health/ready", timeout=5)
    with grpc.insecure_channel(f"127.0.0.1:{mtls.grpc_port}") as channel, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)


def test_official_grpc_stubs_over_mtls(mtls: ServerProcess, pki: Pki, model_base: Path) -> None:
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.secure_channel(f"127.0.0.1:{mtls.grpc_port}", grpc_credentials(pki, pki.client)) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "linear"
        request.inputs["x"].CopyFrom(from_numpy(np.asarray(X, np.float32)))
        reply = stub.Predict(request, timeout=10, metadata=metadata)
        meta = stub.GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=request.model_spec, metadata_field=["signature_def"]
            ),
            timeout=10,
            metadata=metadata,
        )
        health = serving(channel)
    want = expected_linear(model_base / "linear" / "1", np.asarray(X, np.float32))
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs["y"]).reshape(want.shape), want, rtol=1e-6)
    assert meta.model_spec.version.value == 1
    assert health


def test_grpc_without_client_certificate_is_refused(mtls: ServerProcess, pki: Pki) -> None:
    target = f"127.0.0.1:{mtls.grpc_port}"
    with (
        grpc.secure_channel(target, grpc_credentials(pki, None)) as channel,
        pytest.raises(grpc.RpcError) as err,
    ):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_ssl_config_file_serves_both_ports(
    model_base: Path, pki: Pki, implementation: str, tmp_path: Path
) -> None:
    """TF Serving's --ssl_config_file, PEM inline with text-proto escapes, applied to gRPC and REST."""

    def quoted(pem: bytes) -> str:
        return '"' + pem.decode().replace("\n", "\\n") + '"'

    config = tmp_path / "ssl.conf"
    config.write_text(
        "# TF Serving SSLConfig\n"
        f"server_key: {quoted(pki.server.key)}\n"
        f"server_cert: {quoted(pki.server.cert)}\n"
        f"custom_ca: {quoted(pki.ca.pem)}\n"
        "client_verify: true\n"
    )
    args = [
        "--model_name=linear",
        f"--model_base_path={model_base / 'linear'}",
        f"--grpc_server={implementation}",
        f"--ssl_config_file={config}",
    ]
    server = ServerProcess(args, log=tmp_path / "server.log", tls_ca=pki.ca_file)
    try:
        server.wait_ready()
        with _https(server, client_context(pki, pki.client)) as client:
            assert client.post("/v1/models/linear:predict", json={"instances": X}).status_code == 200
        with _https(server, client_context(pki)) as client:
            assert client.get("/v1/models/linear").status_code == 401  # client_verify: true
        with grpc.secure_channel(f"127.0.0.1:{server.grpc_port}", grpc_credentials(pki, pki.client)) as ch:
            assert serving(ch)
    finally:
        assert server.terminate() == 0, server.logs()
