"""TF Serving config files, version policies, settings and the TF Serving-style command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.cli import build_parser, parse_settings
from service.config import VersionPolicy, parse
from service.errors import InvalidArgument
from service.settings import Settings

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
    assert (a.name, a.base_path, a.labels) == ("a", Path("/m/a"), {"stable": 42, "canary": 43})
    assert a.policy == VersionPolicy("specific", versions=(42, 43))
    assert b.policy.select([1, 2, 3]) == [2, 3]
    assert c.policy.select([3, 1]) == [1, 3]
    assert a.policy.select([41, 42, 44]) == [42]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list { config { name: 'a' } }", "has no base_path"),
        ("model_config_list { config { base_path: '/x' } }", "has no name"),
        ("model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }", "twice"),
        ("model_config_list { config { name: 'a' base_path: '/x' model_platform: 'onnx' } }", "unsupported platform"),
        ("model_config_list { config { name: 'a' base_path: '/x' version_labels { key: 'b@d' value: 1 } } }", "invalid label"),
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
    s = parse_settings(["--port=9000", "--rest_api_port", "9001", "--enable_batching",
                        "--verify_manifest=false", "--flush_filesystem_caches=true"])
    assert (s.port, s.rest_api_port, s.enable_batching, s.verify_manifest) == (9000, 9001, True, False)
    assert s.models()[0].base_path == tmp_path / "linear"
    s = parse_settings(["--model_name=m", "--model_base_path=/srv/m"])
    assert s.models()[0].base_path == Path("/srv/m")
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
        ("grpc.max_connection_age_ms", 3000), ("grpc.lb_policy_name", "round_robin")]
    assert parse_channel_arguments("") == []
    with pytest.raises(InvalidArgument, match="expected key=value"):
        parse_channel_arguments("grpc.max_connection_age_ms")
