"""A Helm release of the chart in its own namespace, and an in-cluster load client.

``Release`` installs/upgrades charts/modelship with the image under test and small CPU/memory
requests, and waits for its pods (failing at once on image pull or crash loops). ``LoadClient``
runs tests/integration/loadgen.py in a pod of the same image against a Service's ClusterIP and
reads its progress and summary from the pod log.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.k8s import Kube, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelship"
LOADGEN = Path(__file__).with_name("loadgen.py")
# Waiting reasons that never heal by themselves: fail at once instead of at the deadline.
STUCK = {
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
}
# Small requests: the suite must fit on a 2-core node next to other work.
SMALL = ("resources.requests.cpu=100m", "resources.requests.memory=384Mi")


def pod_ready(pod: dict[str, Any]) -> bool:
    """Ready and not terminating."""
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def _stuck(pod: dict[str, Any]) -> str | None:
    statuses = pod["status"].get("initContainerStatuses", []) + pod["status"].get("containerStatuses", [])
    for status in statuses:
        waiting = status.get("state", {}).get("waiting") or {}
        if waiting.get("reason") in STUCK:
            return f"{pod['metadata']['name']}/{status['name']}: {waiting['reason']}: {waiting.get('message', '')}"
    return None


@dataclass
class Release:
    """One Helm release of charts/modelship, alone in its namespace."""

    kube: Kube
    namespace: str
    image: tuple[str, str]
    name: str = "ms"
    values: list[str] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        return f"{self.name}-modelship"

    @property
    def selector(self) -> str:
        """The server pods: the Service's selector minus the chart's `helm test` pod."""
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/name=modelship,app.kubernetes.io/component!=test"

    def helm(self, *sets: str, timeout: float = 300) -> None:
        """``helm upgrade --install`` with the image, small requests, the release's values and ``sets``."""
        repository, tag = self.image
        args = [
            "upgrade",
            "--install",
            self.name,
            str(CHART),
            "--namespace",
            self.namespace,
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
            "--set",
            "image.pullPolicy=IfNotPresent",
        ]
        for value in (*SMALL, *self.values, *sets):
            args += ["--set", value]
        self.kube.run("helm", *args, timeout=timeout)

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.json(
            "get", "pods", "--namespace", self.namespace, "--selector", self.selector
        )["items"]
        return items

    def ready_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.pods() if pod_ready(p)]

    def deployment(self) -> dict[str, Any]:
        found: dict[str, Any] = self.kube.json(
            "get", "deployment", "--namespace", self.namespace, self.fullname
        )
        return found

    def wait_available(self, replicas: int, timeout: float = 300) -> list[dict[str, Any]]:
        """Wait until exactly ``replicas`` pods exist, all Ready, none terminating; return them."""

        def check() -> list[dict[str, Any]] | None:
            pods = self.pods()
            for pod in pods:
                if reason := _stuck(pod):
                    pytest.fail(f"pod cannot start: {reason}")
            ready = [p for p in pods if pod_ready(p)]
            return ready if len(ready) == replicas == len(pods) else None

        return wait_for(f"{replicas} Ready pods of {self.fullname}", check, timeout, interval=2)

    def cluster_ip(self) -> str:
        ip: str = self.kube.json("get", "service", "--namespace", self.namespace, self.fullname)["spec"][
            "clusterIP"
        ]
        return ip

    def helm_test(self) -> str:
        return self.kube.run(
            "helm", "test", self.name, "--namespace", self.namespace, "--logs", "--timeout", "5m", timeout=330
        )


class LoadClient:
    """loadgen.py in a pod of the server image, aimed at a Service's ClusterIP."""

    def __init__(self, kube: Kube, namespace: str, image: tuple[str, str], name: str = "it-load") -> None:
        self.kube, self.namespace, self.image, self.name = kube, namespace, image, name

    def start(self, *, rest: str = "", grpc: str = "", cpu_limit: str = "500m", **settings: object) -> None:
        """Create the pod; ``settings`` become LOAD_<NAME> variables (see loadgen.py)."""
        env = {
            "LOAD_REST": rest,
            "LOAD_GRPC": grpc,
            "HOME": "/tmp",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
            **{f"LOAD_{k.upper()}": str(v) for k, v in settings.items()},
        }
        repository, tag = self.image
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/name": "it-load"},
            },
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 5,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "runAsGroup": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "load",
                        "image": f"{repository}:{tag}",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", LOADGEN.read_text()],
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "256Mi"},
                            "limits": {"cpu": cpu_limit, "memory": "1Gi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
            },
        }
        proc = subprocess.run(
            [self.kube.kubectl, "apply", "-f", "-"],
            input=json.dumps(pod),
            env=self.kube.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        wait_for("the load client to start", lambda: "READY" in self.logs() or self._ended(), 240, interval=2)
        logs = self.logs()
        assert "READY" in logs, f"the load client ended before it started:\n{logs}"

    def logs(self) -> str:
        return self.kube.run("kubectl", "logs", "--namespace", self.namespace, self.name, check=False)

    def _ended(self) -> bool:
        pod = self.kube.json("get", "pod", "--namespace", self.namespace, self.name)
        if reason := _stuck(pod):
            pytest.fail(f"load client cannot start: {reason}")
        return pod["status"].get("phase") in ("Succeeded", "Failed")

    def progress(self) -> dict[str, Any]:
        """The latest PROGRESS record (zeros before the first one)."""
        lines = [ln for ln in self.logs().splitlines() if ln.startswith("PROGRESS ")]
        record: dict[str, Any] = (
            json.loads(lines[-1].split(" ", 1)[1]) if lines else {"served": 0, "failures": 0}
        )
        return record

    def wait_served(self, at_least: int, timeout: float = 120) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            progress = self.progress()
            return progress if progress["served"] >= at_least else None

        return wait_for(f"the load client to have served {at_least} requests", check, timeout, interval=1)

    def stop(self, timeout: float = 90) -> tuple[dict[str, Any], int]:
        """Ask the client to finish; return (its SUMMARY record, its exit code)."""
        self.kube.run(
            "kubectl",
            "exec",
            "--namespace",
            self.namespace,
            self.name,
            "--",
            "python",
            "-c",
            "open('/tmp/stop', 'w').close()",
            timeout=60,
        )
        return self.finish(timeout)

    def finish(self, timeout: float = 300) -> tuple[dict[str, Any], int]:
        """Wait for the client to end by itself (LOAD_MAX_REQUESTS / LOAD_MAX_SECONDS); return
        (its SUMMARY record, its exit code)."""
        wait_for("the load client to finish", self._ended, timeout, interval=1)
        pod = self.kube.json("get", "pod", "--namespace", self.namespace, self.name)
        code = int(pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"])
        lines = [ln for ln in self.logs().splitlines() if ln.startswith("SUMMARY ")]
        assert lines, f"no SUMMARY from the load client (exit {code}):\n{self.logs()[-3000:]}"
        summary: dict[str, Any] = json.loads(lines[-1].split(" ", 1)[1])
        return summary, code


class Clock:
    """Seconds since the test started, for timelines."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return round(time.monotonic() - self.t0, 1)
