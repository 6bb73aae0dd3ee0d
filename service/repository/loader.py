"""Turns a version's local files into a servable: verify its manifest, load, warm up, convert to LiteRT.

Also the garbage-collector tuning around loads and unloads: a loaded SavedModel is ~300k Python
objects, and a full GC pass over them stalls every request for ~100-200 ms.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

from service import runtime, warmup
from service.servable import Servable, load


@dataclass(frozen=True)
class Loader:
    """How versions are loaded: manifest verification, warmup and the LiteRT fast path on or off."""

    verify_manifest: bool = True
    enable_warmup: bool = True
    fast_runtime: bool = False

    def load_version(self, name: str, version: int, path: Path) -> Servable:
        """A servable ready for requests; raises (``ServingError`` or anything) if it cannot serve."""
        servable = load(name, version, path, verify_manifest=self.verify_manifest)
        if self.enable_warmup:
            warmup.warm_up(servable)
        if self.fast_runtime:
            servable.lite = runtime.convert(path, servable.signatures, runtime.verification_samples(servable))
        return servable


def freeze_loaded() -> None:
    """Move everything alive now (the version just loaded) out of the collector's generations."""
    gc.freeze()


def collect_unloaded() -> None:
    """Frozen objects are never collected: thaw, collect the unloaded versions, freeze again.

    One pause per unload rather than on the request path.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
