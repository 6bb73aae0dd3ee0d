"""Where a model's versions come from: integer version directories under its base path.

A :class:`Source` lists the versions under one model's base path, fingerprints a version's files (so
the poller can tell a finished copy from one in progress, and fixed files from the ones that failed)
and makes a version's files available as a local directory. The file system is the only source
today; an object-storage source (``s3://``, ``gs://``) implements the same three methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

Fingerprint = tuple[tuple[str, int, int], ...]
"""``(relative path, size, mtime in ns)`` of every file of a version: equal means unchanged."""

VERSION_LIMIT = 2**63  # versions are int64 on the wire


@dataclass(frozen=True)
class VersionRef:
    """One version found in a source: its number and where its files are (a path or a URL)."""

    version: int
    location: str


class Source(Protocol):
    """The versions of one model's base path."""

    def versions(self) -> dict[int, VersionRef]:
        """The version directories there now (none if the base path cannot be read)."""
        ...

    def fingerprint(self, ref: VersionRef) -> Fingerprint:
        """What the version's files are now; it changes whenever one of them does."""
        ...

    def local_path(self, ref: VersionRef) -> Path:
        """A local directory holding the version's files."""
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

    def local_path(self, ref: VersionRef) -> Path:
        return Path(ref.location)


def source_for(base_path: Path) -> Source:
    """The source of a configured base path (the file system, until object storage comes)."""
    return FileSystemSource(base_path)
