"""The applied traffic config: one immutable :class:`Applied` snapshot, swapped whole on a reload.

Request paths read ``Traffic.applied`` once (one attribute load: atomic under the GIL), so a request
sees either the old or the new config, never a mix, and no request waits for a reload. A reload
builds fresh split and shadow counters (a new cycle starts). Unknown model names are kept and
apply once such a model is served. ``on_apply`` hears every applied config (the server hands the
``versions`` pins to the repository that way), before :meth:`Traffic.apply` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.traffic.config import ModelTraffic, Shadow, TrafficConfig, config_hash, normalized
from service.traffic.split import ShareCounter, WeightedSplit

__all__ = ["Applied", "Route", "Traffic"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """What name-only requests for one model do."""

    split: WeightedSplit | None
    sticky_header: str | None
    shadow: Shadow | None
    shadow_sample: ShareCounter | None

    @classmethod
    def build(cls, spec: ModelTraffic) -> Route:
        split = WeightedSplit(spec.weights) if any(w > 0 for w in spec.weights.values()) else None
        sample = ShareCounter(spec.shadow.percent) if spec.shadow is not None else None
        return cls(split, spec.sticky_header, spec.shadow, sample)


@dataclass(frozen=True)
class Applied:
    config: TrafficConfig
    hash: str
    loaded_at: float  # wall-clock time it was applied
    source: str | None  # the file it came from
    routes: Mapping[str, Route] = field(default_factory=dict)


@dataclass(frozen=True)
class LastError:
    message: str
    at: float


class Traffic:
    """Holds the applied config, the last reload error and the error count."""

    def __init__(self, on_apply: Callable[[TrafficConfig], None] | None = None) -> None:
        empty = TrafficConfig.model_validate({})
        self._on_apply = on_apply
        self.applied = Applied(empty, config_hash(empty), time.time(), None)
        self.last_error: LastError | None = None
        self.errors_total = 0
        self._lock = threading.Lock()  # writers only; readers never take it

    def apply(self, config: TrafficConfig, source: str | None, known_models: Iterable[str] = ()) -> Applied:
        known = set(known_models)
        for name in config.models:
            if known and name not in known:
                log.warning(
                    "traffic config %s: model %r is not served (yet); ignored until it is", source, name
                )
        routes = {name: Route.build(spec) for name, spec in config.models.items()}
        applied = Applied(config, config_hash(config), time.time(), source, routes)
        with self._lock:
            self.applied = applied
            if self._on_apply is not None:
                self._on_apply(config)
        log.info(
            "traffic config applied from %s: generation %r, hash %s", source, config.generation, applied.hash
        )
        return applied

    def failed(self, message: str) -> None:
        """A new file could not be applied: the current config stays; count and remember why."""
        with self._lock:
            self.last_error = LastError(message, time.time())
            self.errors_total += 1
        log.error("traffic config not applied (keeping hash %s): %s", self.applied.hash, message)

    def route(self, model: str) -> Route | None:
        return self.applied.routes.get(model)

    def status(self) -> dict[str, Any]:
        """The ``GET /v1/modelship/traffic`` body."""
        applied, error = self.applied, self.last_error
        return {
            "generation": applied.config.generation,
            "hash": applied.hash,
            "loaded_at": _stamp(applied.loaded_at),
            "source": applied.source,
            "config": normalized(applied.config),
            "errors_total": self.errors_total,
            "last_error": None if error is None else {"message": error.message, "at": _stamp(error.at)},
        }


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
