"""TLS on both ports: one server certificate, optional client verification (mTLS), reloaded live.

The material comes from ``--tls_cert_file``/``--tls_key_file`` (and ``--tls_client_ca_file``), the
files of a mounted ``kubernetes.io/tls`` Secret, or from TF Serving's ``--ssl_config_file``.

Rotation without a restart or a dropped connection: every ``poll_seconds`` the files are read
again. When their bytes change, contexts are built from the new material first, so a key that
does not match its certificate, or a half-updated Secret, is refused with a log line and the old
material keeps serving. Then every new handshake uses the new material: certificate, key and
client CA together. Open connections keep the certificate they were accepted with (a TLS
connection cannot change it) and are not closed.

How each listener follows the swap:
- asyncio listeners (REST on uvicorn, ``--grpc_server=modelship``): the listening context's SNI
  callback, which OpenSSL calls at every handshake with or without SNI, moves the connection onto
  the current context.
- grpcio: ``grpc.dynamic_ssl_server_credentials``, whose fetcher grpc calls at every handshake.

Client authentication (``none`` | ``optional`` | ``require``): on gRPC ``require`` refuses the
handshake of a client without a valid certificate. REST asks for a certificate at the handshake
but enforces ``require`` per request (:mod:`service.rest.client_cert`), so that the kubelet's HTTPS
probes, which present none, still reach the health endpoints. A certificate that is presented and
does not chain to the client CA fails the handshake on both ports. grpcio cannot ask for an
optional certificate: with ``optional`` it does not request one at all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from service import ssl_config
from service.errors import InvalidArgument, ServingError

log = logging.getLogger(__name__)

ClientAuth = Literal["none", "optional", "require"]
Purpose = Literal["rest", "grpc"]
_ALPN: dict[Purpose, list[str]] = {"rest": ["http/1.1"], "grpc": ["h2"]}


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes of one generation: certificate chain, key and (with client auth) the client CA."""

    cert_chain: bytes
    key: bytes
    client_ca: bytes | None

    @property
    def fingerprint(self) -> str:
        """sha256 of the leaf certificate's DER (what ``openssl x509 -fingerprint -sha256`` shows)."""
        text = self.cert_chain.decode("ascii", "replace")
        start = text.find("-----BEGIN CERTIFICATE-----")
        end = text.find("-----END CERTIFICATE-----", start)
        if start < 0 or end < 0:
            return "?"
        body = "".join(text[start + 27 : end].split())
        with contextlib.suppress(ValueError):
            return hashlib.sha256(base64.b64decode(body)).hexdigest()
        return "?"


@dataclass(frozen=True)
class TlsFiles:
    """Where the material lives: PEM files, or one TF Serving SSLConfig file."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    ssl_config_file: Path | None = None
    client_auth: ClientAuth = "none"

    def read(self) -> tuple[TlsMaterial, ClientAuth]:
        """The material as the files hold it now; :class:`InvalidArgument` if it is incomplete."""
        try:
            if self.ssl_config_file is not None:
                chain, key, ca, auth = ssl_config.parse(
                    self.ssl_config_file.read_text(), str(self.ssl_config_file)
                )
                return TlsMaterial(chain, key, ca), auth  # type: ignore[return-value]
            if self.cert_file is None or self.key_file is None:
                raise InvalidArgument("TLS needs both tls_cert_file and tls_key_file")
            ca = self.client_ca_file.read_bytes() if self.client_ca_file is not None else None
            return TlsMaterial(self.cert_file.read_bytes(), self.key_file.read_bytes(), ca), self.client_auth
        except OSError as exc:
            raise InvalidArgument(f"TLS file unreadable: {exc}") from exc

    def describe(self) -> str:
        if self.ssl_config_file is not None:
            return f"ssl_config_file {self.ssl_config_file}"
        return f"{self.cert_file} and {self.key_file}"


@contextlib.contextmanager
def _as_file(pem: bytes) -> Iterator[str]:
    """A path holding ``pem`` for OpenSSL's loaders: an anonymous memory file, never the disk."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("modelship-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="modelship-tls-") as directory:  # not Linux
        path = Path(directory) / "pem"
        path.touch(mode=0o600)
        path.write_bytes(pem)
        yield str(path)


def server_context(material: TlsMaterial, client_auth: ClientAuth, purpose: Purpose) -> ssl.SSLContext:
    """A TLS server context for ``purpose``; :class:`InvalidArgument` naming what is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(_ALPN[purpose])
    try:
        with _as_file(material.cert_chain) as chain, _as_file(material.key) as key:
            context.load_cert_chain(chain, key)
    except ssl.SSLError as exc:
        raise InvalidArgument(f"TLS certificate and key not usable together: {exc}") from exc
    if client_auth != "none":
        if not material.client_ca:
            raise InvalidArgument(f"tls_client_auth={client_auth} needs a client CA (tls_client_ca_file)")
        try:
            context.load_verify_locations(cadata=material.client_ca.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise InvalidArgument(f"TLS client CA is not PEM certificates: {exc}") from exc
        # REST enforces `require` per request (health stays open to probes); gRPC at the handshake
        strict = client_auth == "require" and purpose == "grpc"
        context.verify_mode = ssl.CERT_REQUIRED if strict else ssl.CERT_OPTIONAL
    return context


class TlsManager:
    """The current TLS material and the contexts/credentials built from it; reloads on change."""

    def __init__(self, files: TlsFiles, poll_seconds: float = 10.0) -> None:
        self.files = files
        self.poll_seconds = poll_seconds
        self.material, self.client_auth = files.read()
        self._contexts = self._build(self.material)
        self.generation = 0
        self.reloads = 0
        self.reload_errors = 0
        self._fetched = -1
        self._last_error = ""
        self._on_reload: list[Callable[[bool], None]] = []

    def _build(self, material: TlsMaterial) -> dict[Purpose, ssl.SSLContext]:
        return {purpose: server_context(material, self.client_auth, purpose) for purpose in _ALPN}

    def on_reload(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(ok)`` after every reload attempt that found changed files."""
        self._on_reload.append(callback)

    # -- what the listeners take ------------------------------------------------------------
    def listener_context(self, purpose: Purpose) -> ssl.SSLContext:
        """The context to listen with: it hands each handshake to the current generation.

        It is the current generation's own context (built once, in ``__init__`` or ``reload``), so
        a handshake before any rotation stays on it and later ones move to their successor.
        """
        listening = self._contexts[purpose]

        def current(connection: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext) -> None:
            context = self._contexts[purpose]
            if connection.context is not context:
                connection.context = context

        listening.sni_callback = current
        return listening

    def grpcio_credentials(self) -> Any:
        """grpcio server credentials that fetch the current generation at every handshake."""
        import grpc

        def configuration() -> Any:
            return grpc.ssl_server_certificate_configuration(
                [(self.material.key, self.material.cert_chain)], root_certificates=self.material.client_ca
            )

        initial = configuration()
        self._fetched = self.generation

        def fetch() -> Any:  # grpc's thread, at each new handshake; None: unchanged
            if self._fetched == self.generation:
                return None
            self._fetched = self.generation
            return configuration()

        return grpc.dynamic_ssl_server_credentials(
            initial, fetch, require_client_authentication=self.client_auth == "require"
        )

    # -- reload ------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Read the files; switch to them if they changed and are valid. True if switched."""
        material, client_auth = self.files.read()
        if material == self.material:
            return False
        if client_auth != self.client_auth:
            raise InvalidArgument(
                f"client verification changed from {self.client_auth} to {client_auth}: that needs a restart"
            )
        contexts = self._build(material)  # raises before anything changes
        self.material, self._contexts = material, contexts
        self.generation += 1
        self.reloads += 1
        log.info(
            "TLS material reloaded from %s: certificate sha256 %s (generation %d)",
            self.files.describe(),
            material.fingerprint[:16],
            self.generation,
        )
        return True

    def check(self) -> None:
        """One poll: reload if changed; an error is logged (once per distinct error) and kept out."""
        try:
            changed = self.reload()
        except ServingError as exc:
            self.reload_errors += 1
            if exc.message != self._last_error:
                log.error("TLS material not reloaded, still serving the previous one: %s", exc.message)
                self._last_error = exc.message
            for callback in self._on_reload:
                callback(False)
            return
        self._last_error = ""
        if changed:
            for callback in self._on_reload:
                callback(True)

    async def watch(self) -> None:
        """Poll the files every ``poll_seconds`` (0: never) until cancelled."""
        if self.poll_seconds <= 0:
            return
        while True:
            await asyncio.sleep(self.poll_seconds)
            self.check()
