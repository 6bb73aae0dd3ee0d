"""mTLS on REST: the client certificate of each connection in the ASGI scope, required per request.

The TLS handshake on the REST port verifies any certificate a client presents against the client
CA, and fails if it does not chain there. With ``--tls_client_auth=require`` it still admits a
client that presents none, so that the kubelet's HTTPS probes reach ``/v2/health/live`` and
``/v2/health/ready``; every other path then answers 401 with the usual error body.

:class:`ClientCertProtocol` is uvicorn's httptools protocol plus the ASGI TLS extension's
``client_cert_name`` (RFC 4514 subject of the verified certificate, or None) in
``scope["extensions"]["tls"]``. It is used only when TLS is on, so plain HTTP pays nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.rest.http import JSON_HEADERS, Receive, Scope, Send, error_body, respond

# reachable without a client certificate: what the chart's probes call
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


def subject_name(peercert: dict[str, Any] | None) -> str | None:
    """The RFC 4514 subject (``CN=client,O=org``) of ``SSLObject.getpeercert()``'s answer."""
    if not peercert:
        return None
    parts = [f"{key}={value}" for rdn in peercert.get("subject", ()) for key, value in rdn]
    return ",".join(reversed(parts)) or "(empty subject)"


class ClientCertProtocol(HttpToolsProtocol):
    """httptools HTTP/1.1 with the connection's TLS facts in every request's scope."""

    tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if transport.get_extra_info("sslcontext") is not None:
            self.tls = {
                "client_cert_name": subject_name(transport.get_extra_info("peercert")),
                "client_cert_error": None,
                "tls_version": None,
                "cipher_suite": None,
            }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.tls is not None:
            self.scope["extensions"] = {"tls": cast(dict[object, object], self.tls)}


def client_cert_name(scope: Scope) -> str | None:
    """The verified client certificate's subject of this request's connection, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    name = tls.get("client_cert_name")
    return name if isinstance(name, str) else None


class RequireClientCert:
    """ASGI wrapper: without a verified client certificate only :data:`OPEN_PATHS` are served."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS and client_cert_name(scope) is None:
            await respond(
                send,
                401,
                error_body(
                    "a client certificate is required (mTLS): present one issued by the server's client CA"
                ),
                JSON_HEADERS,
            )
            return
        await self.app(scope, receive, send)
