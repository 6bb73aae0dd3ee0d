"""The CLI's patches (what kubectl would send) and its status summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rollout_operator.cli import build_parser, command_patch, describe
from rollout_operator.names import ANN_PROMOTE, ANN_PROMOTE_FULL, ANN_RETRY
from tests.scripts.rollout_operator.sim import World, result, spec_dict
from tests.scripts.rollout_operator.traffic_sim import TrafficWorld, traffic_spec

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


def _describe_traffic(w: TrafficWorld) -> str:
    return describe(
        {
            "metadata": {"name": "linear", "namespace": "ml", "generation": 1},
            "spec": w.spec,
            "status": w.status,
        }
    )


def test_describe_a_traffic_rollout() -> None:
    """No canary pods: the weight is a share of requests every pod confirmed, with its generation."""
    w = TrafficWorld(traffic_spec(), measure=lambda world: result("Successful"))
    w.tick()
    preparing = _describe_traffic(w)
    assert "version 2 (traffic)" in preparing
    assert "Stable:    1    Candidate: 2" in preparing
    assert "preparing: waiting for every pod to load version 2" in preparing
    assert "no generation applied by every serving pod yet" in preparing
    while w.status.get("currentStep") != 2:
        w.tick()
    text = _describe_traffic(w)
    assert "Step:      2/4" in text
    assert "Weight: 5% of requests on the candidate, confirmed by every pod (step wants 5%)" in text
    assert "Traffic:   generation linear-1-1 applied by every serving pod" in text
    assert "preparing" not in text
    for word in ("canary pod", "replica", "Canary:"):
        assert word not in text
    w.run_until(("Succeeded",))
    done = _describe_traffic(w)
    assert "Stable:    2    Candidate: -" in done
    assert "Weight: - (no candidate)" in done
    assert "generation linear-1-promote applied" in done
    assert "Completed=True (Succeeded)" in done


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
