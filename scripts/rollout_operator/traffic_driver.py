"""The traffic strategy's I/O helpers for the driver: probing the pods, the ConfigMap to apply.

:func:`probe_traffic` asks every serving pod what it applied (and, as planned, verifies the
candidate or measures a window); :func:`traffic_configmap` builds the server-side apply body of
the traffic ConfigMap (other models' entries kept as found); :func:`helm_owned` refuses a
ConfigMap Helm renders (the next ``helm upgrade`` would put its own file back).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from rollout_operator.names import LABEL_MANAGED_BY
from rollout_operator.observations import Observations, PodTraffic, Verification
from rollout_operator.pod_http import PodHttp, ProbeError
from rollout_operator.probe_plan import ProbePlan
from rollout_operator.probes import served_version
from rollout_operator.spec import RolloutSpec
from rollout_operator.status import Status
from rollout_operator.traffic_config import merge_file, shadow_at
from rollout_operator.traffic_probes import measure_versions, pod_traffic, verify_versions
from rollout_operator.traffic_target import TrafficMount

log = logging.getLogger("modelship.rollout.driver")


def helm_owned(cm: dict[str, Any] | None, name: str) -> str | None:
    labels = ((cm or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) == "Helm":
        return (
            f"ConfigMap {name} (the traffic file) is rendered by Helm: set traffic.existingConfigMap "
            "so the operator owns the traffic file"
        )
    return None


def traffic_configmap(
    namespace: str,
    mount: TrafficMount,
    current: dict[str, Any] | None,
    model: str,
    generation: str,
    entry: dict[str, Any],
) -> dict[str, Any]:
    """The apply body: the file found in ``current`` with ``model``'s entry and ``generation`` set."""
    text = ((current or {}).get("data") or {}).get(mount.key) or ""
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        log.warning("ConfigMap %s: unparsable %s, rewritten", mount.configmap, mount.key)
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    content = json.dumps(merge_file(doc, model, generation, entry), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": mount.configmap, "namespace": namespace},
        "data": {mount.key: content},
    }


def probe_traffic(
    http: PodHttp, spec: RolloutSpec, status: Status, obs: Observations, plan: ProbePlan, model: str
) -> Observations:
    serving = [p for p in obs.pods if p.serving]
    traffic: dict[str, PodTraffic] = {}
    if plan.traffic:
        traffic = {p.name: pod_traffic(http, p, model) for p in serving}
    stable = int(status.stable_version) if status.stable_version.isdigit() else 0
    candidate = spec.model.version
    verifications: dict[str, Verification] = {}
    check = spec.analysis.disagreement if spec.analysis else None
    if plan.verify_versions and check is not None and stable:
        for pod in serving:
            t = traffic.get(pod.name)
            if t is not None and {stable, candidate} <= set(t.available):
                verifications[pod.name] = verify_versions(http, pod, model, candidate, stable, check)
    measurement = None
    if plan.measure and spec.analysis is not None and stable:
        shadowing = status.traffic_prepared and shadow_at(spec.strategy.steps, status.current_step) > 0
        measurement = measure_versions(
            http, spec.analysis, model, candidate, stable, serving, status.analysis.baseline, shadowing
        )
    served = ""
    if plan.stable_version:
        for pod in serving:
            try:
                served = served_version(http, pod, model)
                break
            except ProbeError as exc:
                log.debug("stable version probe: %s", exc)
    return dataclasses.replace(
        obs,
        pod_traffic=traffic,
        verifications=verifications,
        measurement=measurement,
        stable_served_version=served,
    )
