"""Zero-downtime rolling update under load, measured through the Service.

The load runs INSIDE the cluster (tests/integration/loadgen.py in a pod of the server image)
against the Service's ClusterIP: kube-proxy picks a Ready endpoint for every new connection, as
for real clients, so the measurement covers readiness, endpoint removal, the preStop delay and
the server's drain. ``kubectl port-forward`` to a Service would pin one pod and break with it, so
it cannot measure a rollout. The Service's ClusterIP is used instead of its DNS name because not
every test cluster runs DNS.

While 4 REST threads (a new connection per request) and 2 gRPC threads (one long-lived channel
each) send predictions, ``helm upgrade`` changes a pod annotation; the test waits until every
old pod is gone and the load has carried on against the new ones, then requires zero failed
requests.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.integration.release import Clock, LoadClient, Release
from tests.k8s import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _identity(pods: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    return (
        {p["metadata"]["uid"] for p in pods},
        {p["metadata"]["labels"]["pod-template-hash"] for p in pods},
    )


def test_helm_upgrade_rolls_every_pod_without_a_failed_request(
    release: Release, load_client: LoadClient, report: Any
) -> None:
    release.helm("replicaCount=2")
    old_uids, old_hashes = _identity(release.wait_available(2))
    ip = release.cluster_ip()
    clock = Clock()
    load_client.start(
        rest=f"{ip}:8501",
        grpc=f"{ip}:8500",
        rest_threads=4,
        grpc_threads=2,
        interval=0.02,
        max_seconds=600,
        max_requests=500000,
    )
    before = load_client.wait_served(50)
    report(f"t={clock()}s load running: {before['served']} served before the upgrade")

    release.helm("replicaCount=2", f"podAnnotations.it-rollout=rev-{secrets.token_hex(4)}")
    release.kube.run(
        "kubectl",
        "rollout",
        "status",
        "--namespace",
        release.namespace,
        f"deployment/{release.fullname}",
        "--timeout=400s",
        timeout=420,
    )
    rolled = clock()

    def only_new_pods() -> list[dict[str, Any]] | None:
        pods = release.pods()
        uids, _ = _identity(pods)
        return pods if len(pods) == 2 and not uids & old_uids and len(release.ready_pods()) == 2 else None

    new_pods = wait_for("every old pod to be gone", only_new_pods, 180, interval=1)
    gone = clock()
    # Both protocols must carry on against the new pods (the gRPC channels had to reconnect).
    at_gone = load_client.progress()

    def moved_on() -> dict[str, Any] | None:
        now = load_client.progress()
        grew = all(now["ok"].get(k, 0) >= at_gone["ok"].get(k, 0) + 50 for k in ("rest", "grpc"))
        return now if grew else None

    after = wait_for("REST and gRPC requests served by the new pods", moved_on, 120, interval=1)
    summary, code = load_client.stop()

    new_uids, new_hashes = _identity(new_pods)
    assert not new_uids & old_uids, "a pod survived the upgrade"
    assert len(new_hashes) == 1, new_hashes
    assert not new_hashes & old_hashes, "no new ReplicaSet"
    report(
        f"t={rolled}s rollout complete; t={gone}s old pods gone; pods {len(old_uids)} -> {len(new_uids)} "
        f"new (ReplicaSet {sorted(old_hashes)} -> {sorted(new_hashes)})"
    )
    report(
        f"t={clock()}s load stopped after {summary['t']}s: served {summary['served']} "
        f"(REST {summary['ok'].get('rest', 0)}, gRPC {summary['ok'].get('grpc', 0)}), "
        f"failed {summary['failures']}, max latency {summary['max_latency_s']}s"
    )
    assert after["failures"] == 0, after
    assert summary["failures"] == 0, summary
    assert code == 0, summary
    assert summary["ok"].get("rest", 0) > 0, summary
    assert summary["ok"].get("grpc", 0) > 0, summary
