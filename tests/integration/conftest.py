"""Fixtures of the end-to-end suite: the cluster from KUBECONFIG, releases in fresh namespaces,
and an in-cluster load client.

Cluster-agnostic: kubectl uses whatever KUBECONFIG points at (scripts/cluster/up here,
scripts/kind-up or helm/kind-action in GitHub Actions). Settings, all optional:

- MODELSHIP_IMAGE    the server image, already loaded into the cluster (default modelship:0.1.0)
- MODELSHIP_HELM     helm binary (default: the pinned build printed by scripts/tools/helm)
- MODELSHIP_KUBECTL  kubectl binary (default: kubectl on PATH)

Every test works in its own namespace ``it-<purpose>-<random>``, deleted afterwards; when a test
fails, the namespace's objects, pod descriptions, logs and events are printed first. Lines
passed to ``report`` (tests/conftest.py) are printed in pytest's terminal summary (and so appear
in CI logs).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.integration.release import LoadClient, Release
from tests.k8s import Kube, diagnostics, kubeconfig_cluster

DEFAULT_IMAGE = "modelship:0.1.0"
_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.failed:
        item.stash[_FAILED] = True


@pytest.fixture(scope="session")
def kube() -> Kube:
    """kubectl/helm for the cluster KUBECONFIG points at; fails (never skips) without one."""
    return kubeconfig_cluster()


@pytest.fixture(scope="session")
def image() -> tuple[str, str]:
    """(repository, tag) of MODELSHIP_IMAGE."""
    ref = os.environ.get("MODELSHIP_IMAGE") or DEFAULT_IMAGE
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        pytest.fail(f"MODELSHIP_IMAGE must be repository:tag, got {ref!r}")
    return repository, tag


@pytest.fixture(scope="session")
def _namespaces(kube: Kube) -> Iterator[list[str]]:
    """Namespaces this session made; at the end, wait until every one of them is gone."""
    made: list[str] = []
    yield made
    if made:
        kube.run(
            "kubectl",
            "wait",
            "--for=delete",
            "--timeout=300s",
            *[f"namespace/{n}" for n in made],
            check=False,
            timeout=320,
        )


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest, _namespaces: list[str]) -> Iterator[str]:
    """A fresh namespace ``it-<test>-<hex>``; diagnostics printed on failure; deleted afterwards
    (in the background: the session waits for all of them at its end)."""
    purpose = request.node.name.removeprefix("test_").replace("_", "-")[:30].strip("-")
    name = f"it-{purpose}-{secrets.token_hex(2)}"
    kube.run("kubectl", "create", "namespace", name)
    _namespaces.append(name)
    kube.run("kubectl", "label", "namespace", name, "modelship.test/suite=integration")
    try:
        yield name
    finally:
        if request.node.stash.get(_FAILED, False):
            print(diagnostics(kube, name))
        kube.run("kubectl", "delete", "namespace", name, "--wait=false", check=False, timeout=60)


@pytest.fixture
def release(kube: Kube, namespace: str, image: tuple[str, str]) -> Release:
    """An (not yet installed) release in a fresh namespace."""
    return Release(kube=kube, namespace=namespace, image=image)


@pytest.fixture
def load_client(kube: Kube, namespace: str, image: tuple[str, str]) -> LoadClient:
    return LoadClient(kube, namespace, image)
