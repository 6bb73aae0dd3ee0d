"""Fixtures for the Helm chart checks: a real helm built from source, rendering, offline API schemas.

helm comes from ``scripts/tools/helm`` (pinned, built through the Go module proxy, cached outside
the repo) and the Kubernetes/ServiceMonitor schemas from ``scripts/tools/k8s-schemas``. Neither is
ever skipped: if a tool cannot be obtained the fixture fails, so a missing tool is a red test.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelship"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# The Kubernetes release the chart is rendered for and validated against.
KUBE_VERSION = "1.33.13"
RELEASE = "modelship"
NAMESPACE = "serving"

Obj = dict[str, Any]


def _tool(script: str) -> str:
    """Run a scripts/tools helper and return the path it prints; fail the test run if it fails."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "tools" / script)], capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(f"scripts/tools/{script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of the pinned helm binary."""
    return _tool("helm")


@dataclass
class Rendered:
    """The result of one ``helm template`` run."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def objects(self) -> list[Obj]:
        """Every non-empty YAML document of the output."""
        assert self.returncode == 0, self.stderr
        return [d for d in yaml.safe_load_all(self.stdout) if d]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def one(self, kind: str, name_suffix: str = "") -> Obj:
        """The single object of ``kind`` (whose name ends with ``name_suffix``)."""
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
        names = [o["metadata"]["name"] for o in found]
        assert len(found) == 1, f"expected one {kind}*{name_suffix}, found {names}"
        return found[0]

    def maybe(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]


RenderFn = Callable[..., Rendered]


@pytest.fixture(scope="session")
def render(helm: str) -> RenderFn:
    """Return ``render(*values_files, chart=CHART, set_=None, release=RELEASE)`` -> Rendered."""

    def _render(
        *values_files: Path,
        chart: Path = CHART,
        set_: Sequence[str] = (),
        release: str = RELEASE,
        extra: Sequence[str] = (),
    ) -> Rendered:
        cmd = [
            helm,
            "template",
            release,
            str(chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
        ]
        for f in values_files:
            cmd += ["-f", str(f)]
        for s in set_:
            cmd += ["--set", s]
        cmd += list(extra)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        return Rendered(proc.returncode, proc.stdout, proc.stderr)

    return _render


def values_id(path: Path | None) -> str:
    return "default" if path is None else path.name.removesuffix("-values.yaml")


# ---------------------------------------------------------------------------------------------
# Offline OpenAPI validation


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    """Directory with swagger.json (Kubernetes KUBE_VERSION) and the ServiceMonitor CRD."""
    path = Path(_tool("k8s-schemas"))
    assert (path / "swagger.json").is_file()
    return path


def _strict(node: Any) -> None:
    """Close every object schema that lists properties (kubeconform's strict mode): typos fail."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


_SECRET_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
_GO_DURATION = {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$"}
# cert-manager's key usages (KeyUsage in cert-manager.io/v1).
_CERT_MANAGER_USAGES = [
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
]
# cert-manager's Certificate has no schema among the offline ones (scripts/tools/k8s-schemas fetches
# Kubernetes and the ServiceMonitor CRD only), so the chart's Certificates are checked against this
# hand-written, closed subset of cert-manager.io/v1 Certificate: the fields the chart renders (a
# misspelt or unknown field fails, as with the real schemas), their types and enums, and the
# required secretName and issuerRef.name. It is not cert-manager's CRD: fields the chart does not
# use are simply not listed.
CERTIFICATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"enum": ["cert-manager.io/v1"]},
        "kind": {"enum": ["Certificate"]},
        "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "properties": {
                "secretName": _SECRET_NAME,
                "commonName": {"type": "string", "minLength": 1, "maxLength": 64},
                "dnsNames": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                "usages": {"type": "array", "items": {"enum": _CERT_MANAGER_USAGES}},
                "duration": _GO_DURATION,
                "renewBefore": _GO_DURATION,
                "privateKey": {
                    "type": "object",
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "encoding": {"enum": ["PKCS1", "PKCS8"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    },
                },
                "issuerRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": _SECRET_NAME,
                        "kind": {"type": "string"},
                        "group": {"type": "string"},
                    },
                },
            },
        },
    },
}


class K8sValidator:
    """Validate rendered objects against the Kubernetes swagger 2.0 definitions and CRD schemas
    (plus ``extra``: hand-written schemas of kinds without one, keyed by (apiVersion, kind))."""

    def __init__(
        self, swagger: Path, crds: Iterable[Path], extra: dict[tuple[str, str], dict[str, Any]] | None = None
    ) -> None:
        definitions: dict[str, Any] = json.loads(swagger.read_text())["definitions"]
        self.kinds: dict[tuple[str, str], dict[str, Any]] = {}
        for name, definition in definitions.items():
            for gvk in definition.get("x-kubernetes-group-version-kind", []):
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                self.kinds[(api_version, gvk["kind"])] = {"$ref": f"#/definitions/{name}"}
        # Types whose JSON form is wider than their swagger "type": string.
        definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
        definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number"]}
        _strict(definitions)
        self.definitions = definitions
        for crd_path in crds:
            crd = yaml.safe_load(crd_path.read_text())
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                _strict(schema)
                props = schema.setdefault("properties", {})
                props["metadata"] = {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
                self.kinds[(f"{group}/{version['name']}", kind)] = schema
        for key, schema in (extra or {}).items():
            schema = copy.deepcopy(schema)
            _strict(schema)
            self.kinds[key] = schema
        self._validators: dict[tuple[str, str], jsonschema.Draft4Validator] = {}

    def errors(self, obj: Obj) -> list[str]:
        """Every schema violation of ``obj`` as 'path: message' strings (empty when valid)."""
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        if key not in self.kinds:
            return [f"unknown apiVersion/kind {key} for Kubernetes {KUBE_VERSION}"]
        if key not in self._validators:
            root = dict(self.kinds[key], definitions=self.definitions)
            self._validators[key] = jsonschema.Draft4Validator(root)
        found = sorted(self._validators[key].iter_errors(obj), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in found]


@pytest.fixture(scope="session")
def k8s_validator(schemas_dir: Path) -> K8sValidator:
    crds = [schemas_dir / "monitoring.coreos.com_servicemonitors.yaml"]
    certificate = {("cert-manager.io/v1", "Certificate"): CERTIFICATE_SCHEMA}
    return K8sValidator(schemas_dir / "swagger.json", crds, extra=certificate)


# ---------------------------------------------------------------------------------------------
# Parametrisation and paths for the test modules


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``values_file`` runs a test for the default values (None) and for every ci/*-values.yaml."""
    if "values_file" in metafunc.fixturenames:
        assert CI_VALUES, "charts/modelship/ci/*-values.yaml is empty"
        params: list[Path | None] = [None, *CI_VALUES]
        metafunc.parametrize("values_file", params, ids=[values_id(p) for p in params])


@pytest.fixture
def rendered(render: RenderFn, values_file: Path | None) -> Rendered:
    """The chart rendered with ``values_file`` (or the defaults)."""
    result = render(*([values_file] if values_file else []))
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A scratch copy of the chart for tests that add probe templates."""
    dest = tmp_path / "modelship"
    shutil.copytree(CHART, dest)
    return dest


@pytest.fixture
def notes(chart_copy: Path, render: RenderFn) -> Callable[..., str]:
    """``notes(*sets)``: NOTES.txt as rendered with ``--set sets`` (through a probe template, since
    ``helm template`` does not print notes)."""
    text = (chart_copy / "templates" / "NOTES.txt").read_text()
    (chart_copy / "templates" / "_notes_probe.tpl").write_text(
        '{{- define "notesprobe" -}}\n' + text + "\n{{- end }}\n"
    )
    (chart_copy / "templates" / "notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-probe\n"
        'data:\n  notes: {{ include "notesprobe" . | quote }}\n'
    )

    def notes_for(*sets: str) -> str:
        rendered: str = render(chart=chart_copy, set_=list(sets)).one("ConfigMap", "notes-probe")["data"][
            "notes"
        ]
        return rendered

    return notes_for


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    return CHART


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO
