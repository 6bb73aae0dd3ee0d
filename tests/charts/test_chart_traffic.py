"""traffic.*: the traffic file (weights, sticky header, shadow) as a ConfigMap mounted as a directory,
applied live by the server, so changing it never changes the pod template."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.traffic.config import config_hash, parse

pytestmark = pytest.mark.chart

Obj = dict[str, Any]

TWO_VERSIONS = ["model.versionPolicy.latestNumVersions=2"]
CANARY: Obj = {
    "generation": "v2-canary",
    "models": {
        "linear": {
            "weights": {"1": 90, "2": 10},
            "sticky_header": "x-user-id",
            "shadow": {"version": 2, "percent": 12.5, "rtol": 1e-4, "atol": 1e-6},
        }
    },
}


def _values_file(tmp_path: Path, values: Obj, name: str = "traffic-values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def _traffic(tmp_path: Path, config: Obj, name: str = "traffic-values.yaml", **extra: Any) -> Path:
    values: Obj = {
        "model": {"versionPolicy": {"type": "latest", "latestNumVersions": 2}},
        "traffic": {"enabled": True, "config": config, **extra},
    }
    return _values_file(tmp_path, values, name)


def _server(deployment: Obj) -> Obj:
    (server,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server"]
    return server


def _deployment_doc(stdout: str) -> str:
    """The Deployment's YAML text exactly as rendered (for byte comparisons)."""
    (doc,) = [d for d in stdout.split("\n---\n") if "\nkind: Deployment\n" in d]
    return doc


def test_inline_config_renders_configmap_mount_and_env(
    render: Any, tmp_path: Path, k8s_validator: Any
) -> None:
    r = render(_traffic(tmp_path, CANARY, pollSeconds=2.5))
    cm = r.one("ConfigMap", "-traffic")
    assert cm["metadata"]["name"] == "modelship-traffic"
    assert cm["metadata"]["namespace"] == "serving"
    assert cm["metadata"]["labels"]["app.kubernetes.io/instance"] == "modelship"
    assert list(cm["data"]) == ["traffic.json"]
    assert json.loads(cm["data"]["traffic.json"]) == CANARY

    deployment = r.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "traffic"]
    assert volume["configMap"]["name"] == "modelship-traffic"
    assert volume["configMap"]["items"] == [{"key": "traffic.json", "path": "traffic.json"}]
    server = _server(deployment)
    (mount,) = [m for m in server["volumeMounts"] if m["name"] == "traffic"]
    # A directory mount: a subPath mount would never see the kubelet's update of the ConfigMap.
    assert mount == {"name": "traffic", "mountPath": "/etc/modelship/traffic", "readOnly": True}
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MODELSHIP_TRAFFIC_CONFIG_FILE"] == "/etc/modelship/traffic/traffic.json"
    assert env["MODELSHIP_TRAFFIC_CONFIG_FILE_POLL_WAIT_SECONDS"] == "2.5"
    assert not any("traffic" in a for a in server["args"]), "passed by env, like the other file settings"
    for obj in (cm, deployment):
        assert k8s_validator.errors(obj) == [], obj["kind"]


def test_rendered_traffic_file_is_accepted_by_the_server_parser(render: Any, tmp_path: Path) -> None:
    r = render(_traffic(tmp_path, CANARY))
    text = r.one("ConfigMap", "-traffic")["data"]["traffic.json"]
    config = parse(text, "traffic.json")
    assert config.generation == "v2-canary"
    linear = config.models["linear"]
    assert linear.weights == {1: 90, 2: 10}
    assert linear.sticky_header == "x-user-id"
    assert linear.shadow is not None
    assert (linear.shadow.version, linear.shadow.percent) == (2, 12.5)
    assert (linear.shadow.rtol, linear.shadow.atol) == (1e-4, 1e-6)
    # The hash every pod reports (GET /v1/modelship/traffic) is the hash of what the values mean.
    assert config_hash(config) == config_hash(parse(json.dumps(CANARY)))
    # An enabled traffic file with an empty config is valid: no weights, TF Serving's routing.
    empty = render(set_=["traffic.enabled=true"]).one("ConfigMap", "-traffic")["data"]["traffic.json"]
    assert empty == "{}"
    assert parse(empty).models == {}


def test_set_json_values_render_the_same_file(render: Any, tmp_path: Path) -> None:
    """`--set-json traffic.config=...` (the live-change command NOTES.txt prints) renders the same JSON."""
    from_file = render(_traffic(tmp_path, CANARY)).one("ConfigMap", "-traffic")["data"]["traffic.json"]
    from_set = render(
        set_=["traffic.enabled=true", *TWO_VERSIONS],
        extra=["--set-json", f"traffic.config={json.dumps(CANARY)}"],
    ).one("ConfigMap", "-traffic")["data"]["traffic.json"]
    assert json.loads(from_set) == json.loads(from_file) == CANARY


def test_changing_the_traffic_config_does_not_change_the_pod_template(render: Any, tmp_path: Path) -> None:
    """The point of the file: new weights reach running pods without a restart."""
    first = render(_traffic(tmp_path, CANARY, "a.yaml"))
    shifted = {"generation": "v2-50", "models": {"linear": {"weights": {"1": 50, "2": 50}}}}
    second = render(_traffic(tmp_path, shifted, "b.yaml", pollSeconds=1))
    assert first.one("ConfigMap", "-traffic")["data"] != second.one("ConfigMap", "-traffic")["data"]
    assert _deployment_doc(first.stdout) == _deployment_doc(second.stdout)
    annotations = first.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == {"checksum/config"}
    # The model config's checksum does not include the traffic file either.
    assert (
        annotations
        == render(set_=TWO_VERSIONS).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    )


def test_existing_configmap_is_mounted_and_nothing_is_rendered(render: Any) -> None:
    r = render(set_=["traffic.enabled=true", "traffic.existingConfigMap=rollout-traffic"])
    assert not [c for c in r.maybe("ConfigMap") if c["metadata"]["name"].endswith("-traffic")]
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "traffic"]
    assert volume["configMap"]["name"] == "rollout-traffic"
    assert volume["configMap"]["optional"] is True  # the operator creates it after the pods start
    env = {e["name"]: e.get("value") for e in _server(r.one("Deployment"))["env"]}
    assert env["MODELSHIP_TRAFFIC_CONFIG_FILE"] == "/etc/modelship/traffic/traffic.json"
    assert env["MODELSHIP_TRAFFIC_CONFIG_FILE_OPTIONAL"] == "true"
    rendered = render(set_=["traffic.enabled=true"])
    (own,) = [
        v for v in rendered.one("Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "traffic"
    ]
    assert "optional" not in own["configMap"]  # the chart's own ConfigMap is always there
    own_env = {e["name"] for e in _server(rendered.one("Deployment"))["env"]}
    assert "MODELSHIP_TRAFFIC_CONFIG_FILE_OPTIONAL" not in own_env


def test_disabled_renders_nothing_and_the_same_deployment(render: Any, tmp_path: Path) -> None:
    default = render()
    assert not [c for c in default.maybe("ConfigMap") if c["metadata"]["name"].endswith("-traffic")]
    assert "traffic" not in _deployment_doc(default.stdout)
    # Disabled with a config and another poll interval: nothing changes, byte for byte.
    off = render(_values_file(tmp_path, {"traffic": {"enabled": False, "config": CANARY, "pollSeconds": 7}}))
    assert off.stdout == default.stdout


def test_committed_plain_manifests_have_no_traffic_file(repo_dir: Path) -> None:
    """k8s/modelship.yaml is the defaults (test_render_manifests keeps it in sync): traffic is off."""
    text = (repo_dir / "k8s" / "modelship.yaml").read_text()
    assert "traffic" not in text.lower()


# (values, words the error must contain): rejected by values.schema.json
SCHEMA_REJECTS: list[tuple[Obj, list[str]]] = [
    ({"generaton": "x"}, ["/traffic/config", "additional properties 'generaton' not allowed"]),
    ({"models": {"linear": {"weight": {"1": 1}}}}, ["/traffic/config/models/linear", "'weight' not allowed"]),
    ({"models": {"linear": {"weights": {"0": 1}}}}, ["'0' does not match pattern"]),
    ({"models": {"linear": {"weights": {"v1": 1}}}}, ["'v1' does not match pattern"]),
    ({"models": {"linear": {"weights": {"1": -1}}}}, ["/traffic/config/models/linear/weights/1", "minimum"]),
    (
        {"models": {"linear": {"weights": {"1": 1.5}}}},
        ["/traffic/config/models/linear/weights/1", "want integer"],
    ),
    ({"models": {"linear": {"shadow": {"version": 2, "percent": 101}}}}, ["/shadow/percent", "maximum"]),
    ({"models": {"linear": {"shadow": {"percent": 5}}}}, ["/shadow", "missing property 'version'"]),
    ({"models": {"linear": {"shadow": {"version": 2, "percent": 5, "tol": 1}}}}, ["'tol' not allowed"]),
    ({"models": {"linear": {"sticky_header": "X-User-Id"}}}, ["/sticky_header", "does not match pattern"]),
    ({"generation": "g" * 129}, ["/traffic/config/generation", "maxLength"]),
    ({"models": {"linear": {"versions": []}}}, ["/traffic/config/models/linear/versions"]),
    ({"models": {"linear": {"versions": [1, 1]}}}, ["/traffic/config/models/linear/versions"]),
    ({"models": {"linear": {"versions": [0]}}}, ["/traffic/config/models/linear/versions"]),
    ({"models": {"linear": {"versions": [1.5]}}}, ["/traffic/config/models/linear/versions"]),
    ({"models": {"linear": {"versions": ["1"]}}}, ["/traffic/config/models/linear/versions"]),
    ({"models": {"linear": {"versions": 1}}}, ["/traffic/config/models/linear/versions"]),
]


@pytest.mark.parametrize(("config", "words"), SCHEMA_REJECTS, ids=[json.dumps(c) for c, _ in SCHEMA_REJECTS])
def test_schema_rejects_what_the_server_refuses(
    render: Any, tmp_path: Path, config: Obj, words: list[str]
) -> None:
    result = render(_traffic(tmp_path, config))
    assert result.returncode != 0, f"accepted: {config}"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    # ... and the server's own parser refuses it too: the schema is no stricter than the server.
    from service.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        parse(json.dumps(config))


@pytest.mark.parametrize(
    "sets",
    [
        ["traffic.pollSeconds=0"],
        ["traffic.pollSeconds=often"],
        ["traffic.enabled=yes"],
        ["traffic.existingConfigMap=Bad_Name"],
    ],
)
def test_schema_rejects_bad_settings(render: Any, sets: list[str]) -> None:
    result = render(set_=sets)
    assert result.returncode != 0, f"accepted: {sets}"
    assert "/traffic/" in result.stderr, result.stderr


# (values, words the VALUES VALIDATION message must contain)
RULE_REJECTS: list[tuple[Obj, list[str]]] = [
    (
        {"traffic": {"enabled": True, "existingConfigMap": "cm", "config": {"generation": "x"}}},
        ["traffic.config, traffic.existingConfigMap", "not both"],
    ),
    (  # the default policy keeps one version: a 90/10 split would send everything to the newest
        {"traffic": {"enabled": True, "config": {"models": {"linear": {"weights": {"1": 90, "2": 10}}}}}},
        ["traffic.config.models.linear", "2 versions (1, 2)", "only the newest 1", "latestNumVersions to 2"],
    ),
    (  # the shadow candidate must be loaded as well
        {
            "model": {"versionPolicy": {"type": "latest", "latestNumVersions": 2}},
            "traffic": {
                "enabled": True,
                "config": {
                    "models": {
                        "linear": {"weights": {"1": 1, "2": 1}, "shadow": {"version": 3, "percent": 5}}
                    }
                },
            },
        },
        ["3 versions (1, 2, 3)", "only the newest 2"],
    ),
    (
        {
            "model": {"versionPolicy": {"type": "specific", "specificVersions": [1, 2]}},
            "traffic": {"enabled": True, "config": {"models": {"linear": {"weights": {"1": 1, "3": 1}}}}},
        },
        ["Version 3 gets traffic", "does not serve it (1, 2)"],
    ),
    (
        {"traffic": {"enabled": True, "config": {"models": {"linaer": {"weights": {"1": 1}}}}}},
        ["traffic.config.models.linaer", 'serves one model, "linear"'],
    ),
    (  # a pin replaces the policy: the weights are checked against it
        {
            "model": {"versionPolicy": {"type": "all"}},
            "traffic": {
                "enabled": True,
                "config": {"models": {"linear": {"versions": [1], "weights": {"1": 90, "2": 10}}}},
            },
        },
        ["traffic.config.models.linear.versions", "Version 2 gets traffic but the pin does not load it (1)"],
    ),
    (
        {
            "traffic": {
                "enabled": True,
                "config": {"models": {"linear": {"versions": [2], "shadow": {"version": 3, "percent": 5}}}},
            },
        },
        ["traffic.config.models.linear.versions", "Version 3 gets traffic but the pin does not load it (2)"],
    ),
    (  # labels must point at pinned versions, as at versions a `specific` policy serves
        {
            "model": {"versionLabels": {"stable": 1, "canary": 2}},
            "traffic": {"enabled": True, "config": {"models": {"linear": {"versions": [2]}}}},
        },
        ["model.versionLabels.stable", "points at version 1", "does not load (2)"],
    ),
]


@pytest.mark.parametrize(("values", "words"), RULE_REJECTS, ids=[str(i) for i in range(len(RULE_REJECTS))])
def test_cross_field_rules_reject(render: Any, tmp_path: Path, values: Obj, words: list[str]) -> None:
    result = render(_values_file(tmp_path, values))
    assert result.returncode != 0, f"accepted: {values}"
    assert "VALUES VALIDATION" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize(
    "values",
    [
        # zero weights do not need a loaded version
        {"traffic": {"enabled": True, "config": {"models": {"linear": {"weights": {"1": 0, "2": 100}}}}}},
        # the specific policy serving both
        {
            "model": {"versionPolicy": {"type": "specific", "specificVersions": [1, 2]}},
            "traffic": {"enabled": True, "config": CANARY},
        },
        {"model": {"versionPolicy": {"type": "all"}}, "traffic": {"enabled": True, "config": CANARY}},
        # an existing ConfigMap is not inspected
        {"traffic": {"enabled": True, "existingConfigMap": "cm"}},
        # removing a key through --reuse-values: null
        {
            "model": {"versionPolicy": {"type": "latest", "latestNumVersions": 2}},
            "traffic": {
                "enabled": True,
                "config": {"models": {"linear": {"weights": {"1": 1}, "shadow": None}}},
            },
        },
        # a pin replaces the policy: two versions split under the default `latest 1`
        {
            "model": {"versionLabels": {"stable": 1, "canary": 2}},
            "traffic": {
                "enabled": True,
                "config": {
                    **CANARY,
                    "models": {"linear": {**CANARY["models"]["linear"], "versions": [2, 1]}},
                },
            },
        },
        {"traffic": {"enabled": True, "config": {"models": {"linear": {"versions": [3]}}}}},
        # removing the pin through --reuse-values: null
        {
            "traffic": {
                "enabled": True,
                "config": {"models": {"linear": {"versions": None, "weights": {"2": 1}}}},
            }
        },
    ],
    ids=["zero-weight", "specific", "all", "existing", "null-shadow", "pin-split", "pin-only", "null-pin"],
)
def test_accepted(render: Any, tmp_path: Path, values: Obj) -> None:
    result = render(_values_file(tmp_path, values))
    assert result.returncode == 0, result.stderr
    for cm in result.maybe("ConfigMap"):
        if cm["metadata"]["name"].endswith("-traffic"):
            parse(cm["data"]["traffic.json"])


def test_notes_show_the_applied_generation_and_live_change(notes: Callable[..., str]) -> None:
    notes_for = notes
    assert "/v1/modelship/traffic" not in notes_for()
    text = notes_for("traffic.enabled=true", *TWO_VERSIONS)
    assert 'port-forward "$pod" 18501:8501' in text
    assert "curl -s localhost:18501/v1/modelship/traffic" in text
    assert "modelship_traffic_config_info" in text
    assert "helm upgrade modelship <chart> --namespace serving --reuse-values" in text
    assert """--set-json 'traffic.config={"generation":"v2-50","models":{"linear":""" in text
    assert "`kubectl edit configmap modelship-traffic` works" in text
    assert "until the next helm upgrade" in text
    existing = notes_for(
        "traffic.enabled=true", "traffic.existingConfigMap=ctl", "auth.enabled=true", "auth.existingSecret=t"
    )
    assert "kubectl --namespace serving edit configmap ctl" in existing
    assert "helm upgrade" not in existing
    assert 'curl -s -H "Authorization: Bearer $TOKEN" localhost:18501/v1/modelship/traffic' in existing
