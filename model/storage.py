"""Object storage base paths (``s3://``, ``gs://``): URLs and clients, shared by the exporter and the server.

Clients are obstore stores (one Rust library, no request signing here). Credentials come only from
the standard chains obstore implements: environment keys, web identity (IRSA), the container
provider (EKS Pod Identity), instance metadata; for GCS, application default credentials (a
service-account file, GKE Workload Identity, the metadata server).

Endpoints and TLS settings are read from the environment, the standard names first and then the
names TensorFlow's own S3 file system read (TF Serving < 2.7), so its users switch unchanged:

* ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, else ``S3_ENDPOINT`` (``host:port`` allowed; the
  scheme then follows ``S3_USE_HTTPS``, ``0`` meaning http);
* ``AWS_REGION``, ``AWS_DEFAULT_REGION``, else ``S3_REGION`` (default ``us-east-1``);
* ``S3_VERIFY_SSL=0`` accepts any server certificate (for self-signed test stores only);
* GCS: ``STORAGE_EMULATOR_HOST`` (the emulators' standard: unsigned requests to that URL).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from obstore.store import ClientConfig, GCSConfig, RetryConfig, S3Config

SCHEMES = ("s3", "gs")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,254}$")
_FALSE = {"0", "false", "no", "off"}


class StorageError(Exception):
    """A bad object-storage URL or setting, or a failed request to the store."""


def is_object_url(path: str | os.PathLike[str]) -> bool:
    """True for ``s3://...`` and ``gs://...`` (anything else is a local path)."""
    return isinstance(path, str) and path.split("://", 1)[0] in SCHEMES and "://" in path


@dataclass(frozen=True)
class ObjectURL:
    """``<scheme>://<bucket>/<prefix>``; ``prefix`` has no leading or trailing ``/``."""

    scheme: str
    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> ObjectURL:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in SCHEMES:
            raise StorageError(f"{url!r} is not an object-storage URL (s3://bucket/path or gs://bucket/path)")
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET_RE.match(bucket):
            raise StorageError(f"{url!r}: invalid bucket name {bucket!r}")
        parts = [p for p in prefix.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StorageError(f"{url!r}: '.' and '..' are not allowed in an object path")
        return cls(scheme, bucket, "/".join(parts))

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` below this URL's prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def child(self, *parts: str) -> ObjectURL:
        return ObjectURL(self.scheme, self.bucket, self.key(*parts))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


def s3_endpoint(env: Mapping[str, str]) -> str | None:
    """The S3 endpoint URL from the standard variables, else TensorFlow's ``S3_ENDPOINT``."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if env.get(name):
            return env[name].rstrip("/")
    legacy = env.get("S3_ENDPOINT")
    if not legacy:
        return None
    if "://" in legacy:
        return legacy.rstrip("/")
    scheme = "http" if env.get("S3_USE_HTTPS", "1").lower() in _FALSE else "https"
    return f"{scheme}://{legacy.rstrip('/')}"


def _client_options(endpoint: str | None, env: Mapping[str, str], timeout: float) -> ClientConfig:
    options: ClientConfig = {"connect_timeout": "5s", "timeout": f"{timeout:g}s"}
    if endpoint is not None and endpoint.startswith("http://"):
        options["allow_http"] = True
    if env.get("S3_VERIFY_SSL", "1").lower() in _FALSE:
        options["allow_invalid_certificates"] = True
    return options


def _retry() -> RetryConfig:
    # Bounded: a store that is down must not hold the polling thread for minutes (obstore's
    # default retry_timeout is 3 min); the poller backs off between polls instead.
    return {
        "max_retries": 3,
        "retry_timeout": timedelta(seconds=15),
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
    }


def open_store(url: ObjectURL, env: Mapping[str, str] | None = None, timeout: float = 30) -> Any:
    """An obstore store for ``url``'s bucket (keys are full keys: the store has no prefix).

    ``timeout`` bounds each whole request, body included: short for listings, long for downloads.
    """
    env = os.environ if env is None else env
    from obstore.store import GCSStore, S3Store  # imported late: `model train` never needs them

    if url.scheme == "s3":
        endpoint = s3_endpoint(env)
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or env.get("S3_REGION") or "us-east-1"
        config: S3Config = {"region": region}
        if endpoint is not None:
            config["endpoint"] = endpoint
        # obstore reads the process environment itself; an explicit ``env`` must carry its keys
        for var, key in (
            ("AWS_ACCESS_KEY_ID", "access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
            ("AWS_SESSION_TOKEN", "token"),
        ):
            if env.get(var):
                config[key] = env[var]  # type: ignore[literal-required]
        return S3Store(
            url.bucket,
            config=config,
            client_options=_client_options(endpoint, env, timeout),
            retry_config=_retry(),
        )
    emulator = env.get("STORAGE_EMULATOR_HOST")
    gcs: GCSConfig = {}
    base: str | None = None
    if emulator:
        base = (emulator if "://" in emulator else f"http://{emulator}").rstrip("/")
        gcs = {"base_url": base, "skip_signature": True}
    return GCSStore(
        url.bucket,
        config=gcs,
        client_options=_client_options(base, env, timeout),
        retry_config=_retry(),
    )


def first_line(exc: BaseException) -> str:
    """The first line of a store error (obstore's messages carry a multi-line debug dump)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:500]
