"""Security, rollout and wiring properties asserted on the parsed output of `helm template`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.traffic.config import parse

pytestmark = pytest.mark.chart

Obj = dict[str, Any]


def _values(values_file: Path | None, chart_dir: Path) -> Obj:
    """The merged values (chart defaults overlaid with the ci file), enough for these assertions."""
    base: Obj = yaml.safe_load((chart_dir / "values.yaml").read_text())

    def merge(a: Obj, b: Obj) -> Obj:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    return merge(base, yaml.safe_load(values_file.read_text())) if values_file else base


def _pod(rendered: Any) -> Obj:
    spec: Obj = rendered.one("Deployment")["spec"]["template"]["spec"]
    return spec


def _all_containers(pod: Obj) -> list[Obj]:
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def _server(pod: Obj) -> Obj:
    servers: list[Obj] = [c for c in pod["containers"] if c["name"] == "server"]
    assert len(servers) == 1
    return servers[0]


# ---------------------------------------------------------------------------------------------
# Security


def test_pod_and_containers_are_hardened(rendered: Any) -> None:
    pods = [_pod(rendered)] + [o["spec"] for o in rendered.maybe("Pod")]  # server pods + helm test pod
    for pod in pods:
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] >= 10000
        assert psc["runAsGroup"] >= 10000
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        # The server must not get MODELSHIP_* service-link variables (its settings prefix); the
        # helm test pod uses them to find the Service where no cluster DNS runs.
        is_test = pod.get("restartPolicy") == "Never"
        assert pod["enableServiceLinks"] is is_test
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(field)
        assert not any("hostPath" in v for v in pod.get("volumes", []))
        for c in _all_containers(pod):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, c["name"]
            assert sc["runAsUser"] >= 10000, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["privileged"] is False, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{c['name']}: read-only root needs a writable /tmp"
            tmp = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
            assert tmp["emptyDir"]["sizeLimit"], tmp
            assert c["resources"]["requests"]["cpu"], c["name"]
            assert c["resources"]["requests"]["memory"], c["name"]
            assert c["resources"]["limits"]["memory"], c["name"]
            assert not re.search(r":latest$", c["image"])
            assert ":" in c["image"] or "@sha256:" in c["image"]
            for env in c.get("env", []):
                assert "TOKEN" not in env["name"] or env["name"].endswith("_FILE"), "secrets only as files"


def test_service_account_does_not_mount_a_token(rendered: Any) -> None:
    (sa,) = rendered.maybe("ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert _pod(rendered)["serviceAccountName"] == sa["metadata"]["name"]


def test_secrets_in_values_only_in_secret_objects(
    rendered: Any, values_file: Path | None, chart_dir: Path
) -> None:
    token = _values(values_file, chart_dir)["auth"]["token"]
    if not token:
        assert not rendered.maybe("Secret")
        return
    for obj in rendered.objects:
        if obj["kind"] != "Secret":
            assert token not in json.dumps(obj), f"token leaked into {obj['kind']}"


# ---------------------------------------------------------------------------------------------
# Rollout and availability


def test_rolling_update_policy_comes_from_values(
    rendered: Any, values_file: Path | None, chart_dir: Path
) -> None:
    v = _values(values_file, chart_dir)
    spec = rendered.one("Deployment")["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {
            "maxSurge": v["rollout"]["maxSurge"],
            "maxUnavailable": v["rollout"]["maxUnavailable"],
        },
    }
    assert spec["minReadySeconds"] == v["rollout"]["minReadySeconds"]
    assert spec["progressDeadlineSeconds"] == v["rollout"]["progressDeadlineSeconds"]
    assert spec["revisionHistoryLimit"] == v["rollout"]["revisionHistoryLimit"]
    assert str(spec["strategy"]["rollingUpdate"]["maxSurge"]) not in ("0", "0%") or str(
        spec["strategy"]["rollingUpdate"]["maxUnavailable"]
    ) not in ("0", "0%")


def test_replicas_only_without_hpa(rendered: Any, values_file: Path | None, chart_dir: Path) -> None:
    v = _values(values_file, chart_dir)
    spec = rendered.one("Deployment")["spec"]
    hpas = rendered.maybe("HorizontalPodAutoscaler")
    if v["autoscaling"]["enabled"]:
        assert "replicas" not in spec, "replicas must not be rendered while an HPA owns the scale"
        (hpa,) = hpas
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": rendered.one("Deployment")["metadata"]["name"],
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        types = {m["type"] for m in hpa["spec"]["metrics"]}
        assert ("Resource" in types) == (v["autoscaling"]["targetCPUUtilizationPercentage"] > 0)
        assert ("Pods" in types) == v["autoscaling"]["customMetric"]["enabled"]
        down = hpa["spec"]["behavior"]["scaleDown"]
        want = v["autoscaling"]["scaleDown"]
        assert down["stabilizationWindowSeconds"] == want["stabilizationWindowSeconds"]
        assert {p["type"]: p["value"] for p in down["policies"]} == {
            "Percent": want["percent"],
            "Pods": want["pods"],
        }
    else:
        assert spec["replicas"] == v["replicaCount"]
        assert not hpas


def test_pdb_selects_the_pods_and_allows_evictions(rendered: Any) -> None:
    (pdb,) = rendered.maybe("PodDisruptionBudget")
    selector = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
    assert str(pdb["spec"].get("maxUnavailable")) not in ("0", "0%")
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_probes_hit_the_health_endpoints_on_the_rest_port(
    rendered: Any, values_file: Path | None, chart_dir: Path
) -> None:
    server = _server(_pod(rendered))
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 8501, "grpc": 8500}
    probes = {k: server[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    # With TLS the REST port only speaks HTTPS (the kubelet does not verify the certificate, and
    # the health paths need no client certificate even with mTLS).
    scheme = {"scheme": "HTTPS"} if _values(values_file, chart_dir)["tls"]["enabled"] else {}
    assert probes["startupProbe"] == {"path": "/v2/health/ready", "port": "http", **scheme}
    assert probes["readinessProbe"] == {"path": "/v2/health/ready", "port": "http", **scheme}
    assert probes["livenessProbe"] == {"path": "/v2/health/live", "port": "http", **scheme}
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "model loads need time"


def test_graceful_termination_budget(rendered: Any) -> None:
    pod = _pod(rendered)
    server = _server(pod)
    env = {e["name"]: e.get("value") for e in server["env"]}
    shutdown = int(env["MODELSHIP_SHUTDOWN_TIMEOUT_SECONDS"])
    pre_stop = server["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        sleep = pre_stop["sleep"]["seconds"]
    else:  # no shell in the image: the exec form runs python
        command = pre_stop["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        sleep = int(re.fullmatch(r"import time; time\.sleep\((\d+)\)", command[2]).group(1))  # type: ignore[union-attr]
    assert sleep >= 1
    assert pod["terminationGracePeriodSeconds"] > sleep + shutdown


def test_topology_spread_per_replicaset(rendered: Any) -> None:
    pod = _pod(rendered)
    selector = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    constraints = pod["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for c in constraints:
        assert c["labelSelector"]["matchLabels"] == selector
        assert c["matchLabelKeys"] == ["pod-template-hash"]
        assert c["whenUnsatisfiable"] == "ScheduleAnyway"
        assert c["maxSkew"] == 1


# ---------------------------------------------------------------------------------------------
# Wiring: names, labels, Service, config


def test_labels_and_selectors(rendered: Any) -> None:
    deployment = rendered.one("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "modelship", "app.kubernetes.io/instance": "modelship"}
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "helm.sh/chart" not in pod_labels, "chart bumps must not roll pods"
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "modelship-0.1.0"
        if obj["kind"] == "Pod":  # the helm test pod: the Service and PDB must not select it
            assert not selector.items() <= labels.items()
            assert labels["app.kubernetes.io/component"] == "test"
        else:
            assert selector.items() <= labels.items()


def test_service_ports_and_app_protocols(rendered: Any, values_file: Path | None, chart_dir: Path) -> None:
    svc = rendered.one("Service")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    tls = _values(values_file, chart_dir)["tls"]["enabled"]
    assert ports["http"]["port"] == 8501
    assert ports["http"]["targetPort"] == "http"
    assert ports["http"]["appProtocol"] == ("https" if tls else "http")
    assert ports["grpc"]["port"] == 8500
    assert ports["grpc"]["targetPort"] == "grpc"
    assert ports["grpc"]["appProtocol"] in (("https",) if tls else ("kubernetes.io/h2c", "grpc"))
    assert svc["spec"]["selector"] == rendered.one("Deployment")["spec"]["selector"]["matchLabels"]


def test_model_config_is_mounted_and_passed(rendered: Any, values_file: Path | None, chart_dir: Path) -> None:
    v = _values(values_file, chart_dir)
    pod = _pod(rendered)
    server = _server(pod)
    cm = rendered.one("ConfigMap", "modelship")
    config = cm["data"]["models.config"]
    assert f'name: "{v["model"]["name"]}"' in config
    assert "--model_config_file=/etc/modelship/config/models.config" in server["args"]
    mount = next(m for m in server["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/etc/modelship/config"
    assert mount["readOnly"] is True
    volume = next(vol for vol in pod["volumes"] if vol["name"] == "config")
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    for label, version in v["model"]["versionLabels"].items():
        assert f'key: "{label}"\n      value: {version}' in config
    policy = v["model"]["versionPolicy"]["type"]
    assert re.search(rf"model_version_policy {{\s*{policy} {{", config), config
    assert re.fullmatch(
        r"[0-9a-f]{64}",
        rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
    )


def test_model_config_is_a_valid_tf_serving_text_proto(
    rendered: Any, values_file: Path | None, chart_dir: Path
) -> None:
    """The server parses this file with TF Serving's own proto; so does this test."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(rendered.one("ConfigMap", "modelship")["data"]["models.config"], config)
    (model,) = config.model_config_list.config
    assert model.model_platform == "tensorflow"
    source = _values(values_file, chart_dir)["model"]["source"]
    if source["type"] == "objectStore":
        assert model.base_path == source["objectStore"]["url"].rstrip("/")
    else:
        assert model.base_path.startswith("/models/")


def test_model_sources(rendered: Any, values_file: Path | None, chart_dir: Path) -> None:
    v = _values(values_file, chart_dir)["model"]
    pod = _pod(rendered)
    server = _server(pod)
    kind = v["source"]["type"]
    models_mount = [m for m in server["volumeMounts"] if m["mountPath"] == "/models"]
    volumes = {vol["name"]: vol for vol in pod["volumes"]}
    config = rendered.one("ConfigMap", "modelship")["data"]["models.config"]
    if kind == "image":
        assert not models_mount
        assert "initContainers" not in pod
        assert f'base_path: "/models/{v["name"]}"' in config
    elif kind == "objectStore":
        assert not models_mount, "the objectStore source has no /models volume"
        assert "models" not in volumes
        assert "initContainers" not in pod, "the server pulls and polls the store itself"
        store = v["source"]["objectStore"]
        assert f'base_path: "{store["url"].rstrip("/")}"' in config
        assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": store["cache"]["sizeLimit"]}
        env = {e["name"]: e.get("value") for e in server["env"]}
        assert env["MODELSHIP_MODEL_CACHE_MAX_BYTES"] == store["cache"]["sizeLimit"]
        assert env["MODELSHIP_MODEL_BASE_PATH"] == store["url"].rstrip("/")
    elif kind == "pvc":
        (mount,) = models_mount
        assert mount["readOnly"] is True
        assert volumes["models"]["persistentVolumeClaim"] == {
            "claimName": v["source"]["pvc"]["claimName"],
            "readOnly": True,
        }
        assert mount.get("subPath", "") == v["source"]["pvc"]["subPath"]
    else:
        (init,) = pod["initContainers"]
        assert init["image"] == server["image"], "the init container reuses the server image (python)"
        assert init["command"] == ["python", "-m", "service.fetch_model"]
        assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"
        url = v["source"]["url"]
        assert init["args"] == [
            f"--url={url['url']}",
            f"--sha256={url['sha256'].lower()}",
            f"--dest=/models/{v['name']}/{url['version']}",
            f"--timeout={url['timeoutSeconds']}",
        ]
        assert volumes["models"]["emptyDir"]["sizeLimit"] == url["sizeLimit"]
        assert {m["mountPath"] for m in init["volumeMounts"]} == {"/models", "/tmp"}
        assert models_mount[0]["readOnly"] is True


# ---------------------------------------------------------------------------------------------
# The objectStore source

OBJECT_STORE = ["model.source.type=objectStore"]
# env the objectStore source sets whatever the store, with the chart's defaults
OBJECT_STORE_ENV = {
    "MODELSHIP_OBJECT_STORE_POLL_WAIT_SECONDS": "30",
    "MODELSHIP_MODEL_CACHE_DIR": "/var/cache/modelship",
    "MODELSHIP_MODEL_CACHE_MAX_BYTES": "4Gi",
}
STORE_ENV_NAMES = {
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "S3_VERIFY_SSL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "MODEL_BASE_PATH",
}


def _store_pod(render: Any, *sets: str) -> tuple[Obj, Obj, dict[str, Any], dict[str, Obj], dict[str, Obj]]:
    """(pod spec, server container, env name -> value, volumes by name, mounts by path)."""
    pod = _pod(render(set_=[*OBJECT_STORE, *sets]))
    server = _server(pod)
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in server["env"]}
    assert len(env) == len(server["env"]), "an env var is set twice"
    volumes = {vol["name"]: vol for vol in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    return pod, server, env, volumes, mounts


def _assert_cache_and_no_other_source(
    pod: Obj, env: dict[str, Any], volumes: dict[str, Obj], mounts: dict[str, Obj]
) -> None:
    assert "initContainers" not in pod, "no init container: the server pulls and polls the store"
    assert "/models" not in mounts
    assert "models" not in volumes
    cache = mounts["/var/cache/modelship"]
    assert cache["name"] == "model-cache"
    assert not cache.get("readOnly"), "the server writes downloaded versions there"
    assert volumes["model-cache"]["emptyDir"]["sizeLimit"] == env["MODELSHIP_MODEL_CACHE_MAX_BYTES"]


def test_object_store_s3_with_secret_and_endpoint(render: Any) -> None:
    pod, server, env, volumes, mounts = _store_pod(
        render,
        "model.source.objectStore.url=s3://ml-models/prod/linear/",
        "model.source.objectStore.endpoint=http://moto.storage.svc:5000",
        "model.source.objectStore.region=eu-west-1",
        "model.source.objectStore.verifyTLS=false",
        "model.source.objectStore.credentials.secretName=s3-creds",
        "model.source.objectStore.cache.sizeLimit=512Mi",
        "model.source.objectStore.pollSeconds=5",
        "model.source.objectStore.extraEnv[0].name=AWS_CA_BUNDLE",
        "model.source.objectStore.extraEnv[0].value=/etc/ssl/store-ca.pem",
    )
    default_env = {e["name"] for e in _server(_pod(render()))["env"]}
    assert {k: v for k, v in env.items() if k not in default_env} == {
        "MODELSHIP_MODEL_BASE_PATH": "s3://ml-models/prod/linear",
        "MODELSHIP_OBJECT_STORE_POLL_WAIT_SECONDS": "5",
        "MODELSHIP_MODEL_CACHE_DIR": "/var/cache/modelship",
        "MODELSHIP_MODEL_CACHE_MAX_BYTES": "512Mi",
        "AWS_ENDPOINT_URL": "http://moto.storage.svc:5000",
        "AWS_REGION": "eu-west-1",
        "S3_VERIFY_SSL": "0",
        "AWS_CA_BUNDLE": "/etc/ssl/store-ca.pem",
    }
    assert env["MODEL_NAME"] == "linear"
    assert "MODEL_BASE_PATH" not in env, "nothing is served from a local model root"
    assert default_env - set(env) == {"MODEL_BASE_PATH"}
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env
    # The Secret's keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) become env; no value in the pod spec.
    assert server["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    _assert_cache_and_no_other_source(pod, env, volumes, mounts)
    assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": "512Mi"}
    assert set(volumes) == {"tmp", "config", "model-cache"}
    assert "--model_config_file=/etc/modelship/config/models.config" in server["args"]


def test_object_store_gs_with_a_key_secret(render: Any) -> None:
    pod, server, env, volumes, mounts = _store_pod(
        render,
        "model.source.objectStore.url=gs://ml-models/linear",
        "model.source.objectStore.credentials.secretName=gcs-key",
        "model.source.objectStore.credentials.gcsKeyFile=sa.json",
    )
    assert env["MODELSHIP_MODEL_BASE_PATH"] == "gs://ml-models/linear"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/var/secrets/gcs/sa.json"
    assert OBJECT_STORE_ENV.items() <= env.items()
    assert not {"AWS_ENDPOINT_URL", "AWS_REGION", "S3_VERIFY_SSL", "MODEL_BASE_PATH"} & set(env)
    assert "envFrom" not in server, "a GCS key is a file, never env"
    assert mounts["/var/secrets/gcs"] == {
        "name": "gcs-credentials",
        "mountPath": "/var/secrets/gcs",
        "readOnly": True,
    }
    assert volumes["gcs-credentials"]["secret"] == {"secretName": "gcs-key", "defaultMode": 0o440}
    _assert_cache_and_no_other_source(pod, env, volumes, mounts)
    assert set(volumes) == {"tmp", "config", "model-cache", "gcs-credentials"}


@pytest.mark.parametrize(
    ("url", "annotation"),
    [
        ("s3://ml-models/linear", "eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/modelship"),
        ("gs://ml-models/linear", "iam.gke.io/gcp-service-account=modelship@proj.iam.gserviceaccount.com"),
    ],
    ids=["irsa", "gke-workload-identity"],
)
def test_object_store_service_account_identity(render: Any, url: str, annotation: str) -> None:
    key, value = annotation.split("=", 1)
    r = render(
        set_=[
            *OBJECT_STORE,
            f"model.source.objectStore.url={url}",
            "serviceAccount.annotations." + key.replace(".", "\\.") + "=" + value,
        ]
    )
    pod = _pod(r)
    server = _server(pod)
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MODELSHIP_MODEL_BASE_PATH"] == url
    assert OBJECT_STORE_ENV.items() <= env.items()
    assert not (STORE_ENV_NAMES & set(env)), "no credentials: the ServiceAccount's identity is used"
    assert "envFrom" not in server
    assert not any("secret" in vol for vol in pod["volumes"]), "no Secret is referenced"
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "config", "model-cache"}
    sa = r.one("ServiceAccount")
    assert sa["metadata"]["annotations"] == {key: value}
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False, "IRSA/Pod Identity project their own token"


def test_object_store_renders_valid_objects(render: Any, k8s_validator: Any) -> None:
    for sets in (
        ["model.source.objectStore.url=s3://b/m", "model.source.objectStore.credentials.secretName=s"],
        ["model.source.objectStore.url=gs://b/m", "model.source.objectStore.credentials.secretName=s"],
        ["model.source.objectStore.url=gs://b"],
    ):
        r = render(
            set_=[
                *OBJECT_STORE,
                *sets,
                "networkPolicy.enabled=true",
                "networkPolicy.allowExternalEgress=false",
            ]
        )
        problems = {o["kind"]: k8s_validator.errors(o) for o in r.objects}
        assert not any(problems.values()), problems


@pytest.mark.parametrize(
    ("endpoint", "ports"),
    [
        ("", {53, 80, 443}),
        ("http://moto.storage.svc:5000", {53, 80, 443, 5000}),
        ("https://minio.example.com:443/", {53, 80, 443}),
        ("https://minio.example.com", {53, 80, 443}),
    ],
)
def test_object_store_keeps_egress_to_the_store(render: Any, endpoint: str, ports: set[int]) -> None:
    sets = [*OBJECT_STORE, "model.source.objectStore.url=s3://b/m", "networkPolicy.enabled=true"]
    sets.append(f"model.source.objectStore.endpoint={endpoint}")
    open_egress = render(set_=sets).one("NetworkPolicy")["spec"]
    assert open_egress["policyTypes"] == ["Ingress"]
    locked = render(set_=[*sets, "networkPolicy.allowExternalEgress=false"]).one("NetworkPolicy")["spec"]
    assert locked["policyTypes"] == ["Ingress", "Egress"]
    assert {p["port"] for rule in locked["egress"] for p in rule["ports"]} == ports
    assert all(p["protocol"] in ("TCP", "UDP") for rule in locked["egress"] for p in rule["ports"])


def test_object_store_url_change_rolls_the_pods(render: Any) -> None:
    def checksum(url: str) -> str:
        r = render(set_=[*OBJECT_STORE, f"model.source.objectStore.url={url}"])
        annotations: dict[str, str] = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"]

    assert checksum("s3://b/a") != checksum("s3://b/b")


def test_helm_test_pod_runs_a_prediction(rendered: Any, values_file: Path | None, chart_dir: Path) -> None:
    (pod,) = rendered.maybe("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "before-hook-creation" in pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    (c,) = spec["containers"]
    assert c["image"] == _server(_pod(rendered))["image"]
    assert c["command"] == ["python", "-c"]
    script = c["args"][0]
    compile(script, "helm_test.py", "exec")  # valid Python
    assert ":predict" in script
    assert "grpc_health" in script
    env = {e["name"]: e.get("value") for e in c["env"]}
    svc = rendered.one("Service")["metadata"]["name"]
    scheme = "https" if _values(values_file, chart_dir)["tls"]["enabled"] else "http"
    assert env["MODELSHIP_TEST_REST_URL"] == f"{scheme}://{svc}.serving.svc:8501"
    assert env["MODELSHIP_TEST_GRPC_TARGET"] == f"{svc}.serving.svc:8500"
    assert json.loads(env["MODELSHIP_TEST_REQUEST"])["instances"]


# ---------------------------------------------------------------------------------------------
# Optional objects


def test_optional_objects_follow_their_toggles(
    rendered: Any, values_file: Path | None, chart_dir: Path
) -> None:
    v = _values(values_file, chart_dir)
    toggles = {
        "NetworkPolicy": v["networkPolicy"]["enabled"],
        "ServiceMonitor": v["metrics"]["serviceMonitor"]["enabled"],
        "Ingress": v["ingress"]["enabled"],
        "Secret": v["auth"]["enabled"] and not v["auth"]["existingSecret"],
        "HorizontalPodAutoscaler": v["autoscaling"]["enabled"],
    }
    for kind, on in toggles.items():
        assert len(rendered.maybe(kind)) == int(bool(on)), kind
    tls = v["tls"]
    certificates = 0
    if tls["enabled"] and tls["certManager"]["enabled"]:
        certificates = 1 if tls["clientAuth"] == "none" else 2
    assert len(rendered.maybe("Certificate")) == certificates
    dashboards = [o for o in rendered.maybe("ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]
    assert len(dashboards) == int(v["grafanaDashboard"]["enabled"])
    traffic = [o for o in rendered.maybe("ConfigMap") if o["metadata"]["name"].endswith("-traffic")]
    assert len(traffic) == int(v["traffic"]["enabled"] and not v["traffic"]["existingConfigMap"])
    for cm in traffic:  # the server's own parser accepts the file
        parse(cm["data"]["traffic.json"], "traffic.json")


def test_all_optional_objects(render: Any, chart_dir: Path) -> None:
    r = render(chart_dir / "ci" / "all-optional-on-values.yaml")
    selector = r.one("Deployment")["spec"]["selector"]["matchLabels"]
    svc = r.one("Service")
    # NetworkPolicy: both ports, only labelled clients + the extra peer, DNS-only egress.
    np = r.one("NetworkPolicy")["spec"]
    assert np["podSelector"]["matchLabels"] == selector
    assert {p["port"] for p in np["ingress"][0]["ports"]} == {"http", "grpc"}
    assert np["ingress"][0]["from"][0] == {"podSelector": {"matchLabels": {"modelship-client": "true"}}}
    assert np["policyTypes"] == ["Ingress", "Egress"]
    assert {p["port"] for rule in np["egress"] for p in rule["ports"]} == {53}
    # ServiceMonitor scrapes /metrics on the Service's http port with the auth token.
    sm = r.one("ServiceMonitor")["spec"]
    assert sm["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["endpoints"]
    assert ep["port"] == "http"
    assert ep["path"] == "/metrics"
    assert ep["authorization"]["credentials"] == {"name": r.one("Secret")["metadata"]["name"], "key": "token"}
    # Ingress routes to the Service's http port.
    rule = r.one("Ingress")["spec"]["rules"][0]
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": svc["metadata"]["name"],
        "port": {"name": "http"},
    }
    # Auth: token as a file, env points at it; the checksum of the Secret rolls pods.
    pod = r.one("Deployment")["spec"]["template"]
    server = _server(pod["spec"])
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MODELSHIP_AUTH_TOKEN_FILE"] == "/etc/modelship/auth/token"
    auth_vol = next(v for v in pod["spec"]["volumes"] if v["name"] == "auth")
    assert auth_vol["secret"]["secretName"] == r.one("Secret")["metadata"]["name"]
    assert "checksum/auth" in pod["metadata"]["annotations"]
    # Batching parameters are mounted and passed.
    assert "--enable_batching=true" in server["args"]
    assert "--batching_parameters_file=/etc/modelship/config/batching.config" in server["args"]
    assert "max_batch_size" in r.one("ConfigMap", "modelship")["data"]["batching.config"]
    # Digest wins over the tag.
    assert server["image"] == "modelship@sha256:" + "0" * 64


def test_grafana_dashboard_queries_the_server_metrics(render: Any, chart_dir: Path) -> None:
    r = render(set_=["grafanaDashboard.enabled=true"])
    cm = r.one("ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["modelship.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for word in ("request rate", "latency", "error", "version"):
        assert word in titles
    joined = "\n".join(exprs)
    assert "rate(modelship_requests_total" in joined
    assert "histogram_quantile(0.50, " in joined
    assert "histogram_quantile(0.99, " in joined
    assert "modelship_request_duration_seconds_bucket" in joined
    assert "modelship_model_version_state" in joined
    assert 'code!~"2..|OK"' in joined
    for expr in exprs:  # every label used in a selector or by() exists on the metric it reads
        for labels in re.findall(r"by \(([^)]*)\)", expr):
            known = {"le", "model", "version", "api", "code", "transport", "state"}
            assert set(re.split(r",\s*", labels)) <= known


# ---------------------------------------------------------------------------------------------
# Behaviour of values


def test_checksum_changes_with_the_model_config(render: Any) -> None:
    def checksum(*sets: str) -> str:
        r = render(set_=list(sets))
        annotations: dict[str, str] = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"]

    base = checksum()
    assert checksum() == base, "rendering is deterministic"
    assert checksum("model.versionPolicy.latestNumVersions=2") != base
    assert checksum("model.versionLabels.stable=1") != base
    assert checksum("replicaCount=5") == base, "unrelated values do not roll pods"


def test_fullname_is_truncated_to_63_chars(render: Any) -> None:
    long_release = "r" * 53  # helm's longest release name
    r = render(release=long_release, set_=["nameOverride=" + "n" * 20])
    fullname = r.one("Deployment")["metadata"]["name"]
    assert fullname == f"{long_release}-{'n' * 20}"[:63]
    assert len(fullname) == 63
    for kind in ("Service", "ServiceAccount", "ConfigMap", "PodDisruptionBudget"):
        assert r.one(kind)["metadata"]["name"] == fullname
    for obj in r.objects:
        for key, value in obj["metadata"]["labels"].items():
            assert len(key.split("/")[-1]) <= 63, key
            assert len(value) <= 63, value
    assert render(set_=["fullnameOverride=svc"]).one("Deployment")["metadata"]["name"] == "svc"
    assert render(release="prod").one("Deployment")["metadata"]["name"] == "prod-modelship"


def test_network_policy_client_label_is_a_valid_label_key(render: Any) -> None:
    r = render(release="r" * 53, set_=["networkPolicy.enabled=true", "networkPolicy.allowExternal=false"])
    (key,) = r.one("NetworkPolicy")["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert len(key) <= 63
    assert key.endswith("-client")


def test_image_tag_defaults_to_app_version(render: Any, chart_dir: Path) -> None:
    app_version = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["appVersion"]
    server = _server(render().one("Deployment")["spec"]["template"]["spec"])
    assert server["image"] == f"modelship:{app_version}"
    assert server["imagePullPolicy"] == "IfNotPresent"
    server = _server(
        render(set_=["image.repository=reg.example/ms", "image.tag=ci-1"]).one("Deployment")["spec"][
            "template"
        ]["spec"]
    )
    assert server["image"] == "reg.example/ms:ci-1"


def test_notes_print_port_forward_and_curl(notes: Callable[..., str]) -> None:
    notes_for = notes
    text = notes_for()
    assert "kubectl --namespace serving port-forward service/modelship 8501:8501 8500:8500" in text
    assert "curl -s localhost:8501/v1/models/linear:predict -d '{\"instances\": [[1.0, 2.0, 3.0]]}'" in text
    assert "kubectl --namespace serving rollout status deployment/modelship" in text
    assert "helm test modelship --namespace serving --logs" in text
    with_auth = notes_for("auth.enabled=true", "auth.existingSecret=tok", "model.versionLabels.canary=2")
    assert "get secret tok -o jsonpath='{.data.token}' | base64 -d" in with_auth
    header = '-H "Authorization: Bearer $TOKEN"'
    assert f"{header} localhost:8501/v1/models/linear/labels/canary:predict" in with_auth
    assert "python -m model export" not in text, "the publish workflow is for the objectStore source"

    store = notes_for(
        "model.source.type=objectStore",
        "model.source.objectStore.url=s3://ml-models/prod/linear",
        "model.source.objectStore.endpoint=http://moto.storage.svc:5000",
        "model.source.objectStore.pollSeconds=10",
    )
    assert "from s3://ml-models/prod/linear (objectStore source)" in store
    assert "every 10 s" in store
    assert "manifest.json last" in store
    export = (
        "AWS_ENDPOINT_URL=http://moto.storage.svc:5000 python -m model export --run-dir runs/next "
        "--base-path s3://ml-models/prod --name linear"
    )
    assert export in store
    assert "while sleep 5; do curl -s localhost:8501/v1/models/linear; echo; done" in store
    assert "RESTARTS stays 0" in store
    assert store.index("port-forward") < store.index(export) < store.index("while sleep 5")
    gs_auth = notes_for(
        "model.source.type=objectStore",
        "model.source.objectStore.url=gs://ml-models/m/other",
        "auth.enabled=true",
        "auth.existingSecret=tok",
    )
    assert "python -m model export --run-dir runs/next --base-path gs://ml-models/m --name other" in gs_auth
    assert "AWS_ENDPOINT_URL" not in gs_auth
    assert f"curl -s {header} localhost:8501/v1/models/linear; echo; done" in gs_auth
