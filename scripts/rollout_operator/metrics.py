"""The operator's own Prometheus metrics (served on ``/metrics`` next to ``/healthz``).

* ``modelship_rollout_phase{namespace,rollout,phase}``: 1 for the phase each rollout is in, else 0
* ``modelship_rollout_info{namespace,rollout,stable_version,canary_version}``: 1
* ``modelship_rollout_canary_weight_percent``, ``modelship_rollout_current_step``,
  ``modelship_rollout_steps`` (per rollout)
* ``modelship_rollout_analysis_measurements_total{namespace,rollout,phase}``
* ``modelship_rollout_events_total{namespace,rollout,type,reason}``: every transition
* ``modelship_rollout_duration_seconds{result}``: histogram of finished rollouts
* ``modelship_rollout_reconciles_total{result}``, ``modelship_rollout_reconcile_duration_seconds``
* ``modelship_rollout_leader``: 1 on the instance holding the lease
* ``modelship_rollout_watch_restarts_total{resource,reason}``: re-lists after 410 Gone, errors
"""

from __future__ import annotations

import contextlib
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rollout_operator.phases import DONE_PHASES, PHASES
from rollout_operator.status import Status


class OperatorMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.phase = Gauge(
            "modelship_rollout_phase",
            "1 for the phase each ModelRollout is in",
            ["namespace", "rollout", "phase"],
            registry=r,
        )
        self.info = Gauge(
            "modelship_rollout_info",
            "Stable and canary model version of each ModelRollout",
            ["namespace", "rollout", "stable_version", "canary_version"],
            registry=r,
        )
        self.weight = Gauge(
            "modelship_rollout_canary_weight_percent",
            "Share of serving pods that run the canary",
            ["namespace", "rollout"],
            registry=r,
        )
        self.step = Gauge(
            "modelship_rollout_current_step",
            "Index of the current canary step",
            ["namespace", "rollout"],
            registry=r,
        )
        self.steps = Gauge(
            "modelship_rollout_steps", "Number of canary steps", ["namespace", "rollout"], registry=r
        )
        self.measurements = Counter(
            "modelship_rollout_analysis_measurements",
            "Analysis measurements by result",
            ["namespace", "rollout", "phase"],
            registry=r,
        )
        self.events = Counter(
            "modelship_rollout_events",
            "Kubernetes Events posted, by reason",
            ["namespace", "rollout", "type", "reason"],
            registry=r,
        )
        self.duration = Histogram(
            "modelship_rollout_duration_seconds",
            "Duration of finished rollouts",
            ["result"],
            buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
            registry=r,
        )
        self.reconciles = Counter(
            "modelship_rollout_reconciles", "Reconciles by result", ["result"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "modelship_rollout_reconcile_duration_seconds",
            "Time of one reconcile (API calls and probes included)",
            registry=r,
        )
        self.leader = Gauge(
            "modelship_rollout_leader", "1 when this instance holds the leader lease", registry=r
        )
        self.watch_restarts = Counter(
            "modelship_rollout_watch_restarts",
            "Watch restarts by resource and reason",
            ["resource", "reason"],
            registry=r,
        )
        self._info_labels: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()

    def observe(self, namespace: str, rollout: str, before: Status, after: Status) -> None:
        """Update the per-rollout series after a reconcile."""
        with self._lock:
            for phase in PHASES:
                self.phase.labels(namespace, rollout, phase).set(1.0 if after.phase == phase else 0.0)
            labels = (after.stable_version, after.canary_version)
            old = self._info_labels.get((namespace, rollout))
            if old is not None and old != labels:
                self.info.remove(namespace, rollout, *old)
            self.info.labels(namespace, rollout, *labels).set(1.0)
            self._info_labels[(namespace, rollout)] = labels
            self.weight.labels(namespace, rollout).set(after.canary_weight)
            self.step.labels(namespace, rollout).set(after.current_step)
            self.steps.labels(namespace, rollout).set(after.steps)
            if after.analysis.measurements > before.analysis.measurements and after.analysis.last:
                self.measurements.labels(namespace, rollout, after.analysis.last.get("phase", "")).inc()
            finished = after.phase in DONE_PHASES and before.phase != after.phase
            if finished and after.started_at is not None and after.finished_at is not None:
                self.duration.labels(after.phase).observe(max(0.0, after.finished_at - after.started_at))

    def forget(self, namespace: str, rollout: str) -> None:
        """Drop the series of a deleted rollout."""
        with self._lock:
            for phase in PHASES:
                with contextlib.suppress(KeyError):
                    self.phase.remove(namespace, rollout, phase)
            old = self._info_labels.pop((namespace, rollout), None)
            for gauge in (self.weight, self.step, self.steps):
                with contextlib.suppress(KeyError):
                    gauge.remove(namespace, rollout)
            if old is not None:
                with contextlib.suppress(KeyError):
                    self.info.remove(namespace, rollout, *old)

    def render(self) -> bytes:
        return generate_latest(self.registry)
