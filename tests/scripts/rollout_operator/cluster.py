"""The harness of the operator's cluster tests: the cluster, the images, a release, a client.

``env`` (the source-built cluster, with the CRD applied) and ``images`` (the server and operator
images, built and imported) are session fixtures, shared by test_cluster.py (canary and rolling)
and test_cluster_traffic.py (the traffic strategy); conftest.py re-exports them. ``Release`` is the
chart in a namespace with the operator on; ``Client`` sends predictions through the Service on
fresh connections and keeps every failure; ``Capacity`` samples the serving Deployment.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from rollout_operator.kube import Kube, load_client
from rollout_operator.names import GROUP, VERSION
from tests.k8s import run_script, source_built_cluster
from tests.scripts.rollout_operator.models import archive, export_kind

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


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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
        self.apply_spec(spec)

    def apply_spec(self, spec: dict[str, Any]) -> None:
        """Create or update the ModelRollout with ``spec`` as it is."""
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
    """Predictions through the Service on fresh connections, ~20/s; every failure is kept, and the
    version that answered each request (``x-modelship-model-version``) is counted."""

    url: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
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
                    self.versions[resp.headers.get("x-modelship-model-version", "?")] += 1
                assert resp.status == 200
                assert len(answer["predictions"]) == len(INPUTS)
                self.ok += 1
            except Exception as exc:  # every kind of failure is what the test counts
                if isinstance(exc, urllib.error.HTTPError):  # an error answer names its version too
                    self.versions[exc.headers.get("x-modelship-model-version", "?")] += 1
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
