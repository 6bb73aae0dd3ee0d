"""service.fetch_model against a real HTTP server on 127.0.0.1: verify-before-extract, formats, safety."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from service import fetch_model
from service.fetch_model import FetchError, fetch, marker_path

REPO = Path(__file__).resolve().parents[2]
FILES = {
    "saved_model.pb": b"\x08\x01fake-graph",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": b"data" * 1000,
}


class _Server:
    """A threaded http.server serving ``root``, counting GET requests."""

    def __init__(self, root: Path) -> None:
        self.gets = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                outer.gets += 1
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tar_gz(files: dict[str, bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    with _Server(root) as server:
        yield server, root


def _assert_installed(dest: Path, digest: str) -> None:
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["saved_model.pb", "variables"]  # nothing added
    assert marker_path(dest).read_text().strip() == digest


def test_good_tarball_with_top_directory_is_installed(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, root = served
    archive = _tar_gz(FILES, prefix="export/1/")
    (root / "m.tar.gz").write_bytes(archive)
    dest = tmp_path / "models" / "linear" / "1"
    assert fetch(f"{server.url}/m.tar.gz", _sha(archive).upper(), dest) == dest
    _assert_installed(dest, _sha(archive))
    assert sorted(p.name for p in dest.parent.iterdir()) == [".1.sha256", "1"]  # no temp leftovers


def test_tampered_tarball_fails_before_extraction(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, root = served
    good = _tar_gz(FILES)
    tampered = _tar_gz({**FILES, "saved_model.pb": b"\x08\x01evil-graph"})
    (root / "m.tar.gz").write_bytes(tampered)
    dest = tmp_path / "models" / "linear" / "1"
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch(f"{server.url}/m.tar.gz", _sha(good), dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # nothing extracted, download removed


def test_cli_exit_codes_good_and_tampered(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, root = served
    archive = _zip(FILES)
    (root / "m.zip").write_bytes(archive)
    cmd = [sys.executable, "-m", "service.fetch_model", "--url", f"{server.url}/m.zip", "--timeout", "5"]
    good = subprocess.run(
        [*cmd, "--sha256", _sha(archive), "--dest", str(tmp_path / "a" / "7")],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    _assert_installed(tmp_path / "a" / "7", _sha(archive))
    bad = subprocess.run(
        [*cmd, "--sha256", _sha(archive + b"x"), "--dest", str(tmp_path / "b" / "7")],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "sha256 mismatch" in bad.stderr
    assert "refusing to extract" in bad.stderr
    assert not (tmp_path / "b" / "7").exists()


def test_rerun_with_same_digest_does_not_download_again(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, root = served
    archive = _tar_gz(FILES)
    (root / "m.tgz").write_bytes(archive)
    dest = tmp_path / "m" / "1"
    fetch(f"{server.url}/m.tgz", _sha(archive), dest)
    fetch(f"{server.url}/m.tgz", _sha(archive), dest)
    assert server.gets == 1
    with pytest.raises(FetchError, match="refusing to overwrite"):
        fetch(f"{server.url}/m.tgz", "0" * 64, dest)


def test_path_traversal_is_refused_even_with_matching_digest(
    served: tuple[_Server, Path], tmp_path: Path
) -> None:
    server, root = served
    archive = _tar_gz({**FILES, "../escape.txt": b"x"})
    (root / "evil.tar.gz").write_bytes(archive)
    with pytest.raises(FetchError, match="unsafe path"):
        fetch(f"{server.url}/evil.tar.gz", _sha(archive), tmp_path / "m" / "1")
    assert not (tmp_path / "m" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_links_are_refused_and_modes_are_not_copied(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, root = served
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o4777  # setuid, world-writable
            tar.addfile(info, io.BytesIO(data))
    (root / "modes.tgz").write_bytes(buf.getvalue())
    dest = tmp_path / "m" / "1"
    fetch(f"{server.url}/modes.tgz", _sha(buf.getvalue()), dest)
    assert (dest / "saved_model.pb").stat().st_mode & 0o7022 == 0
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w:gz") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    (root / "link.tgz").write_bytes(link.getvalue())
    with pytest.raises(FetchError, match="link or device"):
        fetch(f"{server.url}/link.tgz", _sha(link.getvalue()), tmp_path / "m" / "2")
    assert not (tmp_path / "m" / "2").exists()


def test_archive_without_savedmodel_is_refused(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, root = served
    archive = _tar_gz({"README": b"no model here"})
    (root / "x.tar.gz").write_bytes(archive)
    with pytest.raises(FetchError, match=r"no saved_model\.pb"):
        fetch(f"{server.url}/x.tar.gz", _sha(archive), tmp_path / "m" / "1")
    assert not (tmp_path / "m" / "1").exists()


def test_http_404_fails_without_retrying(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, _ = served
    with pytest.raises(FetchError, match="404"):
        fetch(f"{server.url}/missing.tar.gz", "a" * 64, tmp_path / "m" / "1")
    assert server.gets == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/m.tgz"])
def test_only_http_schemes(url: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="only http and https"):
        fetch(url, "a" * 64, tmp_path / "m" / "1")


def test_bad_digest_argument_is_rejected(tmp_path: Path) -> None:
    argv = ["--url", "http://127.0.0.1:9/x", "--sha256", "abc", "--dest", str(tmp_path / "d")]
    assert fetch_model.main(argv) == 1
