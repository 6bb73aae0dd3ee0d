"""The CLI's patches (what kubectl would send) and its status summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rollout_operator.cli import build_parser, command_patch, describe
from rollout_operator.names import ANN_PROMOTE, ANN_PROMOTE_FULL, ANN_RETRY
from tests.scripts.rollout_operator.sim import World, result, spec_dict

REPO = Path(__file__).resolve().parents[3]


def test_patches() -> None:
    promote = command_patch("promote")["metadata"]["annotations"]
    assert list(promote) == [ANN_PROMOTE]
    assert promote[ANN_PROMOTE]
    assert command_patch("promote") != command_patch("promote")  # a fresh token every time
    assert list(command_patch("promote", full=True)["metadata"]["annotations"]) == [ANN_PROMOTE_FULL]
    assert command_patch("abort") == {"spec": {"abort": True}}
    retry = command_patch("retry")
    assert retry["spec"] == {"abort": False}
    assert ANN_RETRY in retry["metadata"]["annotations"]
    assert command_patch("pause") == {"spec": {"paused": True}}
    assert command_patch("resume") == {"spec": {"paused": False}}
    with pytest.raises(ValueError, match="unknown"):
        command_patch("undo")


def test_describe_tells_the_story() -> None:
    w = World(spec_dict(), measure=lambda world: result("Successful"))
    w.run_until(("Paused",))
    text = describe(
        {
            "metadata": {"name": "linear", "namespace": "ml", "generation": 1},
            "spec": spec_dict(),
            "status": w.status,
        }
    )
    assert "ModelRollout ml/linear" in text
    assert "Phase:     Paused (ManualPause)" in text
    assert "Step:      3/4" in text
    assert "Canary: 2" in text
    assert "ok, 0 failed" in text
    assert "last Successful" in text
    assert "Paused=True (ManualPause)" in text
    fresh = describe({"metadata": {"name": "x", "namespace": "ml"}, "spec": {}})
    assert "not seen by the operator yet" in fresh


def test_parser_and_wrapper_help() -> None:
    args = build_parser().parse_args(["-n", "ml", "promote", "--full", "linear"])
    assert (args.namespace, args.command, args.full, args.name) == ("ml", "promote", True, "linear")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["promote"])  # the name is required
    out = subprocess.run(
        [str(REPO / "scripts" / "rollout"), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for command in ("promote", "abort", "retry", "pause", "resume", "status"):
        assert command in out
