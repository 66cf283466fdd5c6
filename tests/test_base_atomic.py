"""Atomic writes leave either the old file or the new one, never a half-written file."""

from __future__ import annotations

import errno
import hashlib
import json
import os

import pytest

from cifarb._atomic import atomic_path, atomic_write_json, atomic_write_text, os_error_message
from cifarb._hashing import file_digest, git_blob_sha1
from cifarb.errors import CifarbError


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_inside_block_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_nan_is_refused(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"v": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_directory_target_is_a_clear_error(tmp_path):
    with pytest.raises(CifarbError, match="is a directory"):
        atomic_write_text(tmp_path, "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores write permissions")
def test_read_only_folder_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(CifarbError, match="read-only"):
            atomic_write_text(ro / "f.txt", "x")
    finally:
        ro.chmod(0o700)


def test_os_error_messages_name_path_and_fix():
    assert "no space left" in os_error_message("/x/f", OSError(errno.ENOSPC, "No space"))
    assert "read-only" in os_error_message("/x/f", OSError(errno.EROFS, "Read-only file system"))
    assert "/x/f" in os_error_message("/x/f", OSError(errno.EIO, "I/O error"))


def test_full_disk_during_write_becomes_clear_error(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"

    def fail_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(CifarbError, match="no space left"):
        atomic_write_text(target, "data")
    assert list(tmp_path.iterdir()) == []


def test_digests_match_known_values(tmp_path):
    f = tmp_path / "hello"
    f.write_bytes(b"hello\n")
    # `printf 'hello\n' | git hash-object --stdin` and sha256sum / md5sum of the same bytes
    assert git_blob_sha1(f) == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert file_digest(f, "sha256") == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    assert file_digest(f, "md5") == "b1946ac92492d2347c6235b4d2611184"
    assert file_digest(f, "gitblob") == git_blob_sha1(f)


def test_written_files_get_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_one_read_gives_every_digest_and_streams_agree(tmp_path):
    from cifarb._hashing import MultiDigest, file_digests, sha256_file

    f = tmp_path / "data.bin"
    f.write_bytes(bytes(range(256)) * 40_000)  # > one 4 MiB read chunk
    algos = ("md5", "sha1", "sha256", "gitblob")
    both = file_digests(f, algos)
    assert both == {a: file_digest(f, a) for a in algos}
    assert both["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest() == sha256_file(f)
    streamed = MultiDigest(algos, size=f.stat().st_size)
    data = f.read_bytes()
    for i in range(0, len(data), 1000):
        streamed.update(data[i:i + 1000])
    assert streamed.hexdigests() == both
    with pytest.raises(ValueError, match="size"):
        MultiDigest(["gitblob"])
    with pytest.raises(CifarbError, match="cannot read .*missing"):
        sha256_file(tmp_path / "missing")


def test_move_into_place_replaces_or_leaves_nothing(tmp_path):
    from cifarb._atomic import move_into_place

    tmp = tmp_path / "staging" / "f.tmp"
    tmp.parent.mkdir()
    tmp.write_text("new")
    target = tmp_path / "deep" / "er" / "f"
    assert move_into_place(tmp, target) == target  # the target's folders are made
    assert target.read_text() == "new" and not tmp.exists()
    tmp.write_text("newer")
    move_into_place(tmp, target)
    assert target.read_text() == "newer"
    # a failed rename (here: onto a folder) removes the staged file and names the target
    tmp.write_text("bad")
    (tmp_path / "adir").mkdir()
    with pytest.raises(CifarbError, match="adir"):
        move_into_place(tmp, tmp_path / "adir")
    assert not tmp.exists() and target.read_text() == "newer"
