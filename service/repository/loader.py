"""Turns a version's local files into a servable: verify its manifest, load, add LiteRT, warm up.

Also the garbage-collector tuning around loads and unloads: a loaded SavedModel is ~300k Python
objects, and a full GC pass over them stalls every request for ~100-200 ms.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path

from service import runtime, warmup
from service.servable import Servable, load
from service.settings import available_cpus


@dataclass(frozen=True)
class Loader:
    """How versions are loaded: manifest verification, warmup and the runtime (``--runtime``).

    ``auto`` uses the version's verified LiteRT artifacts when its manifest lists them and converts
    at load otherwise; ``litert`` serves from the artifacts alone; ``tensorflow`` never uses LiteRT.
    """

    verify_manifest: bool = True
    enable_warmup: bool = True
    runtime: str = "tensorflow"

    def load_version(self, name: str, version: int, path: Path) -> Servable:
        """A servable ready for requests; raises (``ServingError`` or anything) if it cannot serve."""
        started = time.monotonic()
        servable = load(name, version, path, verify_manifest=self.verify_manifest, runtime_name=self.runtime)
        loaded = time.monotonic()
        servable.timings["load"] = loaded - started
        if self.runtime == "auto":
            threads = available_cpus()
            if servable.manifest is not None and "litert" in servable.manifest:
                servable.lite = runtime.from_artifacts(path, servable.manifest, servable.signatures, threads)
                servable.timings["litert (exported)"] = time.monotonic() - loaded
            else:
                samples = runtime.verification_samples(servable)
                servable.lite = runtime.convert(path, servable.signatures, samples, threads)
                servable.timings["litert (converted at load)"] = time.monotonic() - loaded
        if self.enable_warmup:
            warmed = time.monotonic()
            warmup.warm_up(servable)
            servable.timings["warm-up"] = time.monotonic() - warmed
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
