"""The chart's HorizontalPodAutoscaler scales on real CPU metrics (metrics-server) and back.

Values for the test: minReplicas 1, maxReplicas 3, a 30 % CPU target on a 100m request, and a
20 s scale-down stabilization window with a policy that may remove every extra pod at once. An
in-cluster load client (REST, a new connection per request, CPU-limited so it cannot starve the
node) drives the CPU up until a second pod is Ready; once the load stops the HPA must come back
to one replica. Every wait is bounded; the timeline is printed in the terminal summary.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.release import Clock, LoadClient, Release
from tests.k8s import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

HPA_VALUES = (
    "autoscaling.enabled=true",
    "autoscaling.minReplicas=1",
    "autoscaling.maxReplicas=3",
    "autoscaling.targetCPUUtilizationPercentage=30",
    "autoscaling.scaleDown.stabilizationWindowSeconds=20",
    "autoscaling.scaleDown.periodSeconds=15",
    "autoscaling.scaleDown.percent=100",
    "autoscaling.scaleDown.pods=3",
    "autoscaling.scaleUp.stabilizationWindowSeconds=0",
)
SCALE_UP_BOUND = 240
SCALE_DOWN_BOUND = 300


def _cpu(hpa: dict[str, Any]) -> int | None:
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
            value = metric["resource"]["current"].get("averageUtilization")
            return int(value) if value is not None else None
    return None


def test_hpa_scales_up_under_load_and_back_down(
    release: Release, load_client: LoadClient, report: Any
) -> None:
    release.helm(*HPA_VALUES)
    release.wait_available(1)
    clock = Clock()
    timeline: list[str] = []

    def sample(phase: str) -> tuple[dict[str, Any], dict[str, Any]]:
        hpa = release.kube.json("get", "hpa", "--namespace", release.namespace, release.fullname)
        deploy = release.deployment()
        status = hpa.get("status", {})
        cpu = _cpu(hpa)
        timeline.append(
            f"t={clock():6.1f}s {phase:<9} cpu={'-' if cpu is None else f'{cpu}%':>5} "
            f"desired={status.get('desiredReplicas', '-')} current={status.get('currentReplicas', '-')} "
            f"ready={deploy['status'].get('readyReplicas', 0)}"
        )
        return hpa, deploy

    def poll(phase: str, done: Any, bound: float) -> None:
        deadline = time.monotonic() + bound
        while True:
            hpa, deploy = sample(phase)
            if done(hpa, deploy):
                return
            if time.monotonic() >= deadline:
                report("\n".join(["HPA timeline:", *timeline]))
                raise AssertionError(f"HPA: {phase} not reached in {bound}s")
            time.sleep(5)

    # metrics-server has to report the pod before the HPA can act.
    poll("metrics", lambda hpa, _: _cpu(hpa) is not None, 150)
    ip = release.cluster_ip()
    load_client.start(
        rest=f"{ip}:8501",
        rest_threads=6,
        grpc_threads=0,
        interval=0,
        max_seconds=SCALE_UP_BOUND + 60,
        max_requests=2_000_000,
        cpu_limit="700m",
    )
    peak = 1

    def scaled_up(hpa: dict[str, Any], deploy: dict[str, Any]) -> bool:
        nonlocal peak
        peak = max(peak, int(hpa["status"].get("desiredReplicas", 1)))
        return int(deploy["status"].get("readyReplicas", 0)) >= 2

    poll("load", scaled_up, SCALE_UP_BOUND)
    summary, code = load_client.stop()
    timeline.append(
        f"t={clock():6.1f}s load stopped: served {summary['served']}, failed {summary['failures']}"
    )

    def scaled_down(hpa: dict[str, Any], deploy: dict[str, Any]) -> bool:
        return bool(
            hpa["status"].get("currentReplicas") == 1
            and deploy["spec"]["replicas"] == 1
            and deploy["status"].get("replicas") == 1
        )

    poll("idle", scaled_down, SCALE_DOWN_BOUND)
    wait_for("one pod left", lambda: len(release.pods()) == 1, 120, interval=2)
    report("\n".join(["HPA timeline:", *timeline, f"peak desired replicas {peak}"]))
    assert peak >= 2
    # Scaling up under load (new pods join only once Ready) costs no request either.
    assert summary["failures"] == 0, summary
    assert code == 0, summary
