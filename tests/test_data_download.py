"""Downloads against a local HTTP server: success, checksum mismatch, truncation, server error, offline."""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from cifarb.cli import main
from cifarb.data import download, registry, verify
from cifarb.data.registry import Archive, Source, SourceFile
from cifarb.errors import CifarbError

FILES = {"fixture-set/a.bin": b"alpha" * 1000, "fixture-set/b.bin": os.urandom(3000)}


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {**members, "fixture-set/readme.txt": b"not registered"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = _tar_gz(FILES)
DIRECT = {"x.npy": b"direct file one", "y.npy": b"direct file two" * 50}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        self.server.requests.append(self.path)
        kind, _, name = self.path.lstrip("/").partition("/")
        data = self.server.files.get(name)
        if kind == "error":
            self.send_response(500)
            self.end_headers()
            return
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if kind == "trickle":  # one byte at a time, slowly: never a read timeout, never the end
            for b in data:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                if self.server.stop.wait(0.2):
                    return
            return
        # "truncated": the connection drops half-way through the announced length
        self.wfile.write(data if kind == "ok" else data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.stop = threading.Event()
    httpd.files = {"fixture.tar.gz": ARCHIVE, **DIRECT}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()


def archive_source(base: str, kind: str = "ok", tar_md5: str | None = None, file_md5: dict | None = None,
                   mirrors: tuple[str, ...] = ()) -> Source:
    url = f"{base}/{kind}/fixture.tar.gz"
    archive = Archive("fixture.tar.gz", url, "md5", tar_md5 or _md5(ARCHIVE), len(ARCHIVE), mirrors)
    md5s = {**{k: _md5(v) for k, v in FILES.items()}, **(file_md5 or {})}
    files = tuple(SourceFile(name, "md5", md5s[name], url, len(FILES[name]), member=name) for name in FILES)
    return Source("fixture-set", files, archive, "test licence", "@misc{x, title={fixture}}", title="Fixture",
                  folder="fixture-set")


def direct_source(base: str, kind: str = "ok", mirrors_kind: str | None = None, bad: bool = False) -> Source:
    files = []
    for name, data in DIRECT.items():
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if bad:
            blob = "0" * 40
        mirrors = (f"{base}/{mirrors_kind}/{name}",) if mirrors_kind else ()
        files.append(SourceFile(f"direct/{name}", "gitblob", blob, f"{base}/{kind}/{name}", mirrors=mirrors))
    return Source("direct-set", tuple(files), None, "MIT", "@misc{y, title={y}}", title="Direct", folder="direct")


def _leftovers(root: Path) -> list[str]:
    # the record's lock file stays on purpose (deleting a flock file races with a waiting process)
    lock = root / download.STAGING / ".record.lock"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p != lock)


# ------------------------------------------------------------------------------------------ success


def test_fetch_archive_success_places_verifies_and_records(server, tmp_path):
    src = archive_source(server.base)
    paths = download.fetch(src, root=tmp_path, progress=False)
    assert paths == [tmp_path / n for n in FILES]
    for name, data in FILES.items():
        assert (tmp_path / name).read_bytes() == data
    record = json.loads((tmp_path / verify.RECORD_NAME).read_text())
    assert record["format"] == "cifarb-verified/1"
    for name, data in FILES.items():
        assert record["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    # only registered members are extracted; the archive and the staging folder are gone
    assert _leftovers(tmp_path) == sorted([*FILES, verify.RECORD_NAME])
    assert all(c.ok for c in verify.verify_source(src, tmp_path))
    n = len(server.requests)
    download.fetch(src, root=tmp_path, progress=False)  # already verified: no network
    assert len(server.requests) == n == 1


def test_fetch_direct_files_verified_by_git_blob(server, tmp_path):
    src = direct_source(server.base)
    download.fetch(src, root=tmp_path, progress=False)
    for name, data in DIRECT.items():
        assert (tmp_path / "direct" / name).read_bytes() == data
    assert all(c.ok and "as published" in c.how for c in verify.verify_source(src, tmp_path))


def test_a_failing_url_falls_back_to_the_mirror(server, tmp_path):
    src = archive_source(server.base, kind="truncated", mirrors=(f"{server.base}/ok/fixture.tar.gz",))
    download.fetch(src, root=tmp_path, progress=False)
    assert server.requests == ["/truncated/fixture.tar.gz", "/ok/fixture.tar.gz"]
    assert all(c.ok for c in verify.verify_source(src, tmp_path))
    d = direct_source(server.base, kind="error", mirrors_kind="ok")
    download.fetch(d, root=tmp_path, progress=False)
    assert all(c.ok for c in verify.verify_source(d, tmp_path))


# ------------------------------------------------------------------------------------------ failures


@pytest.mark.parametrize("case,match", [
    ("mismatch", "wrong checksum"),
    ("truncated", r"truncated/fixture.tar.gz: .*(IncompleteRead|Connection broken|wrong checksum)"),
    ("error", "500"),
    ("missing", "404"),
])
def test_failed_download_places_nothing(server, tmp_path, case, match):
    if case == "mismatch":
        src = archive_source(server.base, tar_md5="0" * 32)
    else:
        src = archive_source(server.base, kind={"missing": "ok"}.get(case, case))
        if case == "missing":
            server.files.pop("fixture.tar.gz")
    with pytest.raises(CifarbError, match=match) as err:
        download.fetch(src, root=tmp_path, progress=False)
    assert "nothing was placed" in str(err.value)
    assert _leftovers(tmp_path) == []  # no target, no temp file, no record
    # a rerun against a good server restarts cleanly
    server.files["fixture.tar.gz"] = ARCHIVE
    download.fetch(archive_source(server.base), root=tmp_path, progress=False)
    assert all(c.ok for c in verify.verify_source(src, tmp_path))


def test_wrong_bytes_of_a_direct_file_are_discarded(server, tmp_path):
    with pytest.raises(CifarbError, match="gitblob is .*expected 0000.*discarded"):
        download.fetch(direct_source(server.base, bad=True), root=tmp_path, progress=False)
    assert _leftovers(tmp_path) == []


def test_member_with_wrong_checksum_is_not_placed(server, tmp_path):
    src = archive_source(server.base, file_md5={"fixture-set/b.bin": "f" * 32})
    with pytest.raises(CifarbError, match="b.bin in .* has md5 .* expected ffff"):
        download.fetch(src, root=tmp_path, progress=False)
    assert not (tmp_path / "fixture-set" / "b.bin").exists()
    assert not list((tmp_path / "fixture-set").glob(".b.bin*"))  # no temp file either


def test_interrupted_extraction_resumes_without_downloading_again(server, tmp_path, monkeypatch):
    src = archive_source(server.base)
    real = download.atomic_path
    calls = []

    def flaky(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(download, "atomic_path", flaky)
    with pytest.raises(KeyboardInterrupt):
        download.fetch(src, root=tmp_path, progress=False)
    assert (tmp_path / "fixture-set" / "a.bin").exists() and not (tmp_path / "fixture-set" / "b.bin").exists()
    monkeypatch.setattr(download, "atomic_path", real)
    download.fetch(src, root=tmp_path, progress=False)
    assert len(server.requests) == 1  # the verified archive left in staging was reused
    assert all(c.ok for c in verify.verify_source(src, tmp_path))


def test_unverified_local_file_is_replaced(server, tmp_path):
    src = archive_source(server.base)
    (tmp_path / "fixture-set").mkdir()
    (tmp_path / "fixture-set" / "a.bin").write_bytes(b"a local copy")
    assert verify.verify_source(src, tmp_path)[0].status == "MISMATCH"
    download.fetch(src, root=tmp_path, progress=False)
    assert (tmp_path / "fixture-set" / "a.bin").read_bytes() == FILES["fixture-set/a.bin"]


def test_unwritable_root_is_a_clear_error(server, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CifarbError, match=r"cannot write .*file/sub"):
        download.fetch(archive_source(server.base), root=blocker / "sub", progress=False)
    assert server.requests == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores write permissions")
def test_read_only_root_is_a_clear_error(server, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(CifarbError, match="read-only"):
            download.fetch(archive_source(server.base), root=ro, progress=False)
    finally:
        ro.chmod(0o700)


def test_full_disk_during_placement_is_a_clear_error(server, tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(CifarbError, match="no space left"):
        download.fetch(archive_source(server.base), root=tmp_path, progress=False)
    assert not (tmp_path / "fixture-set" / "a.bin").exists()
    with pytest.raises(CifarbError, match="no space left"):
        download.fetch(direct_source(server.base), root=tmp_path, progress=False)
    assert not (tmp_path / "direct" / "x.npy").exists()


# ------------------------------------------------------------------------------------------ offline + CLI


def test_offline_never_touches_the_network(server, tmp_path, monkeypatch, capsys):
    src = archive_source(server.base)
    with pytest.raises(download.OfflineError) as err:
        download.fetch(src, root=tmp_path, offline=True)
    assert str(tmp_path / "fixture-set" / "a.bin") in err.value.where_text
    monkeypatch.setitem(registry.SOURCES, "fixture-set", src)
    monkeypatch.setenv("CIFARB_OFFLINE", "1")
    assert main(["data", "fetch", "fixture-set", "--root", str(tmp_path)]) == 1
    out, errtext = capsys.readouterr()
    assert out == download.where_text(src, tmp_path) and "offline" in errtext and "Traceback" not in errtext
    monkeypatch.delenv("CIFARB_OFFLINE")
    assert main(["data", "fetch", "fixture-set", "--root", str(tmp_path), "--offline"]) == 1
    assert server.requests == [] and not tmp_path.joinpath("fixture-set").exists()


LINE = re.compile(r"^(/\S+) (\d+|-) (md5|sha256|gitblob):([0-9a-f]+) (https?://\S+)$")


def test_cli_fetch_verify_where(server, tmp_path, monkeypatch, capsys):
    src = archive_source(server.base)
    monkeypatch.setitem(registry.SOURCES, "fixture-set", src)
    root = ["--root", str(tmp_path)]
    assert main(["data", "where", "fixture-set", *root]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [LINE.match(line).group(1) for line in out[:2]] == [str(tmp_path / n) for n in FILES]
    assert all(line.startswith("#") for line in out[2:]) and any("tar -xzf fixture.tar.gz" in x for x in out)
    assert main(["data", "verify", "fixture-set", *root]) == 1
    assert capsys.readouterr().out.splitlines() == [f"MISSING {tmp_path / n}" for n in FILES]
    assert main(["data", "fetch", "fixture-set", *root, "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"OK {tmp_path / n}" for n in FILES]
    (tmp_path / "fixture-set" / "a.bin").write_bytes(b"changed")
    os.remove(tmp_path / "fixture-set" / "b.bin")
    assert main(["data", "verify", "fixture-set", *root]) == 1
    assert capsys.readouterr().out.splitlines() == [f"MISMATCH {tmp_path / 'fixture-set/a.bin'}",
                                                    f"MISSING {tmp_path / 'fixture-set/b.bin'}"]


def test_cli_where_for_the_real_sources(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIFARB_DATA", str(tmp_path))
    for name, n in (("cifar10", 7), ("cifar100", 3), ("cifar10-c", 20), ("cifar100-c", 20), ("cifar10.1", 2)):
        assert main(["data", "where", name]) == 0
        lines = capsys.readouterr().out.splitlines()
        parsed = [LINE.match(x) for x in lines[:n]]
        assert all(parsed) and not LINE.match(lines[n]) and lines[n].startswith("#"), name
        assert all(m.group(1).startswith(str(tmp_path)) for m in parsed)
    assert main(["data", "where", "cifar10.1", "--version", "v4"]) == 0
    assert "cifar10.1_v4_labels.npy - gitblob:64acdcc7" in capsys.readouterr().out
    assert main(["data", "where", "imagenet"]) == 1
    assert "unknown name 'imagenet'" in capsys.readouterr().err
    assert main(["data", "where", "cifar10", "--version", "v4"]) == 1
    assert main(["data", "where", "cifar10.1", "--version", "v9"]) == 2  # argparse choices


def test_root_resolution(tmp_path, monkeypatch):
    from cifarb.data.root import cache_dir, is_offline, resolve_root

    assert resolve_root(tmp_path / "a") == tmp_path / "a"
    monkeypatch.setenv("CIFARB_DATA", str(tmp_path / "b"))
    assert resolve_root(None) == tmp_path / "b"
    monkeypatch.delenv("CIFARB_DATA")
    assert resolve_root(None) == cache_dir() / "data" and str(cache_dir()) == os.environ["CIFARB_CACHE"]
    monkeypatch.setenv("CIFARB_OFFLINE", "yes")
    assert is_offline() and not download._bar(True, "x")  # no bar when stderr is not a terminal


# ------------------------------------------------------------------------------------------ zoo weights


def test_zoo_where_verify_fetch(server, tmp_path, monkeypatch, capsys):
    from cifarb.models import zoo

    weights = b"fake resnet32 weights"
    server.files["resnet32-x.th"] = weights
    card = replace(zoo.ZOO["resnet32"], url=f"{server.base}/ok/resnet32-x.th", filename="resnet32-x.th",
                   sha256=hashlib.sha256(weights).hexdigest())
    monkeypatch.setitem(zoo.ZOO, "resnet32", card)
    path = zoo.default_weight_path("resnet32")
    assert main(["data", "where", "resnet32"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{path} - sha256:{card.sha256} {card.url}"
    assert main(["data", "verify", "resnet32"]) == 1 and capsys.readouterr().out == f"MISSING {path}\n"
    assert main(["data", "fetch", "resnet32", "--offline"]) == 1 and server.requests == []
    assert main(["data", "fetch", "resnet32", "--no-progress"]) == 0 and path.read_bytes() == weights
    assert main(["data", "verify", "resnet32"]) == 0 and capsys.readouterr().out.endswith(f"OK {path}\n")
    assert main(["data", "where", "resnet110"]) == 0
    assert "checked by prefix" in capsys.readouterr().out
    assert main(["data", "verify", "resnet20"]) == 0  # bundled
    assert capsys.readouterr().out.startswith("OK ")


def test_data_commands_do_not_import_torch(tmp_path):
    code = (
        "import sys; from cifarb.cli import main; "
        f"r = [main(['data', 'where', 'cifar10-c', '--root', {str(tmp_path)!r}]), "
        f"main(['data', 'verify', 'cifar10', '--root', {str(tmp_path)!r}]), "
        f"main(['data', 'fetch', 'cifar10.1', '--offline', '--root', {str(tmp_path)!r}]), "
        "main(['data', 'where', 'resnet56']), main(['data', 'verify', 'resnet20'])]; "
        "assert r == [0, 1, 1, 0, 0], r; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = {**os.environ, "CIFARB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]


def test_progress_bar_on_a_terminal(server, tmp_path, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    download.fetch(archive_source(server.base), root=tmp_path, progress=True)
    text = err.getvalue()
    # a byte bar whose total came from Content-Length, then the extraction bar (both on stderr)
    assert re.search(r"fixture\.tar\.gz: .*/3\.2\dk \[", text), text
    assert "extract fixture.tar.gz" in text


# ------------------------------------------------------------------------------------------ concurrency, deadline


def test_concurrent_fetches_into_one_root_never_collide(server, tmp_path):
    # a slow first file keeps both fetches in flight at once; each has its own staging folder
    for round_ in range(3):
        root = tmp_path / f"r{round_}"
        errors: list[BaseException] = []

        def one(root: Path = root, errors: list = errors) -> None:
            try:
                download.fetch(archive_source(server.base), root=root, progress=False)
                download.fetch(direct_source(server.base), root=root, progress=False)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert all(c.ok for c in verify.verify_source(archive_source(server.base), root))
        assert all(c.ok for c in verify.verify_source(direct_source(server.base), root))
        record = json.loads((root / verify.RECORD_NAME).read_text())["files"]
        assert set(record) >= {*FILES, *(f"direct/{n}" for n in DIRECT)}  # no entry lost in the merge
        assert _leftovers(root) == sorted([*FILES, *(f"direct/{n}" for n in DIRECT), verify.RECORD_NAME])


def test_staging_of_a_dead_fetch_is_taken_over_and_a_live_one_left_alone(server, tmp_path):
    base = tmp_path / download.STAGING
    with download.staging_folder(base) as live:
        (live / "in-flight.part").write_bytes(b"x")
        dead = base / "99999-dead"
        dead.mkdir()
        (dead / "old.part").write_bytes(b"y")
        with download.staging_folder(base) as mine:
            assert (mine / "old.part").read_bytes() == b"y"  # the dead one's files, taken over
            assert (live / "in-flight.part").exists()  # the live one's, untouched
            (mine / "old.part").unlink()
        assert not mine.exists()
        (live / "in-flight.part").unlink()
    assert not base.exists() or not any(p.is_dir() for p in base.iterdir())


def test_a_trickling_server_hits_the_deadline(server, tmp_path, capsys):
    src = archive_source(server.base, kind="trickle")
    with pytest.raises(CifarbError, match=r"did not finish within the 1 s deadline.*--deadline"):
        download.fetch(src, root=tmp_path, progress=False, deadline_s=1)
    assert _leftovers(tmp_path) == []
    with pytest.raises(CifarbError, match="deadline"):
        download.fetch(direct_source(server.base, kind="trickle"), root=tmp_path, progress=False, deadline_s=0.5)
    assert _leftovers(tmp_path) == []


def test_cli_deadline_flag(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry.SOURCES, "fixture-set", archive_source(server.base, kind="trickle"))
    assert main(["data", "fetch", "fixture-set", "--root", str(tmp_path), "--no-progress", "--deadline", "0.5"]) == 1
    err = capsys.readouterr().err
    assert err.count("cifarb: error:") == 1 and "0.5 s deadline" in err and "Traceback" not in err
    monkeypatch.setitem(registry.SOURCES, "fixture-set", archive_source(server.base))
    assert main(["data", "fetch", "fixture-set", "--root", str(tmp_path), "--no-progress", "--deadline", "0"]) == 0
