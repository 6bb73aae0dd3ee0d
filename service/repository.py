"""The model repository: finds versions on disk, loads and unloads them, resolves requests.

It behaves like TF Serving's file-system source plus ``AvailabilityPreservingPolicy``:

* every ``poll_seconds`` each model's base path is scanned for integer version directories and
  the version policy picks the ones to serve;
* a new version is loaded, verified against its manifest, warmed up, and only then made
  AVAILABLE; versions leaving the policy are unloaded after that, so the model never has a gap;
* a version that fails to load is marked END with the reason and the previous one keeps serving;
  it is retried when its files change;
* a version directory must stay unchanged for ``settle_seconds`` before it is loaded, so a copy
  in progress is never loaded half-written.

Loads run on one background thread; request threads only read immutable snapshots. The polling
thread also applies reconfigurations (between two polls), so a reconfiguration can never replace a
model's record while a version is being loaded into it.
"""

from __future__ import annotations

import enum
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from service import runtime, warmup
from service.errors import Code, InvalidArgument, NotFound, ServingError, Unavailable
from service.model_config import ModelConfig
from service.servable import Servable, load

log = logging.getLogger(__name__)

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


@dataclass
class _Candidate:
    fingerprint: tuple[tuple[str, int, int], ...]
    first_seen: float
    failed_fingerprint: tuple[tuple[str, int, int], ...] | None = None


@dataclass
class _Model:
    config: ModelConfig
    available: dict[int, Servable] = field(default_factory=dict)  # replaced, never mutated
    statuses: dict[int, VersionStatus] = field(default_factory=dict)
    candidates: dict[int, _Candidate] = field(default_factory=dict)
    warned_empty: bool = False


Listener = Callable[[str, int, State], None]


class ModelRepository:
    """Serves the models of a config; ``start`` begins polling, ``stop`` ends it."""

    def __init__(self, configs: list[ModelConfig], poll_seconds: float = 1.0,
                 settle_seconds: float = 0.5, verify_manifest: bool = True,
                 enable_warmup: bool = True, listener: Listener | None = None,
                 fast_runtime: bool = False) -> None:
        self._models: dict[str, _Model] = {c.name: _Model(c) for c in configs}
        self._poll_seconds = poll_seconds
        self._settle_seconds = settle_seconds
        self._verify_manifest = verify_manifest
        self._enable_warmup = enable_warmup
        self._listener = listener
        self._fast_runtime = fast_runtime
        self._lock = threading.Lock()
        self._pending: list[ModelConfig] | None = None  # a reconfiguration for the polling thread
        self._waiters: list[threading.Event] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-repository", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            pending = self.poll_once()
            interval = self._poll_seconds if self._poll_seconds > 0 else None
            if pending:  # a version is settling: look again soon
                interval = max(0.05, self._settle_seconds / 2)
            if interval is None:
                self._wake.wait()
            else:
                self._wake.wait(interval)
            self._wake.clear()

    def reconfigure(self, configs: list[ModelConfig]) -> threading.Event:
        """Replace the served models (TF Serving's full-replacement semantics).

        The polling thread applies it before its next poll and sets the returned event then; a
        newer reconfiguration replaces one not yet applied.
        """
        applied = threading.Event()
        with self._lock:
            self._pending = configs
            self._waiters.append(applied)
        self._wake.set()
        return applied

    def _apply_pending(self) -> None:
        with self._lock:
            configs, self._pending = self._pending, None
            waiters, self._waiters = self._waiters, []
            if configs is None:
                return
            current = self._models
            self._models = {
                c.name: (_Model(c, current[c.name].available, current[c.name].statuses)
                         if c.name in current else _Model(c))
                for c in configs
            }
            removed = [m for name, m in current.items() if name not in self._models]
        for model in removed:
            for version in list(model.available):
                self._set_state(model, version, State.END)
        for event in waiters:
            event.set()

    def reconfiguring(self) -> bool:
        """True while a reconfiguration waits for the polling thread."""
        return self._pending is not None

    # -- polling -------------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """Apply a pending reconfiguration, then scan every model once, load and unload as needed.

        Returns True if a version is still settling.
        """
        self._apply_pending()
        pending = False
        for model in list(self._models.values()):
            try:
                pending |= self._poll_model(model)
            except Exception:
                log.exception("polling model %s failed", model.config.name)
        return pending

    def _poll_model(self, model: _Model) -> bool:
        name, base = model.config.name, model.config.base_path
        on_disk = _version_dirs(base)
        if not on_disk and not model.warned_empty:
            log.warning("No versions of servable %s found under base path %s. Did you forget to "
                        "name your leaf directory as a number (eg. '/1/')?", name, base)
            model.warned_empty = True
        wanted = model.config.policy.select(list(on_disk))
        pending = False
        now = time.monotonic()
        for version in sorted(wanted, reverse=True):
            if version in model.available:
                continue
            fingerprint = _fingerprint(on_disk[version])
            cand = model.candidates.get(version)
            if cand is None or cand.fingerprint != fingerprint:
                failed = cand.failed_fingerprint if cand else None
                model.candidates[version] = _Candidate(fingerprint, now, failed)
                if self._settle_seconds > 0:
                    self._set_state(model, version, State.START)
                    pending = True
                    continue
                cand = model.candidates[version]
            if cand.failed_fingerprint == fingerprint:
                continue  # failed before and unchanged since: wait for new files
            if now - cand.first_seen < self._settle_seconds:
                pending = True
                continue
            self._load(model, version, on_disk[version], cand)
        self._unload_unwanted(model, set(wanted))
        return pending

    def _load(self, model: _Model, version: int, path: Path, cand: _Candidate) -> None:
        name = model.config.name
        self._set_state(model, version, State.LOADING)
        started = time.monotonic()
        try:
            servable = load(name, version, path, verify_manifest=self._verify_manifest)
            if self._enable_warmup:
                warmup.warm_up(servable)
            if self._fast_runtime:
                servable.lite = runtime.convert(path, servable.signatures,
                                                runtime.verification_samples(servable))
        except ServingError as exc:
            cand.failed_fingerprint = cand.fingerprint
            self._set_state(model, version, State.END, exc.code, exc.message)
            log.error("failed to load version %d of %s: %s", version, name, exc.message)
            return
        except Exception as exc:
            cand.failed_fingerprint = cand.fingerprint
            self._set_state(model, version, State.END, Code.UNKNOWN, str(exc)[:1000])
            log.exception("failed to load version %d of %s", version, name)
            return
        with self._lock:
            model.available = {**model.available, version: servable}
        model.candidates.pop(version, None)
        # A loaded SavedModel is ~300k Python objects; a full GC pass over them stalls every
        # request for ~100-200 ms. Freezing moves them out of the collector's generations.
        gc.freeze()
        self._set_state(model, version, State.AVAILABLE)
        fast = servable.lite.signatures if servable.lite else []
        log.info("version %d of %s is AVAILABLE (loaded in %.2fs; LiteRT for %s)", version, name,
                 time.monotonic() - started, ", ".join(fast) or "no signature")

    def _unload_unwanted(self, model: _Model, wanted: set[int]) -> None:
        unwanted = [v for v in model.available if v not in wanted]
        if not unwanted:
            return
        if wanted and not any(v in model.available for v in wanted):
            return  # availability preserving: keep serving until a wanted version is up
        for version in sorted(unwanted):
            self._set_state(model, version, State.UNLOADING)
            with self._lock:
                model.available = {v: s for v, s in model.available.items() if v != version}
            self._set_state(model, version, State.END)
            log.info("version %d of %s unloaded", version, model.config.name)
        # Frozen objects are never collected: thaw, collect the unloaded versions, freeze again
        # (one pause per unload rather than on the request path).
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _set_state(self, model: _Model, version: int, state: State, code: Code = Code.OK,
                   message: str = "") -> None:
        with self._lock:
            model.statuses[version] = VersionStatus(version, state, code, message)
            ended = [v for v, s in model.statuses.items() if s.state == State.END]
            if len(model.statuses) > MAX_HISTORY and ended:
                model.statuses.pop(min(ended))
        if self._listener is not None:
            self._listener(model.config.name, version, state)

    # -- queries (any thread) ------------------------------------------------------------------

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
            if servable is None:
                raise Unavailable(f"Label {label} of model {name} points to version {target}, "
                                  "which is not currently available for inference")
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

    def statuses(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Version statuses of ``name`` (all it has seen, or one), newest first."""
        model = self._models.get(name)
        if model is None or not model.statuses:
            raise NotFound(f"Could not find any versions of model {name}")
        with self._lock:
            found = sorted(model.statuses.values(), key=lambda s: s.version, reverse=True)
        if version is not None:
            found = [s for s in found if s.version == version]
            if not found:
                raise NotFound(f"Could not find version {version} of model {name}")
        return [VersionStatus(s.version, s.state, s.error_code, s.error_message) for s in found]




def _version_dirs(base: Path) -> dict[int, Path]:
    try:
        children = list(base.iterdir())
    except OSError:
        return {}
    out: dict[int, Path] = {}
    for child in children:
        name = child.name
        if name.isdigit() and child.is_dir():
            version = int(name)
            if version < 2**63:
                out.setdefault(version, child)
    return out


def _fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    items = []
    for file in sorted(path.rglob("*")):
        try:
            st = file.stat()
        except OSError:
            continue
        items.append((file.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns))
    return tuple(items)
