"""On the real cluster: a release serving from a bucket, and a new version published to it.

moto's S3 server runs on this machine at an address the pods reach it by (the source-built
cluster's node IP, or the kind network's gateway: ``tests.k8s.host_address_for_pods``), the release takes credentials from a Secret, and publishing v2 to the bucket
(files, then manifest.json) must make every pod serve v2 with no pod restarted or replaced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import export_linear
from tests.integration.release import Release
from tests.k8s import host_address_for_pods, wait_for
from tests.object_store import BUCKET, moto_s3, publish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _pod_states(release: Release, pod: str) -> dict[int, str]:
    """The pod's own model status, read through the API server's pod proxy (this pod, no other)."""
    raw = release.kube.run(
        "kubectl",
        "get",
        "--raw",
        f"/api/v1/namespaces/{release.namespace}/pods/{pod}:8501/proxy/v1/models/linear",
    )
    return {int(s["version"]): s["state"] for s in json.loads(raw)["model_version_status"]}


def test_publishing_to_the_bucket_reaches_every_pod_without_a_restart(
    release: Release, linear_run: Path, tmp_path: Path, report: Callable[[str], None]
) -> None:
    host = host_address_for_pods(release.kube)
    for v in (1, 2):
        export_linear(linear_run, tmp_path / "exported", v)
    prefix = f"{release.namespace}/linear"
    with moto_s3(tmp_path / "moto.log", host=host) as s3:
        publish(s3, f"{prefix}/1", tmp_path / "exported" / "linear" / "1")
        env = s3.env()
        release.kube.run(
            "kubectl",
            *("create", "secret", "generic", "bucket-credentials", "--namespace", release.namespace),
            f"--from-literal=AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={env['AWS_SECRET_ACCESS_KEY']}",
        )
        release.helm(
            "replicaCount=2",
            "model.source.type=objectStore",
            f"model.source.objectStore.url=s3://{BUCKET}/{prefix}",
            f"model.source.objectStore.endpoint={s3.endpoint}",
            "model.source.objectStore.region=us-east-1",
            "model.source.objectStore.pollSeconds=1",
            "model.source.objectStore.credentials.secretName=bucket-credentials",
        )
        pods = release.wait_available(2)
        before = {p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"] for p in pods}
        names = [p["metadata"]["name"] for p in pods]
        for name in names:
            assert _pod_states(release, name).get(1) == "AVAILABLE"

        published = time.monotonic()
        publish(s3, f"{prefix}/2", tmp_path / "exported" / "linear" / "2")
        seen: dict[str, float] = {}

        def every_pod_serves_v2() -> bool:
            for name in names:
                if name not in seen and _pod_states(release, name).get(2) == "AVAILABLE":
                    seen[name] = time.monotonic() - published
            return len(seen) == len(names)

        wait_for("every pod serving v2", every_pod_serves_v2, 180, interval=0.5)
        for name in names:
            assert _pod_states(release, name) == {2: "AVAILABLE", 1: "END"}
        after = {
            p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"] for p in release.pods()
        }
        assert after == before, "no pod was restarted or replaced"
        report(
            "v2 published to the bucket -> AVAILABLE on every pod in "
            + ", ".join(f"{t:.1f}s" for t in sorted(seen.values()))
            + f"; pods {len(after)}, restarts unchanged"
        )
