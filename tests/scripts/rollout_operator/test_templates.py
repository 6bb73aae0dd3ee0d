"""The model overlay and the canary Deployment, on the chart's real Deployment.

Unit tests use k8s/modelship.yaml (the chart rendered with its defaults: image source); the
``chart`` tests render the chart with helm for the image and url sources and validate every
manifest the operator would send against the Kubernetes 1.33 OpenAPI schema (strict).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout_operator.names import (
    ANN_MODEL_REVISION,
    ANN_MODEL_SOURCE,
    ANN_MODEL_VERSION,
    GATE_CONDITION,
    LABEL_ROLLOUT,
    LABEL_TRACK,
    OVERLAY_NAME,
    canary_name,
)
from rollout_operator.spec import ImageSource, ModelSpec, UrlSource
from rollout_operator.templates import (
    TARGET_MOUNT,
    OverlayError,
    canary_deployment,
    merge_overlay,
    overlay,
    strip_overlay,
    target_apply,
)
from rollout_operator.views import canary_view, deployment_complete, pod_view, target_view

REPO = Path(__file__).resolve().parents[3]
URL_MODEL = ModelSpec(version=2, source=UrlSource("http://models.local/linear-2.tar.gz", "a" * 64))
IMAGE_MODEL = ModelSpec(version=3, source=ImageSource("modelship-models:3"))
ROLLOUT = {"metadata": {"name": "linear", "namespace": "default", "uid": "1234"}}


def chart_deployment() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((REPO / "k8s" / "modelship.yaml").read_text()) if d]
    return next(d for d in docs if d["kind"] == "Deployment")


def test_image_source_chart_gets_its_own_volume_over_the_model_root() -> None:
    dep = chart_deployment()
    template = dep["spec"]["template"]
    ov = overlay(template, "server", URL_MODEL, URL_MODEL.revision())
    init = ov["spec"]["initContainers"][0]
    assert init["name"] == OVERLAY_NAME
    assert init["image"] == template["spec"]["containers"][0]["image"]  # the server image fetches
    assert init["command"] == ["python", "-m", "service.fetch_model"]
    assert f"--dest={TARGET_MOUNT}/linear/2" in init["args"]
    assert f"--sha256={'a' * 64}" in init["args"]
    assert init["securityContext"] == template["spec"]["containers"][0]["securityContext"]
    assert init["volumeMounts"] == [{"name": OVERLAY_NAME, "mountPath": TARGET_MOUNT}]
    assert ov["spec"]["volumes"] == [{"name": OVERLAY_NAME, "emptyDir": {"sizeLimit": "2Gi"}}]
    assert ov["spec"]["containers"] == [
        {"name": "server", "volumeMounts": [{"name": OVERLAY_NAME, "mountPath": "/models", "readOnly": True}]}
    ]
    ann = ov["metadata"]["annotations"]
    assert ann[ANN_MODEL_VERSION] == "2"
    assert ann[ANN_MODEL_REVISION] == URL_MODEL.revision()
    assert json.loads(ann[ANN_MODEL_SOURCE]) == URL_MODEL.source_dict()
    # only fields the chart never renders
    chart_inits = {c["name"] for c in template["spec"].get("initContainers", [])}
    chart_volumes = {v["name"] for v in template["spec"]["volumes"]}
    assert OVERLAY_NAME not in chart_inits | chart_volumes
    assert not set(ann) & set(template["metadata"].get("annotations", {}))


def test_url_source_chart_reuses_its_emptydir() -> None:
    dep = chart_deployment()
    spec = dep["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "models", "emptyDir": {"sizeLimit": "2Gi"}})
    spec["containers"][0]["volumeMounts"].append({"name": "models", "mountPath": "/models", "readOnly": True})
    for env in spec["containers"][0]["env"]:
        if env["name"] == "MODEL_BASE_PATH":
            env["value"] = "/models"
    ov = overlay(dep["spec"]["template"], "server", URL_MODEL, URL_MODEL.revision())
    assert "volumes" not in ov["spec"]
    assert "containers" not in ov["spec"]
    assert ov["spec"]["initContainers"][0]["volumeMounts"] == [{"name": "models", "mountPath": TARGET_MOUNT}]


def test_pvc_model_root_is_refused() -> None:
    dep = chart_deployment()
    spec = dep["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "models", "persistentVolumeClaim": {"claimName": "m"}})
    spec["containers"][0]["volumeMounts"].append({"name": "models", "mountPath": "/models"})
    with pytest.raises(OverlayError, match="persistentVolumeClaim"):
        overlay(dep["spec"]["template"], "server", URL_MODEL, URL_MODEL.revision())
    view = target_view(dep, "server", URL_MODEL)
    assert view.overlay_error is not None
    assert "emptyDir" in view.overlay_error


def test_object_storage_target_is_refused() -> None:
    dep = chart_deployment()
    server = dep["spec"]["template"]["spec"]["containers"][0]
    server.setdefault("env", []).append(
        {"name": "MODELSHIP_MODEL_BASE_PATH", "value": "s3://b/models/linear"}
    )
    with pytest.raises(OverlayError, match=r"object storage \(s3://b/models/linear\): publish version"):
        overlay(dep["spec"]["template"], "server", URL_MODEL, URL_MODEL.revision())
    view = target_view(dep, "server", URL_MODEL)
    assert view.overlay_error is not None
    assert "publish version" in view.overlay_error


def test_missing_container_is_refused() -> None:
    with pytest.raises(OverlayError, match="no container 'model'"):
        overlay(chart_deployment()["spec"]["template"], "model", URL_MODEL, "r")


def test_image_model_source_copies_out_of_its_image() -> None:
    template = chart_deployment()["spec"]["template"]
    init = overlay(template, "server", IMAGE_MODEL, IMAGE_MODEL.revision())["spec"]["initContainers"][0]
    assert init["image"] == "modelship-models:3"
    assert init["command"][:2] == ["python", "-c"]
    assert init["args"] == ["/models/linear/3", f"{TARGET_MOUNT}/linear/3"]


def test_copy_script_is_atomic_and_idempotent(tmp_path: Path) -> None:
    import subprocess
    import sys

    from rollout_operator.templates import COPY_SCRIPT

    src = tmp_path / "img" / "linear" / "3"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"pb")
    dest = tmp_path / "target" / "linear" / "3"
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", COPY_SCRIPT, str(src), str(dest)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    assert (dest / "saved_model.pb").read_bytes() == b"pb"
    assert [p.name for p in dest.parent.iterdir()] == ["3"]
    missing = subprocess.run(
        [sys.executable, "-c", COPY_SCRIPT, str(tmp_path / "nope"), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert "not found in the image" in missing.stderr


def test_merge_then_strip_gives_the_template_back() -> None:
    template = chart_deployment()["spec"]["template"]
    merged = merge_overlay(template, overlay(template, "server", URL_MODEL, URL_MODEL.revision()))
    assert merged != template
    stripped = strip_overlay(merged)
    assert stripped == strip_overlay(template)
    # a second overlay replaces the first rather than stacking
    again = merge_overlay(merged, overlay(merged, "server", IMAGE_MODEL, IMAGE_MODEL.revision()))
    assert [c["name"] for c in again["spec"]["initContainers"]].count(OVERLAY_NAME) == 1
    mounts = again["spec"]["containers"][0]["volumeMounts"]
    assert [m["name"] for m in mounts].count(OVERLAY_NAME) == 1
    assert again["metadata"]["annotations"][ANN_MODEL_VERSION] == "3"


def test_target_apply_bodies() -> None:
    ov = overlay(chart_deployment()["spec"]["template"], "server", URL_MODEL, URL_MODEL.revision())
    body = target_apply("ml", "prod-modelship", ov)
    assert body["metadata"] == {"name": "prod-modelship", "namespace": "ml"}
    assert set(body["spec"]) == {"template"}  # nothing else: replicas, selector, image stay Helm's
    release = target_apply("ml", "prod-modelship", None)
    assert "spec" not in release


def test_canary_deployment() -> None:
    dep = chart_deployment()
    before = copy.deepcopy(dep)
    canary = canary_deployment(ROLLOUT, dep, "server", URL_MODEL, URL_MODEL.revision(), 3, True)
    assert dep == before  # the serving Deployment is not modified
    meta, spec = canary["metadata"], canary["spec"]
    assert meta["name"] == canary_name("modelship") == "modelship-canary"
    assert meta["ownerReferences"][0]["uid"] == "1234"
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["labels"][LABEL_ROLLOUT] == "linear"
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"] == {
        **dep["spec"]["selector"]["matchLabels"],
        LABEL_TRACK: "canary",
    }
    labels = spec["template"]["metadata"]["labels"]
    # the Service selects on the chart's selector labels, which canary pods carry too
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels[LABEL_TRACK] == "canary"
    assert labels[LABEL_ROLLOUT] == "linear"
    assert spec["template"]["spec"]["readinessGates"] == [{"conditionType": GATE_CONDITION}]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["template"]["spec"]["initContainers"][-1]["name"] == OVERLAY_NAME
    ungated = canary_deployment(ROLLOUT, dep, "server", URL_MODEL, URL_MODEL.revision(), 1, False)
    assert "readinessGates" not in ungated["spec"]["template"]["spec"]
    assert canary_name("x" * 63) == "x" * 56 + "-canary"
    assert len(canary_name("x" * 63)) == 63


def test_views() -> None:
    dep = chart_deployment()
    dep["metadata"]["generation"] = 3
    dep["status"] = {
        "observedGeneration": 3,
        "replicas": 2,
        "updatedReplicas": 2,
        "availableReplicas": 2,
        "readyReplicas": 2,
    }
    assert deployment_complete(dep)
    view = target_view(dep, "server", URL_MODEL)
    assert (view.replicas, view.template_revision, view.overlay_error, view.rollout_complete) == (
        2,
        "",
        None,
        True,
    )
    rolling = copy.deepcopy(dep)
    rolling["status"].update(replicas=3, updatedReplicas=1)
    assert not deployment_complete(rolling)
    rolling["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    assert target_view(rolling, "server", URL_MODEL).progress_failed
    merged = copy.deepcopy(dep)
    merged["spec"]["template"] = merge_overlay(
        dep["spec"]["template"], overlay(dep["spec"]["template"], "server", URL_MODEL, "rev1")
    )
    v = target_view(merged, "server", None)
    assert (v.template_revision, v.template_version, v.template_source) == (
        "rev1",
        "2",
        URL_MODEL.source_dict(),
    )
    canary = canary_deployment(ROLLOUT, dep, "server", URL_MODEL, "rev1", 2, True)
    canary["metadata"]["generation"] = 1
    canary["status"] = {"observedGeneration": 1, "readyReplicas": 1}
    assert canary_view(canary) == canary_view(canary).__class__(
        replicas=2, revision="rev1", ready_replicas=1, up_to_date=True
    )
    pod = {
        "metadata": {
            "name": "p",
            "uid": "u",
            "labels": {LABEL_TRACK: "canary"},
            "annotations": {ANN_MODEL_REVISION: "rev1"},
        },
        "status": {
            "podIP": "10.1.1.1",
            "phase": "Running",
            "conditions": [
                {"type": "ContainersReady", "status": "True"},
                {"type": "Ready", "status": "False"},
                {"type": GATE_CONDITION, "status": "False"},
            ],
        },
    }
    pv = pod_view(pod)
    assert pv.canary
    assert pv.containers_ready
    assert not pv.gate_open
    assert not pv.serving
    assert pv.revision == "rev1"


# ------------------------------------------------------------------------------------------------
# against the chart rendered by helm, validated by the Kubernetes OpenAPI schema


@pytest.mark.chart
@pytest.mark.parametrize("source", ["image", "url"])
def test_operator_manifests_are_valid_for_the_chart(source: str, render: Any, k8s_validator: Any) -> None:
    sets = (
        []
        if source == "image"
        else [
            "model.source.type=url",
            "model.source.url.url=http://m.local/l.tgz",
            f"model.source.url.sha256={'c' * 64}",
        ]
    )
    dep = render(set_=sets).one("Deployment")
    template = dep["spec"]["template"]
    for model in (URL_MODEL, IMAGE_MODEL):
        canary = canary_deployment(ROLLOUT, dep, "server", model, model.revision(), 2, True)
        assert k8s_validator.errors(canary) == []
        promoted = copy.deepcopy(dep)
        promoted["spec"]["template"] = merge_overlay(
            template, overlay(template, "server", model, model.revision())
        )
        assert k8s_validator.errors(promoted) == []
        names = [c["name"] for c in promoted["spec"]["template"]["spec"]["initContainers"]]
        assert names == (["fetch-model", OVERLAY_NAME] if source == "url" else [OVERLAY_NAME])
