"""TLS to the serving pods' REST ports: the CA that signed their certificates, the name to check in
them, and the operator's client certificate for servers that require one (mTLS).

The files come from mounted Secrets that cert-manager renews, so :meth:`PodTls.context` does not
build its :class:`ssl.SSLContext` once: every call reads the files (a few kilobytes, far less work
than the TLS handshake that follows) and rebuilds the context when any file's content changed. A
renewal is therefore used from the next request on, without restarting the operator. Content, not
modification times: a file rewritten twice within the file system's timestamp granularity, with the
same size, would look unchanged to ``stat``.

Pods are reached by IP, which their certificates do not name; the certificate is issued for the
Service name (``<release>.<namespace>.svc``), so that is the ``server_name`` checked (and sent as
SNI). Without a ``server_name`` the chain is verified against the CA but no name is checked.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
from collections.abc import Sequence

log = logging.getLogger("modelship.rollout.tls")

Signature = tuple[bytes, ...]


class PodTlsError(ValueError):
    """The TLS settings are inconsistent, or their files cannot be loaded."""


class PodTls:
    """The TLS client settings for serving pods; :meth:`context` is the current SSL context."""

    def __init__(
        self,
        ca_file: str,
        server_name: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        if bool(cert_file) != bool(key_file):
            raise PodTlsError(
                "a client certificate needs both --pod-tls-cert-file and --pod-tls-key-file "
                f"(got {'only the certificate' if cert_file else 'only the key'})"
            )
        self.ca_file = ca_file
        self.server_name = server_name or None
        self.cert_file = cert_file or None
        self.key_file = key_file or None
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._signature: Signature | None = None

    @property
    def client_auth(self) -> bool:
        """A client certificate is presented to the pods."""
        return self.cert_file is not None

    @property
    def files(self) -> Sequence[str]:
        return [f for f in (self.ca_file, self.cert_file, self.key_file) if f]

    def describe(self) -> str:
        """One line for the start-up log."""
        name = (
            f"server name {self.server_name!r} checked"
            if self.server_name
            else "certificate chain verified but no server name checked (--pod-tls-server-name unset)"
        )
        client = f"client certificate {self.cert_file}" if self.cert_file else "no client certificate"
        return f"HTTPS to serving pods: CA {self.ca_file}, {name}, {client}"

    def context(self) -> ssl.SSLContext:
        """The SSL context for the files as they are now (rebuilt after any of them changed).

        Raises :class:`PodTlsError` when the files cannot be loaded and no earlier context exists;
        when a rebuild fails after a good one (say, a certificate renewed before its key), the
        earlier context is kept and the rebuild retried on the next call.
        """
        with self._lock:
            try:
                signature = self._fingerprint()
            except OSError as exc:
                if self._context is None:
                    raise PodTlsError(f"cannot read the pod TLS files: {exc}") from exc
                log.warning("cannot read the pod TLS files (keeping the loaded ones): %s", exc)
                return self._context
            if self._context is not None and signature == self._signature:
                return self._context
            try:
                ctx = self._build()
            except (OSError, ssl.SSLError) as exc:
                if self._context is None:
                    raise PodTlsError(
                        f"cannot load the pod TLS files {', '.join(self.files)}: {exc}"
                    ) from exc
                log.warning("cannot reload the pod TLS files (keeping the loaded ones): %s", exc)
                return self._context
            if self._context is not None:
                log.info("pod TLS files changed: reloaded %s", ", ".join(self.files))
            self._context, self._signature = ctx, signature
            return ctx

    def _fingerprint(self) -> Signature:
        out = []
        for path in self.files:
            with open(path, "rb") as f:  # through the kubelet's ..data symlinks
                out.append(hashlib.sha256(f.read()).digest())
        return tuple(out)

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.server_name is not None
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx
