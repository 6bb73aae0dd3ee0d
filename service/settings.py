"""Server settings: one pydantic-settings class, from flags (TF Serving names) and environment.

Environment variables use the ``MODELSHIP_`` prefix (``MODELSHIP_REST_API_PORT=8501``). As in TF
Serving's image, ``MODEL_NAME`` and ``MODEL_BASE_PATH`` are read too: without ``--model_base_path``
the served base path is ``$MODEL_BASE_PATH/$MODEL_NAME``. Unknown ``MODELSHIP_*`` keys are rejected.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.model_config import ModelConfig, load_file, single

# MODELSHIP_* variables that belong to the project's own tooling (scripts/, tests, the chart's
# helm test, the operator), not to the server: a shell that ran them can still start a server.
# tests/service/test_settings.py checks this list against every name the repository uses.
TOOLING_ENV = frozenset(
    {
        "MODELSHIP_ACTIONLINT_VERSION",
        "MODELSHIP_CACHE",
        "MODELSHIP_CLUSTER_DIR",
        "MODELSHIP_CLUSTER_NODE_IP",
        "MODELSHIP_CLUSTER_NODE_NAME",
        "MODELSHIP_CLUSTER_RUN_DIR",
        "MODELSHIP_DEBIAN_MIRROR",
        "MODELSHIP_DOCKERD_LOG",
        "MODELSHIP_DOCKERD_NICE",
        "MODELSHIP_DOCKERD_WAIT",
        "MODELSHIP_ETCD_VERSION",
        "MODELSHIP_FAKE_GCS_VERSION",
        "MODELSHIP_GHZ_VERSION",
        "MODELSHIP_HELM",
        "MODELSHIP_HELM_VERSION",
        "MODELSHIP_HOST_CA",
        "MODELSHIP_IMAGE",
        "MODELSHIP_K8S_VERSION",
        "MODELSHIP_KUBECTL",
        "MODELSHIP_METRICS_SERVER_VERSION",
        "MODELSHIP_PROM_OPERATOR_VERSION",
        "MODELSHIP_PYTHON",
        "MODELSHIP_ROLLOUT_SERVER_TOKEN_FILE",
        "MODELSHIP_SKIP_BASE_IMAGE",
        "MODELSHIP_TEST_CA_FILE",
        "MODELSHIP_TEST_CERT_FILE",
        "MODELSHIP_TEST_GRPC_TARGET",
        "MODELSHIP_TEST_HOST_IP",
        "MODELSHIP_TEST_IMAGE",
        "MODELSHIP_TEST_KEY_FILE",
        "MODELSHIP_TEST_MODEL",
        "MODELSHIP_TEST_REQUEST",
        "MODELSHIP_TEST_REST_URL",
        "MODELSHIP_TEST_SERVICE_ENV",
        "MODELSHIP_TEST_SLIM_IMAGE",
        "MODELSHIP_TEST_TIMEOUT",
        "MODELSHIP_TEST_TLS_SERVER_NAME",
    }
)


_QUANTITY = re.compile(r"^\s*([0-9]+)\s*([KMGTPE]i?|k)?\s*$")
_UNITS = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def parse_bytes(value: object) -> object:
    """An int, or a Kubernetes quantity such as ``512Mi`` or ``4G`` (the chart passes its sizeLimit)."""
    if not isinstance(value, str):
        return value
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a byte count (e.g. 4294967296, 4Gi or 512Mi)")
    number, unit = int(match.group(1)), match.group(2) or ""
    if unit.endswith("i"):
        return number * 1024 ** ("KMGTPE".index(unit[0]) + 1)
    return number * _UNITS.get(unit, 1)


ByteCount = Annotated[int, BeforeValidator(parse_bytes)]


class Settings(BaseSettings):
    """Every knob of the server; flags override environment, environment overrides defaults."""

    model_config = SettingsConfigDict(
        env_prefix="MODELSHIP_", extra="forbid", populate_by_name=True, protected_namespaces=()
    )

    rest_api_port: int = Field(8501, ge=0, le=65535, description="HTTP/REST port (0 disables REST).")
    port: int = Field(8500, ge=0, le=65535, description="gRPC port (0 disables gRPC).")
    host: str = Field("0.0.0.0", description="Address both servers listen on.")
    model_name: str = Field(
        "model",
        validation_alias=AliasChoices("model_name", "MODELSHIP_MODEL_NAME", "MODEL_NAME"),
        description="Name of the single served model (without a config file).",
    )
    model_base_path: str | None = Field(
        None,
        description="Base path of the single served model: a directory, or s3://bucket/path or "
        "gs://bucket/path (polled live); default $MODEL_BASE_PATH/$MODEL_NAME.",
    )
    models_root: str = Field(
        "/models",
        validation_alias=AliasChoices("models_root", "MODELSHIP_MODELS_ROOT", "MODEL_BASE_PATH"),
        description="Root holding <model_name>/ when --model_base_path is not given (TF Serving "
        "image's MODEL_BASE_PATH).",
    )
    model_config_file: Path | None = Field(
        None, description="TF Serving ModelServerConfig text proto; overrides model_name and model_base_path."
    )
    model_config_file_poll_wait_seconds: float = Field(
        0, ge=0, description="Re-read the config file this often (0: never)."
    )
    traffic_config_file: Path | None = Field(
        None,
        description="JSON traffic config: versions to keep loaded (a pin replacing the version "
        "policy), weights of name-only requests per version, sticky header, shadow scoring "
        "(README, 'Traffic split and shadow'); re-read when its content changes. Missing or "
        "invalid at start-up: the server does not start.",
    )
    traffic_config_file_optional: bool = Field(
        False,
        description="A missing traffic config file is no traffic config (as without the flag) "
        "until it appears, instead of a start-up error: for a ConfigMap that a controller (the "
        "rollout operator) creates later, mounted with optional: true. An invalid file is still "
        "refused.",
    )
    traffic_config_file_poll_wait_seconds: float = Field(
        1, gt=0, description="Check the traffic config file for a new content this often."
    )
    shadow_queue_size: int = Field(
        64, ge=1, description="Shadow requests waiting for the candidate at most; past it they are dropped."
    )
    file_system_poll_wait_seconds: float = Field(
        1, description="Scan base paths for new versions this often; 0 or less: once at start-up."
    )
    object_store_poll_wait_seconds: float = Field(
        30,
        description="List s3:// and gs:// base paths this often (each listing is one billed request "
        "per model per pod); 0 or less: once (retried until it succeeds). Errors back off up to 5 minutes.",
    )
    version_settle_seconds: float = Field(
        0.5,
        ge=0,
        description="A version without a commit marker (manifest.json in object storage) must stay "
        "unchanged this long before it is loaded.",
    )
    model_cache_dir: Path = Field(
        Path(tempfile.gettempdir()) / "modelship-model-cache",
        description="Where versions from object storage are downloaded (the chart mounts an emptyDir).",
    )
    model_cache_max_bytes: ByteCount = Field(
        0,
        ge=0,
        description="Bound of model_cache_dir (an int or a quantity such as 4Gi); a download that "
        "would pass it is refused and the serving versions stay. 0: no bound but the disk.",
    )
    verify_manifest: bool = Field(
        True,
        description="Check every file's sha256 against "
        "manifest.json (when present) before loading a version.",
    )
    enable_model_warmup: bool = Field(
        True,
        description="Replay assets.extra warm-up records (or "
        "a synthetic request) before a version becomes AVAILABLE.",
    )
    enable_batching: bool = Field(False, description="Merge concurrent requests into batches.")
    batching_parameters_file: Path | None = Field(
        None, description="TF Serving BatchingParameters text proto."
    )
    auth_token: str | None = Field(
        None, description="Bearer token required on inference and metadata (health and metrics stay open)."
    )
    auth_token_file: Path | None = Field(
        None, description="File holding the bearer token; wins over auth_token."
    )
    max_request_bytes: int = Field(
        64 << 20, gt=0, description="Largest request body accepted (after gunzip); larger gets 413."
    )
    grpc_max_message_bytes: int | None = Field(
        None,
        gt=0,
        description="Largest gRPC message sent "
        "and received. Default: received as max_request_bytes "
        "(TF Serving takes INT32_MAX, which lets one message "
        "exhaust a pod's memory), sent up to INT32_MAX.",
    )
    memory_budget_bytes: int = Field(
        0,
        ge=0,
        description="Bytes that in-flight requests may hold "
        "at once (bodies, parsed JSON, decoded tensors); past it "
        "requests get 503 / RESOURCE_EXHAUSTED at once. 0: half of the "
        "container's memory limit (or of the machine's memory).",
    )
    grpc_channel_arguments: str = Field(
        "",
        description="Extra gRPC server channel arguments as "
        "comma-separated key=value pairs (TF Serving's flag), e.g. "
        "grpc.max_connection_age_ms=3000.",
    )
    grpc_server: Literal["grpcio", "modelship"] = Field(
        "grpcio",
        description="gRPC server implementation: grpcio (grpc.aio) or modelship (Modelship's own "
        "HTTP/2 server: the same services at a fraction of the cost per call; of the channel "
        "arguments it takes max_connection_age(_grace)_ms, max_concurrent_streams and the "
        "message limits).",
    )
    enable_serialization_as_tensor_content: bool = Field(
        False, description="Encode gRPC outputs as tensor_content instead of typed fields."
    )
    rest_api_enable_cors_support: bool = Field(
        False, description="Send permissive CORS headers on /v1 responses."
    )
    ssl_config_file: Path | None = Field(
        None,
        description="TF Serving's SSLConfig text proto (server_key, server_cert, custom_ca, "
        "client_verify as PEM text): TLS on both ports. Or use the tls_*_file flags.",
    )
    tls_cert_file: Path | None = Field(
        None,
        description="PEM server certificate chain (a kubernetes.io/tls Secret's tls.crt): TLS on "
        "both ports, HTTPS on REST. Needs tls_key_file.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file (tls.key).")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle client certificates must chain to (mTLS; ca.crt)."
    )
    tls_client_auth: Literal["none", "optional", "require"] = Field(
        "none",
        description="Client certificates: none, optional (verified when presented) or require "
        "(mTLS: gRPC refuses the handshake; REST answers 401 except /v2/health/*, for probes).",
    )
    tls_poll_wait_seconds: float = Field(
        10.0,
        ge=0,
        description="Re-read the TLS files this often; changed ones serve new connections "
        "without a restart (0: never).",
    )
    shutdown_timeout_seconds: float = Field(
        20, gt=0, description="On SIGTERM, wait at most this long for in-flight requests before exiting."
    )
    shutdown_delay_seconds: float = Field(
        0, ge=0, description="On SIGTERM, keep serving (while reporting not ready) this long before draining."
    )
    tensorflow_intra_op_parallelism: int = Field(
        0, ge=0, description="TF intra-op threads (0: the CPUs available to the process)."
    )
    tensorflow_inter_op_parallelism: int = Field(0, ge=0, description="TF inter-op threads (0: as intra-op).")
    runtime: Literal["auto", "tensorflow", "litert"] = Field(
        "auto",
        description="auto: predict signatures run on LiteRT where the version's verified LiteRT "
        "artifacts (or a conversion at load, verified against TensorFlow) allow, the rest on "
        "TensorFlow; tensorflow: always TF; litert: LiteRT only, TensorFlow never imported (the "
        "slim image): versions without verified LiteRT artifacts are refused.",
    )
    inline_max_rows: int = Field(
        64,
        ge=0,
        description="Requests of at most this many rows on a LiteRT signature run inline on the event loop.",
    )
    model_threads: int = Field(0, ge=0, description="Threads running model calls (0: CPUs, at least 2).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    access_log: bool = Field(False, description="Log one line per request (never payloads).")

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_env(cls, data: object) -> object:
        known = {f"MODELSHIP_{name}".upper() for name in cls.model_fields}
        unknown = sorted(
            k
            for k in os.environ
            if k.upper().startswith("MODELSHIP_") and k.upper() not in known and k.upper() not in TOOLING_ENV
        )
        if unknown:
            raise ValueError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
        return data

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.rest_api_port == 0 and self.port == 0:
            raise ValueError("at least one of rest_api_port and port must be set")
        if self.rest_api_port and self.rest_api_port == self.port:
            raise ValueError("rest_api_port and port must differ")
        files = (self.tls_cert_file, self.tls_key_file)
        if self.ssl_config_file is not None and (any(files) or self.tls_client_ca_file):
            raise ValueError("ssl_config_file and the tls_*_file flags are two ways to say the same: use one")
        if any(files) and not all(files):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.ssl_config_file is not None and self.tls_client_auth != "none":
            raise ValueError("with ssl_config_file, client_verify in that file decides client auth")
        no_ca = self.tls_client_ca_file is None and self.ssl_config_file is None
        if self.tls_client_auth != "none" and no_ca:
            raise ValueError(f"tls_client_auth={self.tls_client_auth} needs tls_client_ca_file")
        if self.tls_client_ca_file is not None and self.tls_client_auth == "none":
            raise ValueError("tls_client_ca_file is set but tls_client_auth is none: say optional or require")
        if self.tls_client_ca_file is not None and not all(files):
            raise ValueError("tls_client_ca_file needs TLS on (tls_cert_file and tls_key_file)")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.ssl_config_file is not None or self.tls_cert_file is not None

    def models(self) -> list[ModelConfig]:
        """The models to serve, from the config file or the single-model settings."""
        if self.model_config_file is not None:
            return load_file(self.model_config_file)
        base = self.model_base_path or f"{self.models_root.rstrip('/')}/{self.model_name}"
        return single(self.model_name, base)

    def auth_token_value(self) -> str | None:
        """The bearer token, or None when auth is off; a blank token refuses to start (ValueError)."""
        if self.auth_token_file is not None:
            token = self.auth_token_file.read_text().strip()
            source = f"auth token file {self.auth_token_file}"
        elif self.auth_token is not None:
            token, source = self.auth_token.strip(), "MODELSHIP_AUTH_TOKEN / auth_token"
        else:
            return None
        if not token:
            raise ValueError(
                f"{source} is empty: refusing to start an unauthenticated server (mount "
                "the right Secret, or unset it to run without auth)"
            )
        return token

    def grpc_message_limits(self) -> tuple[int, int]:
        """Largest gRPC message received and sent."""
        if self.grpc_max_message_bytes is not None:
            return self.grpc_max_message_bytes, self.grpc_max_message_bytes
        return self.max_request_bytes, 2**31 - 1


def available_cpus() -> int:
    """CPUs this process may use: affinity, capped by a cgroup v1/v2 CPU quota when set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(cpus, quota)) if quota else cpus


def _cgroup_quota() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text[0] != "max":
            return max(1, -(-int(text[0]) // int(text[1])))
    except (OSError, IndexError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, -(-quota // period))
    except (OSError, ValueError):
        pass
    return None
