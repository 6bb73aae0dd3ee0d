"""Command line of ``python -m service``: TensorFlow Serving's own flag names, mapped to Settings.

Users of ``tensorflow_model_server`` switch unchanged: ``--port``, ``--rest_api_port``,
``--model_name``, ``--model_base_path``, ``--model_config_file`` and friends accept the same
``--flag=value`` forms; boolean flags take ``--flag``, ``--flag=true`` or ``--flag=false``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BeforeValidator

from service.settings import Settings

# Flags TF Serving has that this server does not need, accepted so command lines keep working.
IGNORED_TF_FLAGS = (
    "--enable_model_warmup_on_all_versions",
    "--tensorflow_session_parallelism",
    "--num_load_threads",
    "--num_unload_threads",
    "--max_num_load_retries",
    "--load_retry_interval_micros",
    "--flush_filesystem_caches",
    "--rest_api_num_threads",
    "--rest_api_timeout_in_ms",
    "--enable_profiler",
)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Modelship model server, wire-compatible with TensorFlow Serving. Every flag "
        "can also be set as MODELSHIP_<FLAG> in the environment.",
    )
    fields = Settings.model_fields
    flag_fields = (
        "port",
        "rest_api_port",
        "host",
        "model_name",
        "model_base_path",
        "model_config_file",
        "model_config_file_poll_wait_seconds",
        "traffic_config_file",
        "traffic_config_file_optional",
        "traffic_config_file_poll_wait_seconds",
        "shadow_queue_size",
        "file_system_poll_wait_seconds",
        "object_store_poll_wait_seconds",
        "version_settle_seconds",
        "model_cache_dir",
        "model_cache_max_bytes",
        "verify_manifest",
        "enable_model_warmup",
        "enable_batching",
        "batching_parameters_file",
        "auth_token_file",
        "max_request_bytes",
        "memory_budget_bytes",
        "grpc_max_message_bytes",
        "grpc_channel_arguments",
        "grpc_server",
        "enable_serialization_as_tensor_content",
        "rest_api_enable_cors_support",
        "ssl_config_file",
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "tls_client_auth",
        "tls_poll_wait_seconds",
        "shutdown_timeout_seconds",
        "shutdown_delay_seconds",
        "tensorflow_intra_op_parallelism",
        "tensorflow_inter_op_parallelism",
        "runtime",
        "inline_max_rows",
        "model_threads",
        "log_level",
        "access_log",
    )
    for name in flag_fields:
        info = fields[name]
        kind: Any = info.annotation
        default = info.default
        help_text = f"{info.description} (default: {default})"
        if kind is bool:
            parser.add_argument(
                f"--{name}",
                nargs="?",
                const=True,
                type=_bool,
                default=argparse.SUPPRESS,
                metavar="BOOL",
                help=help_text,
            )
        else:
            conv: Any = {int: int, float: float}.get(kind, str)
            if "Path" in str(kind):
                conv = Path
            if any(isinstance(m, BeforeValidator) for m in info.metadata):
                conv = str  # the field's own validator parses it (e.g. a byte count as 4Gi)
            parser.add_argument(f"--{name}", type=conv, default=argparse.SUPPRESS, help=help_text)
    for flag in IGNORED_TF_FLAGS:
        parser.add_argument(flag, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Flags given on the command line override the environment."""
    args = vars(build_parser().parse_args(argv))
    for flag in IGNORED_TF_FLAGS:
        args.pop(flag.lstrip("-"), None)
    return Settings(**args)
