"""Download one model version archive, verify its SHA-256, then extract it: the chart's init container.

``python -m service.fetch_model --url URL --sha256 HEX --dest /models/<name>/<version>``

The archive (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip``, recognised by
content, not by name) holds one SavedModel version: ``saved_model.pb`` and ``variables/`` at its
root, or under a chain of single top-level directories (e.g. ``1/`` or ``linear/1/``), which is
stripped. The digest is checked on the downloaded bytes BEFORE anything is extracted; a mismatch
deletes the download and exits 1, so the pod never starts with an unverified model. Extraction
refuses absolute paths, ``..``, links and device files, goes to a temporary directory next to
``--dest`` and is renamed into place, so ``--dest`` is either absent or complete; its digest is
then recorded beside it (``.<version>.sha256``, never inside the version, whose files the server
checks against the export manifest). A ``--dest`` already verified with the same digest is left
alone, which makes init-container restarts cheap.
Standard library only: it runs before the server's heavy imports.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

LOG = logging.getLogger("modelship.fetch_model")
CHUNK = 1 << 20


class FetchError(Exception):
    """The model could not be fetched, verified or extracted; the message says why."""


def download(url: str, target: Path, timeout: float, retries: int = 3) -> str:
    """Stream ``url`` into ``target`` and return the hex SHA-256 of the bytes written."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {scheme!r}: only http and https are allowed")
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        digest = hashlib.sha256()
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "modelship-fetch-model"})
            with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()
        except urllib.error.HTTPError as err:
            err.close()  # the error carries the open response
            last = err
            if err.code < 500:  # a client error will not fix itself
                break
        except (urllib.error.URLError, OSError) as err:
            last = err
        LOG.warning("download attempt %d/%d failed: %s", attempt, retries, last)
        if attempt < retries:
            time.sleep(min(2**attempt, 10))
    raise FetchError(f"cannot download {url}: {last}")


def verify(actual: str, expected: str) -> None:
    """Raise unless the two hex digests are equal (case-insensitive, constant time)."""
    if not hmac.compare_digest(actual.lower(), expected.lower()):
        raise FetchError(f"sha256 mismatch: expected {expected.lower()}, got {actual}; refusing to extract")


def _safe_member(name: str) -> PurePosixPath:
    """Return the member path, or raise if it would land outside the extraction directory."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith("\\"):
        raise FetchError(f"unsafe path in archive: {name!r}")
    return path


def _write_member(out: Path, name: str, source: IO[bytes] | None) -> None:
    """Create one regular file (``source``) or directory (None) under ``out``; plain modes only."""
    target = out.joinpath(*_safe_member(name).parts)
    if not target.resolve().is_relative_to(out.resolve()):
        raise FetchError(f"unsafe path in archive: {name!r}")
    if source is None:
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("xb") as dest:
            shutil.copyfileobj(source, dest, CHUNK)
    except FileExistsError:
        raise FetchError(f"duplicate entry in archive: {name!r}") from None


def _extract_tar(archive: Path, out: Path) -> None:
    # Entries are written one by one rather than with extractall: no links, devices, owners or
    # permission bits from the archive, on every Python 3.11 (tarfile's "data" filter is 3.11.4+).
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _safe_member(member.name)
            if not (member.isfile() or member.isdir()):
                raise FetchError(f"unsupported entry in archive (link or device): {member.name!r}")
        for member in members:
            if member.isdir():
                _write_member(out, member.name, None)
            else:
                _write_member(out, member.name, tar.extractfile(member))


def _extract_zip(archive: Path, out: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _safe_member(info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise FetchError(f"unsupported entry in archive (symlink): {info.filename!r}")
        for info in infos:
            if info.is_dir():
                _write_member(out, info.filename, None)
            else:
                with zf.open(info) as source:
                    _write_member(out, info.filename, source)


def extract(archive: Path, out: Path) -> None:
    """Extract a tar (any compression) or zip archive into the empty directory ``out``."""
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, out)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, out)
    else:
        raise FetchError("archive is neither a tar nor a zip file")


def savedmodel_root(tree: Path, max_depth: int = 3) -> Path:
    """Return the directory holding ``saved_model.pb``: ``tree`` or a chain of lone subdirectories."""
    here = tree
    for _ in range(max_depth + 1):
        if (here / "saved_model.pb").is_file():
            return here
        entries = [p for p in here.iterdir() if not p.name.startswith(".")]
        if len(entries) != 1 or not entries[0].is_dir():
            break
        here = entries[0]
    raise FetchError("no saved_model.pb at the archive root or under its single top-level directory")


def marker_path(dest: Path) -> Path:
    """Where the digest of an installed version is recorded: a hidden file beside it, because files
    inside the version directory must match the export's manifest."""
    return dest.parent / f".{dest.name}.sha256"


def already_fetched(dest: Path, sha256: str) -> bool:
    """True when ``dest`` was completed earlier from an archive with this digest."""
    marker = marker_path(dest)
    return (
        dest.is_dir() and marker.is_file() and hmac.compare_digest(marker.read_text().strip(), sha256.lower())
    )


def fetch(url: str, sha256: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download, verify, extract and install one model version at ``dest``; return ``dest``."""
    if len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise FetchError("--sha256 must be 64 hex characters")
    if already_fetched(dest, sha256):
        LOG.info("%s already holds the verified model; nothing to do", dest)
        return dest
    if dest.exists():
        raise FetchError(f"{dest} exists and was not fetched from this archive; refusing to overwrite")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as work_dir:
        work = Path(work_dir)
        archive = work / "archive"
        LOG.info("downloading %s", url)
        actual = download(url, archive, timeout)
        verify(actual, sha256)
        LOG.info("sha256 verified (%s, %d bytes)", actual, archive.stat().st_size)
        tree = work / "tree"
        tree.mkdir()
        extract(archive, tree)
        archive.unlink()
        root = savedmodel_root(tree)
        os.replace(root, dest)
        marker_path(dest).write_text(actual + "\n")
    LOG.info("model version installed at %s", dest)
    return dest


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m service.fetch_model",
        description="Download a SavedModel version archive over HTTP(S), verify its SHA-256 "
        "before extracting, and install it at --dest (the chart's url model source).",
    )
    parser.add_argument("--url", required=True, help="http(s) URL of a .tar[.gz|.bz2|.xz] or .zip archive")
    parser.add_argument("--sha256", required=True, help="expected hex SHA-256 of the archive")
    parser.add_argument(
        "--dest", required=True, type=Path, help="version directory to create, e.g. /models/linear/1"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per network operation (default: 60)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        fetch(args.url, args.sha256, args.dest, args.timeout)
    except FetchError as err:
        LOG.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
