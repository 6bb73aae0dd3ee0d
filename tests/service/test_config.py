"""TF Serving config files, version policies, settings and the TF Serving-style command line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.cli import build_parser, parse_settings
from service.errors import InvalidArgument
from service.model_config import VersionPolicy, parse
from service.settings import TOOLING_ENV, Settings
from tests.fixtures import ROOT

CONFIG = """
model_config_list {
  config { name: 'a' base_path: '/m/a' model_platform: 'tensorflow'
           model_version_policy { specific { versions: 42 versions: 43 } }
           version_labels { key: 'stable' value: 42 } version_labels { key: 'canary' value: 43 } }
  config { name: 'b' base_path: '/m/b' model_version_policy { latest { num_versions: 2 } } }
  config { name: 'c' base_path: '/m/c' model_version_policy { all {} } }
}
"""


def test_parse_tf_serving_config() -> None:
    a, b, c = parse(CONFIG)
    assert (a.name, a.base_path, a.labels) == ("a", "/m/a", {"stable": 42, "canary": 43})
    assert a.policy == VersionPolicy("specific", versions=(42, 43))
    assert b.policy.select([1, 2, 3]) == [2, 3]
    assert c.policy.select([3, 1]) == [1, 3]
    assert a.policy.select([41, 42, 44]) == [42]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list { config { name: 'a' } }", "has no base_path"),
        ("model_config_list { config { base_path: '/x' } }", "has no name"),
        (
            "model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }",
            "twice",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' model_platform: 'onnx' } }",
            "unsupported platform",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' version_labels { key: 'b@d' value: 1 } } }",
            "invalid label",
        ),
        ("model_config_list { confg { } }", "confg"),
        ("", "only model_config_list is supported"),
        ("model_config_list { }", "no models configured"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


def test_tf_serving_flags_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_NAME", "linear")
    monkeypatch.setenv("MODEL_BASE_PATH", str(tmp_path))
    s = parse_settings(
        [
            "--port=9000",
            "--rest_api_port",
            "9001",
            "--enable_batching",
            "--verify_manifest=false",
            "--flush_filesystem_caches=true",
        ]
    )
    assert (s.port, s.rest_api_port, s.enable_batching, s.verify_manifest) == (9000, 9001, True, False)
    assert s.models()[0].base_path == str(tmp_path / "linear")
    s = parse_settings(["--model_name=m", "--model_base_path=/srv/m"])
    assert s.models()[0].base_path == "/srv/m"
    monkeypatch.setenv("MODELSHIP_SHUTDOWN_TIMEOUT_SECONDS", "3")
    assert parse_settings([]).shutdown_timeout_seconds == 3


def test_unknown_and_invalid_settings_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_REST_PORT", "1")
    with pytest.raises(ValidationError, match="MODELSHIP_REST_PORT"):
        Settings()
    monkeypatch.delenv("MODELSHIP_REST_PORT")
    with pytest.raises(ValidationError, match="must differ"):
        Settings(port=9000, rest_api_port=9000)
    with pytest.raises(SystemExit):
        parse_settings(["--enable_batching=maybe"])


def test_every_flag_has_help() -> None:
    for action in build_parser()._actions:
        if action.help != "==SUPPRESS==":
            assert action.help, action.option_strings


def test_grpc_channel_arguments_parse_like_tf_serving() -> None:
    from service.grpc.server import parse_channel_arguments

    assert parse_channel_arguments("grpc.max_connection_age_ms=3000, grpc.lb_policy_name=round_robin") == [
        ("grpc.max_connection_age_ms", 3000),
        ("grpc.lb_policy_name", "round_robin"),
    ]
    assert parse_channel_arguments("") == []
    with pytest.raises(InvalidArgument, match="expected key=value"):
        parse_channel_arguments("grpc.max_connection_age_ms")


@pytest.mark.parametrize("content", ["", "   \n\t\n"])
def test_a_blank_auth_token_file_refuses_to_start(tmp_path: Path, content: str) -> None:
    token = tmp_path / "token"
    token.write_text(content)
    with pytest.raises(ValueError, match=r"auth token file .*token is empty: refusing to start"):
        Settings(auth_token_file=token).auth_token_value()


@pytest.mark.parametrize("value", ["", "  "])
def test_a_blank_auth_token_variable_refuses_to_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MODELSHIP_AUTH_TOKEN", value)
    with pytest.raises(ValueError, match="MODELSHIP_AUTH_TOKEN / auth_token is empty"):
        Settings().auth_token_value()
    monkeypatch.setenv("MODELSHIP_AUTH_TOKEN", " s3cret \n")
    assert Settings().auth_token_value() == "s3cret"
    monkeypatch.delenv("MODELSHIP_AUTH_TOKEN")
    assert Settings().auth_token_value() is None


def test_the_project_tooling_variables_do_not_stop_a_server_from_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MODELSHIP_IMAGE", "MODELSHIP_HELM", "MODELSHIP_CACHE", "MODELSHIP_KUBECTL"):
        monkeypatch.setenv(name, "x")
    assert Settings().rest_api_port == 8501
    monkeypatch.setenv("MODELSHIP_RESTAPI_PORT", "1")  # a typo of a real setting is still refused
    with pytest.raises(ValidationError, match="MODELSHIP_RESTAPI_PORT"):
        Settings()


def test_every_modelship_variable_in_the_repository_is_a_setting_or_listed_as_tooling() -> None:
    """A new MODELSHIP_* name in a script would otherwise make the server refuse that shell's env."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    settings = {f"MODELSHIP_{name}".upper() for name in Settings.model_fields}
    typo_tests = {"MODELSHIP_REST_PORT", "MODELSHIP_RESTAPI_PORT"}  # the refusal tests' own typos
    unknown: dict[str, str] = {}
    for file in files:
        try:
            text = (ROOT / file).read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for name in re.findall(r"MODELSHIP_[A-Z0-9_]*[A-Z0-9]", text):
            if name not in settings and name not in TOOLING_ENV and name not in typo_tests:
                unknown.setdefault(name, file)
    assert not unknown, f"add these to service.settings.TOOLING_ENV (or make them settings): {unknown}"


def test_object_storage_base_paths_in_a_config_file() -> None:
    (m,) = parse("model_config_list { config { name: 'm' base_path: 's3://bucket/models/m' } }")
    assert m.base_path == "s3://bucket/models/m"  # a str: pathlib would collapse s3:// to s3:/
    with pytest.raises(InvalidArgument, match="model 'm': 's3://B/x': invalid bucket name"):
        parse("model_config_list { config { name: 'm' base_path: 's3://B/x' } }")


@pytest.mark.parametrize(
    ("value", "expected"), [("4Gi", 4 << 30), ("512Mi", 512 << 20), ("2G", 2 * 10**9), ("123", 123), (7, 7)]
)
def test_the_cache_bound_takes_bytes_or_a_kubernetes_quantity(value: object, expected: int) -> None:
    assert Settings(model_cache_max_bytes=value).model_cache_max_bytes == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["4 gigs", "\u0664Gi"])  # "٤Gi": int() reads Arabic-Indic digits
def test_a_bad_cache_bound_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="is not a byte count"):
        Settings(model_cache_max_bytes=value)  # type: ignore[arg-type]
