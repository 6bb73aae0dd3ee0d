"""The operator's vocabulary: the exact strings it writes, and plain ``str`` in the stored status."""

from __future__ import annotations

import yaml

from rollout_operator.phases import (
    ConditionType,
    EventReason,
    FailureReason,
    PauseReason,
    Phase,
    Verdict,
    VerificationOutcome,
    plain,
)
from tests.scripts.rollout_operator.sim import World, result, spec_dict


def test_values_are_the_api() -> None:
    # Renaming any of these breaks `kubectl wait`, printer columns, alerts and stored resources.
    assert [p.value for p in Phase] == [
        "Pending",
        "Progressing",
        "Paused",
        "Promoting",
        "Succeeded",
        "RollingBack",
        "Failed",
        "Aborted",
        "Invalid",
    ]
    assert [c.value for c in ConditionType] == ["Progressing", "Paused", "Completed", "Degraded"]
    assert [r.value for r in PauseReason] == [
        "ManualPause",
        "InconclusiveAnalysis",
        "UserPaused",
        "NotPaused",
    ]
    assert {r.value for r in FailureReason} == {
        "Aborted",
        "VerificationFailed",
        "AnalysisFailed",
        "AnalysisError",
        "ProgressDeadlineExceeded",
        "PromotionFailed",
        "InvalidSpec",
        "InvalidTarget",
        "NotDegraded",
    }
    assert [v.value for v in Verdict] == ["Failed", "Error", "Inconclusive", "Successful"]  # worst first
    assert [v.value for v in VerificationOutcome] == ["passed", "failed", "error"]
    assert {"RolloutStarted", "StepCompleted", "RolledBack", "DriftCorrected"} <= {
        r.value for r in EventReason
    }


def test_members_are_their_strings() -> None:
    assert Phase.PAUSED == "Paused"
    assert f"{FailureReason.ABORTED}: x" == "Aborted: x"
    assert type(plain(Phase.PAUSED)) is str
    assert plain(Phase.PAUSED) == "Paused"


def test_the_stored_status_holds_only_plain_strings() -> None:
    # yaml.safe_dump refuses str subclasses: proof that no enum member leaks into the resource
    w = World(spec_dict(), measure=lambda world: result("Inconclusive"))
    for _ in range(30):
        w.tick()
        yaml.safe_dump(w.status)
    assert w.status["phase"] == "Paused"
    assert {c["reason"] for c in w.status["conditions"]} >= {"InconclusiveAnalysis"}
