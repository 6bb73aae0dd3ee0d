"""Object-storage base paths on real stores (moto's S3 server, fake-gcs-server) over loopback.

The repository is driven in-process (one poll at a time) against real HTTP stores: versions
``1`` and ``10``, the manifest as commit marker, tampering, outages, the cache's bound and reuse.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path

import pytest

from model.manifest import MANIFEST_NAME
from service.errors import Code
from service.model_config import ModelConfig, VersionPolicy
from service.repository import ModelRepository, State
from tests.fixtures import export_linear
from tests.object_store import BUCKET, FakeGcs, MotoS3, publish

pytestmark = pytest.mark.slow
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, linear_run: Path) -> Path:
    """linear/1, /2, /3 and /10 exported locally (with manifests), to publish from."""
    base = tmp_path_factory.mktemp("exported")
    for v in (1, 2, 3, 10):
        export_linear(linear_run, base, v)
    return base / "linear"


@pytest.fixture
def prefix() -> str:
    return f"t{next(_prefixes)}/linear"


@pytest.fixture
def s3_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3


def _repo(url: str, cache: Path, policy: VersionPolicy | None = None, **kw: object) -> ModelRepository:
    config = ModelConfig("linear", url, policy or VersionPolicy())
    return ModelRepository(
        [config],
        poll_seconds=-1,
        remote_poll_seconds=-1,
        settle_seconds=0,
        cache_dir=cache,
        **kw,  # type: ignore[arg-type]
    )


def _serving(s3: MotoS3, versions: Path, prefix: str, cache: Path, version: int = 2) -> ModelRepository:
    """A repository serving ``version`` from ``s3://models/<prefix>``."""
    publish(s3, f"{prefix}/{version}", versions / str(version))
    repo = _repo(f"s3://{BUCKET}/{prefix}", cache)
    repo.poll_once()
    assert repo.resolve("linear").version == version
    return repo


def _cache_dirs(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "linear").iterdir()) if (cache / "linear").exists() else []


def test_versions_1_and_10_resolve_and_stray_prefixes_are_ignored(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    for v in (1, 10):
        publish(s3_env, f"{prefix}/{v}", versions / str(v))
    s3_env.put(f"{prefix}/.tmp-3/saved_model.pb", b"half an upload")
    s3_env.put(f"{prefix}x/2/saved_model.pb", b"a sibling model's key")  # prefix + "x": not ours
    repo = _repo(f"s3://{BUCKET}/{prefix}", tmp_path, VersionPolicy("all"))
    repo.poll_once()
    assert {s.version: s.state for s in repo.statuses("linear")} == {1: State.AVAILABLE, 10: State.AVAILABLE}
    assert repo.resolve("linear").version == 10
    assert repo.resolve("linear", version=1).version == 1
    assert _cache_dirs(tmp_path)[0].startswith("1-")
    assert _cache_dirs(tmp_path)[1].startswith("10-")


def test_a_version_without_its_manifest_waits_for_the_commit(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    publish(s3_env, f"{prefix}/2", versions / "2")
    repo = _repo(f"s3://{BUCKET}/{prefix}", tmp_path)
    repo.poll_once()
    publish(s3_env, f"{prefix}/3", versions / "3", manifest=False)
    for _ in range(3):  # however long it stays uncommitted (the settle window does not apply)
        repo.poll_once()
    assert repo.resolve("linear").version == 2
    assert [s.version for s in repo.statuses("linear")] == [2]
    s3_env.put(f"{prefix}/3/{MANIFEST_NAME}", (versions / "3" / MANIFEST_NAME).read_bytes())
    repo.poll_once()
    assert repo.resolve("linear").version == 3
    assert {s.version: s.state for s in repo.statuses("linear")} == {3: State.AVAILABLE, 2: State.END}
    assert [d.split("-")[0] for d in _cache_dirs(tmp_path)] == ["3"], "v2 left the cache once unloaded"


def test_third_party_versions_without_any_manifest_load_after_settling(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    stripped = tmp_path / "stripped"
    shutil.copytree(versions / "1", stripped)
    (stripped / MANIFEST_NAME).unlink()
    publish(s3_env, f"{prefix}/1", stripped)
    config = ModelConfig("linear", f"s3://{BUCKET}/{prefix}")
    repo = ModelRepository(
        [config], poll_seconds=-1, remote_poll_seconds=-1, settle_seconds=0.2, cache_dir=tmp_path / "c"
    )
    assert repo.poll_once(), "first sight: settling"
    assert not repo.ready()

    time.sleep(0.25)
    repo.poll_once()
    assert repo.resolve("linear").version == 1


def test_a_tampered_file_is_refused_and_the_old_version_keeps_serving(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    repo = _serving(s3_env, versions, prefix, tmp_path)
    keys = publish(s3_env, f"{prefix}/3", versions / "3")
    victim = next(k for k in keys if "variables.data" in k)
    s3_env.put(victim, b"\0" * 64)  # changed after the manifest was written
    repo.poll_once()
    assert repo.resolve("linear").version == 2
    status = repo.statuses("linear", 3)[0]
    assert (status.state, status.error_code) == (State.END, Code.DATA_LOSS)
    assert "sha256 mismatch for variables/variables.data" in status.error_message
    gets = repo.source_requests()[("linear", "get")]
    repo.poll_once()  # unchanged since: not downloaded again
    assert repo.statuses("linear", 3)[0].state == State.END
    assert repo.source_requests()[("linear", "get")] == gets
    assert [d.split("-")[0] for d in _cache_dirs(tmp_path)] == ["2"], "the refused download left nothing"
    s3_env.put(victim, (versions / "3" / victim.split("/3/", 1)[1]).read_bytes())  # repaired
    repo.poll_once()
    assert repo.resolve("linear").version == 3


def test_a_truncated_or_incomplete_version_is_refused(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    repo = _serving(s3_env, versions, prefix, tmp_path)
    keys = publish(s3_env, f"{prefix}/3", versions / "3")
    s3_env.delete(next(k for k in keys if k.endswith("saved_model.pb")))
    repo.poll_once()
    status = repo.statuses("linear", 3)[0]
    assert status.error_code == Code.DATA_LOSS
    assert "saved_model.pb listed in the manifest is not in the bucket" in status.error_message
    assert repo.resolve("linear").version == 2


def test_an_unreachable_store_unloads_nothing_and_recovery_resumes_polling(
    s3: MotoS3, versions: Path, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3.env(through_relay=True).items():
        monkeypatch.setenv(key, value)
    publish(s3, f"{prefix}/1", versions / "1")
    repo = _repo(f"s3://{BUCKET}/{prefix}", tmp_path)
    repo.poll_once()
    s3.relay.cut()
    try:
        publish(s3, f"{prefix}/2", versions / "2")  # published while this pod cannot see the store
        for _ in range(3):
            repo.poll_once()
        assert repo.resolve("linear").version == 1
        health = repo.source_health("linear")
        assert health.error is not None
        assert "list failed" in health.error
        assert health.failures_total == 3
        status = repo.statuses("linear", 1)[0]
        assert status.state == State.AVAILABLE
        assert status.error_code == Code.UNAVAILABLE
        assert "model source unreadable since" in status.error_message
    finally:
        s3.relay.restore()
    repo.poll_once()
    assert repo.source_health("linear").error is None
    assert repo.resolve("linear").version == 2
    assert repo.statuses("linear", 2)[0].error_code == Code.OK


def test_an_empty_listing_unloads_nothing(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    keys = publish(s3_env, f"{prefix}/1", versions / "1")
    repo = _repo(f"s3://{BUCKET}/{prefix}", tmp_path)
    repo.poll_once()
    for key in keys:
        s3_env.delete(key)
    repo.poll_once()
    assert repo.resolve("linear").version == 1
    assert repo.statuses("linear", 1)[0].state == State.AVAILABLE


def test_the_cache_stays_within_its_bound_as_versions_come_and_go(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    size = sum(p.stat().st_size for p in (versions / "1").rglob("*") if p.is_file())
    cache = tmp_path / "cache"
    repo = _repo(f"s3://{BUCKET}/{prefix}", cache, cache_max_bytes=int(2.5 * size))
    peak = 0
    for v in (1, 2, 3):
        publish(s3_env, f"{prefix}/{v}", versions / str(v))
        repo.poll_once()
        assert repo.resolve("linear").version == v
        peak = max(peak, repo.cache.usage())
        assert len(_cache_dirs(cache)) == 1
    assert peak <= int(2.5 * size)
    small = _repo(f"s3://{BUCKET}/{prefix}", tmp_path / "small", cache_max_bytes=size // 2)
    small.poll_once()
    status = small.statuses("linear", 3)[0]
    assert (status.state, status.error_code) == (State.END, Code.RESOURCE_EXHAUSTED)
    assert "model cache" in status.error_message
    assert "is full" in status.error_message


def test_a_restart_reuses_the_cache_without_downloading(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    publish(s3_env, f"{prefix}/1", versions / "1")
    first = _repo(f"s3://{BUCKET}/{prefix}", tmp_path)
    first.poll_once()
    files = sum(1 for p in (versions / "1").rglob("*") if p.is_file())
    assert first.source_requests()[("linear", "get")] == files  # the manifest, then every other file
    again = _repo(f"s3://{BUCKET}/{prefix}", tmp_path)
    again.poll_once()
    assert again.resolve("linear").version == 1
    assert again.source_requests() == {("linear", "list"): 1, ("linear", "get"): 0}


def test_gcs_serves_and_swaps_versions(
    gcs: FakeGcs, versions: Path, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in gcs.env().items():
        monkeypatch.setenv(key, value)
    publish(gcs, f"{prefix}/1", versions / "1")
    repo = _repo(f"gs://{BUCKET}/{prefix}", tmp_path)
    repo.poll_once()
    assert repo.resolve("linear").version == 1
    publish(gcs, f"{prefix}/10", versions / "10")
    repo.poll_once()
    assert repo.resolve("linear").version == 10
    manifest = json.loads((versions / "10" / MANIFEST_NAME).read_text())
    assert repo.resolve("linear").manifest == manifest


def test_a_config_reload_keeps_a_kept_models_cache_and_clears_a_removed_ones(
    s3_env: MotoS3, versions: Path, prefix: str, tmp_path: Path
) -> None:
    publish(s3_env, f"{prefix}/1", versions / "1")
    url = f"s3://{BUCKET}/{prefix}"
    repo = _repo(url, tmp_path)
    repo.poll_once()
    cached = _cache_dirs(tmp_path)
    repo.reconfigure([ModelConfig("linear", url)])
    repo.poll_once()
    repo.poll_once()
    assert _cache_dirs(tmp_path) == cached, "a kept model's loaded version stays cached"
    assert repo.source_requests()[("linear", "get")] == sum(
        1 for p in (versions / "1").rglob("*") if p.is_file()
    )
    repo.reconfigure([ModelConfig("other", str(versions.parent))])
    repo.poll_once()
    assert _cache_dirs(tmp_path) == [], "a removed model leaves the cache"
