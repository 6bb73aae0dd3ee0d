"""The model repository on real SavedModels: policies, labels, failures, tampering, settling."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from model.metrics import QualityGate
from model.pipeline import export_run
from service.errors import Code, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from service.model_config import ModelConfig, VersionPolicy
from service.repository import ModelRepository, State
from service.repository import loader as loader_module


def _repo(
    base: Path, policy: VersionPolicy | None = None, labels: dict[str, int] | None = None, settle: float = 0
) -> ModelRepository:
    config = ModelConfig("linear", str(base / "linear"), policy or VersionPolicy(), labels or {})
    return ModelRepository([config], poll_seconds=-1, settle_seconds=settle)


def _export(run: Path, base: Path, version: int) -> Path:
    return export_run(run, base, "linear", QualityGate(), version)


def test_latest_policy_swaps_versions_without_a_gap(fresh_base: Path, linear_run: Path) -> None:
    repo = _repo(fresh_base)
    assert not repo.ready()
    repo.poll_once()
    assert repo.ready()
    assert repo.resolve("linear").version == 1
    _export(linear_run, fresh_base, 2)
    repo.poll_once()
    assert repo.resolve("linear").version == 2
    states = {s.version: s.state for s in repo.statuses("linear")}
    assert states == {2: State.AVAILABLE, 1: State.END}
    with pytest.raises(NotFound, match=r"Specific\(linear, 1\)"):
        repo.resolve("linear", version=1)


def test_all_and_specific_policies(fresh_base: Path, linear_run: Path) -> None:
    for v in (2, 3):
        _export(linear_run, fresh_base, v)
    repo = _repo(fresh_base, VersionPolicy("all"))
    repo.poll_once()
    assert [repo.resolve("linear", version=v).version for v in (1, 2, 3)] == [1, 2, 3]
    repo = _repo(fresh_base, VersionPolicy("specific", versions=(1, 3)))
    repo.poll_once()
    assert repo.resolve("linear").version == 3
    assert repo.resolve("linear", version=1).version == 1
    with pytest.raises(NotFound):
        repo.resolve("linear", version=2)
    repo = _repo(fresh_base, VersionPolicy("latest", num_versions=2))
    repo.poll_once()
    assert sorted(s.version for s in repo.statuses("linear") if s.state == State.AVAILABLE) == [2, 3]


def test_labels_resolve_only_to_available_versions(fresh_base: Path, linear_run: Path) -> None:
    _export(linear_run, fresh_base, 2)
    repo = _repo(fresh_base, VersionPolicy("all"), labels={"stable": 1, "canary": 2, "next": 3})
    repo.poll_once()
    assert repo.resolve("linear", label="stable").version == 1
    assert repo.resolve("linear", label="canary").version == 2
    with pytest.raises(Unavailable, match="not currently available"):
        repo.resolve("linear", label="next")
    with pytest.raises(InvalidArgument, match="Unrecognized servable version label: nope"):
        repo.resolve("linear", label="nope")


def test_tampered_version_is_refused_and_old_keeps_serving(fresh_base: Path, linear_run: Path) -> None:
    repo = _repo(fresh_base)
    repo.poll_once()
    staging = fresh_base / "staging"
    path = _export(linear_run, staging, 2)
    weights = next((path / "variables").glob("variables.data-*"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x7f")
    shutil.move(str(path), fresh_base / "linear" / "2")
    repo.poll_once()
    assert repo.resolve("linear").version == 1
    status = repo.statuses("linear", 2)[0]
    assert status.state == State.END
    assert status.error_code == Code.DATA_LOSS
    assert "sha256 mismatch for variables/" in status.error_message
    repo.poll_once()  # unchanged: not retried, still refused
    assert repo.statuses("linear", 2)[0].error_code == Code.DATA_LOSS


def test_broken_version_fails_then_loads_once_fixed(fresh_base: Path, linear_run: Path) -> None:
    repo = _repo(fresh_base)
    repo.poll_once()
    broken = fresh_base / "linear" / "2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    repo.poll_once()
    assert repo.resolve("linear").version == 1
    assert repo.statuses("linear", 2)[0].state == State.END
    shutil.rmtree(broken)
    _export(linear_run, fresh_base, 2)
    repo.poll_once()
    assert repo.resolve("linear").version == 2


def test_half_copied_version_waits_to_settle(fresh_base: Path, linear_run: Path) -> None:
    repo = _repo(fresh_base, settle=0.3)
    repo.poll_once()
    time.sleep(0.35)
    repo.poll_once()
    assert repo.resolve("linear").version == 1
    _export(linear_run, fresh_base, 2)
    repo.poll_once()
    assert repo.resolve("linear").version == 1
    assert repo.statuses("linear", 2)[0].state == State.START
    time.sleep(0.35)
    repo.poll_once()
    assert repo.resolve("linear").version == 2


def test_a_version_quiet_for_the_settle_time_loads_at_the_first_poll(
    fresh_base: Path, linear_run: Path
) -> None:
    _export(linear_run, fresh_base, 2)
    time.sleep(0.35)
    repo = _repo(fresh_base, settle=0.3)
    repo.poll_once()  # one poll: no wait for files that were already on disk (e.g. baked in the image)
    assert repo.resolve("linear").version == 2


def test_a_copy_that_preserves_old_mtimes_still_settles(fresh_base: Path) -> None:
    """`cp -a` carries mtimes over, but not ctimes: the copy still counts as fresh."""
    copy = fresh_base / "linear" / "3"
    shutil.copytree(fresh_base / "linear" / "1", copy, copy_function=shutil.copy2)
    year_ago = time.time() - 365 * 86400
    for path in [copy, *copy.rglob("*")]:
        os.utime(path, (year_ago, year_ago))
    repo = _repo(fresh_base, settle=0.3)
    repo.poll_once()
    assert repo.statuses("linear", 3)[0].state == State.START
    time.sleep(0.35)
    repo.poll_once()
    assert repo.resolve("linear").version == 3


def test_unknown_model_and_version_statuses(fresh_base: Path) -> None:
    repo = _repo(fresh_base)
    repo.poll_once()
    with pytest.raises(NotFound, match="Could not find any versions of model nope"):
        repo.statuses("nope")
    with pytest.raises(NotFound, match="Could not find version 5 of model linear"):
        repo.statuses("linear", 5)
    with pytest.raises(NotFound, match=r"Latest\(nope\)"):
        repo.resolve("nope")


def test_reconfigure_adds_and_removes_models(fresh_base: Path) -> None:
    repo = _repo(fresh_base)
    repo.poll_once()
    repo.reconfigure([ModelConfig("other", str(fresh_base / "linear"))])
    repo.poll_once()
    assert repo.model_names() == ["other"]
    assert repo.resolve("other").version == 1
    with pytest.raises(NotFound):
        repo.resolve("linear")


def test_background_polling_picks_up_a_new_version(fresh_base: Path, linear_run: Path) -> None:
    config = ModelConfig("linear", str(fresh_base / "linear"))
    repo = ModelRepository([config], poll_seconds=0.1, settle_seconds=0.1)
    repo.start()
    try:
        deadline = time.monotonic() + 30
        while not repo.ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        _export(linear_run, fresh_base, 2)
        while repo.resolve("linear").version != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert repo.resolve("linear").version == 2
    finally:
        repo.stop()


def _counting_loads(
    monkeypatch: pytest.MonkeyPatch,
    gate: threading.Event | None = None,
    loading: threading.Event | None = None,
) -> list[int]:
    """Record every load (and optionally hold each one until ``gate`` is set)."""
    loads: list[int] = []
    real = loader_module.load

    def load(name: str, version: int, path: Path, **kwargs: Any) -> Any:
        loads.append(version)
        if loading is not None:
            loading.set()
        if gate is not None:
            assert gate.wait(30)
        return real(name, version, path, **kwargs)

    monkeypatch.setattr(loader_module, "load", load)
    return loads


def _available_means_servable(repo: ModelRepository, name: str) -> None:
    for status in repo.statuses(name):
        if status.state == State.AVAILABLE:
            assert repo.resolve(name, version=status.version).version == status.version


def test_reconfigure_while_a_version_loads_never_leaves_it_available_but_unservable(
    fresh_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, loading = threading.Event(), threading.Event()
    loads = _counting_loads(monkeypatch, gate, loading)
    config = ModelConfig("linear", str(fresh_base / "linear"))
    repo = ModelRepository([config], poll_seconds=0.05, settle_seconds=0, enable_warmup=False)
    repo.start()
    try:
        assert loading.wait(30)
        applied = repo.reconfigure([config])  # the same model: a new record while version 1 loads
        gate.set()
        assert applied.wait(30)
        deadline = time.monotonic() + 30
        while not repo.ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # several more polls
        assert repo.resolve("linear").version == 1
        _available_means_servable(repo, "linear")
        assert loads == [1], "version 1 was loaded more than once"
    finally:
        gate.set()
        repo.stop()


def test_reconfiguring_in_a_loop_while_versions_appear(
    fresh_base: Path, linear_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = _counting_loads(monkeypatch)
    config = ModelConfig("linear", str(fresh_base / "linear"), VersionPolicy("all"))
    repo = ModelRepository([config], poll_seconds=0.02, settle_seconds=0, enable_warmup=False)
    repo.start()
    stop = threading.Event()

    def reconfigure_forever() -> None:
        while not stop.is_set():
            repo.reconfigure([ModelConfig("linear", str(fresh_base / "linear"), VersionPolicy("all"))])
            time.sleep(0.003)

    churn = threading.Thread(target=reconfigure_forever)
    churn.start()
    try:
        for version in (2, 3, 4):
            _export(linear_run, fresh_base, version)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(NotFound):
                    if repo.resolve("linear", version=version):
                        break
                time.sleep(0.02)
            _available_means_servable(repo, "linear")
    finally:
        stop.set()
        churn.join()
        repo.stop()
    assert sorted(loads) == [1, 2, 3, 4], loads
    assert {s.version for s in repo.statuses("linear") if s.state == State.AVAILABLE} == {1, 2, 3, 4}


def test_a_pin_replaces_the_policy_before_the_first_load(fresh_base: Path, linear_run: Path) -> None:
    _export(linear_run, fresh_base, 2)
    repo = _repo(fresh_base, VersionPolicy("latest"), labels={"stable": 1, "canary": 2})
    repo.pin({"linear": (1,), "not-served": (4,)})
    repo.poll_once()
    assert {s.version: s.state for s in repo.statuses("linear")} == {1: State.AVAILABLE}
    assert repo.resolve("linear").version == 1
    with pytest.raises(FailedPrecondition, match=r"pins the model to versions \[1\]") as err:
        repo.resolve("linear", label="canary")
    assert err.value.http_status == 400
    repo.pin({"linear": (1, 2)})
    repo.poll_once()
    assert sorted(repo.available("linear")) == [1, 2]
    repo.pin({"linear": (2, 7)})  # 7 is not in the source: simply not loaded
    repo.poll_once()
    assert {s.version: s.state for s in repo.statuses("linear")} == {2: State.AVAILABLE, 1: State.END}
    with pytest.raises(NotFound):
        repo.statuses("linear", 7)
    with pytest.raises(FailedPrecondition):
        repo.resolve("linear", label="stable")
    repo.pin({})  # unpinned: the policy (latest 1) again
    repo.poll_once()
    assert sorted(repo.available("linear")) == [2]
    with pytest.raises(Unavailable, match="not currently available"):
        repo.resolve("linear", label="stable")  # excluded by the policy itself: as before


def test_a_pin_change_is_applied_at_once_without_a_new_listing(
    fresh_base: Path, linear_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """poll_seconds -1 lists each source once: only a pin change can make the thread decide again."""
    _export(linear_run, fresh_base, 2)
    repo = _repo(fresh_base, VersionPolicy("latest"))
    repo.pin({"linear": (1,)})  # before start: the first decision already sees it
    repo.start()
    try:
        deadline = time.monotonic() + 30
        while not repo.ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sorted(repo.available("linear")) == [1]
        listings = []
        source = repo.poller._watched["linear"].source
        original = source.versions
        monkeypatch.setattr(source, "versions", lambda: listings.append(1) or original())
        repo.pin({"linear": (2,)})
        while sorted(repo.available("linear")) != [2] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sorted(repo.available("linear")) == [2]
        assert listings == []
        assert {s.version: s.state for s in repo.statuses("linear")} == {2: State.AVAILABLE, 1: State.END}
    finally:
        repo.stop()
