"""Bad values are rejected with a clear message (values.schema.json and the validateValues helper),
and every value is documented in values.yaml."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.conftest import CHART

pytestmark = pytest.mark.chart

# (--set arguments, words the error must contain)
SCHEMA_REJECTS = [
    (["replicaCount=3", "replicaz=3"], ["additional properties 'replicaz' not allowed"]),
    (["image.tags=v1"], ["/image", "additional properties 'tags' not allowed"]),
    (["replicaCount=three"], ["/replicaCount", "got string, want integer"]),
    (["image.pullPolicy=Sometimes"], ["/image/pullPolicy", "IfNotPresent"]),
    (["model.source.type=s3"], ["/model/source/type", "image", "pvc", "url", "objectStore"]),
    (["model.source.url.sha256=not-hex"], ["/model/source/url/sha256", "does not match pattern"]),
    (["model.source.url.url=ftp://x/m.tgz"], ["/model/source/url/url", "does not match pattern"]),
    (["server.restPort=70000"], ["/server/restPort", "maximum"]),
    (["server.grpcServer=grpc.aio"], ["/server/grpcServer", "grpcio", "modelship"]),
    (["image.flavor=tiny"], ["/image/flavor", "full", "slim"]),
    (["rollout.maxSurge=lots"], ["/rollout/maxSurge"]),
    (["service.grpcAppProtocol=h2"], ["/service/grpcAppProtocol", "kubernetes.io/h2c"]),
    (["model.versionLabels.stable=one"], ["/model/versionLabels/stable", "want integer"]),
    (["autoscaling.minReplicas=0"], ["/autoscaling/minReplicas", "minimum"]),
    (["probes.startup.enabled=yes"], ["/probes/startup/enabled", "want boolean"]),
    # The url source without its digest: rejected by the schema, so `helm lint` catches it too.
    (
        ["model.source.type=url", "model.source.url.url=https://example.com/m.tar.gz"],
        ["/model/source/url/sha256", "'' does not match pattern '^[0-9a-fA-F]{64}$'"],
    ),
    (
        ["model.source.type=url", "model.source.url.sha256=" + "a" * 64],
        ["/model/source/url/url", "https?://"],
    ),
    (["model.source.type=pvc"], ["/model/source/pvc/claimName", "minLength"]),
    # The objectStore source: an s3:// or gs:// base path, a positive poll interval, sane values.
    (["model.source.type=objectStore"], ["/model/source/objectStore/url", "(s3|gs)://"]),
    (
        ["model.source.type=objectStore", "model.source.objectStore.url=http://bucket/models/linear"],
        ["/model/source/objectStore/url", "does not match pattern"],
    ),
    (
        ["model.source.type=objectStore", "model.source.objectStore.url=s3:/bucket/linear"],
        ["/model/source/objectStore/url", "does not match pattern"],
    ),
    (
        [
            "model.source.type=objectStore",
            "model.source.objectStore.url=s3://b/m",
            "model.source.objectStore.pollSeconds=0",
        ],
        ["/model/source/objectStore/pollSeconds", "exclusiveMinimum"],
    ),
    (
        [
            "model.source.type=objectStore",
            "model.source.objectStore.url=s3://b/m",
            "model.source.objectStore.pollSeconds=-5",
        ],
        ["/model/source/objectStore/pollSeconds", "exclusiveMinimum"],
    ),
    (
        ["model.source.objectStore.pollSeconds=often"],
        ["/model/source/objectStore/pollSeconds", "want number"],
    ),
    (
        ["model.source.objectStore.endpoint=moto:5000"],
        ["/model/source/objectStore/endpoint", "does not match pattern"],
    ),
    (
        ["model.source.objectStore.cache.sizeLimit=lots"],
        ["/model/source/objectStore/cache/sizeLimit", "does not match"],
    ),
    (
        ["model.source.objectStore.cache.sizeLimit=500m"],
        ["/model/source/objectStore/cache/sizeLimit", "does not match"],
    ),
    (["model.source.objectStore.verifyTLS=no"], ["/model/source/objectStore/verifyTLS", "want boolean"]),
    (
        ["model.source.objectStore.credentials.gcsKeyFile=a/b.json"],
        ["/model/source/objectStore/credentials/gcsKeyFile"],
    ),
    (
        ["model.source.objectStore.credentials.gcsKeyFile="],
        ["/model/source/objectStore/credentials/gcsKeyFile"],
    ),
    (
        ["model.source.objectStore.bucket=b"],
        ["/model/source/objectStore", "additional properties 'bucket' not allowed"],
    ),
    (
        ["model.source.objectStore.cache.dir=/x"],
        ["/model/source/objectStore/cache", "additional properties 'dir'"],
    ),
    # tls.*
    (["tls.enable=true"], ["/tls", "additional properties 'enable' not allowed"]),
    (["tls.clientAuth=required"], ["/tls/clientAuth", "none", "optional", "require"]),
    (["tls.enabled=yes"], ["/tls/enabled", "want boolean"]),
    (["tls.secretName=My_Secret"], ["/tls/secretName", "does not match pattern"]),
    (["tls.serverName=https://x"], ["/tls/serverName", "does not match pattern"]),
    (["tls.pollSeconds=-1"], ["/tls/pollSeconds", "minimum"]),
    (["tls.clientCA.key=a/b"], ["/tls/clientCA/key", "does not match pattern"]),
    (["tls.clientCA.name=x"], ["/tls/clientCA", "additional properties 'name' not allowed"]),
    (["tls.certManager.issuer=x"], ["/tls/certManager", "additional properties 'issuer' not allowed"]),
    (["tls.certManager.issuerRef.namespace=x"], ["/tls/certManager/issuerRef", "'namespace' not allowed"]),
    (["tls.certManager.duration=90d"], ["/tls/certManager/duration", "does not match pattern"]),
    (["tls.certManager.privateKey.algorithm=DSA"], ["/tls/certManager/privateKey/algorithm", "ECDSA"]),
    (["tls.certManager.privateKey.rotationPolicy=Sometimes"], ["/tls/certManager/privateKey/rotationPolicy"]),
    (["tls.certManager.extraDnsNames[0]=Bad Name"], ["/tls/certManager/extraDnsNames/0", "does not match"]),
]

GS = ["model.source.type=objectStore", "model.source.objectStore.url=gs://ml-models/linear"]
TLS_SECRET = ["tls.enabled=true", "tls.secretName=modelship-tls"]
TLS_CM = ["tls.enabled=true", "tls.certManager.enabled=true", "tls.certManager.issuerRef.name=ca"]

# (--set arguments, words the VALUES VALIDATION message must contain)
RULE_REJECTS = [
    (["model.versionPolicy.type=specific"], ["model.versionPolicy.specificVersions", "at least one version"]),
    (
        [
            "model.versionPolicy.type=specific",
            "model.versionPolicy.specificVersions={1}",
            "model.versionLabels.canary=2",
        ],
        ["model.versionLabels.canary", "does not serve"],
    ),
    (["rollout.maxSurge=0", "rollout.maxUnavailable=0%"], ["cannot both be 0"]),
    (
        ["autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"],
        ["minReplicas (5) must not exceed maxReplicas (3)"],
    ),
    (["autoscaling.enabled=true", "autoscaling.targetCPUUtilizationPercentage=0"], ["HPA needs a metric"]),
    (["pdb.minAvailable=2"], ["minAvailable (2) must be lower than replicaCount (2)"]),
    (
        ["autoscaling.enabled=true", "autoscaling.minReplicas=2", "pdb.minAvailable=3"],
        ["lower than autoscaling.minReplicas (2)"],
    ),
    (["pdb.minAvailable=1", "pdb.maxUnavailable=1"], ["not both"]),
    (["pdb.maxUnavailable=0"], ["maxUnavailable 0 blocks every voluntary eviction"]),
    (["pdb.minAvailable=100%"], ["minAvailable 100% blocks"]),
    (["terminationGracePeriodSeconds=25"], ["terminationGracePeriodSeconds (25) must exceed"]),
    (["auth.enabled=true"], ["auth.existingSecret or auth.token"]),
    (["server.grpcPort=8501"], ["REST and gRPC ports must differ"]),
    (
        [*GS, "model.source.objectStore.endpoint=http://fake-gcs.svc:4443"],
        ["model.source.objectStore.endpoint", "only applies to s3:// URLs", "STORAGE_EMULATOR_HOST"],
    ),
    (
        [*GS, "model.source.objectStore.region=eu-west-1"],
        ["model.source.objectStore.region", "only applies to s3://"],
    ),
    (
        [*GS, "model.source.objectStore.verifyTLS=false"],
        ["model.source.objectStore.verifyTLS", "S3_VERIFY_SSL"],
    ),
    # tls.*: a certificate source, an issuer, a key size that fits, a client certificate with mTLS
    (["tls.enabled=true"], ["modelship: tls.secretName", "existing kubernetes.io/tls", "tls.certManager"]),
    (
        ["tls.enabled=true", "tls.certManager.enabled=true"],
        ["modelship: tls.certManager.issuerRef.name", "Issuer or ClusterIssuer"],
    ),
    (
        [*TLS_CM, "tls.certManager.privateKey.algorithm=RSA"],
        ["modelship: tls.certManager.privateKey.size", "RSA key is 2048, 4096, 8192 bits (got 256)"],
    ),
    (
        [*TLS_SECRET, "tls.clientAuth=require"],
        ["modelship: tls.clientSecretName", "helmTest.enabled connect(s)", "enable tls.certManager"],
    ),
    (
        [*TLS_SECRET, "tls.clientAuth=require", "helmTest.enabled=false", "operator.enabled=true"],
        ["modelship: tls.clientSecretName", "operator.enabled connect(s)"],
    ),
    (
        [
            *TLS_SECRET,
            "tls.clientAuth=require",
            "helmTest.enabled=false",
            "metrics.serviceMonitor.enabled=true",
        ],
        ["modelship: tls.clientSecretName", "metrics.serviceMonitor.enabled connect(s)"],
    ),
    (
        [*TLS_CM, "tls.clientAuth=require", "operator.enabled=true", "operator.podAccess=proxy"],
        ["modelship: operator.podAccess", "operator.podAccess=direct", "pod proxy"],
    ),
]


def _ids(cases: list[tuple[list[str], list[str]]]) -> list[str]:
    return [",".join(sets) for sets, _ in cases]


@pytest.mark.parametrize(("sets", "words"), SCHEMA_REJECTS, ids=_ids(SCHEMA_REJECTS))
def test_schema_rejects(render: Any, sets: list[str], words: list[str]) -> None:
    result = render(set_=sets)
    assert result.returncode != 0, f"accepted: {sets}"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize(("sets", "words"), RULE_REJECTS, ids=_ids(RULE_REJECTS))
def test_cross_field_rules_reject(render: Any, sets: list[str], words: list[str]) -> None:
    result = render(set_=sets)
    assert result.returncode != 0, f"accepted: {sets}"
    assert "VALUES VALIDATION" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_all_broken_rules_are_reported_together(render: Any) -> None:
    result = render(set_=["auth.enabled=true", "pdb.maxUnavailable=0", "terminationGracePeriodSeconds=5"])
    assert result.returncode != 0
    assert len(re.findall(r"^modelship: ", result.stderr, re.MULTILINE)) == 3, result.stderr


def test_lint_reports_the_schema_error(helm: str, chart_dir: Path, tmp_path: Path) -> None:
    import subprocess

    bad = tmp_path / "bad-values.yaml"
    bad.write_text("model:\n  source:\n    type: url\n    url:\n      url: https://e.x/m.tgz\n")
    proc = subprocess.run(
        [helm, "lint", "--strict", str(chart_dir), "-f", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "at '/model/source/url/sha256'" in proc.stdout + proc.stderr


def test_schema_is_draft07_and_closed(chart_dir: Path) -> None:
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict) and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or '<root>'} is not closed"
            for key, sub in node["properties"].items():
                described = "description" in sub or "$ref" in sub or "oneOf" in sub
                assert described, f"{path}.{key} has no description"
                walk(sub, f"{path}.{key}".lstrip("."))
        if isinstance(node, dict) and isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]")

    walk(schema, "")


def _schema_paths(node: dict[str, Any], prefix: str = "") -> dict[str, bool]:
    """Dotted path -> is-a-group of every declared property (not into free-form maps or list items)."""
    out: dict[str, bool] = {}
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        out[path] = "properties" in sub
        out.update(_schema_paths(sub, path + "."))
    return out


def test_every_value_is_documented(chart_dir: Path) -> None:
    """Each leaf value has a `# -- <dotted.path>` comment in values.yaml, and each top-level key
    appears in the chart README."""
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    values_text = (chart_dir / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*# -- ([A-Za-z0-9_.]+)", values_text, re.MULTILINE))
    leaves = [p for p, group in _schema_paths(schema).items() if not group]
    undocumented = [p for p in leaves if p not in documented]
    assert not undocumented, f"values without a '# -- <path>' comment: {undocumented}"
    assert documented <= set(_schema_paths(schema)), "comments naming values that do not exist"
    readme = (chart_dir / "README.md").read_text()
    for key in schema["properties"]:
        assert f"`{key}" in readme, f"README does not mention {key}"


def test_defaults_are_exactly_the_declared_values(chart_dir: Path) -> None:
    """values.yaml sets every declared value and nothing else (free-form maps aside)."""
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    declared = _schema_paths(schema)
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())

    def keys(node: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for k, v in node.items():
            out.add(prefix + k)
            if declared.get(prefix + k) and isinstance(v, dict):
                out |= keys(v, f"{prefix}{k}.")
        return out

    assert keys(values) == set(declared), keys(values) ^ set(declared)


@pytest.mark.parametrize(
    ("sets", "image", "litert"),
    [
        ([], "modelship:{app}", False),
        (["image.flavor=slim"], "modelship:{app}-slim", True),
        (["image.flavor=slim", "image.tag=custom"], "modelship:custom", True),
        (["image.flavor=slim", "image.digest=sha256:" + "a" * 64], "modelship@sha256:" + "a" * 64, True),
    ],
)
def test_image_flavor_picks_the_tag_and_the_runtime(
    render: Any, sets: list[str], image: str, litert: bool
) -> None:
    app = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    (container,) = render(set_=sets).one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image.format(app=app)
    assert ("--runtime=litert" in container["args"]) is litert
    # The flavor's measured resource defaults (values.yaml `resources: {}`).
    want = {"requests": {"cpu": "250m", "memory": "160Mi"}, "limits": {"cpu": "1", "memory": "384Mi"}}
    if not litert:
        want = {"requests": {"cpu": "250m", "memory": "768Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert container["resources"] == want


def test_explicit_resources_win_over_the_flavor_defaults(render: Any) -> None:
    sets = ["image.flavor=slim", "resources.requests.cpu=1", "resources.requests.memory=200Mi"]
    (container,) = render(set_=sets).one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": 1, "memory": "200Mi"}}
