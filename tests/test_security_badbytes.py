"""Bad bytes end in one clear error with bounded memory: sizes are checked before anything is allocated."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cifarb.cli import main
from cifarb.data import cifar_b
from cifarb.data.readers import load_cifar, load_cifar10_1, load_cifar_c
from cifarb.errors import CifarbError
from test_data_readers import _c_folder, _marker

OFFICIAL10 = cifar_b.official_test_labels("cifar10")


def _npy_with_header(path, header: str, payload: bytes = b"") -> None:
    """A .npy whose header text is `header` (padded like numpy's), followed by `payload`."""
    h = header.encode("latin1")
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + b" " * pad + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + payload)


@pytest.mark.parametrize("case, match", [
    ("npz_as_npy", "an .npz"),
    ("huge_shape", "more than the"),
    ("unbalanced", "header is damaged"),
    ("long_header", "header is damaged"),
    ("negative", "header is damaged"),
    ("not_npy", "not a .npy"),
])
def test_bad_npy_files_of_a_c_set(tmp_path, case, match):
    d = _c_folder(tmp_path, 4)
    target = d / "fog.npy"
    if case == "npz_as_npy":
        with open(target, "wb") as fh:  # np.savez to a file object keeps the .npy name
            np.savez(fh, x=np.zeros(3))
    elif case == "huge_shape":  # would be 10**15 bytes if numpy trusted it
        _npy_with_header(target, "{'descr': '|u1', 'fortran_order': False, 'shape': (10000000000000, 32, 32, 3), }",
                         b"\0" * 100)
    elif case == "unbalanced":
        _npy_with_header(target, "{'descr': '|u1', 'fortran_order': False, 'shape': (20, 32, 32, 3, }")
    elif case == "long_header":
        _npy_with_header(target, "{'descr': '|u1', 'fortran_order': False, 'shape': (20, 32, 32, 3), " + " " * 20000
                         + "}")
    elif case == "negative":
        _npy_with_header(target, "{'descr': '|u1', 'fortran_order': False, 'shape': (-20, 32, 32, 3), }")
    else:
        target.write_bytes(b"hello world, not numpy at all")
    with pytest.raises(CifarbError, match=match):
        load_cifar_c("cifar10", root=tmp_path, trust_local=True)


def test_npz_under_the_npy_name_of_cifar10_1(tmp_path):
    folder = tmp_path / "CIFAR-10.1"
    folder.mkdir()
    with open(folder / "cifar10.1_v6_data.npy", "wb") as fh:
        np.savez(fh, data=np.zeros((3, 32, 32, 3), np.uint8))
    np.save(folder / "cifar10.1_v6_labels.npy", np.zeros(3, np.int64))
    with pytest.raises(CifarbError, match="an .npz"):
        load_cifar10_1(root=tmp_path, trust_local=True)


@pytest.mark.parametrize("field, value", [
    ("source_verified", "false"), ("source_verified", 1), ("n_images", "4"), ("n_images", True),
    ("severities", ["1"]), ("dataset", 10), ("files", {"fog.npy": 5}), ("indices", "0,1,2,3"),
    ("format_version", "1"),
])
def test_marker_fields_are_type_checked(tmp_path, field, value):
    d = _c_folder(tmp_path, 4, sevs=1)
    _marker(d, 4, [1], verified=False)
    m = json.loads((d / ".cifarb-local.json").read_text())
    m[field] = value
    (d / ".cifarb-local.json").write_text(json.dumps(m))
    with pytest.raises(CifarbError, match="make-c"):
        load_cifar_c("cifar10", root=tmp_path)


def test_a_string_false_never_reads_as_verified(tmp_path):
    d = _c_folder(tmp_path, 4, sevs=1)
    _marker(d, 4, [1], verified=False)
    assert load_cifar_c("cifar10", root=tmp_path).verified is False
    m = json.loads((d / ".cifarb-local.json").read_text())
    m["source_verified"] = "false"
    (d / ".cifarb-local.json").write_text(json.dumps(m))
    with pytest.raises(CifarbError, match="source_verified' must be true or false"):
        load_cifar_c("cifar10", root=tmp_path)


def test_an_oversized_cifar_batch_is_refused_unread(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as fh:
        fh.truncate(40_000_000)  # sparse: larger than 10,000 x 3,072 bytes plus labels
    with pytest.raises(CifarbError, match="more than the"):
        load_cifar("cifar10", "test", root=tmp_path, trust_local=True)


# Every single-byte flip of a small CIFAR batch pickle, in a child limited to 1.5 GB of address space:
# each must be a CifarbError (or a readable batch), never a MemoryError, crash or other exception.
_FLIPS = textwrap.dedent("""
    import pickle, resource, sys
    import numpy as np
    from cifarb.data._safepickle import loads_restricted
    resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
    rng = np.random.default_rng(0)
    batch = {"batch_label": "testing batch 1 of 1", "labels": [3, 8], "filenames": ["a.png", "b.png"],
             "data": rng.integers(0, 256, (2, 3072), dtype=np.uint8)}
    raw = pickle.dumps(batch, protocol=int(sys.argv[1]))
    data_at = raw.find(batch["data"].tobytes()[:64])
    n = 0
    for i in range(len(raw)):
        if data_at <= i < data_at + 6144 and (i - data_at) % 97:
            continue  # inside the image bytes a flip only changes a pixel: sample it
        for x in (0x01, 0x80, 0xFF):
            flipped = raw[:i] + bytes([raw[i] ^ x]) + raw[i + 1:]
            n += 1
            try:
                loads_restricted(flipped)
            except MemoryError:
                print("MEMORY", i, x); sys.exit(1)
            except Exception:
                pass
    print("ok", n)
""")


@pytest.mark.parametrize("protocol", [2, 4])
def test_every_byte_flip_of_a_batch_pickle_stays_small(protocol):
    out = subprocess.run([sys.executable, "-c", _FLIPS, str(protocol)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stdout + out.stderr[-2000:]


def test_the_memo_flip_that_allocated_gigabytes_is_refused_before_unpickling():
    from cifarb.data._safepickle import loads_restricted

    raw = pickle.dumps({"labels": [1, 2], "data": np.zeros((2, 3072), np.uint8)}, protocol=2)
    i = raw.index(b"q\x01")  # BINPUT 1: make it LONG_BINPUT with a ~2**31 index
    evil = raw[:i] + b"r\x00\x00\x00\x7f" + raw[i + 2:]
    with pytest.raises(Exception, match="memo index"):
        loads_restricted(evil)


def _metrics(path, capsys) -> str:
    assert main(["metrics", str(path), "--dataset", "cifar10-b", "--bootstrap", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("cifarb: error:") == 1 and "Traceback" not in err
    return err


def test_predictions_files_are_bounded(tmp_path, capsys):
    sparse = tmp_path / "sparse.csv"
    with open(sparse, "wb") as fh:
        fh.write(b"index,prediction\n")
        fh.truncate(2 << 30)  # 2 GiB of NUL bytes, stored sparsely
    assert "longer than" in _metrics(sparse, capsys)
    many = tmp_path / "many.csv"
    many.write_text("index,prediction\n" + "1,2\n" * 10_001)
    assert "more than 10,000 rows" in _metrics(many, capsys)
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, predictions=np.zeros(30_000_000, np.uint8))  # ~30 KB on disk, 30 MB inflated
    assert "more than the" in _metrics(bomb, capsys)
    huge = tmp_path / "huge.npy"
    _npy_with_header(huge, "{'descr': '<i8', 'fortran_order': False, 'shape': (100000000000,), }", b"\0" * 80)
    assert "more than the" in _metrics(huge, capsys)
    import pandas as pd

    pq = tmp_path / "big.parquet"
    pd.DataFrame({"index": np.arange(10_001), "prediction": 0}).to_parquet(pq)
    assert "more than the 10,000" in _metrics(pq, capsys)


def test_hparam_milestones_of_the_wrong_type(tmp_path, capsys):
    argv = ["train", "--dataset", "cifar10", "--arch", "resnet20", "--aug", "standard", "--out", str(tmp_path / "r"),
            "--hparam", "milestones=5"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "milestones = 5 must be a list" in err and "Traceback" not in err


@pytest.mark.parametrize("payload", [
    [1, 2, 3], {"model": {"w": 3}}, {"state_dict": "x"}, 42, {"model": {"conv1.weight": "nope"}},
])
def test_damaged_or_foreign_checkpoints_are_clear_errors(tmp_path, payload):
    import torch

    from cifarb.models import zoo

    path = tmp_path / "c.pt"
    torch.save(payload, path)
    with pytest.raises(CifarbError):
        zoo.resolve_model(str(path), arch="resnet20", mean=(0.5,) * 3, std=(0.2,) * 3)
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(CifarbError):
        zoo.resolve_model(str(path), arch="resnet20", mean=(0.5,) * 3, std=(0.2,) * 3)
