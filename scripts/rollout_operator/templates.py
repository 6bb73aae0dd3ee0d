"""Manifests: the model overlay the operator owns on a pod template, and the canary Deployment.

Field ownership (the contract with Helm). The operator adds to the serving Deployment's pod
template, with server-side apply under its own field manager, only fields the chart never renders:

* annotations ``modelship.io/model-version``, ``-revision`` and ``-source``;
* an init container named ``modelship-model`` that puts ``<root>/<model>/<version>`` in place
  (``python -m service.fetch_model`` with the server image for a URL + sha256 source; a copy out
  of the given image for an image source);
* when the model root (``MODEL_BASE_PATH``) is not already an ``emptyDir`` of the chart (url
  source): an ``emptyDir`` volume ``modelship-model`` and its read-only mount at the model root
  on the server container, which hides the models baked into the image.

Helm owns everything else, including the image. Because none of these fields is in the chart's
manifest, Helm's three-way merge on ``helm upgrade`` neither sees nor reverts them. Pure.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from rollout_operator.names import (
    ANN_MODEL_REVISION,
    ANN_MODEL_SOURCE,
    ANN_MODEL_VERSION,
    API_VERSION,
    COMPONENT,
    GATE_CONDITION,
    KIND,
    LABEL_MANAGED_BY,
    LABEL_ROLLOUT,
    LABEL_TRACK,
    OVERLAY_NAME,
    TRACK_CANARY,
    canary_name,
)
from rollout_operator.spec import ImageSource, ModelSpec, UrlSource

# Where the operator's init container sees the model volume (never the model root itself, so an
# image source's own files at the root stay visible to the copy).
TARGET_MOUNT = "/modelship-target"
DEFAULT_MODEL_ROOT = "/models"
DEFAULT_SIZE_LIMIT = "2Gi"
INIT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
OPERATOR_ANNOTATIONS = (ANN_MODEL_VERSION, ANN_MODEL_REVISION, ANN_MODEL_SOURCE)

# Copies one model version out of an image: into a hidden sibling first, then renamed into place,
# so the server never sees half a version (same guarantee as service.fetch_model).
COPY_SCRIPT = (
    "import os, shutil, sys\n"
    "src, dest = sys.argv[1], sys.argv[2]\n"
    "if not os.path.isdir(src):\n"
    "    sys.exit(f'model version directory {src} not found in the image')\n"
    "if os.path.isdir(dest):\n"
    "    sys.exit(0)\n"
    "os.makedirs(os.path.dirname(dest), exist_ok=True)\n"
    "tmp = os.path.join(os.path.dirname(dest), '.copy-' + os.path.basename(dest))\n"
    "shutil.rmtree(tmp, ignore_errors=True)\n"
    "shutil.copytree(src, tmp, symlinks=False)\n"
    "os.rename(tmp, dest)\n"
    "print(f'copied {src} to {dest}')\n"
)


class OverlayError(ValueError):
    """The Deployment's pod template cannot take an operator-managed model version."""


def find_container(template: dict[str, Any], name: str) -> dict[str, Any]:
    for container in template.get("spec", {}).get("containers") or []:
        if container.get("name") == name:
            found: dict[str, Any] = container
            return found
    names = [c.get("name") for c in template.get("spec", {}).get("containers") or []]
    raise OverlayError(
        f"the pod template has no container {name!r} (containers: {names}); set spec.targetRef.container"
    )


def _env(container: dict[str, Any], key: str) -> str | None:
    for item in container.get("env") or []:
        if item.get("name") == key and "value" in item:
            return str(item["value"])
    return None


def model_root(container: dict[str, Any]) -> str:
    """The directory holding ``<model>/<version>/``: the container's ``MODEL_BASE_PATH``."""
    root = (_env(container, "MODEL_BASE_PATH") or DEFAULT_MODEL_ROOT).rstrip("/")
    return root or "/"


def model_name(container: dict[str, Any], override: str | None) -> str:
    return override or _env(container, "MODEL_NAME") or "model"


def strip_overlay(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` without any field the operator owns."""
    t = copy.deepcopy(template)
    annotations = t.get("metadata", {}).get("annotations")
    if annotations:
        for key in OPERATOR_ANNOTATIONS:
            annotations.pop(key, None)
    spec = t.get("spec", {})
    for key in ("initContainers", "volumes"):
        if key in spec:
            spec[key] = [x for x in spec[key] or [] if x.get("name") != OVERLAY_NAME]
            if not spec[key]:
                del spec[key]
    for container in spec.get("containers") or []:
        if "volumeMounts" in container:
            container["volumeMounts"] = [
                m for m in container["volumeMounts"] or [] if m.get("name") != OVERLAY_NAME
            ]
            if not container["volumeMounts"]:
                del container["volumeMounts"]
    return t


def overlay(
    template: dict[str, Any],
    container_name: str,
    model: ModelSpec,
    revision: str,
    size_limit: str = DEFAULT_SIZE_LIMIT,
) -> dict[str, Any]:
    """The partial pod template (apply configuration) that makes ``template`` serve ``model``."""
    base = strip_overlay(template)
    server = find_container(base, container_name)
    remote = _env(server, "MODELSHIP_MODEL_BASE_PATH") or ""
    if remote.startswith(("s3://", "gs://")):
        raise OverlayError(
            f"the server serves its versions from object storage ({remote}): publish version "
            f"{model.version} there instead (`python -m model export --base-path ...`); every pod "
            "loads it live, and the operator cannot add one beside it"
        )
    root = model_root(server)
    name = model_name(server, model.name)
    mount = next(
        (m for m in server.get("volumeMounts") or [] if m.get("mountPath", "").rstrip("/") == root), None
    )
    own_volume = mount is None
    volume_name = OVERLAY_NAME
    if mount is not None:
        volume = next(
            (v for v in base.get("spec", {}).get("volumes") or [] if v.get("name") == mount.get("name")), None
        )
        if volume is None or "emptyDir" not in volume or mount.get("subPath"):
            kind = next((k for k in (volume or {}) if k != "name"), "unknown")
            raise OverlayError(
                f"the model root {root} is a {kind} volume; the operator can add a version "
                "only to an emptyDir (chart url source) or over the image (chart image source)"
            )
        volume_name = str(mount["name"])
    dest = f"{TARGET_MOUNT}/{name}/{model.version}"
    init: dict[str, Any] = {"name": OVERLAY_NAME}
    if isinstance(model.source, UrlSource):
        init["image"] = server.get("image")
        init["command"] = ["python", "-m", "service.fetch_model"]
        init["args"] = [
            f"--url={model.source.url}",
            f"--sha256={model.source.sha256.lower()}",
            f"--dest={dest}",
            "--timeout=60",
        ]
    else:
        assert isinstance(model.source, ImageSource)
        init["image"] = model.source.image
        init["command"] = ["python", "-c", COPY_SCRIPT]
        init["args"] = [model.source.path or f"{root}/{name}/{model.version}", dest]
    if "imagePullPolicy" in server:
        init["imagePullPolicy"] = server["imagePullPolicy"]
    init["env"] = [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}]
    init["resources"] = copy.deepcopy(INIT_RESOURCES)
    if "securityContext" in server:
        init["securityContext"] = copy.deepcopy(server["securityContext"])
    init["volumeMounts"] = [{"name": volume_name, "mountPath": TARGET_MOUNT}]
    spec: dict[str, Any] = {"initContainers": [init]}
    if own_volume:
        spec["volumes"] = [{"name": OVERLAY_NAME, "emptyDir": {"sizeLimit": size_limit}}]
        spec["containers"] = [
            {
                "name": container_name,
                "volumeMounts": [{"name": OVERLAY_NAME, "mountPath": root, "readOnly": True}],
            }
        ]
    annotations = {
        ANN_MODEL_VERSION: str(model.version),
        ANN_MODEL_REVISION: revision,
        ANN_MODEL_SOURCE: json.dumps(model.source_dict(), sort_keys=True),
    }
    return {"metadata": {"annotations": annotations}, "spec": spec}


def merge_overlay(template: dict[str, Any], ov: dict[str, Any]) -> dict[str, Any]:
    """``template`` without the old overlay, plus ``ov``: the pod template the apply would produce."""
    t = strip_overlay(template)
    t.setdefault("metadata", {}).setdefault("annotations", {}).update(ov["metadata"]["annotations"])
    spec = t.setdefault("spec", {})
    for key in ("initContainers", "volumes"):
        if key in ov["spec"]:
            spec[key] = [*(spec.get(key) or []), *copy.deepcopy(ov["spec"][key])]
    for partial in ov["spec"].get("containers", []):
        container = find_container(t, partial["name"])
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            *copy.deepcopy(partial["volumeMounts"]),
        ]
    return t


def target_apply(namespace: str, name: str, ov: dict[str, Any] | None) -> dict[str, Any]:
    """The server-side apply body for the serving Deployment; ``ov=None`` gives the chart its model back
    (applying nothing releases, and so removes, every field the operator owned)."""
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
    }
    if ov is not None:
        body["spec"] = {"template": copy.deepcopy(ov)}
    return body


def canary_deployment(
    rollout: dict[str, Any],
    target: dict[str, Any],
    container_name: str,
    model: ModelSpec,
    revision: str,
    replicas: int,
    traffic_gate: bool,
) -> dict[str, Any]:
    """The whole canary Deployment: the serving pod template with the new model, more labels, a gate."""
    meta = rollout["metadata"]
    tspec = target["spec"]
    template = merge_overlay(tspec["template"], overlay(tspec["template"], container_name, model, revision))
    pod_labels = template.setdefault("metadata", {}).setdefault("labels", {})
    pod_labels[LABEL_TRACK] = TRACK_CANARY
    pod_labels[LABEL_ROLLOUT] = meta["name"]
    if traffic_gate:
        gates = [
            g
            for g in template["spec"].get("readinessGates") or []
            if g.get("conditionType") != GATE_CONDITION
        ]
        template["spec"]["readinessGates"] = [*gates, {"conditionType": GATE_CONDITION}]
    selector = copy.deepcopy(tspec["selector"])
    selector.setdefault("matchLabels", {})[LABEL_TRACK] = TRACK_CANARY
    labels = {**(selector.get("matchLabels") or {}), LABEL_MANAGED_BY: COMPONENT, LABEL_ROLLOUT: meta["name"]}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": selector,
        "template": template,
        # New canary pods come up before old ones go; with the traffic gate they join the Service
        # only once verified, so a canary update never opens a hole.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "revisionHistoryLimit": 2,
    }
    for key in ("minReadySeconds", "progressDeadlineSeconds"):
        if key in tspec:
            spec[key] = tspec[key]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(target["metadata"]["name"]),
            "namespace": target["metadata"]["namespace"],
            "labels": labels,
            "annotations": {ANN_MODEL_REVISION: revision, ANN_MODEL_VERSION: str(model.version)},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": spec,
    }
