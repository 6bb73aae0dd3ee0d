"""tls.*: HTTPS/TLS on both ports, mTLS, cert-manager Certificates and the chart's own clients (helm
test, rollout operator, ServiceMonitor), asserted on the parsed output of `helm template`.

(The rendered flags and the helm test script run against the real server in
test_chart_real_server.py; the cross-field rejections are in test_chart_values.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.chart

Obj = dict[str, Any]

SECRET = ["tls.enabled=true", "tls.secretName=modelship-tls"]
CERT_MANAGER = [
    "tls.enabled=true",
    "tls.certManager.enabled=true",
    "tls.certManager.issuerRef.name=modelship-ca",
]
MTLS = [*SECRET, "tls.clientAuth=require", "tls.clientSecretName=modelship-client-tls"]
SERVICE_NAMES = [
    "modelship",
    "modelship.serving",
    "modelship.serving.svc",
    "modelship.serving.svc.cluster.local",
]


def _pod(rendered: Any, suffix: str = "modelship") -> Obj:
    spec: Obj = rendered.one("Deployment", suffix)["spec"]["template"]["spec"]
    return spec


def _container(pod: Obj) -> Obj:
    (container,) = pod["containers"]
    return container


def _volumes(pod: Obj) -> dict[str, Obj]:
    return {v["name"]: v for v in pod.get("volumes", [])}


def _mounts(container: Obj) -> dict[str, Obj]:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def _env(container: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _tls_args(container: Obj) -> list[str]:
    return [a for a in container["args"] if a.startswith(("--tls_", "--ssl_", "--pod-tls-"))]


def _helm_test(rendered: Any) -> Obj:
    (pod,) = rendered.maybe("Pod")
    spec: Obj = pod["spec"]
    return spec


def _valid(rendered: Any, k8s_validator: Any) -> None:
    problems = {f"{o['kind']}/{o['metadata']['name']}": k8s_validator.errors(o) for o in rendered.objects}
    assert not {k: v for k, v in problems.items() if v}


# ---------------------------------------------------------------------------------------------
# Off by default, and tls.* alone changes nothing


def test_tls_off_renders_no_tls(render: Any) -> None:
    r = render(set_=["operator.enabled=true", "metrics.serviceMonitor.enabled=true"])
    assert not r.maybe("Certificate")
    for pod in (_pod(r), _pod(r, "-operator"), _helm_test(r)):
        container = _container(pod)
        assert not _tls_args(container)
        assert not {n for n in _volumes(pod) if n.startswith("tls")}
        assert not {n for n in _mounts(container) if n.startswith("tls")}
        assert not {
            k for k in _env(container) if "TLS" in k or k.endswith(("_CA_FILE", "_CERT_FILE", "_KEY_FILE"))
        }
    server = _container(_pod(r))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "scheme" not in server[probe]["httpGet"]
    assert _env(_container(_helm_test(r)))["MODELSHIP_TEST_REST_URL"].startswith("http://")
    (endpoint,) = r.one("ServiceMonitor")["spec"]["endpoints"]
    assert "scheme" not in endpoint
    assert "tlsConfig" not in endpoint


def test_tls_values_without_tls_enabled_are_harmless(render: Any) -> None:
    """Every tls.* value but enabled: the output is byte for byte the default one."""
    sets = [
        "tls.secretName=x",
        "tls.clientAuth=require",
        "tls.clientSecretName=y",
        "tls.serverName=a.b",
        "tls.clientCA.secretName=z",
        "tls.pollSeconds=0",
        "tls.certManager.enabled=true",  # no issuer: not checked while TLS is off
    ]
    for extra in ([], ["operator.enabled=true", "metrics.serviceMonitor.enabled=true"]):
        assert render(set_=[*extra, *sets]).stdout == render(set_=extra).stdout


# ---------------------------------------------------------------------------------------------
# An existing Secret


def test_existing_secret_server_flags_mounts_and_probes(render: Any, k8s_validator: Any) -> None:
    r = render(set_=SECRET)
    _valid(r, k8s_validator)
    assert not r.maybe("Certificate")
    pod = _pod(r)
    server = _container(pod)
    assert _tls_args(server) == [
        "--tls_cert_file=/etc/modelship/tls/tls.crt",
        "--tls_key_file=/etc/modelship/tls/tls.key",
        "--tls_client_auth=none",
        "--tls_poll_wait_seconds=10",
    ]
    # A whole-directory mount (never subPath: that would never see a renewed Secret).
    assert _mounts(server)["tls"] == {"name": "tls", "mountPath": "/etc/modelship/tls", "readOnly": True}
    assert not any("subPath" in m for m in server["volumeMounts"] if m["name"].startswith("tls"))
    assert _volumes(pod)["tls"] == {
        "name": "tls",
        "secret": {"secretName": "modelship-tls", "defaultMode": 0o440},
    }
    assert "tls-client-ca" not in _volumes(pod)
    for probe, path in (
        ("startupProbe", "/v2/health/ready"),
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ):
        assert server[probe]["httpGet"] == {"path": path, "port": "http", "scheme": "HTTPS"}
    ports = {p["name"]: p["appProtocol"] for p in r.one("Service")["spec"]["ports"]}
    assert ports == {"http": "https", "grpc": "https"}
    annotations = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == {"checksum/config"}, "no TLS annotation: renewals need no restart"


def test_existing_secret_helm_test_verifies_the_server(render: Any) -> None:
    r = render(set_=SECRET, extra=["--set-json", "tls.pollSeconds=2.5"])
    assert "--tls_poll_wait_seconds=2.5" in _container(_pod(r))["args"]
    pod = _helm_test(r)
    container = _container(pod)
    env = _env(container)
    assert env["MODELSHIP_TEST_REST_URL"] == "https://modelship.serving.svc:8501"
    assert env["MODELSHIP_TEST_GRPC_TARGET"] == "modelship.serving.svc:8500"
    assert env["MODELSHIP_TEST_CA_FILE"] == "/etc/modelship/tls-ca/ca.crt"
    assert env["MODELSHIP_TEST_TLS_SERVER_NAME"] == "modelship.serving.svc"
    assert "MODELSHIP_TEST_CERT_FILE" not in env
    assert "MODELSHIP_TEST_KEY_FILE" not in env
    assert pod["enableServiceLinks"] is True, "the cluster IP fallback (no cluster DNS) stays"
    # Only the CA of the server Secret: the test pod never sees the server's private key.
    assert _volumes(pod)["tls-ca"]["secret"] == {
        "secretName": "modelship-tls",
        "defaultMode": 0o440,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert _mounts(container)["tls-ca"] == {
        "name": "tls-ca",
        "mountPath": "/etc/modelship/tls-ca",
        "readOnly": True,
    }
    assert "tls-client" not in _volumes(pod)


def test_server_name_override(render: Any) -> None:
    r = render(set_=[*SECRET, "tls.serverName=models.internal.example", "operator.enabled=true"])
    assert _env(_container(_helm_test(r)))["MODELSHIP_TEST_TLS_SERVER_NAME"] == "models.internal.example"
    assert "--pod-tls-server-name=models.internal.example" in _container(_pod(r, "-operator"))["args"]
    default = render(set_=SECRET, release="prod", extra=["--namespace", "ml"])
    assert _env(_container(_helm_test(default)))["MODELSHIP_TEST_TLS_SERVER_NAME"] == "prod-modelship.ml.svc"


def test_optional_client_auth_uses_the_server_secret_ca(render: Any) -> None:
    r = render(set_=[*SECRET, "tls.clientAuth=optional", "operator.enabled=true"])
    pod = _pod(r)
    assert _tls_args(_container(pod)) == [
        "--tls_cert_file=/etc/modelship/tls/tls.crt",
        "--tls_key_file=/etc/modelship/tls/tls.key",
        "--tls_client_auth=optional",
        "--tls_client_ca_file=/etc/modelship/tls/ca.crt",
        "--tls_poll_wait_seconds=10",
    ]
    assert "tls-client-ca" not in _volumes(pod)
    # optional: the chart's clients present no certificate
    assert "MODELSHIP_TEST_CERT_FILE" not in _env(_container(_helm_test(r)))
    assert not any(a.startswith("--pod-tls-cert-file") for a in _container(_pod(r, "-operator"))["args"])


def test_client_ca_from_another_secret(render: Any, k8s_validator: Any) -> None:
    r = render(
        set_=[
            *MTLS,
            "tls.clientCA.secretName=client-ca",
            "tls.clientCA.key=bundle.pem",
            "helmTest.enabled=false",
        ]
    )
    _valid(r, k8s_validator)
    pod = _pod(r)
    server = _container(pod)
    assert "--tls_client_ca_file=/etc/modelship/tls-client-ca/bundle.pem" in server["args"]
    assert "--tls_client_auth=require" in server["args"]
    assert _mounts(server)["tls-client-ca"] == {
        "name": "tls-client-ca",
        "mountPath": "/etc/modelship/tls-client-ca",
        "readOnly": True,
    }
    assert _volumes(pod)["tls-client-ca"]["secret"] == {
        "secretName": "client-ca",
        "defaultMode": 0o440,
        "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
    }
    # No client CA with clientAuth=none (the server refuses one then).
    none = _pod(render(set_=[*SECRET, "tls.clientCA.secretName=client-ca"]))
    assert not any(a.startswith("--tls_client_ca_file") for a in _container(none)["args"])
    assert "tls-client-ca" not in _volumes(none)


# ---------------------------------------------------------------------------------------------
# mTLS: the chart's clients present the client certificate


def test_mtls_helm_test_operator_and_service_monitor(render: Any, k8s_validator: Any) -> None:
    r = render(
        set_=[
            *MTLS,
            "operator.enabled=true",
            "metrics.serviceMonitor.enabled=true",
            "auth.enabled=true",
            "auth.existingSecret=tok",
        ]
    )
    _valid(r, k8s_validator)
    client_volume = {
        "name": "tls-client",
        "secret": {
            "secretName": "modelship-client-tls",
            "defaultMode": 0o440,
            "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
        },
    }
    ca_volume = {
        "name": "tls-ca",
        "secret": {
            "secretName": "modelship-tls",
            "defaultMode": 0o440,
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        },
    }
    # helm test: the client certificate, plus the check that a request without one is refused
    test_pod = _helm_test(r)
    env = _env(_container(test_pod))
    assert env["MODELSHIP_TEST_CERT_FILE"] == "/etc/modelship/tls-client/tls.crt"
    assert env["MODELSHIP_TEST_KEY_FILE"] == "/etc/modelship/tls-client/tls.key"
    assert env["MODELSHIP_TEST_CA_FILE"] == "/etc/modelship/tls-ca/ca.crt"
    assert env["MODELSHIP_AUTH_TOKEN_FILE"] == "/etc/modelship/auth/token", "bearer auth composes with mTLS"
    assert _volumes(test_pod)["tls-client"] == client_volume
    assert _volumes(test_pod)["tls-ca"] == ca_volume
    assert _mounts(_container(test_pod))["tls-client"]["mountPath"] == "/etc/modelship/tls-client"
    script = _container(test_pod)["args"][0]
    assert "ssl_target_name_override" in script
    assert "grpc.ssl_channel_credentials" in script
    # the rollout operator
    op_pod = _pod(r, "-operator")
    op = _container(op_pod)
    assert _tls_args(op) == [
        "--pod-tls-ca-file=/etc/modelship/tls-ca/ca.crt",
        "--pod-tls-server-name=modelship.serving.svc",
        "--pod-tls-cert-file=/etc/modelship/tls-client/tls.crt",
        "--pod-tls-key-file=/etc/modelship/tls-client/tls.key",
    ]
    assert "--server-token-file=/etc/modelship/auth/token" in op["args"]
    assert _volumes(op_pod)["tls-client"] == client_volume
    assert _volumes(op_pod)["tls-ca"] == ca_volume
    assert {m["mountPath"] for m in op["volumeMounts"]} >= {
        "/etc/modelship/tls-ca",
        "/etc/modelship/tls-client",
    }
    assert all(m.get("readOnly") for m in op["volumeMounts"] if m["name"].startswith("tls"))
    # the ServiceMonitor
    (endpoint,) = r.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {
        "serverName": "modelship.serving.svc",
        "ca": {"secret": {"name": "modelship-tls", "key": "ca.crt"}},
        "cert": {"secret": {"name": "modelship-client-tls", "key": "tls.crt"}},
        "keySecret": {"name": "modelship-client-tls", "key": "tls.key"},
    }
    assert endpoint["authorization"]["credentials"] == {"name": "tok", "key": "token"}


def test_tls_without_mtls_clients_verify_but_present_nothing(render: Any) -> None:
    r = render(set_=[*SECRET, "operator.enabled=true", "metrics.serviceMonitor.enabled=true"])
    assert _tls_args(_container(_pod(r, "-operator"))) == [
        "--pod-tls-ca-file=/etc/modelship/tls-ca/ca.crt",
        "--pod-tls-server-name=modelship.serving.svc",
    ]
    assert "tls-client" not in _volumes(_pod(r, "-operator"))
    (endpoint,) = r.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"] == {
        "serverName": "modelship.serving.svc",
        "ca": {"secret": {"name": "modelship-tls", "key": "ca.crt"}},
    }


def test_mtls_without_chart_clients_needs_no_client_secret(render: Any) -> None:
    r = render(set_=[*SECRET, "tls.clientAuth=require", "helmTest.enabled=false"])
    assert r.returncode == 0, r.stderr
    assert "--tls_client_auth=require" in _container(_pod(r))["args"]
    assert not r.maybe("Pod")


# ---------------------------------------------------------------------------------------------
# cert-manager


def test_cert_manager_server_certificate(render: Any, k8s_validator: Any) -> None:
    r = render(set_=CERT_MANAGER)
    _valid(r, k8s_validator)
    (cert,) = r.maybe("Certificate")
    assert cert["apiVersion"] == "cert-manager.io/v1"
    assert cert["metadata"]["name"] == "modelship-tls"
    assert cert["metadata"]["namespace"] == "serving"
    assert cert["spec"] == {
        "secretName": "modelship-tls",
        "dnsNames": SERVICE_NAMES,
        "usages": ["server auth", "digital signature", "key encipherment"],
        "duration": "2160h",
        "renewBefore": "360h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"name": "modelship-ca", "kind": "Issuer", "group": "cert-manager.io"},
    }
    # The pods mount the Secret the Certificate writes.
    assert _volumes(_pod(r))["tls"]["secret"]["secretName"] == "modelship-tls"
    assert _volumes(_helm_test(r))["tls-ca"]["secret"]["secretName"] == "modelship-tls"
    assert render(set_=[*SECRET, "tls.certManager.issuerRef.name=x"]).maybe("Certificate") == []


def test_cert_manager_client_certificate_with_mtls(render: Any, k8s_validator: Any) -> None:
    r = render(
        set_=[
            *CERT_MANAGER,
            "tls.clientAuth=require",
            "operator.enabled=true",
            "metrics.serviceMonitor.enabled=true",
        ]
    )
    _valid(r, k8s_validator)
    server = r.one("Certificate", "modelship-tls")
    client = r.one("Certificate", "-client-tls")
    assert client["spec"]["secretName"] == "modelship-client-tls"
    assert client["spec"]["commonName"] == "modelship-client"
    assert client["spec"]["usages"] == ["client auth", "digital signature", "key encipherment"]
    assert "dnsNames" not in client["spec"]
    for key in ("issuerRef", "privateKey", "duration", "renewBefore"):
        assert client["spec"][key] == server["spec"][key]
    # Every chart client presents the issued client certificate; the server trusts the issuer's CA
    # (ca.crt of its own Secret, which cert-manager's CA issuer fills).
    assert "--tls_client_ca_file=/etc/modelship/tls/ca.crt" in _container(_pod(r))["args"]
    assert _volumes(_helm_test(r))["tls-client"]["secret"]["secretName"] == "modelship-client-tls"
    assert _volumes(_pod(r, "-operator"))["tls-client"]["secret"]["secretName"] == "modelship-client-tls"
    (endpoint,) = r.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"]["keySecret"] == {"name": "modelship-client-tls", "key": "tls.key"}
    # A named client Secret is where the chart's Certificate writes it.
    named = render(set_=[*CERT_MANAGER, "tls.clientAuth=optional", "tls.clientSecretName=my-client"])
    assert named.one("Certificate", "-client-tls")["spec"]["secretName"] == "my-client"
    assert len(render(set_=CERT_MANAGER).maybe("Certificate")) == 1, (
        "no client certificate with clientAuth=none"
    )


def test_cert_manager_names_key_and_issuer_values(render: Any, k8s_validator: Any) -> None:
    r = render(
        set_=[
            *CERT_MANAGER,
            "tls.secretName=custom-tls",
            "tls.serverName=models.internal.example",
            "tls.certManager.extraDnsNames={models.example.com,modelship.serving.svc}",
            "tls.certManager.issuerRef.kind=ClusterIssuer",
            "tls.certManager.duration=720h",
            "tls.certManager.renewBefore=240h",
            "tls.certManager.privateKey.algorithm=Ed25519",
            "tls.certManager.privateKey.rotationPolicy=Never",
        ]
    )
    _valid(r, k8s_validator)
    spec = r.one("Certificate")["spec"]
    assert spec["secretName"] == "custom-tls"
    # The server name is always in the certificate; duplicates are dropped.
    assert spec["dnsNames"] == [*SERVICE_NAMES, "models.internal.example", "models.example.com"]
    assert spec["issuerRef"] == {"name": "modelship-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert (spec["duration"], spec["renewBefore"]) == ("720h", "240h")
    assert spec["privateKey"] == {"algorithm": "Ed25519", "rotationPolicy": "Never"}, "no size for Ed25519"
    assert _volumes(_pod(r))["tls"]["secret"]["secretName"] == "custom-tls"


def test_cert_manager_names_fit_with_the_longest_release(render: Any, k8s_validator: Any) -> None:
    r = render(release="r" * 53, set_=[*CERT_MANAGER, "tls.clientAuth=require", "nameOverride=" + "n" * 20])
    _valid(r, k8s_validator)
    client = r.one("Certificate", "-client-tls")
    assert len(client["spec"]["commonName"]) <= 64
    assert client["spec"]["commonName"].endswith("-client")


# ---------------------------------------------------------------------------------------------
# NOTES.txt


def test_notes_with_tls(notes: Callable[..., str]) -> None:
    text = notes(*SECRET)
    ca = "kubectl --namespace serving get secret modelship-tls -o jsonpath='{.data.ca\\.crt}' | base64 -d > ca.crt"
    assert ca in text
    assert "kubectl --namespace serving port-forward service/modelship 8501:8501 8500:8500" in text
    resolve = (
        "--cacert ca.crt --resolve modelship.serving.svc:8501:127.0.0.1 https://modelship.serving.svc:8501"
    )
    assert f"curl -s {resolve}/v2/health/ready" in text
    assert f"curl -s {resolve}/v1/models/linear\n" in text
    assert f"curl -s {resolve}/v1/models/linear:predict -d '" in text
    assert "grpcurl -cacert ca.crt -authority modelship.serving.svc 127.0.0.1:8500 list" in text
    assert "--cert tls.crt" not in text
    assert "localhost:8501" not in text

    mtls = notes(*MTLS, "auth.enabled=true", "auth.existingSecret=tok", "model.versionLabels.canary=2")
    client = "kubectl --namespace serving get secret modelship-client-tls -o jsonpath='{.data.tls\\.%s}' | base64 -d > tls.%s"
    assert client % ("crt", "crt") in mtls
    assert client % ("key", "key") in mtls
    opts = "--cacert ca.crt --cert tls.crt --key tls.key --resolve modelship.serving.svc:8501:127.0.0.1"
    header = '-H "Authorization: Bearer $TOKEN"'
    assert f"curl -s {opts} {header} https://modelship.serving.svc:8501/v1/models/linear:predict" in mtls
    assert (
        f"curl -s {opts} {header} https://modelship.serving.svc:8501/v1/models/linear/labels/canary:predict"
        in mtls
    )
    assert (
        "grpcurl -cacert ca.crt -cert tls.crt -key tls.key -authority modelship.serving.svc 127.0.0.1:8500 list"
        in mtls
    )

    # mTLS with no chart client (so no client Secret): the user brings a certificate.
    own = notes(*SECRET, "tls.clientAuth=require", "helmTest.enabled=false")
    assert "a client certificate issued by a CA of the client CA bundle" in own
    assert "--cert tls.crt --key tls.key" in own
    store = notes(*SECRET, "model.source.type=objectStore", "model.source.objectStore.url=s3://b/linear")
    assert f"while sleep 5; do curl -s {resolve}/v1/models/linear; echo; done" in store
    traffic = notes(*SECRET, "traffic.enabled=true")
    assert "https://modelship.serving.svc:18501/v1/modelship/traffic" in traffic
    assert "--resolve modelship.serving.svc:18501:127.0.0.1" in traffic
