"""The chart's operator objects (operator.enabled): valid, hardened, least privilege, CRD in sync."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.chart

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "modelship"
ON = ["operator.enabled=true"]

# Every API call the operator makes (scripts/rollout_operator/kube.py), for the release "modelship":
# (apiGroup, resource, verb, name or None).
CALLS = [
    ("modelship.io", "modelrollouts", "get", "linear"),
    ("modelship.io", "modelrollouts", "list", None),
    ("modelship.io", "modelrollouts", "watch", None),
    ("modelship.io", "modelrollouts/status", "update", "linear"),
    ("apps", "deployments", "get", "modelship"),
    ("apps", "deployments", "patch", "modelship"),
    ("apps", "deployments", "get", "modelship-canary"),
    ("apps", "deployments", "create", None),
    ("apps", "deployments", "patch", "modelship-canary"),
    ("apps", "deployments", "delete", "modelship-canary"),
    ("apps", "deployments", "list", None),
    ("apps", "deployments", "watch", None),
    ("", "pods", "list", None),
    ("", "pods", "watch", None),
    ("", "pods/status", "patch", "modelship-canary-x"),
    ("", "events", "create", None),
    ("coordination.k8s.io", "leases", "create", None),
    ("coordination.k8s.io", "leases", "get", "modelship-operator"),
    ("coordination.k8s.io", "leases", "update", "modelship-operator"),
]
FORBIDDEN = [
    ("apps", "deployments", "patch", "some-other-app"),
    ("apps", "deployments", "delete", "some-other-app"),
    ("", "secrets", "get", None),
    ("", "pods", "delete", "x"),
    ("", "pods/proxy", "get", "x"),
    ("coordination.k8s.io", "leases", "update", "someone-elses-lease"),
    ("modelship.io", "modelrollouts", "patch", "x"),
    ("rbac.authorization.k8s.io", "roles", "create", None),
    ("", "pods/exec", "create", "x"),
]


def allowed(rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None) -> bool:
    for rule in rules:
        if group not in rule["apiGroups"] or resource not in rule["resources"] or verb not in rule["verbs"]:
            continue
        names = rule.get("resourceNames")
        if not names or name in names:
            return True
    return False


def test_operator_objects_validate(render: Any, k8s_validator: Any) -> None:
    for values in ([], [str(CHART / "ci" / "all-optional-on-values.yaml")]):
        r = render(*[Path(v) for v in values], set_=ON)
        ours = [
            o
            for o in r.objects
            if "operator" in o["metadata"]["name"] or o["kind"] == "CustomResourceDefinition"
        ]
        assert sorted(o["kind"] for o in ours) == [
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
        problems = {f"{o['kind']}/{o['metadata']['name']}": k8s_validator.errors(o) for o in ours}
        assert not {k: v for k, v in problems.items() if v}


def test_off_by_default_and_crd_optional(render: Any) -> None:
    assert not [o for o in render().objects if "operator" in o["metadata"]["name"]]
    kinds = render(set_=[*ON, "operator.installCRD=false"]).kinds()
    assert "CustomResourceDefinition" not in kinds
    assert "Role" in kinds


def test_crd_is_the_one_in_k8s_crds(render: Any) -> None:
    crd = render(set_=ON).one("CustomResourceDefinition")
    plain = yaml.safe_load((REPO / "k8s" / "crds" / "modelship.io_modelrollouts.yaml").read_text())
    assert crd["spec"] == plain["spec"]
    assert crd["metadata"]["name"] == plain["metadata"]["name"]
    assert crd["metadata"]["labels"] == plain["metadata"]["labels"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_operator_pod_is_hardened_like_the_server(render: Any) -> None:
    r = render(CHART / "ci" / "all-optional-on-values.yaml", set_=ON)
    server = r.one("Deployment", "modelship")["spec"]["template"]["spec"]
    op = r.one("Deployment", "-operator")["spec"]["template"]
    spec = op["spec"]
    (container,) = spec["containers"]
    assert spec["securityContext"] == server["securityContext"]
    assert container["securityContext"] == server["containers"][0]["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["automountServiceAccountToken"] is True
    assert spec["serviceAccountName"] == r.one("ServiceAccount", "-operator")["metadata"]["name"]
    # auth on: the operator reads the token to call the model APIs
    assert "--server-token-file=/etc/modelship/auth/token" in container["args"]
    assert {"name": "auth", "mountPath": "/etc/modelship/auth", "readOnly": True} in container["volumeMounts"]
    assert container["image"] == "modelship-operator:0.1.0"
    # the console script of pyproject.toml [project.scripts], which the operator image installs
    assert container["command"] == ["modelship-rollout-operator"]


def test_operator_pods_are_not_serving_pods(render: Any) -> None:
    r = render(CHART / "ci" / "all-optional-on-values.yaml", set_=ON)
    labels = r.one("Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    for selector in (
        r.one("Service", "modelship")["spec"]["selector"],
        r.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        r.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items()
    assert labels["modelship-client"] == "true"  # admitted by the NetworkPolicy
    svc = r.one("Service", "-operator")["spec"]
    assert svc["selector"].items() <= labels.items()
    assert svc["ports"][0]["targetPort"] == "metrics"


def test_role_is_sufficient_and_least_privilege(render: Any) -> None:
    r = render(set_=ON)
    role = r.one("Role")
    rules = role["rules"]
    assert not [o for o in r.objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for rule in rules:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
    missing = [c for c in CALLS if not allowed(rules, *c)]
    assert missing == []
    too_much = [c for c in FORBIDDEN if allowed(rules, *c)]
    assert too_much == []
    binding = r.one("RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == r.one("ServiceAccount", "-operator")["metadata"]["name"]
    proxy = render(set_=[*ON, "operator.podAccess=proxy", "operator.extraDeployments={blue}"]).one("Role")[
        "rules"
    ]
    assert allowed(proxy, "", "pods/proxy", "get", "x")
    assert allowed(proxy, "apps", "deployments", "patch", "blue-canary")


def test_role_lets_the_operator_write_the_traffic_configmap_by_name(render: Any) -> None:
    values = [*ON, "traffic.enabled=true", "traffic.existingConfigMap=prod-traffic"]
    rules = render(set_=values).one("Role")["rules"]
    for verb in ("get", "patch"):
        assert allowed(rules, "", "configmaps", verb, "prod-traffic")
        assert not allowed(rules, "", "configmaps", verb, "modelship")  # the server's own config
    for verb in ("list", "watch", "create"):
        assert allowed(rules, "", "configmaps", verb, None)
    assert not allowed(rules, "", "configmaps", "delete", "prod-traffic")  # never deleted
    unnamed = render(set_=ON).one("Role")["rules"]
    assert all(
        allowed(unnamed, "", "configmaps", v, "x") for v in ("get", "list", "watch", "create", "patch")
    )
    assert not allowed(unnamed, "", "configmaps", "delete", "x")


def test_schema_rejects_bad_operator_values(render: Any) -> None:
    for bad in (
        "operator.podAccess=ssh",
        "operator.replicaCount=0",
        "operator.extraDeployments={Bad_Name}",
        "operator.enabled=yes",
        "operator.typo=1",
    ):
        result = render(set_=[bad])
        assert result.returncode != 0, bad
        assert "values don't meet the specifications of the schema" in result.stderr


def test_plain_manifests_are_in_sync() -> None:
    proc = subprocess.run(
        [str(REPO / "scripts" / "render-manifests"), "operator", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
