"""The polling thread: scans every model's source, loads and unloads versions, applies reconfigurations.

It behaves like TF Serving's file-system source plus ``AvailabilityPreservingPolicy``:

* every ``poll_seconds`` each model's source is listed and the version policy picks the versions
  to serve;
* a new version is loaded (see :mod:`.loader`) and only then made AVAILABLE; versions leaving the
  policy are unloaded after that, so the model never has a gap;
* a version that fails to load is marked END with the reason and the previous one keeps serving;
  it is retried when its files change;
* a version must stay unchanged for ``settle_seconds`` before it is loaded, so a copy in progress
  is never loaded half-written.

Reconfigurations are applied by this thread too (between two polls), so a reconfiguration can never
replace a model's record while a version is being loaded into it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from service.errors import Code, ServingError
from service.model_config import ModelConfig
from service.repository.loader import Loader, collect_unloaded, freeze_loaded
from service.repository.registry import ModelRegistry, State
from service.repository.source import Fingerprint, Source, VersionRef, source_for

log = logging.getLogger("service.repository")  # the name its log lines have always had


@dataclass
class _Candidate:
    fingerprint: Fingerprint
    first_seen: float
    failed_fingerprint: Fingerprint | None = None


@dataclass
class _Watched:
    """What polling remembers of one model (forgotten on reconfiguration)."""

    config: ModelConfig
    source: Source
    candidates: dict[int, _Candidate] = field(default_factory=dict)
    warned_empty: bool = False


def _watch(configs: list[ModelConfig]) -> dict[str, _Watched]:
    return {c.name: _Watched(c, source_for(c.base_path)) for c in configs}


class Poller:
    """Keeps ``registry`` in step with the sources; ``start`` begins polling, ``stop`` ends it."""

    def __init__(
        self,
        registry: ModelRegistry,
        loader: Loader,
        configs: list[ModelConfig],
        poll_seconds: float = 1.0,
        settle_seconds: float = 0.5,
    ) -> None:
        self._registry = registry
        self._loader = loader
        self._watched = _watch(configs)
        self._poll_seconds = poll_seconds
        self._settle_seconds = settle_seconds
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
        self._registry.reconfigure(configs)
        self._watched = _watch(configs)
        for event in waiters:
            event.set()

    # -- polling -------------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """Apply a pending reconfiguration, then scan every model once, load and unload as needed.

        Returns True if a version is still settling.
        """
        self._apply_pending()
        pending = False
        for watched in list(self._watched.values()):
            try:
                pending |= self._poll_model(watched)
            except Exception:
                log.exception("polling model %s failed", watched.config.name)
        return pending

    def _poll_model(self, watched: _Watched) -> bool:
        config = watched.config
        found = watched.source.versions()
        if not found and not watched.warned_empty:
            log.warning(
                "No versions of servable %s found under base path %s. Did you forget to "
                "name your leaf directory as a number (eg. '/1/')?",
                config.name,
                config.base_path,
            )
            watched.warned_empty = True
        wanted = config.policy.select(list(found))
        available = self._registry.available(config.name)
        pending = False
        now = time.monotonic()
        for version in sorted(wanted, reverse=True):
            if version in available:
                continue
            fingerprint = watched.source.fingerprint(found[version])
            cand = watched.candidates.get(version)
            if cand is None or cand.fingerprint != fingerprint:
                failed = cand.failed_fingerprint if cand else None
                watched.candidates[version] = _Candidate(fingerprint, now, failed)
                if self._settle_seconds > 0:
                    self._registry.set_state(config.name, version, State.START)
                    pending = True
                    continue
                cand = watched.candidates[version]
            if cand.failed_fingerprint == fingerprint:
                continue  # failed before and unchanged since: wait for new files
            if now - cand.first_seen < self._settle_seconds:
                pending = True
                continue
            self._load(watched, found[version], cand)
        self._unload_unwanted(config.name, set(wanted))
        return pending

    def _load(self, watched: _Watched, ref: VersionRef, cand: _Candidate) -> None:
        name, version = watched.config.name, ref.version
        self._registry.set_state(name, version, State.LOADING)
        started = time.monotonic()
        try:
            servable = self._loader.load_version(name, version, watched.source.local_path(ref))
        except ServingError as exc:
            cand.failed_fingerprint = cand.fingerprint
            self._registry.set_state(name, version, State.END, exc.code, exc.message)
            log.error("failed to load version %d of %s: %s", version, name, exc.message)
            return
        except Exception as exc:
            cand.failed_fingerprint = cand.fingerprint
            self._registry.set_state(name, version, State.END, Code.UNKNOWN, str(exc)[:1000])
            log.exception("failed to load version %d of %s", version, name)
            return
        self._registry.add(name, version, servable)
        watched.candidates.pop(version, None)
        freeze_loaded()
        self._registry.set_state(name, version, State.AVAILABLE)
        fast = servable.lite.signatures if servable.lite else []
        log.info(
            "version %d of %s is AVAILABLE (loaded in %.2fs; LiteRT for %s)",
            version,
            name,
            time.monotonic() - started,
            ", ".join(fast) or "no signature",
        )

    def _unload_unwanted(self, name: str, wanted: set[int]) -> None:
        available = self._registry.available(name)
        unwanted = [v for v in available if v not in wanted]
        if not unwanted:
            return
        if wanted and not any(v in available for v in wanted):
            return  # availability preserving: keep serving until a wanted version is up
        for version in sorted(unwanted):
            self._registry.set_state(name, version, State.UNLOADING)
            self._registry.remove(name, version)
            self._registry.set_state(name, version, State.END)
            log.info("version %d of %s unloaded", version, name)
        collect_unloaded()
