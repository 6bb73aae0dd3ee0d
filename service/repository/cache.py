"""The local cache of versions downloaded from object storage: bounded, written atomically, pruned.

Layout: ``<root>/<model>/<version>-<digest>/`` where the digest names the version's listing (keys,
sizes, ETags), so a version whose objects change in the bucket gets a new directory. Downloads go
to ``<root>/<model>/.tmp-*`` and are renamed into place only once every file is complete and
verified, so a directory without the ``.tmp-`` prefix is always a whole version: after a restart
(an emptyDir survives container restarts) it is reused without a download.

The bound is checked before a download starts: the version's size plus what the cache holds must
fit, else the download is refused (``RESOURCE_EXHAUSTED``) and the serving versions stay. Versions
no longer served are removed by :meth:`ModelCache.prune`. With the availability-preserving swap a
pod holds the old and the new version at once, so size the bound for ``num_versions + 1``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

from service.errors import ResourceExhausted

STAGING_PREFIX = ".tmp-"


class ModelCache:
    """Downloaded versions under ``root``; at most ``max_bytes`` (``None``: no bound)."""

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def model_dir(self, model: str) -> Path:
        # model names come from the config: quoted, so none can climb out of the root or hide
        name = quote(model, safe="")
        return self.root / (f"%2E{name[1:]}" if name.startswith(".") else name)

    def version_dir(self, model: str, version: int, digest: str) -> Path:
        return self.model_dir(model) / f"{version}-{digest}"

    def usage(self) -> int:
        """Bytes of every file in the cache now (staging directories included)."""
        total = 0
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    continue
        return total

    def staging(self, model: str, version: int, need: int) -> Path:
        """A new empty directory to download ``need`` bytes into; refused if the bound would break."""
        with self._lock:
            if self.max_bytes is not None:
                used = self.usage()
                if used + need > self.max_bytes:
                    raise ResourceExhausted(
                        f"model cache {self.root} is full: version {version} of {model} needs "
                        f"{need} bytes, {used} of {self.max_bytes} are in use (raise "
                        "--model_cache_max_bytes, or serve fewer versions at once)"
                    )
            parent = self.model_dir(model)
            parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=parent))

    def commit(self, staging: Path, final: Path) -> Path:
        """Move a complete download into place (atomic: same file system)."""
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # the same version landed first: keep it
        return final

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def prune(self, model: str, keep: set[Path]) -> list[Path]:
        """Remove every directory of ``model`` except ``keep``; return what was removed."""
        parent = self.model_dir(model)
        removed: list[Path] = []
        try:
            children = list(parent.iterdir())
        except OSError:
            return removed
        for child in children:
            if child not in keep:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
        return removed
