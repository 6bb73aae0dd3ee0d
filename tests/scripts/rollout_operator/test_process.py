"""The operator's process machinery: work queue, watch loop (410 Gone), leader election, /metrics."""

from __future__ import annotations

import copy
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollout_operator.health import HealthServer
from rollout_operator.leader import LeaderElector
from rollout_operator.metrics import OperatorMetrics
from rollout_operator.status import Status
from rollout_operator.watcher import Backoff, Watcher
from rollout_operator.workqueue import WorkQueue


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ------------------------------------------------------------------------------------------------
# work queue


def test_queue_dedupes_and_never_hands_a_key_to_two_workers() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(0) == "a"
    q.add("a")  # while processing: marked dirty, not handed out again
    assert q.get(0) == "b"
    assert q.get(0) is None
    q.done("a")
    assert q.get(0) == "a"


def test_queue_delays_and_backoff() -> None:
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after("x", 10)
    assert q.get(0) is None
    clock.t += 10
    assert q.get(0) == "x"
    q.done("x")
    assert [q.retry_delay("x") for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    q.forget("x")
    assert q.retry_delay("x") == 1


def test_queue_get_blocks_until_added_and_shutdown_releases() -> None:
    q = WorkQueue()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(5)))
    t.start()
    q.add("k")
    t.join(5)
    assert got == ["k"]
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shutdown()
    t.join(5)
    assert got == ["k", None]


# ------------------------------------------------------------------------------------------------
# watch loop


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


class ScriptedSource:
    """Plays scripted list results and watch streams; records the resourceVersions asked for."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.listed = 0
        self.watched_from: list[str] = []

    def list(self) -> tuple[list[dict[str, Any]], str]:
        self.listed += 1
        item = self.lists.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def watch(self, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        script = self.watches.pop(0)
        if isinstance(script, BaseException):
            raise script
        yield from script


def watcher(source: ScriptedSource, seen: list[tuple[str, str]], restarts: list[str]) -> Watcher:
    return Watcher(
        "test",
        source,
        lambda kind, o: seen.append((kind, o["metadata"]["name"])),
        lambda items: seen.extend(("LIST", o["metadata"]["name"]) for o in items),
        threading.Event(),
        on_restart=restarts.append,
        backoff=Backoff(0.01, 0.02),
        sleep=lambda s: None,
    )


def test_watch_resumes_from_the_last_version_and_relists_on_410() -> None:
    source = ScriptedSource(
        lists=[([obj("a", "10")], "10"), ([obj("a", "30"), obj("b", "31")], "31")],
        watches=[
            [{"type": "ADDED", "object": obj("b", "11")}, {"type": "BOOKMARK", "object": obj("", "15")}],
            [
                {"type": "MODIFIED", "object": obj("a", "16")},
                {
                    "type": "ERROR",
                    "object": {"kind": "Status", "code": 410, "message": "too old resource version"},
                },
            ],
            [{"type": "DELETED", "object": obj("b", "32")}],
        ],
    )
    seen: list[tuple[str, str]] = []
    restarts: list[str] = []
    w = watcher(source, seen, restarts)
    for _ in range(3):
        w.step()
    assert source.watched_from == ["10", "15", "31"]  # bookmark advanced the version; 410 re-listed
    assert seen == [
        ("LIST", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("LIST", "a"),
        ("LIST", "b"),
        ("DELETED", "b"),
    ]
    assert restarts == ["expired"]
    assert w.synced.is_set()


def test_watch_410_as_an_exception_and_other_errors_back_off() -> None:
    source = ScriptedSource(
        lists=[([], "5"), ([], "50")],
        watches=[
            ApiException(status=500, reason="boom"),
            ConnectionResetError("reset"),
            ApiException(status=410, reason="Gone"),
            [],
        ],
    )
    restarts: list[str] = []
    w = watcher(source, [], restarts)
    for _ in range(4):
        w.step()
    assert restarts == ["error", "error", "expired"]
    assert source.watched_from == ["5", "5", "5", "50"]  # transient errors resume; 410 re-lists
    assert source.listed == 2


def test_watch_relists_after_repeated_failures_and_list_errors() -> None:
    source = ScriptedSource(
        lists=[([], "1"), ApiException(status=503, reason="down"), ([], "9")],
        watches=[OSError("x")] * 6 + [[]],
    )
    w = watcher(source, [], [])
    for _ in range(9):
        w.step()
    assert source.listed == 3
    assert source.watched_from[-1] == "9"


# ------------------------------------------------------------------------------------------------
# leader election (an in-memory Lease store with the API server's optimistic concurrency)


class LeaseStore:
    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.rv = 0
        self.fail = False

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.fail:
            raise ApiException(status=503, reason="unavailable")
        return copy.deepcopy(self.obj)

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.obj is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        self.rv += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.obj)

    def replace_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            raise ApiException(status=503, reason="unavailable")
        assert self.obj is not None
        if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.rv += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.obj)


def elector(store: LeaseStore, identity: str, mono: Clock, wall: Clock) -> LeaderElector:
    return LeaderElector(store, "ns", "lease", identity, 15, 10, 2, monotonic=mono, wall=wall)  # type: ignore[arg-type]


def test_only_one_leader_until_the_lease_expires_on_the_local_clock() -> None:
    store, mono_a, mono_b = LeaseStore(), Clock(), Clock(5000)
    wall_a, wall_b = Clock(1e9), Clock(2e9)  # wildly skewed wall clocks do not matter
    a, b = elector(store, "a", mono_a, wall_a), elector(store, "b", mono_b, wall_b)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    mono_b.t += 14
    assert not b.try_acquire_or_renew()
    mono_a.t += 14
    assert a.try_acquire_or_renew()  # renewed: b sees a new record and restarts its wait
    mono_b.t += 14
    assert not b.try_acquire_or_renew()
    mono_b.t += 16  # a stopped renewing
    assert b.try_acquire_or_renew()
    assert store.obj is not None
    assert store.obj["spec"]["holderIdentity"] == "b"
    assert store.obj["spec"]["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()  # a must wait its turn now


def test_release_hands_over_at_once() -> None:
    store = LeaseStore()
    a, b = elector(store, "a", Clock(), Clock()), elector(store, "b", Clock(), Clock())
    assert a.acquire(threading.Event())
    assert not b.try_acquire_or_renew()
    a.release()
    assert store.obj is not None
    assert store.obj["spec"]["holderIdentity"] == ""
    assert b.try_acquire_or_renew()


def test_leader_steps_down_when_it_cannot_renew() -> None:
    store, mono = LeaseStore(), Clock()
    a = elector(store, "a", mono, Clock())
    assert a.try_acquire_or_renew()
    store.fail = True
    stop = threading.Event()

    class TickingStop:
        def wait(self, seconds: float) -> bool:
            mono.t += seconds
            return stop.is_set()

    assert a.hold(TickingStop()) is False  # type: ignore[arg-type]
    assert mono.t - 1000.0 > 10  # gave up only after renew_deadline


def test_bad_timing_is_refused() -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElector(LeaseStore(), "ns", "l", "a", 5, 10, 2)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# metrics and the health endpoint


def test_metrics_follow_the_rollouts_and_forget_deleted_ones() -> None:
    m = OperatorMetrics()
    before = Status(phase="Progressing", started_at=100.0, stable_version="1", canary_version="2")
    after = Status(phase="Succeeded", started_at=100.0, finished_at=400.0, stable_version="2")
    m.observe("ml", "r", Status(), before)
    m.observe("ml", "r", before, after)
    text = m.render().decode()
    assert 'modelship_rollout_phase{namespace="ml",phase="Succeeded",rollout="r"} 1.0' in text
    assert 'modelship_rollout_phase{namespace="ml",phase="Progressing",rollout="r"} 0.0' in text
    assert 'canary_version="",namespace="ml",rollout="r",stable_version="2"} 1.0' in text
    assert 'canary_version="2"' not in text  # the old info series is gone
    assert 'modelship_rollout_duration_seconds_count{result="Succeeded"} 1.0' in text
    m.forget("ml", "r")
    assert 'rollout="r"' not in m.render().decode()


def test_health_server_endpoints() -> None:
    state = {"alive": True, "ready": False}
    server = HealthServer(
        ("127.0.0.1", 0), lambda: b"# metrics\n", lambda: state["alive"], lambda: state["ready"]
    )
    server.start()
    base = f"http://127.0.0.1:{server.port}"

    def get(path: str) -> int:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            err.close()
            return int(err.code)

    try:
        assert (get("/healthz"), get("/readyz"), get("/metrics"), get("/nope")) == (200, 503, 200, 404)
        state.update(alive=False, ready=True)
        assert (get("/healthz"), get("/readyz")) == (503, 200)
    finally:
        server.stop()
