"""HTTP to one serving pod's REST port, directly or through the API server's pod proxy.

``direct`` (the pod IP and the container's REST port) is what an in-cluster operator uses, like
Prometheus scraping; ``proxy`` (the ``pods/proxy`` subresource) is for an operator running
outside the cluster. Every failure to get an answer is a :class:`ProbeError`.
"""

from __future__ import annotations

import http.client
import json
from typing import Any, Protocol

from rollout_operator.kube import Kube
from rollout_operator.observations import PodView

TIMEOUT = 5.0


class ProbeError(Exception):
    """A pod or Prometheus could not be asked (connection, timeout, unparsable answer)."""


class PodHttp(Protocol):
    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request to ``pod``'s REST port; (HTTP status, body). Raises ProbeError."""
        ...


class DirectPodHttp:
    """Requests straight to the pod IP."""

    def __init__(self, port: int, timeout: float = TIMEOUT, token: str | None = None) -> None:
        self.port, self.timeout, self.token = port, timeout, token

    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if not pod.ip:
            raise ProbeError(f"pod {pod.name} has no IP yet")
        conn = http.client.HTTPConnection(pod.ip, self.port, timeout=self.timeout)
        headers = {"Connection": "close"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ProbeError(f"{method} {path} on pod {pod.name} ({pod.ip}:{self.port}): {exc}") from exc
        finally:
            conn.close()


class ProxyPodHttp:
    """Requests through the API server's ``pods/proxy`` subresource."""

    def __init__(self, kube: Kube, namespace: str, port: int, timeout: float = TIMEOUT) -> None:
        self.kube, self.namespace, self.port, self.timeout = kube, namespace, port, timeout

    def request(self, pod: PodView, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        try:
            status, data = self.kube.pod_proxy(
                self.namespace, pod.name, self.port, method, path, body, self.timeout
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
