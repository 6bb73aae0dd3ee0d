"""Leader election on a ``coordination.k8s.io/v1`` Lease, the way client-go's leaderelection does it.

Why: even one replica overlaps with its successor during a rolling update of the operator's own
Deployment, or with a pod that is still shutting down; two operators acting on the same rollout
would race. Only the Lease holder reconciles; others wait as hot standbys.

Expiry is judged on the local monotonic clock: a candidate remembers when it last saw the
Lease record change and takes over only after ``lease_duration`` without change, so clock skew
between machines does not matter. Writes use the read resourceVersion (optimistic concurrency).
The leader renews every ``retry_period``; if it cannot renew for ``renew_deadline`` it stops
leading (the process exits and restarts clean). On shutdown it releases the Lease so a
successor takes over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rollout_operator.kube import Kube, is_status, micro_time

log = logging.getLogger("modelship.rollout.leader")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration,
            renew_deadline,
            retry_period,
        )
        self.monotonic, self.wall = monotonic, wall
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.is_leader = False
        self.last_activity = monotonic()

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time(self.wall())
        ours = previous is not None and previous.get("holderIdentity") == self.identity
        transitions = int((previous or {}).get("leaseTransitions", 0)) + (
            0 if ours or previous is None else 1
        )
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": (previous or {}).get("acquireTime", now) if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True if this instance holds the Lease afterwards."""
        self.last_activity = self.monotonic()
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            if lease is None:
                body: dict[str, Any] = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(None),
                }
                created = self.kube.create_lease(self.namespace, body)
                self._observe(created)
                return True
            spec = lease.get("spec") or {}
            self._observe(lease)
            holder = spec.get("holderIdentity") or ""
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and self.monotonic() < self._observed_at + duration:
                return False
            lease["spec"] = self._spec(spec)
            self._observe(self.kube.replace_lease(self.namespace, lease))
            return True
        except Exception as exc:  # noqa: BLE001 - any failure here is retried with backoff
            if is_status(exc, 409):
                log.debug("lease %s changed under us; will retry", self.name)
            else:
                log.warning("lease %s: %s", self.name, exc)
            return False

    def _observe(self, lease: dict[str, Any]) -> None:
        """Note when the Lease record last changed (any write changes its resourceVersion)."""
        spec = lease.get("spec") or {}
        record = (
            (lease.get("metadata") or {}).get("resourceVersion"),
            spec.get("holderIdentity"),
            spec.get("renewTime"),
        )
        if record != self._observed:
            self._observed, self._observed_at = record, self.monotonic()

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this instance leads (True) or ``stop`` is set (False)."""
        logged = False
        while not stop.is_set():
            if self.try_acquire_or_renew():
                self.is_leader = True
                log.info("%s acquired lease %s/%s", self.identity, self.namespace, self.name)
                return True
            if not logged:
                log.info(
                    "%s waiting for lease %s/%s (held by %s)",
                    self.identity,
                    self.namespace,
                    self.name,
                    (self._observed or (None, "?"))[1],
                )
                logged = True
            stop.wait(self.retry_period)
        return False

    def hold(self, stop: threading.Event) -> bool:
        """Renew until ``stop`` (True) or until renewal fails for ``renew_deadline`` (False: lost)."""
        last_renew = self.monotonic()
        while not stop.wait(self.retry_period):
            if self.try_acquire_or_renew():
                last_renew = self.monotonic()
            elif self.monotonic() - last_renew > self.renew_deadline:
                log.error(
                    "%s could not renew lease %s for %.0fs; stepping down",
                    self.identity,
                    self.name,
                    self.renew_deadline,
                )
                self.is_leader = False
                return False
        return True

    def release(self) -> None:
        """Give the Lease up (holder cleared, 1 s duration) so a standby takes over without waiting."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(self.wall()))
            self.kube.replace_lease(self.namespace, lease)
            log.info("%s released lease %s", self.identity, self.name)
        except Exception as exc:  # noqa: BLE001 - best effort: the Lease expires on its own
            log.warning("cannot release lease %s: %s", self.name, exc)
