"""Every rendered object validates against the OpenAPI schema of the pinned Kubernetes release, offline.

The schema is Kubernetes' own swagger.json (from the k8s.io/kubernetes module, fetched once by
scripts/tools/k8s-schemas) in strict mode: unknown fields, wrong types and missing required fields
fail. The ServiceMonitor is checked against prometheus-operator's CRD schema the same way, and
cert-manager's Certificate (no schema among the offline ones) against the closed subset written in
conftest.CERTIFICATE_SCHEMA.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.chart


def test_every_object_matches_the_kubernetes_schema(rendered: Any, k8s_validator: Any) -> None:
    problems = {f"{o['kind']}/{o['metadata']['name']}": k8s_validator.errors(o) for o in rendered.objects}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems


def test_all_kinds_the_chart_can_render_are_covered(render: Any, chart_dir: Path) -> None:
    kinds = set(render(chart_dir / "ci" / "all-optional-on-values.yaml").kinds())
    kinds |= set(render(chart_dir / "ci" / "tls-values.yaml").kinds())
    assert kinds == {
        "Certificate",
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "NetworkPolicy",
        "Pod",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    }


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        (
            "Deployment",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("imagePullPolice", "x"),
            "Additional properties are not allowed ('imagePullPolice'",
        ),
        ("Deployment", lambda o: o["spec"].__setitem__("replicas", "two"), "'two' is not of type 'integer'"),
        (
            "Deployment",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].pop("name"),
            "'name' is a required property",
        ),
        ("Service", lambda o: o["spec"]["ports"][0].__setitem__("port", [8501]), "is not of type 'integer'"),
        (
            "ServiceMonitor",
            lambda o: o["spec"]["endpoints"][0].__setitem__("intervall", "30s"),
            "Additional properties are not allowed ('intervall'",
        ),
        (
            "HorizontalPodAutoscaler",
            lambda o: o.__setitem__("apiVersion", "autoscaling/v2beta1"),
            "unknown apiVersion/kind",
        ),
    ],
)
def test_the_validator_catches_mistakes(
    render: Any, chart_dir: Path, k8s_validator: Any, kind: str, mutate: Any, expected: str
) -> None:
    """The validation above can fail: typical template mistakes are reported."""
    obj = copy.deepcopy(render(chart_dir / "ci" / "all-optional-on-values.yaml").one(kind))
    assert not k8s_validator.errors(obj)
    mutate(obj)
    errors = k8s_validator.errors(obj)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        (
            "ServiceMonitor",
            lambda o: o["spec"]["endpoints"][0]["tlsConfig"].__setitem__("servername", "x"),
            "Additional properties are not allowed ('servername'",
        ),
        (
            "Certificate",
            lambda o: o["spec"].__setitem__("dnsName", ["x"]),
            "Additional properties are not allowed ('dnsName'",
        ),
        (
            "Certificate",
            lambda o: o["spec"]["usages"].append("server-auth"),
            "'server-auth' is not one of",
        ),
        ("Certificate", lambda o: o["spec"].pop("secretName"), "'secretName' is a required property"),
        (
            "Certificate",
            lambda o: o["spec"]["privateKey"].__setitem__("rotationPolicy", "Sometimes"),
            "'Sometimes' is not one of",
        ),
    ],
)
def test_the_validator_catches_tls_mistakes(
    render: Any, chart_dir: Path, k8s_validator: Any, kind: str, mutate: Any, expected: str
) -> None:
    """Likewise for the TLS objects: the ServiceMonitor's tlsConfig and the Certificates, which are
    checked against the hand-written subset (cert-manager's CRD is not among the offline schemas)."""
    rendered = render(chart_dir / "ci" / "tls-values.yaml")
    obj = copy.deepcopy(rendered.one(kind, "modelship" if kind == "ServiceMonitor" else "modelship-tls"))
    assert not k8s_validator.errors(obj)
    mutate(obj)
    errors = k8s_validator.errors(obj)
    assert any(expected in e for e in errors), errors


def test_quantities_and_int_or_string_accept_both_forms(k8s_validator: Any, render: Any) -> None:
    deployment = copy.deepcopy(render().one("Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"cpu": "1.5"}}
    deployment["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": "25%", "maxUnavailable": 0}
    assert not k8s_validator.errors(deployment)
