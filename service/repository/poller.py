"""The polling thread: scans every model's source, loads and unloads versions, applies reconfigurations.

It behaves like TF Serving's file-system source plus ``AvailabilityPreservingPolicy``:

* each model's source is listed every ``poll_seconds`` (``remote_poll_seconds`` for object
  storage, where every listing is a billed request) and the version policy picks the versions to
  serve;
* a new version is loaded (see :mod:`.loader`) and only then made AVAILABLE; versions leaving the
  policy are unloaded after that, so the model never has a gap;
* a version that fails to load is marked END with the reason and the previous one keeps serving;
  it is retried when its files change;
* a version must stay unchanged for ``settle_seconds`` before it is loaded, so a copy in progress
  is never loaded half-written; a version whose commit marker is there (``manifest.json`` in object
  storage), or whose files have not changed for that long already (a directory's ctimes: the
  version baked into the image), loads at once;
* a source that cannot be read, or lists no version at all, never unloads anything (TF Serving
  unloads every version on an empty listing): the error shows in the model's status and metrics,
  and the source is retried with exponential backoff until it recovers.

Reconfigurations are applied by this thread too (between two polls), so a reconfiguration can never
replace a model's record while a version is being loaded into it.

The version policy in force is the registry's (:meth:`ModelRegistry.policy`): a traffic-file pin
replaces the model config's policy. When a pin changes, :meth:`Poller.repin` wakes this thread,
which re-decides those models at once from their last listing (no new listing of object storage:
a pinned version already listed loads without waiting for the next poll), loading newly pinned
versions first and then unloading the versions no longer pinned, as for any policy change.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from model.storage import is_object_url
from service import process
from service.errors import Code, ServingError
from service.model_config import ModelConfig
from service.repository.cache import ModelCache
from service.repository.loader import Loader, collect_unloaded, freeze_loaded
from service.repository.registry import ModelRegistry, State
from service.repository.source import SourceUnavailable, VersionRef, source_for
from service.repository.watch import Candidate, Watched

log = logging.getLogger("service.repository")  # the name its log lines have always had


class Poller:
    """Keeps ``registry`` in step with the sources; ``start`` begins polling, ``stop`` ends it."""

    def __init__(
        self,
        registry: ModelRegistry,
        loader: Loader,
        configs: list[ModelConfig],
        cache: ModelCache,
        poll_seconds: float = 1.0,
        settle_seconds: float = 0.5,
        remote_poll_seconds: float = 30.0,
    ) -> None:
        self._registry = registry
        self._loader = loader
        self._cache = cache
        self._poll_seconds = poll_seconds
        self._remote_poll_seconds = remote_poll_seconds
        self._settle_seconds = settle_seconds
        self._watched = self._watch(configs)
        self._lock = threading.Lock()
        self._pending: list[ModelConfig] | None = None  # a reconfiguration for the polling thread
        self._waiters: list[threading.Event] = []
        self._repin: set[str] = set()  # models whose pin changed, for the polling thread
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

    def _watch(self, configs: list[ModelConfig]) -> dict[str, Watched]:
        """Fresh polling state per model; a model kept with the same base path keeps its source."""
        previous: dict[str, Watched] = getattr(self, "_watched", {})
        out = {}
        for c in configs:
            prev = previous.get(c.name)
            kept = prev is not None and prev.config.base_path == c.base_path
            source = (
                prev.source if prev is not None and kept else source_for(c.base_path, c.name, self._cache)
            )
            remote = is_object_url(c.base_path)
            out[c.name] = Watched(c, source, self._remote_poll_seconds if remote else self._poll_seconds)
        for name in set(previous) - set(out):
            self._cache.prune(name, set())  # a model no longer served leaves the download cache
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self._apply_pending()
            self._apply_repin()
            now = time.monotonic()
            for watched in list(self._watched.values()):
                if watched.due <= now:
                    self._poll_scheduled(watched)
            due = min((w.due for w in self._watched.values()), default=float("inf"))
            wait = due - time.monotonic()
            if wait == float("inf"):
                self._wake.wait()
            elif wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    def _poll_scheduled(self, watched: Watched) -> None:
        settling = self._poll_guarded(watched)
        watched.reschedule(time.monotonic(), settling, self._settle_seconds)

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

    def repin(self, names: set[str]) -> None:
        """The pins of ``names`` changed: re-decide their versions now (on the polling thread)."""
        if not names:
            return
        with self._lock:
            self._repin |= names
        self._wake.set()

    def _apply_repin(self) -> None:
        with self._lock:
            names, self._repin = self._repin, set()
        for name in sorted(names):
            watched = self._watched.get(name)
            if watched is None:
                continue  # not served (yet): its pin applies once it is
            now = time.monotonic()
            if watched.found is None:  # never listed: list it now
                watched.due = now
                continue
            log.info("model %s: version pin now %s; re-deciding its versions", name, self._registry.pin(name))
            if self._evaluate(watched, watched.found):
                watched.due = min(watched.due, now + max(0.05, self._settle_seconds / 2))

    def source_requests(self) -> dict[tuple[str, str], int]:
        """Requests each object-storage source has sent, by (model, operation)."""
        out: dict[tuple[str, str], int] = {}
        for name, watched in list(self._watched.items()):
            counters = getattr(watched.source, "counters", None)
            if counters is not None:
                out.update({(name, op): n for op, n in counters.requests.items()})
        return out

    def _apply_pending(self) -> None:
        with self._lock:
            configs, self._pending = self._pending, None
            waiters, self._waiters = self._waiters, []
        if configs is None:
            return
        self._registry.reconfigure(configs)
        self._watched = self._watch(configs)
        for event in waiters:
            event.set()

    # -- polling -------------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """Apply a pending reconfiguration, then scan every model once, load and unload as needed.

        Returns True if a version is still settling.
        """
        self._apply_pending()
        with self._lock:
            self._repin = set()  # every model is decided again below
        pending = False
        for watched in list(self._watched.values()):
            pending |= self._poll_guarded(watched)
        return pending

    def _poll_guarded(self, watched: Watched) -> bool:
        name = watched.config.name
        try:
            found = watched.source.versions()
        except SourceUnavailable as exc:
            watched.failures += 1
            self._registry.source_failed(name, exc.message)
            log.warning(
                "model %s: cannot list %s (%d in a row; the loaded versions keep serving): %s",
                name,
                watched.source,
                watched.failures,
                exc.message,
            )
            return False
        if watched.failures:
            log.info("model %s: %s readable again", name, watched.source)
        watched.failures = 0
        watched.found = found
        self._registry.source_succeeded(name)
        return self._evaluate(watched, found)

    def _evaluate(self, watched: Watched, found: dict[int, VersionRef]) -> bool:
        """Load and unload ``watched``'s versions for listing ``found``; True if one is settling."""
        try:
            return self._poll_model(watched, found)
        except Exception:
            log.exception("polling model %s failed", watched.config.name)
            return False

    def _poll_model(self, watched: Watched, found: dict[int, VersionRef]) -> bool:
        config = watched.config
        if not found:
            if not watched.warned_empty:
                log.warning(
                    "No versions of servable %s found under base path %s. Did you forget to "
                    "name your leaf directory as a number (eg. '/1/')? Loaded versions keep serving.",
                    config.name,
                    config.base_path,
                )
                watched.warned_empty = True
            return False  # an empty listing never unloads what serves
        watched.warned_empty = False
        wanted = self._registry.policy(config).select(list(found))
        available = self._registry.available(config.name)
        pending = False
        now = time.monotonic()
        for version in sorted(wanted, reverse=True):
            if version in available:
                continue
            ref = found[version]
            fingerprint = watched.source.fingerprint(ref)
            cand = watched.candidates.get(version)
            if cand is None or cand.fingerprint != fingerprint:
                failed = cand.failed_fingerprint if cand else None
                quiet = watched.source.quiet_seconds(ref) or 0.0
                if quiet >= self._settle_seconds:
                    ref = dataclasses.replace(ref, committed=True)  # unchanged for long enough already
                watched.candidates[version] = Candidate(fingerprint, now, failed)
                if self._settle_seconds > 0 and not ref.committed:
                    self._registry.set_state(config.name, version, State.START)
                    pending = True
                    continue
                cand = watched.candidates[version]
            if cand.failed_fingerprint == fingerprint:
                continue  # failed before and unchanged since: wait for new files
            if not ref.committed and now - cand.first_seen < self._settle_seconds:
                pending = True
                continue
            self._load(watched, ref, cand)
        self._unload_unwanted(config.name, set(wanted))
        watched.source.retain(set(self._registry.available(config.name)))
        return pending

    def _load(self, watched: Watched, ref: VersionRef, cand: Candidate) -> None:
        name, version = watched.config.name, ref.version
        self._registry.set_state(name, version, State.LOADING)
        started = time.monotonic()
        try:
            servable = self._loader.load_version(name, version, watched.source.local_path(ref))
        except SourceUnavailable as exc:  # a download failed midway: not the version's fault
            self._registry.set_state(name, version, State.START, exc.code, exc.message)
            log.warning("version %d of %s: download failed, retrying: %s", version, name, exc.message)
            return
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
        steps = ", ".join(f"{step} {seconds:.2f}s" for step, seconds in servable.timings.items())
        log.info(
            "version %d of %s is AVAILABLE (loaded in %.2fs: %s; LiteRT for %s; %s)",
            version,
            name,
            time.monotonic() - started,
            steps,
            ", ".join(fast) or "no signature",
            process.describe(),
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
