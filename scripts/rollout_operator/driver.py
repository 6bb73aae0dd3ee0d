"""One reconcile of one ModelRollout: read, observe, probe, decide, act, write status, post events.

Order matters for restart safety: actions run before the status is written, and every action is
idempotent, so a crash anywhere leaves a status from which the next reconcile repeats at most
some idempotent writes. Events go out last (a crash can lose one, never duplicate a transition).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from rollout_operator import decide
from rollout_operator.actions import (
    Action,
    ApplyCanary,
    ApplyTargetModel,
    ApplyTrafficConfig,
    DeleteCanary,
    OpenGate,
)
from rollout_operator.kube import Kube, is_status
from rollout_operator.metrics import OperatorMetrics
from rollout_operator.names import GATE_CONDITION, LABEL_ROLLOUT, canary_name
from rollout_operator.observations import Observations
from rollout_operator.pod_http import DirectPodHttp, PodHttp, ProbeError, ProxyPodHttp
from rollout_operator.pod_tls import PodTls
from rollout_operator.probe_plan import plan_probes
from rollout_operator.probes import measure, served_version, verify_pod
from rollout_operator.spec import RolloutSpec, SpecError, parse_spec
from rollout_operator.status import Status
from rollout_operator.templates import (
    OverlayError,
    canary_deployment,
    find_container,
    model_name,
    overlay,
    target_apply,
)
from rollout_operator.traffic_driver import helm_owned, probe_traffic, traffic_configmap
from rollout_operator.traffic_target import traffic_mount
from rollout_operator.views import canary_view, pod_view, target_view

log = logging.getLogger("modelship.rollout.driver")
DEFAULT_REST_PORT = 8501


class Driver:
    """Runs :func:`decide.reconcile` against the cluster for one rollout at a time."""

    def __init__(
        self,
        kube: Kube,
        metrics: OperatorMetrics,
        identity: str,
        pod_access: str = "direct",
        server_token: str | None = None,
        clock: Callable[[], float] = time.time,
        pod_tls: PodTls | None = None,
    ) -> None:
        self.kube, self.metrics, self.identity = kube, metrics, identity
        self.pod_access, self.server_token, self.clock = pod_access, server_token, clock
        self.pod_tls = pod_tls

    def http(self, namespace: str, port: int) -> PodHttp:
        if self.pod_access == "proxy":
            return ProxyPodHttp(self.kube, namespace, port, tls=self.pod_tls is not None)
        return DirectPodHttp(port, token=self.server_token, tls=self.pod_tls)

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Reconcile one rollout; the number of seconds after which to look again (None: it is gone)."""
        obj = self.kube.get_rollout(namespace, name)
        if obj is None:
            self.metrics.forget(namespace, name)
            return None
        now = self.clock()
        spec: RolloutSpec | SpecError
        try:
            spec = parse_spec(obj.get("spec"))
        except SpecError as exc:
            spec = exc
        status = Status.from_dict(obj.get("status"))
        target_name = spec.target if isinstance(spec, RolloutSpec) else ""
        dep = self.kube.get_deployment(namespace, target_name) if target_name else None
        obs, port, mname = self.observe(obj, spec, dep)
        if isinstance(spec, RolloutSpec) and dep is not None:
            obs = self.probe(spec, status, obs, namespace, port, mname, now)
        decision = decide.reconcile(spec, status, obs, now)
        if isinstance(spec, RolloutSpec) and dep is not None:
            self.act(obj, spec, dep, decision.actions, now)
        new_status = decision.status.to_dict()
        if new_status != obj.get("status"):
            self.kube.replace_rollout_status({**obj, "status": new_status})
        for event in decision.events:
            log.info("%s/%s %s: %s", namespace, name, event.reason, event.message)
            self.metrics.events.labels(namespace, name, event.type, event.reason).inc()
            try:
                self.kube.create_event(obj, event.type, event.reason, event.message, now, self.identity)
            except Exception as exc:  # noqa: BLE001 - an Event is best effort: the status already says it all
                log.warning("cannot post event %s for %s/%s: %s", event.reason, namespace, name, exc)
        self.metrics.observe(namespace, name, status, decision.status)
        return decision.requeue_after

    # -- observe ---------------------------------------------------------------------------------

    def observe(
        self, obj: dict[str, Any], spec: RolloutSpec | SpecError, dep: dict[str, Any] | None
    ) -> tuple[Observations, int, str]:
        meta = obj["metadata"]
        base = Observations(
            generation=int(meta.get("generation", 1)),
            annotations=dict(meta.get("annotations") or {}),
            name=str(meta.get("name", "")),
        )
        if not isinstance(spec, RolloutSpec) or dep is None:
            return base, DEFAULT_REST_PORT, ""
        namespace = meta["namespace"]
        target = target_view(dep, spec.container, spec.model, spec.strategy.type)
        if spec.strategy.type == "traffic" and target.traffic_configmap and not target.overlay_error:
            cm = self.kube.get_configmap(namespace, target.traffic_configmap)
            error = helm_owned(cm, target.traffic_configmap)
            if error:
                target = dataclasses.replace(target, overlay_error=error)
        canary_dep = self.kube.get_deployment(namespace, canary_name(spec.target))
        canary = None
        if canary_dep is not None:
            owner = (canary_dep["metadata"].get("labels") or {}).get(LABEL_ROLLOUT)
            if owner != meta["name"]:
                target = dataclasses.replace(
                    target,
                    overlay_error=(
                        f"Deployment {canary_dep['metadata']['name']} belongs to ModelRollout {owner!r}; "
                        "one ModelRollout per serving Deployment"
                    ),
                )
            else:
                canary = canary_view(canary_dep)
        labels = dep["spec"]["selector"].get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = tuple(pod_view(p) for p in self.kube.list_pods(namespace, selector))
        port, mname = DEFAULT_REST_PORT, spec.model.name or "model"
        try:
            server = find_container(dep["spec"]["template"], spec.container)
            mname = model_name(server, spec.model.name)
            port = next(
                (int(p["containerPort"]) for p in server.get("ports") or [] if p.get("name") == "http"),
                DEFAULT_REST_PORT,
            )
        except OverlayError:
            pass
        obs = dataclasses.replace(base, target=target, canary=canary, pods=pods)
        return obs, port, mname

    def probe(
        self,
        spec: RolloutSpec,
        status: Status,
        obs: Observations,
        namespace: str,
        port: int,
        mname: str,
        now: float,
    ) -> Observations:
        plan = plan_probes(spec, status, obs, now)
        if not (plan.verify or plan.measure or plan.stable_version or plan.traffic or plan.verify_versions):
            return obs
        http = self.http(namespace, port)
        if spec.strategy.type == "traffic":
            return probe_traffic(http, spec, status, obs, plan, mname)
        rev = spec.model.revision()
        stable = [p for p in obs.stable_pods if p.serving and p.revision != rev]
        stable.sort(key=lambda p: p.revision != status.stable_revision)  # the real stable first
        by_name = {p.name: p for p in obs.pods}
        check = spec.analysis.disagreement if spec.analysis else None
        verifications = {
            name: verify_pod(
                http, by_name[name], stable[0] if stable else None, mname, spec.model.version, check
            )
            for name in plan.verify
        }
        measurement = None
        if plan.measure and spec.analysis is not None:
            canary = [p for p in obs.pods if p.serving and p.revision == rev]
            measurement = measure(
                http,
                spec.analysis,
                namespace,
                mname,
                spec.model.version,
                canary,
                stable,
                status.analysis.baseline,
            )
        stable_served = ""
        if plan.stable_version:
            for pod in stable:
                try:
                    stable_served = served_version(http, pod, mname)
                    break
                except ProbeError as exc:
                    log.debug("stable version probe: %s", exc)
        return dataclasses.replace(
            obs, verifications=verifications, measurement=measurement, stable_served_version=stable_served
        )

    # -- act -------------------------------------------------------------------------------------

    def act(
        self,
        obj: dict[str, Any],
        spec: RolloutSpec,
        dep: dict[str, Any],
        actions: list[Action],
        now: float,
    ) -> None:
        namespace = obj["metadata"]["namespace"]
        for action in actions:
            try:
                self._act_one(obj, spec, dep, action, namespace, now)
            except Exception as exc:
                message = f"{type(action).__name__} failed: {exc}"
                if is_status(exc, 409):
                    message += " (a field the operator applies is owned by another manager)"
                try:
                    self.kube.create_event(obj, "Warning", "ActionFailed", message, now, self.identity)
                except Exception as event_exc:  # noqa: BLE001 - the original failure matters more
                    log.warning("cannot post ActionFailed event: %s", event_exc)
                raise

    def _act_one(
        self,
        obj: dict[str, Any],
        spec: RolloutSpec,
        dep: dict[str, Any],
        action: Action,
        namespace: str,
        now: float,
    ) -> None:
        if isinstance(action, ApplyCanary):
            body = canary_deployment(
                obj,
                dep,
                spec.container,
                spec.model,
                action.revision,
                action.replicas,
                spec.strategy.canary.traffic_gate,
            )
            self.kube.apply_deployment(body, force=True)
        elif isinstance(action, DeleteCanary):
            self.kube.delete_deployment(namespace, canary_name(spec.target))
        elif isinstance(action, ApplyTargetModel):
            template = dep["spec"]["template"]
            ov = (
                overlay(template, spec.container, action.model, action.model.revision())
                if action.model is not None
                else None
            )
            self.kube.apply_deployment(target_apply(namespace, spec.target, ov), force=False)
        elif isinstance(action, ApplyTrafficConfig):
            server = find_container(dep["spec"]["template"], spec.container)
            mount = traffic_mount(dep["spec"]["template"], spec.container)
            cm = self.kube.get_configmap(namespace, mount.configmap)
            body = traffic_configmap(
                namespace, mount, cm, model_name(server, spec.model.name), action.generation, action.entry
            )
            self.kube.apply_configmap(body)
        elif isinstance(action, OpenGate):
            self.kube.set_pod_condition(
                namespace,
                action.pod,
                {
                    "type": GATE_CONDITION,
                    "status": "True",
                    "reason": "Verified",
                    "message": "verified by the modelship rollout operator",
                    "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                },
            )
