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

import hashlib
import http.server
import json
import os
import re
import secrets
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from rollout_operator.kube import Kube, ListWatchSource, load_client
from rollout_operator.leader import LeaderElector
from rollout_operator.names import ANN_MODEL_VERSION, ANN_PROMOTE, GROUP, PLURAL, VERSION
from rollout_operator.status import from_rfc3339
from rollout_operator.watcher import Watcher
from tests.k8s import run_script, source_built_cluster
from tests.scripts.rollout_operator.models import archive, export_kind

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TAG = "rollout-e2e"
RELEASE = "ms"
DEPLOYMENT = f"{RELEASE}-modelship"
INPUTS = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.5, 4.0, 0.25]]
REPLICAS = 2


@dataclass
class Env:
    kubeconfig: str
    kubectl: str
    helm: str
    node_ip: str
    kube: Kube

    def run(self, tool: str, *args: str, timeout: float = 120, check: bool = True) -> str:
        binary = {"kubectl": self.kubectl, "helm": self.helm, "rollout": str(REPO / "scripts" / "rollout")}[
            tool
        ]
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        proc = subprocess.run(
            [binary, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc.stdout


@pytest.fixture(scope="module")
def env() -> Env:
    cluster = source_built_cluster()
    kubeconfig = cluster.env["KUBECONFIG"]
    e = Env(kubeconfig, cluster.kubectl, cluster.helm, cluster.node_ip, Kube(load_client(kubeconfig)))
    e.run(
        "kubectl",
        "apply",
        "--server-side",
        "-f",
        str(REPO / "k8s" / "crds" / "modelship.io_modelrollouts.yaml"),
    )
    e.run("kubectl", "wait", "--for=condition=Established", "crd/modelrollouts.modelship.io", "--timeout=60s")
    return e


@pytest.fixture(scope="module")
def images(env: Env) -> str:
    """Server image ($MODELSHIP_IMAGE, else built from this tree) and operator image (built), imported."""
    server = (
        os.environ.get("MODELSHIP_IMAGE")
        or run_script("scripts/docker/build-image", "--version", TAG, "--no-latest").strip().splitlines()[-1]
    )
    operator = run_script("scripts/rollout_operator/build-image", "--version", TAG).strip().splitlines()[-1]
    run_script("scripts/cluster/load-image", "--docker", server, "--docker", operator)
    return server


@dataclass(frozen=True)
class Model:
    version: int
    url: str
    sha256: str


@pytest.fixture(scope="module")
def models(env: Env, images: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Model]]:
    """Archives of the good / wrong / broken versions on an HTTP server on the node address."""
    root = tmp_path_factory.mktemp("models-www")
    work = tmp_path_factory.mktemp("models-src")
    cid = subprocess.run(
        ["docker", "create", images], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(
            ["docker", "cp", f"{cid}:/models/linear/1", str(work / "good")], check=True, capture_output=True
        )
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True, check=False)
    export_kind(work / "wrong", "wrong")
    export_kind(work / "broken", "broken")
    server = http.server.ThreadingHTTPServer(
        (env.node_ip, 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    )
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    out = {}
    for version, kind in ((2, "good"), (3, "wrong"), (4, "broken")):
        data = archive(work / kind)
        (root / f"{kind}.tar.gz").write_bytes(data)
        out[kind] = Model(
            version, f"http://{env.node_ip}:{port}/{kind}.tar.gz", hashlib.sha256(data).hexdigest()
        )
    yield out
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------------------------------------
# a release with the operator, a client and a capacity monitor


@dataclass
class Release:
    env: Env
    ns: str
    sets: list[str]
    name: str = "linear"

    def helm_upgrade(self, *extra: str) -> None:
        args = [
            "upgrade",
            "--install",
            RELEASE,
            str(REPO / "charts" / "modelship"),
            "--namespace",
            self.ns,
            "--create-namespace",
            *[a for s in [*self.sets, *extra] for a in ("--set", s)],
            "--wait",
            "--timeout",
            "5m",
        ]
        self.env.run("helm", *args, timeout=400)

    def rollout(self) -> dict[str, Any]:
        obj = self.env.kube.get_rollout(self.ns, self.name)
        assert obj is not None
        return obj

    def status(self) -> dict[str, Any]:
        return self.rollout().get("status") or {}

    def apply(
        self,
        model: Model,
        steps: list[dict[str, Any]] | None,
        gate: bool = True,
        analysis: dict[str, Any] | None = None,
        strategy: str = "canary",
    ) -> None:
        spec: dict[str, Any] = {
            "targetRef": {"name": DEPLOYMENT},
            "model": {"version": model.version, "source": {"url": model.url, "sha256": model.sha256}},
            "strategy": {
                "type": strategy,
                "canary": {"steps": steps or [{"setWeight": 50}], "trafficGate": gate},
            },
            "analysis": analysis
            if analysis is not None
            else {
                "interval": "5s",
                "count": 2,
                "failureLimit": 0,
                "inconclusiveLimit": 20,
                "minRequests": 5,
                "errorRatio": {"max": 0.01},
                "latencyP99": {"maxSeconds": 2.5},
                "disagreement": {"inputs": INPUTS, "absTolerance": 1e-4, "relTolerance": 1e-4},
            },
            "progressDeadlineSeconds": 240,
        }
        doc = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelRollout",
            "metadata": {"name": self.name},
            "spec": spec,
        }
        proc = subprocess.run(
            [self.env.kubectl, "apply", "-n", self.ns, "-f", "-"],
            input=json.dumps(doc),
            env={**os.environ, "KUBECONFIG": self.env.kubeconfig},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr

    def wait(
        self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 300
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status()
            if check(st):
                return st
            time.sleep(1)
        raise AssertionError(
            f"timed out waiting for {what}; status: {json.dumps(st, indent=1)[:3000]}\n"
            f"events: {self.reasons()}\noperator log:\n{self.operator_log()[-3000:]}"
        )

    def wait_phase(self, *phases: str, timeout: float = 300) -> dict[str, Any]:
        return self.wait(f"phase in {phases}", lambda s: s.get("phase") in phases, timeout)

    def events(self) -> list[dict[str, Any]]:
        out = self.env.run(
            "kubectl",
            "get",
            "events",
            "-n",
            self.ns,
            "-o",
            "json",
            "--field-selector",
            f"involvedObject.name={self.name},involvedObject.kind=ModelRollout",
        )
        return sorted(json.loads(out)["items"], key=lambda e: e["metadata"]["creationTimestamp"])

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events()]

    def deployment(self, name: str = DEPLOYMENT) -> dict[str, Any] | None:
        return self.env.kube.get_deployment(self.ns, name)

    def wait_rolled_out(self, timeout: int) -> None:
        """``kubectl rollout status`` of the serving Deployment: every pod updated and available."""
        self.env.run(
            "kubectl",
            *("rollout", "status", "-n", self.ns, f"deployment/{DEPLOYMENT}", f"--timeout={timeout}s"),
            timeout=timeout + 20,
        )

    def serving_pods(self) -> list[dict[str, Any]]:
        return self.env.kube.list_pods(
            self.ns, "app.kubernetes.io/name=modelship,app.kubernetes.io/instance=ms"
        )

    def served_versions(self) -> dict[str, str]:
        """Pod name -> AVAILABLE version, for the Deployment's (non-canary) running pods."""
        out = {}
        for pod in self.serving_pods():
            labels = pod["metadata"].get("labels") or {}
            if labels.get("modelship.io/track") or pod["metadata"].get("deletionTimestamp"):
                continue
            ip = pod["status"].get("podIP")
            with urllib.request.urlopen(f"http://{ip}:8501/v1/models/linear", timeout=5) as resp:
                body = json.loads(resp.read())
            out[pod["metadata"]["name"]] = ",".join(
                v["version"] for v in body["model_version_status"] if v["state"] == "AVAILABLE"
            )
        return out

    def operator_log(self) -> str:
        return self.env.run(
            "kubectl",
            "logs",
            "-n",
            self.ns,
            f"deployment/{RELEASE}-modelship-operator",
            "--tail=200",
            check=False,
        )

    def cli(self, *args: str) -> str:
        return self.env.run("rollout", "--kubeconfig", self.env.kubeconfig, "-n", self.ns, *args)

    def service_url(self) -> str:
        svc = json.loads(self.env.run("kubectl", "get", "service", "-n", self.ns, DEPLOYMENT, "-o", "json"))
        return f"http://{svc['spec']['clusterIP']}:8501"


@dataclass
class Client:
    """Predictions through the Service on fresh connections, ~20/s; every failure is kept."""

    url: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = json.dumps({"instances": INPUTS}).encode()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                req = urllib.request.Request(
                    f"{self.url}/v1/models/linear:predict",
                    data=body,
                    headers={"Connection": "close", "Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=10) as resp:
                    answer = json.loads(resp.read())
                assert resp.status == 200
                assert len(answer["predictions"]) == len(INPUTS)
                self.ok += 1
            except Exception as exc:  # every kind of failure is what the test counts
                self.failures.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
            self.stop.wait(max(0.0, 0.05 - (time.monotonic() - started)))


@dataclass
class Capacity:
    """Samples the serving Deployment's available replicas."""

    release: Release
    minimum: int = 10**9
    samples: int = 0
    low: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            dep = self.release.deployment()
            if dep is not None:
                status = dep.get("status") or {}
                available = int(status.get("availableReplicas", 0))
                self.minimum = min(self.minimum, available)
                self.samples += 1
                if available < REPLICAS:
                    self.low.append(
                        f"{time.strftime('%H:%M:%S')} gen {dep['metadata'].get('generation')} {status}"
                    )


@pytest.fixture
def release(env: Env, images: str) -> Iterator[Release]:
    ns = f"rollout-{secrets.token_hex(3)}"
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
        ],
    )
    r.helm_upgrade()
    yield r
    env.run("kubectl", "delete", "modelrollouts", "--all", "-n", ns, "--wait=false", check=False)
    env.run("helm", "uninstall", RELEASE, "--namespace", ns, "--wait", check=False, timeout=300)
    env.run("kubectl", "delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def traffic(release: Release) -> Iterator[tuple[Client, Capacity]]:
    # helm --wait returns at Ready; pods count as available minReadySeconds later
    release.wait_rolled_out(120)
    client, capacity = Client(release.service_url()), Capacity(release)
    threads = [
        threading.Thread(target=client.run, daemon=True),
        threading.Thread(target=capacity.run, daemon=True),
    ]
    for t in threads:
        t.start()
    yield client, capacity
    client.stop.set()
    capacity.stop.set()
    for t in threads:
        t.join(15)


def assert_safe(client: Client, capacity: Capacity) -> None:
    assert client.failures == [], f"{len(client.failures)} failed requests: {client.failures[:10]}"
    assert client.ok > 100
    assert capacity.samples > 10
    assert capacity.minimum >= REPLICAS, f"serving capacity dropped to {capacity.minimum}: {capacity.low[:5]}"


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
