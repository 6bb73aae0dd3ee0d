"""The rollout operator on the real single-node cluster (scripts/cluster/up): end-to-end rollouts.

Each test installs the chart in a fresh namespace with ``operator.enabled=true`` (the operator
runs in the cluster from the image built by scripts/rollout_operator/build-image, with the
chart's namespaced RBAC), the server image built by scripts/docker/build-image, and the CRD from
k8s/crds. Model versions are archives served over HTTP from the node address:

* ``good``: the model baked into the server image, as version 2 (same answers as stable v1);
* ``wrong``: other weights (answers differ); ``broken``: wants 4 features (every request fails).

While a rollout runs, a client sends predictions through the Service (new connection each, so
kube-proxy spreads them over stable and canary pods) and a monitor samples the serving
Deployment's available replicas: the tests assert zero failed requests and capacity never below
the chart's replica count.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request

import pytest

from rollout_operator.kube import ListWatchSource
from rollout_operator.leader import LeaderElector
from rollout_operator.names import ANN_MODEL_VERSION, ANN_PROMOTE, GROUP, PLURAL, VERSION
from rollout_operator.status import from_rfc3339
from rollout_operator.watcher import Watcher
from tests.scripts.rollout_operator.cluster import (
    DEPLOYMENT,
    RELEASE,
    Capacity,
    Client,
    Env,
    Model,
    Release,
    assert_safe,
)

pytestmark = pytest.mark.integration

# ------------------------------------------------------------------------------------------------
# the tests


def test_good_version_is_promoted_through_every_step(
    release: Release, traffic: tuple[Client, Capacity], models: dict[str, Model]
) -> None:
    client, capacity = traffic
    release.apply(
        models["good"], [{"setWeight": 25}, {"pause": {"duration": "10s"}}, {"setWeight": 50}, {"pause": {}}]
    )
    st = release.wait("the manual pause", lambda s: s.get("pauseReason") == "ManualPause")
    assert (st["phase"], st["currentStep"], st["steps"], st["canaryWeight"]) == ("Paused", 3, 4, 50)
    assert (st["stableVersion"], st["canaryVersion"]) == ("1", "2")
    table = release.env.run("kubectl", "get", "modelrollouts", "-n", release.ns)
    assert re.search(r"linear\s+Paused\s+1\s+2\s+3/4\s+50\s+\d+ ok", table), table
    # the canary took real client traffic
    st = release.wait(
        "two measurements with client traffic",
        lambda s: (
            s["analysis"]["successes"] >= 2
            and (next(m for m in s["analysis"]["last"]["metrics"] if m["name"] == "requests")["value"] or 0)
            >= 5
        ),
    )
    out = release.cli("promote", "linear")
    assert "promote: requested" in out
    st = release.wait_phase("Succeeded", "Failed")
    assert st["phase"] == "Succeeded", st
    assert (st["stableVersion"], st["canaryVersion"], st["currentStep"]) == ("2", "", 4)
    assert release.deployment(f"{DEPLOYMENT}-canary") is None
    template = release.deployment()["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"][ANN_MODEL_VERSION] == "2"
    assert set(release.served_versions().values()) == {"2"}
    reasons = release.reasons()
    assert reasons.count("StepCompleted") == 4
    assert reasons.count("TrafficGateOpened") == 2
    assert reasons.index("PromotionStarted") < reasons.index("RolloutSucceeded")
    assert "RollbackStarted" not in reasons
    conditions = {c["type"]: c["status"] for c in st["conditions"]}
    assert conditions == {"Progressing": "False", "Paused": "False", "Completed": "True", "Degraded": "False"}
    assert_safe(client, capacity)
    # the operator's own metrics tell the same story
    op = release.env.kube.list_pods(release.ns, "app.kubernetes.io/component=rollout-operator")[0]
    with urllib.request.urlopen(f"http://{op['status']['podIP']}:8080/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert (
        f'modelship_rollout_phase{{namespace="{release.ns}",phase="Succeeded",rollout="linear"}} 1.0'
        in metrics
    )
    assert "modelship_rollout_leader 1.0" in metrics
    assert re.search(r'modelship_rollout_events_total\{.*reason="RolloutSucceeded".*\} 1\.0', metrics)


@pytest.mark.parametrize("kind", ["wrong", "broken"])
def test_bad_version_is_rolled_back_before_any_client_sees_it(
    release: Release, traffic: tuple[Client, Capacity], models: dict[str, Model], kind: str
) -> None:
    client, capacity = traffic
    release.apply(models[kind], [{"setWeight": 50}, {"pause": {}}])
    st = release.wait_phase("Failed", "Succeeded", "Paused")
    assert st["phase"] == "Failed", st
    assert st["rollbackReason"] == "VerificationFailed"
    assert ("predictions differ" if kind == "wrong" else "HTTP 400") in st["message"]
    reasons = release.reasons()
    assert "TrafficGateOpened" not in reasons  # no canary pod ever joined the Service
    assert reasons.index("RollbackStarted") <= reasons.index("RolledBack")
    assert release.deployment(f"{DEPLOYMENT}-canary") is None
    template = release.deployment()["spec"]["template"]  # type: ignore[index]
    assert ANN_MODEL_VERSION not in (template["metadata"].get("annotations") or {})
    assert set(release.served_versions().values()) == {"1"}
    time.sleep(3)
    assert_safe(client, capacity)


def test_analysis_of_live_traffic_rolls_back_an_ungated_wrong_canary(
    release: Release, traffic: tuple[Client, Capacity], models: dict[str, Model]
) -> None:
    """Without the traffic gate the wrong canary serves clients; the disagreement measurement on live
    traffic catches it and rolls it back (answers were wrong, but no request failed)."""
    client, capacity = traffic
    release.apply(models["wrong"], [{"setWeight": 25}, {"pause": {}}], gate=False)
    st = release.wait_phase("Failed", "Succeeded")
    assert st["phase"] == "Failed", st
    assert st["rollbackReason"] == "AnalysisFailed"
    assert "disagreement" in st["message"]
    assert st["analysis"]["failures"] == 1
    assert st["analysis"]["last"]["phase"] == "Failed"
    assert "AnalysisFailed" in release.reasons()
    assert set(release.served_versions().values()) == {"1"}
    assert_safe(client, capacity)


def test_operator_killed_mid_rollout_resumes(
    release: Release, traffic: tuple[Client, Capacity], models: dict[str, Model]
) -> None:
    client, capacity = traffic
    release.apply(
        models["good"],
        [{"setWeight": 25}, {"pause": {"duration": "45s"}}, {"setWeight": 50}, {"pause": {"duration": "5s"}}],
    )
    st = release.wait("the 45 s pause", lambda s: s.get("currentStep") == 1)
    pause_started = st["stepStartedAt"]
    (pod,) = release.env.kube.list_pods(release.ns, "app.kubernetes.io/component=rollout-operator")
    killed_at = time.time()
    release.env.run(
        "kubectl",
        "delete",
        "pod",
        "-n",
        release.ns,
        pod["metadata"]["name"],
        "--grace-period=0",
        "--force",
        "--wait=false",
    )
    st = release.wait_phase("Succeeded", "Failed", timeout=400)
    assert st["phase"] == "Succeeded", st
    assert st["attempt"] == 1  # resumed, not restarted
    events = release.events()
    steps = [e for e in events if e["reason"] == "StepCompleted"]
    assert len(steps) == 4, [e["message"] for e in steps]
    pause_done = next(e for e in steps if "pause 45s" in e["message"])
    started = from_rfc3339(pause_started)
    assert started is not None
    assert started < killed_at
    done = from_rfc3339(pause_done["firstTimestamp"]) or 0.0
    # the pause was anchored to the stored start, not restarted by the new operator (+15 s lease wait)
    assert 44 <= done - started < 70, done - started
    lease = json.loads(
        release.env.run(
            "kubectl", "get", "lease", "-n", release.ns, f"{RELEASE}-modelship-operator", "-o", "json"
        )
    )
    assert lease["spec"]["leaseTransitions"] >= 1
    assert not lease["spec"]["holderIdentity"].startswith(pod["metadata"]["name"])
    assert_safe(client, capacity)


def test_manual_abort_retry_and_promote(
    release: Release, traffic: tuple[Client, Capacity], models: dict[str, Model]
) -> None:
    client, capacity = traffic
    release.apply(
        models["good"],
        [{"setWeight": 50}, {"pause": {}}],
        analysis={"interval": "5s", "count": 0, "minRequests": 0, "errorRatio": {"max": 0.01}},
    )
    release.wait("the manual pause", lambda s: s.get("pauseReason") == "ManualPause")
    assert "abort: requested" in release.cli("abort", "linear")
    st = release.wait_phase("Aborted", timeout=180)
    assert st["rollbackReason"] == "Aborted"
    assert st["attempt"] == 1
    assert release.deployment(f"{DEPLOYMENT}-canary") is None
    assert set(release.served_versions().values()) == {"1"}
    release.cli("retry", "linear")
    st = release.wait(
        "the second attempt's manual pause",
        lambda s: s.get("attempt") == 2 and s.get("pauseReason") == "ManualPause",
    )
    # the documented kubectl equivalent of `scripts/rollout promote`
    release.env.run(
        "kubectl",
        "annotate",
        "modelrollout",
        "linear",
        "-n",
        release.ns,
        f"{ANN_PROMOTE}={time.time_ns()}",
        "--overwrite",
    )
    st = release.wait_phase("Succeeded", "Failed")
    assert st["phase"] == "Succeeded"
    assert st["stableVersion"] == "2"
    assert "Phase:     Succeeded" in release.cli("status", "linear")
    reasons = release.reasons()
    assert reasons.count("RolloutStarted") == 2
    assert "Retried" in reasons
    assert_safe(client, capacity)


def test_helm_upgrade_does_not_revert_a_promoted_version(release: Release, models: dict[str, Model]) -> None:
    release.apply(
        models["good"], None, strategy="rolling", analysis={"interval": "5s", "count": 1, "minRequests": 0}
    )
    st = release.wait_phase("Succeeded", "Failed")
    assert st["phase"] == "Succeeded", st
    before = release.deployment()
    assert before is not None
    pods = sorted(release.served_versions())
    # same values: Helm's three-way merge leaves the operator's fields alone, nothing rolls
    release.helm_upgrade()
    after = release.deployment()
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    assert sorted(release.served_versions()) == pods
    # a real chart change rolls the pods, still with the promoted model
    release.helm_upgrade("server.logLevel=debug")
    release.wait_rolled_out(300)
    changed = release.deployment()
    assert changed is not None
    assert changed["spec"]["template"]["metadata"]["annotations"][ANN_MODEL_VERSION] == "2"
    versions = release.served_versions()
    assert set(versions.values()) == {"2"}
    assert sorted(versions) != pods
    managers = {(m["manager"], m["operation"]) for m in changed["metadata"]["managedFields"]}
    assert ("modelship-rollout-operator", "Apply") in managers
    assert ("helm", "Update") in managers
    assert release.status()["phase"] == "Succeeded"
    assert "DriftCorrected" not in release.reasons()


def test_watch_expiry_and_leader_election_on_the_real_api(env: Env, release: Release) -> None:
    """A watch from a compacted resourceVersion gets 410 Gone and the watcher re-lists; two electors
    never both lead a real Lease, and a released Lease passes on at once."""
    seen: list[str] = []
    restarts: list[str] = []
    stop = threading.Event()
    source = ListWatchSource(
        lambda ns, **kw: env.kube.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, **kw),
        release.ns,
    )
    w = Watcher(
        "modelrollouts",
        source,
        lambda kind, o: seen.append(kind),
        lambda items: seen.append("LIST"),
        stop,
        on_restart=restarts.append,
        timeout_seconds=5,
    )
    w.resource_version = "1"  # long compacted
    w.step()
    assert restarts == ["expired"]
    assert w.resource_version is None
    w.step()  # re-lists, then watches until the server ends the stream
    assert seen[0] == "LIST"
    assert w.synced.is_set()
    a = LeaderElector(env.kube, release.ns, "e2e-lease", "a", 4, 3, 1)
    b = LeaderElector(env.kube, release.ns, "e2e-lease", "b", 4, 3, 1)
    assert a.try_acquire_or_renew()
    assert a.acquire(threading.Event())
    assert not b.try_acquire_or_renew()
    time.sleep(2)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert b.try_acquire_or_renew()
    assert not a.try_acquire_or_renew()
