"""The ``traffic`` strategy on the real cluster: rollouts that change configuration, never pods.

Each test installs the chart with the operator, two pods serving ``linear`` from a bucket (moto's
S3 server on the node address) with the version policy pinned to version 1, and the traffic file
in a ConfigMap the operator owns (``traffic.existingConfigMap``; mounted optional, so the pods start
before the operator first writes it). Versions 2 (good: the same answers), 3 (wrong answers) and
4 (broken: every 3-feature request is refused) are published to the bucket before the rollout; no
pod loads them until the operator pins them. A client sends predictions through the Service on
fresh connections and counts which version answered each one.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollout_operator.status import from_rfc3339
from tests.object_store import BUCKET, MotoS3, moto_s3, publish
from tests.scripts.rollout_operator.cluster import (
    DEPLOYMENT,
    RELEASE,
    REPLICAS,
    TAG,
    Capacity,
    Client,
    Env,
    Release,
    assert_safe,
)
from tests.scripts.rollout_operator.models import export_kind

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TRAFFIC_CM = "ms-traffic"
KINDS = {1: "good", 2: "good", 3: "wrong", 4: "broken"}
ANALYSIS: dict[str, Any] = {
    "interval": "5s",
    "count": 2,
    "failureLimit": 0,
    "inconclusiveLimit": 30,
    "minRequests": 5,
    "errorRatio": {"max": 0.01},
    "latencyP99": {"maxSeconds": 2.5},
    # no inputs: the candidate is compared on live traffic, by the servers' shadow scoring
    "disagreement": {"absTolerance": 1e-4, "relTolerance": 1e-4, "maxRatio": 0},
}


@dataclass(frozen=True)
class Bucket:
    s3: MotoS3
    exported: Path  # <exported>/<version>: the SavedModel of each version in KINDS


@pytest.fixture(scope="module")
def bucket(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bucket]:
    """moto on the node address (the pods reach it there) and the versions to publish."""
    work = tmp_path_factory.mktemp("traffic-models")
    for version, kind in KINDS.items():
        export_kind(work / str(version), kind)
    with moto_s3(work / "moto.log", host=env.node_ip) as s3:
        yield Bucket(s3, work)


@pytest.fixture
def live(env: Env, images: str, bucket: Bucket) -> Iterator[Release]:
    """The release, with versions 1-4 published below ``<namespace>/linear`` in the bucket."""
    ns = f"traffic-{secrets.token_hex(3)}"
    prefix = f"{ns}/linear"
    for version in KINDS:
        publish(bucket.s3, f"{prefix}/{version}", bucket.exported / str(version))
    env.run("kubectl", "create", "namespace", ns)
    creds = bucket.s3.env()
    env.run(
        "kubectl",
        *("create", "secret", "generic", "bucket-credentials", "-n", ns),
        f"--from-literal=AWS_ACCESS_KEY_ID={creds['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={creds['AWS_SECRET_ACCESS_KEY']}",
    )
    repository, tag = images.rsplit(":", 1)
    r = Release(
        env,
        ns,
        [
            f"image.repository={repository}",
            f"image.tag={tag}",
            "operator.enabled=true",
            "operator.installCRD=false",
            f"operator.image.tag={TAG}",
            "operator.logLevel=debug",
            f"replicaCount={REPLICAS}",
            "resources.requests.cpu=100m",
            "resources.requests.memory=300Mi",
            "model.source.type=objectStore",
            f"model.source.objectStore.url=s3://{BUCKET}/{prefix}",
            f"model.source.objectStore.endpoint={bucket.s3.endpoint}",
            "model.source.objectStore.region=us-east-1",
            "model.source.objectStore.pollSeconds=1",
            "model.source.objectStore.credentials.secretName=bucket-credentials",
            "model.versionPolicy.type=specific",
            "model.versionPolicy.specificVersions={1}",
            "traffic.enabled=true",
            f"traffic.existingConfigMap={TRAFFIC_CM}",
        ],
    )
    r.helm_upgrade()
    r.wait_rolled_out(180)
    yield r
    env.run("kubectl", "delete", "modelrollouts", "--all", "-n", ns, "--wait=false", check=False)
    env.run("helm", "uninstall", RELEASE, "--namespace", ns, "--wait", check=False, timeout=300)
    env.run("kubectl", "delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def load(live: Release) -> Iterator[tuple[Client, Capacity]]:
    client, capacity = Client(live.service_url()), Capacity(live)
    threads = [threading.Thread(target=t.run, daemon=True) for t in (client, capacity)]
    for t in threads:
        t.start()
    yield client, capacity
    client.stop.set()
    capacity.stop.set()
    for t in threads:
        t.join(15)


def rollout(version: int, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "targetRef": {"name": DEPLOYMENT},
        "model": {"version": version},
        "strategy": {"type": "traffic", "traffic": {"steps": steps}},
        "analysis": ANALYSIS,
        "progressDeadlineSeconds": 240,
        **spec,
    }


def pods_state(r: Release) -> dict[str, tuple[str, int]]:
    """Pod UID -> (name, restart count) of the serving pods."""
    return {
        p["metadata"]["uid"]: (p["metadata"]["name"], p["status"]["containerStatuses"][0]["restartCount"])
        for p in r.serving_pods()
    }


def traffic_file(r: Release) -> dict[str, Any]:
    cm = r.env.kube.core.read_namespaced_config_map(TRAFFIC_CM, r.ns)
    doc: dict[str, Any] = json.loads(cm.data["traffic.json"])
    return doc


def pod_traffic(r: Release) -> dict[str, str]:
    """Pod name -> the traffic generation it applied."""
    out = {}
    for pod in r.serving_pods():
        with urllib.request.urlopen(
            f"http://{pod['status']['podIP']}:8501/v1/modelship/traffic", timeout=5
        ) as resp:
            out[pod["metadata"]["name"]] = json.loads(resp.read())["generation"]
    return out


def event_times(r: Release, reason: str) -> list[float]:
    return [
        from_rfc3339(e.get("firstTimestamp") or e["eventTime"]) or 0.0
        for e in r.events()
        if e["reason"] == reason
    ]


def test_good_version_rolls_out_through_shadow_and_weights_with_no_pod_restarted(
    live: Release, load: tuple[Client, Capacity], report: Callable[[str], None]
) -> None:
    client, capacity = load
    before = pods_state(live)
    generation = live.deployment()["metadata"]["generation"]  # type: ignore[index]
    steps = [
        {"shadow": {"percent": 100, "duration": "20s"}},
        {"setWeight": 10},
        {"pause": {"duration": "15s"}},
        {"setWeight": 50},
        {"pause": {"duration": "15s"}},
    ]
    started = time.time()
    live.apply_spec(rollout(2, steps))
    st = live.wait("the 50% step", lambda s: s.get("currentStep") == 4 and s.get("canaryWeight") == 50, 400)
    assert {"1", "2"} <= set(client.versions), client.versions  # both versions answered clients
    st = live.wait_phase("Succeeded", "Failed", timeout=400)
    assert st["phase"] == "Succeeded", st
    took = time.time() - started
    assert (st["stableVersion"], st["canaryVersion"]) == ("2", "")
    assert set(live.served_versions().values()) == {"2"}
    doc = traffic_file(live)
    assert doc["models"]["linear"]["versions"] == [2], doc
    assert set(pod_traffic(live).values()) == {doc["generation"]}
    # configuration only: the Deployment was never changed, no pod was restarted or replaced
    assert live.deployment()["metadata"]["generation"] == generation  # type: ignore[index]
    assert pods_state(live) == before
    assert live.deployment(f"{DEPLOYMENT}-canary") is None
    reasons = live.reasons()
    assert reasons.count("StepCompleted") == len(steps)
    assert "RollbackStarted" not in reasons
    assert_safe(client, capacity)
    report(
        f"traffic rollout of a good version: Succeeded in {took:.0f}s; answers by version {dict(client.versions)}"
    )


def test_wrong_version_is_rolled_back_during_shadow_and_answers_no_client(
    live: Release, load: tuple[Client, Capacity], report: Callable[[str], None]
) -> None:
    client, capacity = load
    live.apply_spec(rollout(3, [{"shadow": {"percent": 100, "duration": "5m"}}, {"setWeight": 50}]))
    st = live.wait_phase("Failed", "Succeeded", timeout=400)
    assert st["phase"] == "Failed", st
    assert st["rollbackReason"] == "AnalysisFailed", st
    assert st["currentStep"] == 0  # still in the shadow step
    assert "disagree" in st["message"], st["message"]
    assert set(live.served_versions().values()) == {"1"}
    assert traffic_file(live)["models"]["linear"]["versions"] == [1]
    assert "3" not in client.versions, client.versions  # no client was ever answered by it
    assert_safe(client, capacity)
    rollback = event_times(live, "RollbackStarted")[0]
    done = event_times(live, "RolledBack")[0]
    shadowing = max(t for t in event_times(live, "TrafficApplied") if t <= rollback)
    report(
        f"wrong version: caught {rollback - shadowing:.0f}s after every pod applied the shadow step, "
        f"rolled back (every pod on [1] only) {done - rollback:.0f}s later; "
        f"client answers by version {dict(client.versions)}"
    )


def test_erroring_version_is_rolled_back_at_the_first_weight_step(
    live: Release, load: tuple[Client, Capacity], report: Callable[[str], None]
) -> None:
    client, _ = load
    # no shadow step (it would catch the errors before any weight): no disagreement check either,
    # which without inputs needs one
    no_shadow = {k: v for k, v in ANALYSIS.items() if k != "disagreement"}
    steps = [{"setWeight": 10}, {"pause": {"duration": "5m"}}, {"setWeight": 50}]
    live.apply_spec(rollout(4, steps, analysis=no_shadow))
    st = live.wait_phase("Failed", "Succeeded", timeout=400)
    assert st["phase"] == "Failed", st
    assert st["rollbackReason"] == "AnalysisFailed", st
    assert st["currentStep"] <= 1, st  # the 10% step (or the pause right after it), never 50%
    assert st["desiredWeight"] in (0, 10)
    assert set(live.served_versions().values()) == {"1"}
    assert traffic_file(live)["models"]["linear"]["versions"] == [1]
    reasons = live.reasons()
    assert "StepCompleted" not in reasons or reasons.count("StepCompleted") == 1, reasons  # never at 50%
    # the preparation's confirmation: the operator writes the 10% weights in the same reconcile
    written = event_times(live, "TrafficApplied")[0]
    rollback = event_times(live, "RollbackStarted")[0]
    done = event_times(live, "RolledBack")[0]
    failed = len(client.failures)
    assert 0 < failed < 0.2 * (client.ok + failed), (failed, client.ok)  # only the 10% share failed
    report(
        f"erroring version: analysis failed {rollback - written:.0f}s after the 10% weights were "
        f"written (step {st['currentStep'] + 1}), every pod back on [1] {done - rollback:.0f}s later; "
        f"{failed} of {client.ok + failed} client requests failed meanwhile"
    )


def test_operator_killed_mid_traffic_rollout_resumes(live: Release, load: tuple[Client, Capacity]) -> None:
    client, capacity = load
    before = pods_state(live)
    steps = [
        {"shadow": {"percent": 50, "duration": "5s"}},
        {"setWeight": 25},
        {"pause": {"duration": "45s"}},
        {"setWeight": 50},
    ]
    live.apply_spec(rollout(2, steps))
    st = live.wait("the 45 s pause", lambda s: s.get("currentStep") == 2, 400)
    pause_started = from_rfc3339(st["stepStartedAt"]) or 0.0
    (pod,) = live.env.kube.list_pods(live.ns, "app.kubernetes.io/component=rollout-operator")
    killed_at = time.time()
    live.env.run(
        "kubectl",
        *(
            "delete",
            "pod",
            "-n",
            live.ns,
            pod["metadata"]["name"],
            "--grace-period=0",
            "--force",
            "--wait=false",
        ),
    )
    st = live.wait_phase("Succeeded", "Failed", timeout=500)
    assert st["phase"] == "Succeeded", st
    assert st["attempt"] == 1  # resumed, not restarted
    assert pause_started < killed_at
    pause_done = next(
        e for e in live.events() if e["reason"] == "StepCompleted" and "pause 45s" in e["message"]
    )
    done = from_rfc3339(pause_done.get("firstTimestamp") or pause_done["eventTime"]) or 0.0
    assert 44 <= done - pause_started < 90, done - pause_started  # anchored to the stored start
    assert set(live.served_versions().values()) == {"2"}
    assert pods_state(live) == before
    assert_safe(client, capacity)
