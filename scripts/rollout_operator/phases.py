"""The words the operator writes to the cluster: phases, condition types and reasons, event reasons.

Each is a :class:`enum.StrEnum`, so a member *is* its string: it compares equal to the stored
value, formats as it (``f"{Phase.PAUSED}"`` is ``Paused``) and serialises as it. The values are
part of the resource's API (``kubectl wait --for=condition=...``, printer columns, alerts on
event reasons): never rename one. Plain-``str`` copies (:func:`plain`) go into the status dict,
so YAML and JSON encoders see only built-in types. Pure.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """``status.phase``, in the order a rollout usually meets them ("" before the first reconcile)."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    FAILED = "Failed"
    ABORTED = "Aborted"
    INVALID = "Invalid"


PHASES = tuple(Phase)
ACTIVE_PHASES = (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK)
CANARY_PHASES = (Phase.PROGRESSING, Phase.PAUSED)  # the canary steps run
MEASURED_PHASES = (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING)  # analysis runs
DONE_PHASES = (Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED)


class ConditionType(enum.StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    COMPLETED = "Completed"
    DEGRADED = "Degraded"


class PauseReason(enum.StrEnum):
    """``status.pauseReason`` and the ``Paused`` condition's reason."""

    MANUAL = "ManualPause"  # a pause step without a duration: until promoted
    INCONCLUSIVE = "InconclusiveAnalysis"  # more inconclusive measurements than tolerated
    USER = "UserPaused"  # spec.paused (the condition only; pauseReason stays "")
    NOT_PAUSED = "NotPaused"  # the condition only


class FailureReason(enum.StrEnum):
    """``status.rollbackReason`` and the ``Degraded`` condition's reason: why a rollout stopped."""

    ABORTED = "Aborted"
    VERIFICATION_FAILED = "VerificationFailed"
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_ERROR = "AnalysisError"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    PROMOTION_FAILED = "PromotionFailed"
    INVALID_SPEC = "InvalidSpec"
    INVALID_TARGET = "InvalidTarget"
    NOT_DEGRADED = "NotDegraded"  # the condition only


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(enum.StrEnum):
    """The reason of every Kubernetes Event the operator posts."""

    ROLLOUT_STARTED = "RolloutStarted"
    NEW_VERSION = "NewVersion"
    ALREADY_STABLE = "AlreadyStable"
    TRAFFIC_GATE_OPENED = "TrafficGateOpened"
    TRAFFIC_APPLIED = "TrafficApplied"
    STEP_COMPLETED = "StepCompleted"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    PROMOTED_FULL = "PromotedFull"
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    ANALYSIS_ERROR = "AnalysisError"
    PROMOTION_STARTED = "PromotionStarted"
    ROLLOUT_SUCCEEDED = "RolloutSucceeded"
    ROLLBACK_STARTED = "RollbackStarted"
    ROLLED_BACK = "RolledBack"
    RETRIED = "Retried"
    RETRY_IGNORED = "RetryIgnored"
    COMMAND_IGNORED = "CommandIgnored"
    DRIFT_CORRECTED = "DriftCorrected"
    STABLE_UNKNOWN = "StableUnknown"
    ACTION_FAILED = "ActionFailed"
    INVALID_SPEC = "InvalidSpec"
    INVALID_TARGET = "InvalidTarget"


class Verdict(enum.StrEnum):
    """The phase of one analysis measurement (and of each metric in it), worst first."""

    FAILED = "Failed"
    ERROR = "Error"
    INCONCLUSIVE = "Inconclusive"
    SUCCESSFUL = "Successful"


class VerificationOutcome(enum.StrEnum):
    """Of checking one canary pod before it gets traffic (never written to the cluster)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


def plain(value: str) -> str:
    """The built-in ``str`` of a member (or of any string), for the status dict."""
    return str.__str__(value)
