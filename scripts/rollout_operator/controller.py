"""The operator's event loop: watches feed a work queue, workers run the driver, a resync re-queues all.

Three watches in the operator's namespace: ModelRollouts (their names are the queue keys),
Deployments (a canary's ``modelship.io/rollout`` label, or a serving Deployment some rollout
targets) and canary pods (``modelship.io/track=canary``, so verification starts the moment a pod
is ready). Every rollout is also re-queued every ``resync`` seconds, and after every reconcile at
the time the decision asked for (end of a pause, next measurement). A failed reconcile is retried
with per-rollout exponential backoff (1 s ... 60 s).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from rollout_operator.driver import Driver
from rollout_operator.kube import Kube, ListWatchSource
from rollout_operator.metrics import OperatorMetrics
from rollout_operator.names import GROUP, LABEL_ROLLOUT, LABEL_TRACK, PLURAL, TRACK_CANARY, VERSION
from rollout_operator.watcher import Watcher
from rollout_operator.workqueue import WorkQueue

log = logging.getLogger("modelship.rollout.controller")
Obj = dict[str, Any]


class Controller:
    def __init__(
        self,
        kube: Kube,
        driver: Driver,
        namespace: str,
        metrics: OperatorMetrics,
        workers: int = 2,
        resync: float = 30.0,
    ) -> None:
        self.kube, self.driver, self.namespace, self.metrics = kube, driver, namespace, metrics
        self.workers, self.resync = workers, resync
        self.queue = WorkQueue()
        self._targets: dict[str, str] = {}  # rollout name -> serving Deployment name
        self._lock = threading.Lock()
        self.heartbeat = time.monotonic()
        self.watchers: list[Watcher] = []

    # -- event handlers --------------------------------------------------------------------------

    def _rollout_listed(self, items: list[Obj]) -> None:
        names = set()
        with self._lock:
            self._targets.clear()
            for obj in items:
                name = obj["metadata"]["name"]
                names.add(name)
                self._targets[name] = ((obj.get("spec") or {}).get("targetRef") or {}).get("name", "")
        for name in names:
            self.queue.add(name)

    def _rollout_event(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self._targets.pop(name, None)
            else:
                self._targets[name] = ((obj.get("spec") or {}).get("targetRef") or {}).get("name", "")
        self.queue.add(name)

    def _deployment_event(self, kind: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(LABEL_ROLLOUT)
        if owner:
            self.queue.add(owner)
        with self._lock:
            rollouts = [r for r, target in self._targets.items() if target == meta.get("name")]
        for rollout in rollouts:
            self.queue.add(rollout)

    def _pod_event(self, kind: str, obj: Obj) -> None:
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_ROLLOUT)
        if owner:
            self.queue.add(owner)

    def _restart(self, resource: str, reason: str) -> None:
        self.metrics.watch_restarts.labels(resource, reason).inc()

    # -- loops -----------------------------------------------------------------------------------

    def _make_watchers(self, stop: threading.Event) -> list[Watcher]:
        custom = self.kube.custom
        list_rollouts = functools.partial(_list_custom, custom)
        specs = [
            (
                "modelrollouts",
                ListWatchSource(list_rollouts, self.namespace),
                self._rollout_event,
                self._rollout_listed,
            ),
            (
                "deployments",
                ListWatchSource(self.kube.apps.list_namespaced_deployment, self.namespace),
                self._deployment_event,
                lambda items: None,
            ),
            (
                "pods",
                ListWatchSource(
                    self.kube.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=f"{LABEL_TRACK}={TRACK_CANARY}",
                ),
                self._pod_event,
                lambda items: None,
            ),
        ]
        return [
            Watcher(name, source, on_event, on_list, stop, on_restart=functools.partial(self._restart, name))
            for name, source, on_event, on_list in specs
        ]

    def _worker(self, stop: threading.Event) -> None:
        while not stop.is_set():
            key = self.queue.get(timeout=1.0)
            self.heartbeat = time.monotonic()
            if key is None:
                continue
            started = time.monotonic()
            try:
                delay = self.driver.reconcile(self.namespace, key)
                self.queue.forget(key)
                self.metrics.reconciles.labels("ok").inc()
                if delay is not None:
                    self.queue.add_after(key, delay)
            except Exception as exc:
                retry = self.queue.retry_delay(key)
                self.metrics.reconciles.labels("error").inc()
                log.warning(
                    "reconcile %s/%s failed (%s: %s); retrying in %.0fs",
                    self.namespace,
                    key,
                    type(exc).__name__,
                    exc,
                    retry,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                self.queue.add_after(key, retry)
            finally:
                self.metrics.reconcile_seconds.observe(time.monotonic() - started)
                self.queue.done(key)

    def _resync(self, stop: threading.Event) -> None:
        while not stop.wait(self.resync):
            with self._lock:
                names = list(self._targets)
            for name in names:
                self.queue.add(name)

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set."""
        self.watchers = self._make_watchers(stop)
        threads = [threading.Thread(target=w.run, name=f"watch-{w.name}", daemon=True) for w in self.watchers]
        threads += [
            threading.Thread(target=self._worker, args=(stop,), name=f"worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        threads.append(threading.Thread(target=self._resync, args=(stop,), name="resync", daemon=True))
        for t in threads:
            t.start()
        log.info("controller running in namespace %s with %d workers", self.namespace, self.workers)
        stop.wait()
        self.queue.shutdown()
        for t in threads:
            t.join(timeout=5)

    def synced(self) -> bool:
        return bool(self.watchers) and all(w.synced.is_set() for w in self.watchers)


def _list_custom(custom: Any, namespace: str, **kwargs: Any) -> Any:
    return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kwargs)
