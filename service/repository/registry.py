"""The loaded versions of every served model, with labels and statuses: what the transports read.

Only the poller's thread writes (``reconfigure``, ``add``, ``remove``, ``set_state``); request
threads read. A model's map of available versions is replaced, never mutated, so a reader always
sees a consistent snapshot.

It also holds the version pins of the traffic file (``set_pins``, from whichever thread applies
that file): while a model is pinned, :meth:`ModelRegistry.policy` is ``specific`` with the pinned
versions instead of the model config's policy. Pins of models not served (yet) are kept.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from service.errors import Code, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from service.model_config import ModelConfig, VersionPolicy
from service.servable import Servable

MAX_HISTORY = 64


class State(enum.IntEnum):
    """``ModelVersionStatus.State`` of TF Serving."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass
class VersionStatus:
    version: int
    state: State
    error_code: Code = Code.OK
    error_message: str = ""


Listener = Callable[[str, int, State], None]


@dataclass
class SourceHealth:
    """How listing a model's source goes: the current error (None when fine) and counts."""

    error: str | None = None
    failing_since: float | None = None  # wall-clock time of the first failure in a row
    failures_total: int = 0
    last_success: float | None = None  # wall-clock time of the last good listing


@dataclass
class _Model:
    config: ModelConfig
    available: dict[int, Servable] = field(default_factory=dict)  # replaced, never mutated
    statuses: dict[int, VersionStatus] = field(default_factory=dict)
    source: SourceHealth = field(default_factory=SourceHealth)


class ModelRegistry:
    """Served models by name; ``listener`` hears every state change."""

    def __init__(self, configs: list[ModelConfig], listener: Listener | None = None) -> None:
        self._models: dict[str, _Model] = {c.name: _Model(c) for c in configs}
        self._listener = listener
        self._lock = threading.Lock()
        self._pins: dict[str, tuple[int, ...]] = {}  # replaced, never mutated

    # -- pins (the thread applying the traffic file) -------------------------------------------

    def set_pins(self, pins: Mapping[str, tuple[int, ...]]) -> set[str]:
        """Pin these models to these versions (every other model unpinned); the names that changed."""
        new = {name: tuple(sorted(set(versions))) for name, versions in pins.items()}
        with self._lock:
            old, self._pins = self._pins, new
        return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}

    def pin(self, name: str) -> tuple[int, ...] | None:
        """The versions ``name`` is pinned to, or None when its config's policy decides."""
        return self._pins.get(name)

    def policy(self, config: ModelConfig) -> VersionPolicy:
        """The version policy in force for ``config``'s model: its pin if any, else its own."""
        pin = self._pins.get(config.name)
        return config.policy if pin is None else VersionPolicy("specific", versions=pin)

    # -- writes (the poller's thread) ----------------------------------------------------------

    def reconfigure(self, configs: list[ModelConfig]) -> None:
        """Serve ``configs``: kept models keep their versions, removed ones END."""
        with self._lock:
            current = self._models
            self._models = {
                c.name: (
                    _Model(c, current[c.name].available, current[c.name].statuses, current[c.name].source)
                    if c.name in current
                    else _Model(c)
                )
                for c in configs
            }
            removed = [m for name, m in current.items() if name not in self._models]
        for model in removed:
            for version in list(model.available):
                self._record(model, version, State.END)

    def available(self, name: str) -> dict[int, Servable]:
        return self._models[name].available

    def available_or_empty(self, name: str) -> dict[int, Servable]:
        """The AVAILABLE versions of ``name`` (replaced, never mutated: a snapshot), {} if unknown."""
        model = self._models.get(name)
        return model.available if model is not None else {}

    def add(self, name: str, version: int, servable: Servable) -> None:
        model = self._models[name]
        with self._lock:
            model.available = {**model.available, version: servable}

    def remove(self, name: str, version: int) -> None:
        model = self._models[name]
        with self._lock:
            model.available = {v: s for v, s in model.available.items() if v != version}

    def set_state(
        self, name: str, version: int, state: State, code: Code = Code.OK, message: str = ""
    ) -> None:
        self._record(self._models[name], version, state, code, message)

    def source_failed(self, name: str, message: str) -> None:
        """Listing ``name``'s source failed: its statuses carry ``message`` until it succeeds."""
        health = self._models[name].source
        with self._lock:
            if health.error is None:
                health.failing_since = time.time()
            health.error = message
            health.failures_total += 1

    def source_succeeded(self, name: str) -> None:
        health = self._models[name].source
        with self._lock:
            health.error = None
            health.failing_since = None
            health.last_success = time.time()

    def _record(
        self, model: _Model, version: int, state: State, code: Code = Code.OK, message: str = ""
    ) -> None:
        with self._lock:
            model.statuses[version] = VersionStatus(version, state, code, message)
            ended = [v for v, s in model.statuses.items() if s.state == State.END]
            if len(model.statuses) > MAX_HISTORY and ended:
                model.statuses.pop(min(ended))
        if self._listener is not None:
            self._listener(model.config.name, version, state)

    # -- reads (any thread) --------------------------------------------------------------------

    def model_names(self) -> list[str]:
        return list(self._models)

    def has_model(self, name: str) -> bool:
        return name in self._models

    def ready(self) -> bool:
        """True once every configured model has at least one AVAILABLE version."""
        return all(m.available for m in self._models.values())

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request addresses: latest AVAILABLE, a version, or a label."""
        model = self._models.get(name)
        if label is not None:
            if model is None:
                raise NotFound(f"Servable not found for request: Latest({name})")
            target = model.config.labels.get(label)
            if target is None:
                raise InvalidArgument(f"Unrecognized servable version label: {label}")
            servable = model.available.get(target)
            pin = self._pins.get(name)
            if servable is None and pin is not None and target not in pin:
                raise FailedPrecondition(
                    f"Label {label} of model {name} points to version {target}, which is not "
                    f"served: the traffic config pins the model to versions {list(pin)}"
                )
            if servable is None:
                raise Unavailable(
                    f"Label {label} of model {name} points to version {target}, "
                    "which is not currently available for inference"
                )
            return servable
        if version is not None:
            servable = model.available.get(version) if model else None
            if servable is None:
                raise NotFound(f"Servable not found for request: Specific({name}, {version})")
            return servable
        if model is None or not model.available:
            raise NotFound(f"Servable not found for request: Latest({name})")
        available = model.available
        return available[max(available)]

    def source_health(self, name: str) -> SourceHealth:
        model = self._models[name]
        with self._lock:
            return SourceHealth(**vars(model.source))

    def statuses(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Version statuses of ``name`` (all it has seen, or one), newest first.

        While the model's source cannot be read, its AVAILABLE versions (which keep serving) carry
        the source's error as ``UNAVAILABLE`` in their status, so ``GetModelStatus`` shows it.
        """
        model = self._models.get(name)
        if model is None or not model.statuses:
            raise NotFound(f"Could not find any versions of model {name}")
        with self._lock:
            found = sorted(model.statuses.values(), key=lambda s: s.version, reverse=True)
            error = model.source.error
            since = model.source.failing_since
        if version is not None:
            found = [s for s in found if s.version == version]
            if not found:
                raise NotFound(f"Could not find version {version} of model {name}")
        out = [VersionStatus(s.version, s.state, s.error_code, s.error_message) for s in found]
        if error is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since or time.time()))
            note = f"model source unreadable since {stamp}, still serving this version: {error}"
            for status in out:
                if status.state == State.AVAILABLE and status.error_code == Code.OK:
                    status.error_code, status.error_message = Code.UNAVAILABLE, note
        return out
