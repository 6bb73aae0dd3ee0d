"""The model repository: finds versions, loads and unloads them, resolves requests.

Parts, one idea each: a :mod:`~service.repository.source` lists a model's versions and makes
their files local (a directory in place, or :mod:`~service.repository.object_source` downloading
from ``s3://`` / ``gs://`` into the :mod:`~service.repository.cache`), the
:mod:`~service.repository.loader` turns files into a servable, the
:mod:`~service.repository.registry` holds what is loaded (the transports read it), and the
:mod:`~service.repository.poller` drives them on one background thread (when to look again:
:mod:`~service.repository.watch`) and owns reconfiguration. :class:`ModelRepository` wires them.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from service.model_config import ModelConfig
from service.repository.cache import ModelCache
from service.repository.loader import Loader
from service.repository.poller import Poller
from service.repository.registry import Listener, ModelRegistry, SourceHealth, State, VersionStatus
from service.servable import Servable


class ModelRepository:
    """Serves the models of a config; ``start`` begins polling, ``stop`` ends it."""

    def __init__(
        self,
        configs: list[ModelConfig],
        poll_seconds: float = 1.0,
        settle_seconds: float = 0.5,
        verify_manifest: bool = True,
        enable_warmup: bool = True,
        listener: Listener | None = None,
        runtime: str = "tensorflow",
        remote_poll_seconds: float = 30.0,
        cache_dir: Path | None = None,
        cache_max_bytes: int | None = None,
    ) -> None:
        self.registry = ModelRegistry(configs, listener)
        loader = Loader(verify_manifest, enable_warmup, runtime)
        cache_root = cache_dir or Path(tempfile.gettempdir()) / "modelship-model-cache"
        self.cache = ModelCache(cache_root, cache_max_bytes or None)
        self.poller = Poller(
            self.registry, loader, configs, self.cache, poll_seconds, settle_seconds, remote_poll_seconds
        )

    # -- the poller ----------------------------------------------------------------------------

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()

    def poll_once(self) -> bool:
        """Apply a pending reconfiguration, scan every model once; True if a version is settling."""
        return self.poller.poll_once()

    def reconfigure(self, configs: list[ModelConfig]) -> threading.Event:
        """Replace the served models; the event is set once the polling thread has applied it."""
        return self.poller.reconfigure(configs)

    def pin(self, pins: Mapping[str, tuple[int, ...]]) -> None:
        """Keep exactly these versions of these models (the traffic file's ``versions``), whatever
        their configured policy; models left out go back to their policy. Changed models are
        re-decided at once by the polling thread (before its first poll if it has not started)."""
        self.poller.repin(self.registry.set_pins(pins))

    # -- the registry (any thread) -------------------------------------------------------------

    def model_names(self) -> list[str]:
        return self.registry.model_names()

    def has_model(self, name: str) -> bool:
        return self.registry.has_model(name)

    def ready(self) -> bool:
        """True once every configured model has at least one AVAILABLE version."""
        return self.registry.ready()

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request addresses: latest AVAILABLE, a version, or a label."""
        return self.registry.resolve(name, version, label)

    def available(self, name: str) -> Mapping[int, Servable]:
        """The AVAILABLE versions of ``name`` (a snapshot; empty for an unknown model)."""
        return self.registry.available_or_empty(name)

    def statuses(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Version statuses of ``name`` (all it has seen, or one), newest first."""
        return self.registry.statuses(name, version)

    def source_health(self, name: str) -> SourceHealth:
        """How listing ``name``'s base path goes (its current error, if any)."""
        return self.registry.source_health(name)

    def source_requests(self) -> dict[tuple[str, str], int]:
        """Requests sent to object storage so far, by (model, operation)."""
        return self.poller.source_requests()


__all__ = ["Listener", "ModelRepository", "SourceHealth", "State", "VersionStatus"]
