"""Traffic inside the server: weighted splits and shadow scoring of name-only requests, configured live.

:mod:`~service.traffic.config` is the file format, :mod:`~service.traffic.split` the per-request
choice, :mod:`~service.traffic.routes` the applied (immutable, swapped) config,
:mod:`~service.traffic.watch` re-reads the file, :mod:`~service.traffic.shadow` and
:mod:`~service.traffic.compare` score a candidate off the client's path. The dataplane makes the
choice once per request; transports only report the version that answered.
"""

from __future__ import annotations

from service.traffic.config import ModelTraffic, Shadow, TrafficConfig, config_hash, normalized, parse
from service.traffic.routes import Applied, Route, Traffic
from service.traffic.shadow import DEFAULT_QUEUE, ShadowJob, ShadowWorker
from service.traffic.watch import TrafficFile

__all__ = [
    "DEFAULT_QUEUE",
    "Applied",
    "ModelTraffic",
    "Route",
    "Shadow",
    "ShadowJob",
    "ShadowWorker",
    "Traffic",
    "TrafficConfig",
    "TrafficFile",
    "config_hash",
    "normalized",
    "parse",
]
