"""kubectl and helm against a real cluster, for the cluster-marked and integration tests.

``Kube`` runs the two tools with one KUBECONFIG; ``port_forward`` and ``api_proxy`` wrap
``kubectl port-forward`` / ``kubectl proxy`` on 127.0.0.1 with random local ports;
``wait_for`` polls with a deadline; ``diagnostics`` gathers what to print when a test fails.
Two ways to get a ``Kube``, shared by every cluster test: ``source_built_cluster`` (brings up
scripts/cluster/up, with its kubectl and the node address) and ``kubeconfig_cluster`` (whatever
KUBECONFIG points at: the source-built cluster, kind, anything else). ``run_script`` runs one of
the repository's scripts and fails the test with its stderr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Kube:
    """kubectl and helm pointed at one cluster (``env`` carries its KUBECONFIG)."""

    env: dict[str, str]
    kubectl: str
    helm: str
    node_ip: str = ""

    def run(
        self, tool: str, *args: str, timeout: float = 120, check: bool = True, input: str | None = None
    ) -> str:
        """Run ``kubectl`` or ``helm`` with ``args`` (``input`` on stdin); return stdout, raise on
        failure if ``check``."""
        binary = self.kubectl if tool == "kubectl" else self.helm
        proc = subprocess.run(
            [binary, *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc.stdout

    def json(self, *args: str) -> Any:
        """``kubectl <args> -o json``, decoded."""
        return json.loads(self.run("kubectl", *args, "-o", "json"))

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A long-running kubectl (port-forward, proxy) with line-buffered text stdout."""
        return subprocess.Popen(
            [self.kubectl, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """Call ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, subprocess.SubprocessError, OSError) as err:
            last = err
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last}" if last else "")
            )
        time.sleep(interval)


def _lines_until(
    proc: subprocess.Popen[str], pattern: re.Pattern[str], count: int, timeout: float, what: str
) -> tuple[list[re.Match[str]], threading.Thread]:
    """Read ``proc``'s output until ``count`` lines match ``pattern``; a thread keeps draining it."""
    found: list[re.Match[str]] = []
    seen: list[str] = []
    done = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(seen) < 200:
                seen.append(line.rstrip())
            match = pattern.search(line)
            if match and len(found) < count:
                found.append(match)
                if len(found) == count:
                    done.set()
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    if not done.wait(timeout) or len(found) < count:
        _stop(proc, thread)
        raise AssertionError(f"{what} did not start in {timeout:.0f}s:\n" + "\n".join(seen))
    return found, thread


def _stop(proc: subprocess.Popen[str], reader: threading.Thread | None) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    if reader is not None:
        reader.join(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextmanager
def port_forward(
    kube: Kube, namespace: str, target: str, *ports: int, timeout: float = 60
) -> Iterator[dict[int, int]]:
    """``kubectl port-forward target :port...`` on 127.0.0.1; yields {remote port: local port}.

    Forwarding to a Service picks ONE of its pods for the life of the forward.
    """
    proc = kube.popen(
        "port-forward", "--namespace", namespace, "--address", "127.0.0.1", target, *[f":{p}" for p in ports]
    )
    pattern = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")
    matches, reader = _lines_until(proc, pattern, len(ports), timeout, f"kubectl port-forward {target}")
    try:
        yield {int(m.group(2)): int(m.group(1)) for m in matches}
    finally:
        _stop(proc, reader)


@contextmanager
def api_proxy(kube: Kube, timeout: float = 30) -> Iterator[str]:
    """``kubectl proxy`` on a random 127.0.0.1 port; yields its base URL (plain HTTP to the API)."""
    proc = kube.popen("proxy", "--address", "127.0.0.1", "--port", "0")
    (match,), reader = _lines_until(
        proc, re.compile(r"Starting to serve on 127\.0\.0\.1:(\d+)"), 1, timeout, "kubectl proxy"
    )
    try:
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        _stop(proc, reader)


def diagnostics(kube: Kube, namespace: str) -> str:
    """Objects, pod descriptions, container logs and events of ``namespace``, for a failure report."""
    sections = [
        ("objects", ["get", "all,pdb,hpa,configmap,endpointslices", "-o", "wide", "--namespace", namespace]),
        ("pods", ["describe", "pods", "--namespace", namespace]),
        (
            "logs",
            [
                "logs",
                "--namespace",
                namespace,
                "--all-containers",
                "--prefix",
                "--tail=80",
                "--selector",
                "app.kubernetes.io/name",
            ],
        ),
        ("events", ["get", "events", "--namespace", namespace, "--sort-by=.lastTimestamp"]),
    ]
    out = []
    for title, args in sections:
        try:
            text = kube.run("kubectl", *args, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            text = "(timed out)"
        out.append(f"----- {title} ({namespace})\n{text[-6000:]}")
    return "\n".join(out)


def run_script(*cmd: str, timeout: float = 3600) -> str:
    """Run the repository's script ``cmd[0]`` (a path relative to the root) with ``cmd[1:]``; its stdout."""
    proc = subprocess.run(
        [str(REPO / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}"
    return proc.stdout


def pinned_helm() -> str:
    """The pinned helm binary (built from source by scripts/tools/helm, cached)."""
    return run_script("scripts/tools/helm", timeout=1800).strip().splitlines()[-1]


def _is_local(ip: str) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((ip, 0))
        except OSError:
            return False
    return True


def host_address_for_pods(kube: Kube) -> str:
    """An address of this machine that pods can reach (a test server the pods talk to binds it).

    The source-built cluster's node is this machine: its node IP (an address bindable here). A kind cluster's nodes are
    containers on the ``kind`` Docker network: its gateway. ``MODELSHIP_TEST_HOST_IP`` overrides.
    """
    override = os.environ.get("MODELSHIP_TEST_HOST_IP")
    if override or kube.node_ip:
        return override or kube.node_ip
    for node in kube.json("get", "nodes")["items"]:
        for address in node["status"].get("addresses", []):
            if address["type"] == "InternalIP" and _is_local(address["address"]):
                return str(address["address"])  # the node is this machine (source-built cluster)
    proc = subprocess.run(
        ["docker", "network", "inspect", "kind", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    gateways = [g for g in proc.stdout.split() if "." in g]  # the IPv4 one
    if proc.returncode != 0 or not gateways:
        pytest.fail("no address of this machine reachable from pods: set MODELSHIP_TEST_HOST_IP")
    return gateways[0]


def source_built_cluster() -> Kube:
    """The single-node cluster of scripts/cluster/up (idempotent; needs root), with its kubectl."""
    if os.geteuid() != 0:
        pytest.fail("scripts/cluster/up needs root")
    exports = dict(re.findall(r"^export (\w+)=(.*)$", run_script("scripts/cluster/up"), flags=re.MULTILINE))
    env = {**os.environ, "KUBECONFIG": exports["KUBECONFIG"]}
    paths = dict(line.split("=", 1) for line in run_script("scripts/cluster/build", "--print-paths").split())
    node_ip = subprocess.run(
        ["bash", "-c", f"source {REPO}/scripts/cluster/lib/common.sh && echo $NODE_IP"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Kube(
        env=env, kubectl=str(Path(paths["K8S_BIN_DIR"]) / "kubectl"), helm=pinned_helm(), node_ip=node_ip
    )


def kubeconfig_cluster() -> Kube:
    """kubectl/helm for the cluster KUBECONFIG points at; fails (never skips) without one.

    MODELSHIP_KUBECTL and MODELSHIP_HELM override the binaries (default: kubectl on PATH, the
    pinned helm). The cluster must have a Ready node.
    """
    env = dict(os.environ)
    kubeconfig = env.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not all(Path(p).is_file() for p in kubeconfig.split(os.pathsep) if p):
        pytest.fail(f'no kubeconfig at {kubeconfig}: run `eval "$(scripts/cluster/up)"` or scripts/kind-up')
    env["KUBECONFIG"] = kubeconfig
    kubectl = env.get("MODELSHIP_KUBECTL") or shutil.which("kubectl", path=env.get("PATH"))
    if not kubectl:
        pytest.fail("kubectl not found: put it on PATH or set MODELSHIP_KUBECTL")
    k = Kube(env=env, kubectl=kubectl, helm=env.get("MODELSHIP_HELM") or pinned_helm())
    nodes = k.json("get", "nodes")["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    assert ready, f"no Ready node in the cluster at {kubeconfig}"
    return k
