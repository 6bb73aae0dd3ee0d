"""Names shared by the operator, its CLI, the CRD and the tests: API group, labels, annotations."""

from __future__ import annotations

GROUP = "modelship.io"
VERSION = "v1alpha1"
PLURAL = "modelrollouts"
KIND = "ModelRollout"
API_VERSION = f"{GROUP}/{VERSION}"

# Field manager of every server-side apply the operator makes; `kubectl get -o yaml
# --show-managed-fields` shows exactly which fields it owns.
FIELD_MANAGER = "modelship-rollout-operator"
COMPONENT = "modelship-rollout-operator"

# Pod-template annotations the operator owns on the serving Deployment (and copies to the canary).
ANN_MODEL_VERSION = "modelship.io/model-version"
ANN_MODEL_REVISION = "modelship.io/model-revision"
ANN_MODEL_SOURCE = "modelship.io/model-source"

# Commands on a ModelRollout: a new value (any unique token) asks for the action once.
ANN_PROMOTE = "modelship.io/promote"
ANN_PROMOTE_FULL = "modelship.io/promote-full"
ANN_RETRY = "modelship.io/retry"
COMMAND_ANNOTATIONS = {"promote": ANN_PROMOTE, "promoteFull": ANN_PROMOTE_FULL, "retry": ANN_RETRY}

# Labels on the canary Deployment and its pods.
LABEL_TRACK = "modelship.io/track"
TRACK_CANARY = "canary"
LABEL_ROLLOUT = "modelship.io/rollout"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

# Readiness gate of canary pods: a canary pod is Ready (so in the Service's endpoints) only once
# the operator has verified it and set this pod condition to True.
GATE_CONDITION = "modelship.io/traffic"

# Name of the init container (and, when the operator brings its own, the volume) that puts the
# rolled-out model version in place.
OVERLAY_NAME = "modelship-model"

CANARY_SUFFIX = "-canary"


def canary_name(target: str) -> str:
    """Name of the canary Deployment of serving Deployment ``target`` (a valid DNS-1123 label)."""
    return target[: 63 - len(CANARY_SUFFIX)].rstrip("-") + CANARY_SUFFIX
