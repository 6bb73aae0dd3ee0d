"""The chart's PodDisruptionBudget holds while the release's pods are evicted (a drain of them).

A real ``kubectl drain`` cordons the node first, and on a single-node cluster that would stop
every other workload from scheduling, so the test does what drain does for these pods, through
the same Eviction API (``kubectl proxy`` on 127.0.0.1), without the cordon. With two replicas
and ``minAvailable: 1``:

1. evicting the first pod is accepted (201);
2. evicting the second is refused with 429 as long as the first one's replacement is not Ready;
   every refusal is bracketed by two observations that the replacement is not Ready;
3. once the replacement is Ready and the budget allows a disruption again, the second eviction
   is accepted, and two Ready pods come back.

An in-cluster load client runs through the Service's ClusterIP meanwhile; no request may fail.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.release import Clock, LoadClient, Release, pod_ready
from tests.k8s import api_proxy, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _evict(api: str, namespace: str, pod: str) -> tuple[int, str]:
    """POST an Eviction for ``pod``; return (HTTP status, message)."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    req = urllib.request.Request(
        f"{api}/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()).get("status", "")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read()).get("message", "")


def _pdb(release: Release) -> dict[str, Any]:
    status: dict[str, Any] = release.kube.json(
        "get", "pdb", "--namespace", release.namespace, release.fullname
    )["status"]
    return status


def test_pdb_refuses_the_second_eviction_until_the_replacement_is_ready(
    release: Release, load_client: LoadClient, report: Any
) -> None:
    release.helm("replicaCount=2", "pdb.minAvailable=1")
    first, second = (p["metadata"]["name"] for p in release.wait_available(2))
    wait_for(
        "the PDB to allow one disruption",
        lambda: (s := _pdb(release))["disruptionsAllowed"] == 1 and s["currentHealthy"] == 2,
        90,
    )
    ip = release.cluster_ip()
    load_client.start(
        rest=f"{ip}:8501",
        grpc=f"{ip}:8500",
        rest_threads=2,
        grpc_threads=1,
        interval=0.02,
        max_seconds=600,
        max_requests=500000,
    )
    load_client.wait_served(50)
    clock = Clock()
    log: list[str] = []

    def replacement_ready() -> bool | None:
        """None while no replacement exists yet, else whether one is Ready."""
        others = [p for p in release.pods() if p["metadata"]["name"] not in (first, second)]
        return any(pod_ready(p) for p in others) if others else None

    with api_proxy(release.kube) as api:
        code, message = _evict(api, release.namespace, first)
        log.append(f"t={clock()}s evict {first}: {code} {message}")
        assert code == 201, message

        refusals = 0
        while True:
            before = replacement_ready()
            code, message = _evict(api, release.namespace, second)
            after = replacement_ready()
            log.append(
                f"t={clock()}s evict {second}: {code} (replacement ready before/after: {before}/{after})"
            )
            if code == 201:
                # Accepted: only allowed once the replacement was Ready before the call.
                assert before, f"second pod evicted while the replacement was not Ready: {log}"
                break
            assert code == 429, message
            assert "disruption budget" in message, message
            if not before and not after:
                refusals += 1
            if before and after and refusals:
                # Replacement Ready: wait for the PDB controller to count it, then try again.
                wait_for(
                    "the PDB to allow a disruption again",
                    lambda: _pdb(release)["disruptionsAllowed"] >= 1,
                    60,
                )
            assert clock() < 240, f"the second eviction was never accepted: {log}"
            time.sleep(2)

    assert refusals >= 1, f"no eviction was refused while the replacement was starting: {log}"
    release.wait_available(2)
    summary, exit_code = load_client.stop()
    log.append(
        f"t={clock()}s two Ready pods again; load: served {summary['served']} "
        f"(REST {summary['ok'].get('rest', 0)}, gRPC {summary['ok'].get('grpc', 0)}), "
        f"failed {summary['failures']}"
    )
    report(
        "\n".join(
            [
                "PDB (minAvailable 1, 2 replicas) timeline:",
                *log,
                f"evictions refused while the replacement was not Ready: {refusals}",
            ]
        )
    )
    assert summary["failures"] == 0, summary
    assert exit_code == 0, summary
