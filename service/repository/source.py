"""Where a model's versions come from: integer version directories under its base path.

A :class:`Source` lists the versions under one model's base path, fingerprints a version's files (so
the poller can tell a finished copy from one in progress, and fixed files from the ones that failed),
makes a version's files available as a local directory and lets go of the ones no longer served.
Local (or mounted) directories are served in place; ``s3://`` and ``gs://`` base paths are listed
and downloaded by :mod:`~service.repository.object_source`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from model.storage import ObjectURL, is_object_url
from service.errors import Unavailable
from service.repository.cache import ModelCache

Fingerprint = tuple[tuple[str, int, int | str], ...]
"""``(relative path, size, mtime in ns or ETag)`` of every file of a version: equal means unchanged."""

VERSION_LIMIT = 2**63  # versions are int64 on the wire


@dataclass(frozen=True)
class VersionRef:
    """One version found in a source: its number and where its files are (a path or a URL)."""

    version: int
    location: str
    committed: bool | None = None
    """True: its commit marker (``manifest.json``) is there, load at once; None: unknown, settle."""


class SourceUnavailable(Unavailable):
    """The source cannot be read now (the store is down, refuses, or times out): retry later."""


class Source(Protocol):
    """The versions of one model's base path."""

    def versions(self) -> dict[int, VersionRef]:
        """The versions there now; raises :class:`SourceUnavailable` when it cannot be read."""
        ...

    def fingerprint(self, ref: VersionRef) -> Fingerprint:
        """What the version's files are now; it changes whenever one of them does."""
        ...

    def quiet_seconds(self, ref: VersionRef) -> float | None:
        """How long none of the version's files has changed, if the source can tell (else None)."""
        ...

    def local_path(self, ref: VersionRef) -> Path:
        """A local directory holding the version's files."""
        ...

    def retain(self, keep: set[int]) -> None:
        """Only these versions are served now: local copies of the others may go."""
        ...


class FileSystemSource:
    """Version directories of a local (or mounted) directory, served in place."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def versions(self) -> dict[int, VersionRef]:
        try:
            children = list(self.base.iterdir())
        except OSError:
            return {}
        out: dict[int, VersionRef] = {}
        for child in children:
            name = child.name
            if name.isdigit() and child.is_dir():
                version = int(name)
                if version < VERSION_LIMIT:
                    out.setdefault(version, VersionRef(version, str(child)))
        return out

    def fingerprint(self, ref: VersionRef) -> Fingerprint:
        path = self.local_path(ref)
        items = []
        for file in sorted(path.rglob("*")):
            try:
                st = file.stat()
            except OSError:
                continue
            items.append((file.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns))
        return tuple(items)

    def quiet_seconds(self, ref: VersionRef) -> float | None:
        """Seconds since the newest inode change (ctime) below the version, the directory included.

        ctime, unlike mtime, cannot be carried over by ``cp -a`` or ``rsync -a``: a copy in progress
        always looks recent. A version already on disk when the server starts (baked into the
        image, or written by an init container) is quiet, and loads without waiting to settle.
        """
        path = self.local_path(ref)
        try:
            newest = max(p.lstat().st_ctime for p in [path, *path.rglob("*")])
        except (OSError, ValueError):
            return None
        return time.time() - newest

    def local_path(self, ref: VersionRef) -> Path:
        return Path(ref.location)

    def retain(self, keep: set[int]) -> None:
        """Served in place: nothing to let go."""

    def __str__(self) -> str:
        return str(self.base)


def source_for(base_path: str, model: str, cache: ModelCache) -> Source:
    """The source of a configured base path: object storage for s3:// and gs://, else a directory."""
    if is_object_url(base_path):
        from service.repository.object_source import ObjectStoreSource

        return ObjectStoreSource(ObjectURL.parse(base_path), model, cache)
    return FileSystemSource(Path(base_path))
