"""HTTP to one serving pod's REST port, directly or through the API server's pod proxy.

``direct`` (the pod IP and the container's REST port) is what an in-cluster operator uses, like
Prometheus scraping; ``proxy`` (the ``pods/proxy`` subresource) is for an operator running
outside the cluster. Every failure to get an answer is a :class:`ProbeError`.

With a :class:`~rollout_operator.pod_tls.PodTls`, ``direct`` speaks HTTPS to the pod IP and checks
the certificate against the configured server name (the Service name the certificate is issued
for), and ``proxy`` asks the API server for the pod's ``https:`` proxy.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any, Protocol

from rollout_operator.kube import Kube
from rollout_operator.observations import PodView
from rollout_operator.pod_tls import PodTls, PodTlsError

TIMEOUT = 5.0


class ProbeError(Exception):
    """A pod or Prometheus could not be asked (connection, timeout, unparsable answer)."""


class PodHttp(Protocol):
    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request to ``pod``'s REST port; (HTTP status, body). Raises ProbeError."""
        ...


class PodHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``host`` (the pod IP) whose TLS server name (SNI, hostname check) is ``server_name``.

    :class:`http.client.HTTPSConnection` uses the host it connects to as the server name; a pod's
    certificate names its Service, never its IP.
    """

    def __init__(
        self, host: str, port: int, context: ssl.SSLContext, server_name: str | None, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.tls_context, self.server_name = context, server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # the TCP connection (no proxy tunnel here)
        self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=self.server_name)


class DirectPodHttp:
    """Requests straight to the pod IP (HTTPS when ``tls`` is given)."""

    def __init__(
        self, port: int, timeout: float = TIMEOUT, token: str | None = None, tls: PodTls | None = None
    ) -> None:
        self.port, self.timeout, self.token, self.tls = port, timeout, token, tls

    def connection(self, pod: PodView) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection(pod.ip, self.port, timeout=self.timeout)
        try:
            ctx = self.tls.context()
        except PodTlsError as exc:
            raise ProbeError(f"pod {pod.name}: {exc}") from exc
        return PodHTTPSConnection(pod.ip, self.port, ctx, self.tls.server_name, self.timeout)

    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if not pod.ip:
            raise ProbeError(f"pod {pod.name} has no IP yet")
        conn = self.connection(pod)
        headers = {"Connection": "close"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        where = f"{method} {path} on pod {pod.name} ({pod.ip}:{self.port})"
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except ssl.SSLCertVerificationError as exc:
            raise ProbeError(f"{where}: {self.verify_failure(exc)}") from exc
        except ssl.SSLError as exc:
            raise ProbeError(f"{where}: TLS error: {exc}{self.tls_hint(exc)}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ProbeError(f"{where}: {exc}") from exc
        finally:
            conn.close()

    def verify_failure(self, exc: ssl.SSLCertVerificationError) -> str:
        reason = exc.verify_message or exc.reason or str(exc)
        tls = self.tls
        checked = (
            f"for server name {tls.server_name!r}"
            if tls is not None and tls.server_name
            else "(no server name checked)"
        )
        ca = f" and CA {tls.ca_file}" if tls is not None else ""
        return f"TLS verification of the pod's certificate {checked}{ca} failed: {reason}"

    def tls_hint(self, exc: ssl.SSLError) -> str:
        reason = str(exc.reason or "")
        client_auth = self.tls is not None and self.tls.client_auth
        if "CERTIFICATE_REQUIRED" in reason and not client_auth:
            return " (the pod requires a client certificate: --pod-tls-cert-file and --pod-tls-key-file)"
        refused = "CERTIFICATE" in reason or reason.endswith(("_UNKNOWN_CA", "_ACCESS_DENIED"))
        if client_auth and "_ALERT_" in reason and refused:
            return " (the pod refused the operator's client certificate)"
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return " (is TLS on at the pod?)"
        return ""


class ProxyPodHttp:
    """Requests through the API server's ``pods/proxy`` subresource (``https:`` with ``tls``).

    The API server makes the TLS connection to the pod, so a client certificate configured for
    the operator never reaches the pod (``__main__`` refuses that combination).
    """

    def __init__(
        self, kube: Kube, namespace: str, port: int, timeout: float = TIMEOUT, tls: bool = False
    ) -> None:
        self.kube, self.namespace, self.port, self.timeout = kube, namespace, port, timeout
        self.scheme = "https" if tls else "http"

    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        try:
            status, data = self.kube.pod_proxy(
                self.namespace, pod.name, self.port, method, path, body, self.timeout, self.scheme
            )
        except Exception as exc:
            raise ProbeError(f"{method} {path} on pod {pod.name} via the API server: {exc}") from exc
        if status == 0 or (status in (502, 503) and not data.startswith(b"{")):
            raise ProbeError(
                f"{method} {path} on pod {pod.name} via the API server: HTTP {status} {data[:200]!r}"
            )
        return status, data


def json_body(data: bytes) -> Any:
    """The JSON of a response body, or its text when it is not JSON."""
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
