"""`helm test` probe: a real prediction against the release's Service, stdlib + grpcio only.

Runs inside the server image (which has Python and grpcio but no curl). Configured by env:
MODELSHIP_TEST_REST_URL, MODELSHIP_TEST_GRPC_TARGET, MODELSHIP_TEST_MODEL,
MODELSHIP_TEST_REQUEST (JSON body for :predict), MODELSHIP_TEST_TIMEOUT (seconds) and
MODELSHIP_AUTH_TOKEN_FILE (optional bearer token). An empty MODELSHIP_TEST_GRPC_TARGET leaves the
gRPC check out (helmTest.grpcHealth=false). When the Service's DNS name does not resolve (a cluster
without a DNS add-on), the Service's cluster IP is taken from the service-link variables
``<MODELSHIP_TEST_SERVICE_ENV>_SERVICE_HOST``. Exits non-zero on the first failed check.

TLS (tls.enabled: an https:// REST URL, and then TLS on the gRPC port too): the server is verified
against MODELSHIP_TEST_CA_FILE, and its certificate must name MODELSHIP_TEST_TLS_SERVER_NAME, whatever
address is dialled (the Service's DNS name or its cluster IP). MODELSHIP_TEST_CERT_FILE and
MODELSHIP_TEST_KEY_FILE (mTLS, tls.clientAuth=require) are the client certificate presented on both
ports; with them, a prediction without a client certificate must also be refused (401).
"""

import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def service_address(host: str) -> str:
    """``host`` if it resolves, else the Service's cluster IP from the service-link variables."""
    try:
        socket.getaddrinfo(host, None)
        return host
    except OSError:
        prefix = os.environ.get("MODELSHIP_TEST_SERVICE_ENV", "")
        return os.environ.get(f"{prefix}_SERVICE_HOST", host) if prefix else host


_rest = urllib.parse.urlsplit(os.environ["MODELSHIP_TEST_REST_URL"].rstrip("/"))
REST = _rest._replace(netloc=f"{service_address(_rest.hostname or '')}:{_rest.port}").geturl()
_grpc_host, _, _grpc_port = os.environ["MODELSHIP_TEST_GRPC_TARGET"].rpartition(":")
GRPC_TARGET = f"{service_address(_grpc_host)}:{_grpc_port}" if _grpc_host else ""
MODEL = os.environ["MODELSHIP_TEST_MODEL"]
BODY = os.environ["MODELSHIP_TEST_REQUEST"]
DEADLINE = time.monotonic() + float(os.environ.get("MODELSHIP_TEST_TIMEOUT", "120"))
TOKEN_FILE = os.environ.get("MODELSHIP_AUTH_TOKEN_FILE", "")
TLS = _rest.scheme == "https"
CA_FILE = os.environ.get("MODELSHIP_TEST_CA_FILE", "")
CERT_FILE = os.environ.get("MODELSHIP_TEST_CERT_FILE", "")
KEY_FILE = os.environ.get("MODELSHIP_TEST_KEY_FILE", "")
SERVER_NAME = os.environ.get("MODELSHIP_TEST_TLS_SERVER_NAME", "")
HEADERS = {"Content-Type": "application/json"}
if TOKEN_FILE:
    with open(TOKEN_FILE, encoding="utf-8") as fh:
        HEADERS["Authorization"] = "Bearer " + fh.read().strip()


class _ServerNameContext(ssl.SSLContext):
    """A client context that checks SERVER_NAME in the certificate (and sends it as SNI) whatever
    host the connection dials: the Service's cluster IP is not a name the certificate carries."""

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if SERVER_NAME:
            kwargs["server_hostname"] = SERVER_NAME
        return super().wrap_socket(*args, **kwargs)


def tls_context(client_cert: bool = True) -> ssl.SSLContext | None:
    """The REST client's TLS context (None without TLS): verifies the server, presents the client
    certificate when one is configured and ``client_cert``."""
    if not TLS:
        return None
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    if CA_FILE:
        context.load_verify_locations(cafile=CA_FILE)
    else:
        context.load_default_certs()
    if client_cert and CERT_FILE:
        context.load_cert_chain(CERT_FILE, KEY_FILE or None)
    return context


CONTEXT = tls_context()


def call(
    method: str, path: str, body: bytes | None = None, context: ssl.SSLContext | None = CONTEXT
) -> tuple[int, object]:
    """Send one request; return (status, decoded JSON body)."""
    req = urllib.request.Request(REST + path, data=body, method=method, headers=HEADERS)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode("utf-8", "replace")


def say(line: str) -> None:
    """One line of test output, unbuffered (the pod log is the report)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def check(ok: bool, what: str) -> None:
    """Report one result; exit 1 on failure."""
    say(("PASS " if ok else "FAIL ") + what)
    if not ok:
        sys.exit(1)


def wait_ready() -> None:
    """Poll /v2/health/ready until 200 or the deadline."""
    last: object = None
    while time.monotonic() < DEADLINE:
        try:
            status, last = call("GET", "/v2/health/ready")
            if status == 200:
                check(True, f"GET /v2/health/ready -> 200 {last}")
                return
        except OSError as err:
            last = err
        time.sleep(2)
    check(False, f"GET /v2/health/ready never returned 200 (last: {last})")


def predict() -> None:
    """POST the configured request to :predict and check the predictions."""
    instances = json.loads(BODY).get("instances", [])
    status, out = call("POST", f"/v1/models/{MODEL}:predict", BODY.encode())
    check(status == 200, f"POST /v1/models/{MODEL}:predict -> {status} {out}")
    preds = out.get("predictions") if isinstance(out, dict) else None
    check(
        isinstance(preds, list) and len(preds) == len(instances),
        f"{len(instances)} instance(s) -> predictions {preds}",
    )


def model_status() -> None:
    """GET /v1/models/<name> must list an AVAILABLE version."""
    status, out = call("GET", f"/v1/models/{MODEL}")
    states = [v.get("state") for v in out.get("model_version_status", [])] if isinstance(out, dict) else []
    check(status == 200 and "AVAILABLE" in states, f"GET /v1/models/{MODEL} -> {status} states={states}")


def client_cert_required() -> None:
    """mTLS: the same prediction without a client certificate must be refused."""
    what = f"POST /v1/models/{MODEL}:predict without a client certificate"
    try:
        status, _ = call("POST", f"/v1/models/{MODEL}:predict", BODY.encode(), tls_context(client_cert=False))
    except OSError as err:
        check(False, f"{what} -> {err} (want 401)")
    check(status == 401, f"{what} -> {status}" + (" (mTLS enforced)" if status == 401 else " (want 401)"))


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def grpc_channel() -> Any:
    """A channel to GRPC_TARGET: plaintext, or TLS verified like the REST calls."""
    import grpc

    if not TLS:
        return grpc.insecure_channel(GRPC_TARGET)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(CA_FILE), private_key=_read(KEY_FILE), certificate_chain=_read(CERT_FILE)
    )
    options = [("grpc.ssl_target_name_override", SERVER_NAME)] if SERVER_NAME else []
    return grpc.secure_channel(GRPC_TARGET, credentials, options=options)


def grpc_health() -> None:
    """grpc.health.v1.Health/Check on the gRPC port must answer SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc_channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=max(1.0, DEADLINE - time.monotonic()))
        stub = health_pb2_grpc.HealthStub(channel)
        resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    state = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    check(state == "SERVING", f"gRPC Health/Check on {GRPC_TARGET} -> {state}")


say(f"REST {REST}, gRPC {GRPC_TARGET or '(not checked)'}")
if TLS:
    client = "with client certificate " + CERT_FILE if CERT_FILE else "without client certificate"
    say(f"TLS: server name {SERVER_NAME or '(the dialled host)'}, CA {CA_FILE or '(system)'}, {client}")
wait_ready()
model_status()
predict()
if TLS and CERT_FILE:
    client_cert_required()
if GRPC_TARGET:
    grpc_health()
else:
    say("gRPC health check not configured (helmTest.grpcHealth=false)")
say("helm test: all checks passed")
