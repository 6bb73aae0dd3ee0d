"""Turn API objects (plain JSON dicts as the API server returns them) into observation views. Pure."""

from __future__ import annotations

import json
from typing import Any

from rollout_operator.names import (
    ANN_MODEL_REVISION,
    ANN_MODEL_SOURCE,
    ANN_MODEL_VERSION,
    GATE_CONDITION,
    LABEL_TRACK,
    TRACK_CANARY,
)
from rollout_operator.observations import CanaryView, PodView, TargetView
from rollout_operator.spec import ModelSpec
from rollout_operator.templates import OverlayError, overlay
from rollout_operator.traffic_target import traffic_target


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def deployment_complete(dep: dict[str, Any]) -> bool:
    """``kubectl rollout status`` says done: the controller saw the latest spec, every pod runs the
    current template, is available, and no pod of an older template is left."""
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) >= int(dep["metadata"].get("generation", 0))
        and int(status.get("updatedReplicas", 0)) >= want
        and int(status.get("replicas", 0)) <= want
        and int(status.get("availableReplicas", 0)) >= want
    )


def target_view(
    dep: dict[str, Any], container: str, model: ModelSpec | None, strategy: str = "canary"
) -> TargetView:
    template = dep["spec"]["template"]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    source: dict[str, Any] | None = None
    if annotations.get(ANN_MODEL_SOURCE):
        try:
            parsed = json.loads(annotations[ANN_MODEL_SOURCE])
            source = parsed if isinstance(parsed, dict) else None
        except ValueError:
            source = None
    error = None
    mount = None
    if strategy == "traffic":
        mount, error = traffic_target(template, container)
    elif model is not None:
        try:
            overlay(template, container, model, model.revision())
        except OverlayError as exc:
            error = str(exc)
    progressing = _conditions(dep).get("Progressing", {})
    return TargetView(
        name=dep["metadata"]["name"],
        replicas=int(dep["spec"].get("replicas", 1)),
        available_replicas=int((dep.get("status") or {}).get("availableReplicas", 0)),
        template_revision=str(annotations.get(ANN_MODEL_REVISION, "")),
        template_version=str(annotations.get(ANN_MODEL_VERSION, "")),
        template_source=source,
        rollout_complete=deployment_complete(dep),
        progress_failed=(
            progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded"
        ),
        overlay_error=error,
        traffic_configmap=mount.configmap if mount else "",
        traffic_key=mount.key if mount else "",
    )


def canary_view(dep: dict[str, Any]) -> CanaryView:
    meta, status = dep["metadata"], dep.get("status") or {}
    return CanaryView(
        replicas=int(dep["spec"].get("replicas", 1)),
        revision=str((meta.get("annotations") or {}).get(ANN_MODEL_REVISION, "")),
        ready_replicas=int(status.get("readyReplicas", 0)),
        up_to_date=int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 0)),
    )


def pod_view(pod: dict[str, Any]) -> PodView:
    meta, status = pod["metadata"], pod.get("status") or {}
    conditions = _conditions(pod)
    return PodView(
        name=meta["name"],
        uid=str(meta.get("uid", "")),
        ip=str(status.get("podIP", "")),
        revision=str((meta.get("annotations") or {}).get(ANN_MODEL_REVISION, "")),
        containers_ready=conditions.get("ContainersReady", {}).get("status") == "True",
        gate_open=conditions.get(GATE_CONDITION, {}).get("status") == "True",
        ready=conditions.get("Ready", {}).get("status") == "True",
        terminating=bool(meta.get("deletionTimestamp")) or status.get("phase") in ("Succeeded", "Failed"),
        canary=(meta.get("labels") or {}).get(LABEL_TRACK) == TRACK_CANARY,
    )
