"""What the traffic strategy needs of the serving Deployment, read from its pod template. Pure.

The server container must read its traffic file from a ConfigMap mounted as a directory
(``MODELSHIP_TRAFFIC_CONFIG_FILE=<dir>/<file>`` and a ``configMap`` volume at ``<dir>``, as the
chart's ``traffic.enabled`` renders it): that ConfigMap is the one the operator writes. And its
versions must come from a live source, so that a new version reaches every running pod without a
new pod: the chart's ``objectStore`` (``MODELSHIP_MODEL_BASE_PATH`` s3:// or gs://) or a shared
``persistentVolumeClaim`` at the model root (the chart's ``pvc`` source).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from rollout_operator.templates import OverlayError, find_container, model_root

TRAFFIC_ENV = "MODELSHIP_TRAFFIC_CONFIG_FILE"
ENABLE = "set traffic.enabled=true and traffic.existingConfigMap=<name> in the chart values"


@dataclass(frozen=True)
class TrafficMount:
    """The ConfigMap (and its key) that holds the server's traffic file."""

    configmap: str
    key: str


def _env(container: dict[str, Any], key: str) -> str | None:
    for item in container.get("env") or []:
        if item.get("name") == key and "value" in item:
            return str(item["value"])
    return None


def _volume(template: dict[str, Any], name: str) -> dict[str, Any] | None:
    for volume in template.get("spec", {}).get("volumes") or []:
        if volume.get("name") == name:
            found: dict[str, Any] = volume
            return found
    return None


def traffic_mount(template: dict[str, Any], container_name: str) -> TrafficMount:
    """The traffic file's ConfigMap and key; OverlayError naming what to set when there is none."""
    server = find_container(template, container_name)
    path = _env(server, TRAFFIC_ENV)
    if not path:
        raise OverlayError(f"the server container has no {TRAFFIC_ENV} (no traffic file): {ENABLE}")
    directory, file = posixpath.split(path.rstrip("/"))
    mount = next(
        (
            m
            for m in server.get("volumeMounts") or []
            if m.get("mountPath", "").rstrip("/") == directory and not m.get("subPath")
        ),
        None,
    )
    volume = _volume(template, str(mount.get("name"))) if mount else None
    if volume is None or "configMap" not in volume:
        raise OverlayError(
            f"{TRAFFIC_ENV}={path}, but {directory} is not a ConfigMap mounted as a directory "
            f"(a subPath mount never sees updates): {ENABLE}"
        )
    cm = volume["configMap"]
    key = next((i["key"] for i in cm.get("items") or [] if i.get("path") == file), None)
    if cm.get("items") and key is None:
        raise OverlayError(f"the traffic ConfigMap volume has no item for {file}: {ENABLE}")
    return TrafficMount(configmap=str(cm.get("name", "")), key=str(key or file))


def live_source_error(template: dict[str, Any], container_name: str) -> str | None:
    """Why the pods cannot load a new version live (None: they can)."""
    server = find_container(template, container_name)
    remote = _env(server, "MODELSHIP_MODEL_BASE_PATH") or ""
    if remote.startswith(("s3://", "gs://")):
        return None
    root = model_root(server)
    mount = next(
        (m for m in server.get("volumeMounts") or [] if m.get("mountPath", "").rstrip("/") == root), None
    )
    volume = _volume(template, str(mount.get("name"))) if mount else None
    if volume is not None and "persistentVolumeClaim" in volume:
        return None
    kind = "the image" if volume is None else next((k for k in volume if k != "name"), "unknown")
    return (
        f"the model root {root} is {'baked into ' + kind if volume is None else 'a ' + kind + ' volume'}: "
        "the traffic strategy needs versions that reach running pods live (chart "
        "model.source.type objectStore or pvc); a url or image source needs new pods: use the canary "
        "strategy"
    )


def traffic_target(template: dict[str, Any], container_name: str) -> tuple[TrafficMount | None, str | None]:
    """The traffic mount and the reason the traffic strategy cannot use this template (if any)."""
    try:
        mount = traffic_mount(template, container_name)
        return mount, live_source_error(template, container_name)
    except OverlayError as exc:
        return None, str(exc)
