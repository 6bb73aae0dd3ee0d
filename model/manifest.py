"""The Modelship manifest: ``manifest.json`` inside each exported version directory.

It records what the version is (metrics, feature names, input schema, training-data hash, creation
time) and the sha256 of every other file in the directory, so a server can refuse a version that
was tampered with or only half copied. The server imports :func:`verify` from here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT = "modelship.manifest/v1"


class ManifestError(Exception):
    """The manifest is unreadable, or the files do not match it."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(version_dir: Path) -> dict[str, str]:
    """sha256 of every regular file below ``version_dir`` except the manifest, by relative path."""
    out: dict[str, str] = {}
    for path in sorted(version_dir.rglob("*")):
        rel = path.relative_to(version_dir).as_posix()
        if path.is_file() and rel != MANIFEST_NAME:
            out[rel] = sha256_file(path)
    return out


def write(version_dir: Path, body: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest with ``body`` plus the hashes of the files now in ``version_dir``."""
    manifest = {"format": FORMAT, **body, "files": file_hashes(version_dir)}
    (version_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read(version_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``version_dir``, or ``None`` when it has none."""
    path = version_dir / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        raise ManifestError(f"unreadable {MANIFEST_NAME}: {exc}") from None


def parse(raw: bytes) -> dict[str, Any]:
    """A manifest from its bytes (as read from a file or an object store); raise :class:`ManifestError`."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ManifestError(f"unreadable {MANIFEST_NAME}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        raise ManifestError(f"{MANIFEST_NAME} is not a {FORMAT} manifest")
    files = data["files"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ManifestError(f"{MANIFEST_NAME}: 'files' must map relative paths to sha256 hex digests")
    return data


def verify(version_dir: Path) -> dict[str, Any] | None:
    """Check every file against the manifest; return the manifest (``None`` if there is none).

    Raises :class:`ManifestError` naming the first missing, extra or changed file.
    """
    manifest = read(version_dir)
    if manifest is None:
        return None
    expected: dict[str, str] = manifest["files"]
    actual = file_hashes(version_dir)
    for rel, digest in sorted(expected.items()):
        if rel not in actual:
            raise ManifestError(f"file {rel} listed in the manifest is missing")
        if actual[rel] != digest:
            raise ManifestError(f"sha256 mismatch for {rel}: expected {digest}, found {actual[rel]}")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise ManifestError(f"files not listed in the manifest: {', '.join(extra)}")
    return manifest
