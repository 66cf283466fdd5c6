"""`make_c` and `cifarb data make-c`: official layout, marker and manifest, errors, atomicity, no torch."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cifarb._hashing import file_digest
from cifarb.cli import main
from cifarb.commands import data_makec
from cifarb.data.corruptions import CORRUPTIONS, EXTRA, STANDARD, corrupt, make_c
from cifarb.data.corruptions._makec import MARKER_NAME
from cifarb.errors import CifarbError
from test_corruptions_core import natural_images

N = 10


@pytest.fixture
def fake_root(tmp_path) -> Path:
    """A CIFAR-10 root whose test_batch holds N natural-looking images with the official first N labels."""
    from cifarb.data.cifar_b import load_cifar_b

    root = tmp_path / "root"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    images = natural_images(N, seed=5)
    batch = {
        "batch_label": "testing batch 1 of 1",
        "labels": [int(v) for v in load_cifar_b("cifar10").labels[:N]],
        "data": images.transpose(0, 3, 1, 2).reshape(N, 3072),
    }
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump(batch, fh, protocol=2)
    return root


def image_set(n: int = 6, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        images=natural_images(n, seed=2), labels=np.arange(n) % 10, indices=np.arange(offset, offset + n),
        n_official=10000, verified=False, files={"/x/test_batch": "ab" * 32}, name="cifar10-test",
    )


def test_cli_lists_match_the_package():
    assert data_makec.STANDARD == STANDARD and data_makec.EXTRA == EXTRA


def test_layout_marker_and_partial_severities(tmp_path):
    s = image_set(6, offset=100)
    target = make_c(s, tmp_path / "gen", dataset="cifar10", corruptions=["fog", "pixelate"], severities=[5, 2],
                    seed=7, batch_size=4, progress=False)
    assert target == tmp_path / "gen" / "CIFAR-10-C"
    fog = np.load(target / "fog.npy")
    assert fog.dtype == np.uint8 and fog.shape == (2 * 6, 32, 32, 3)
    # rows k*N .. (k+1)*N-1 hold the k-th severity in ascending order; draws are keyed by official index
    assert np.array_equal(fog[:6], corrupt(s.images, "fog", 2, 7, s.indices))
    assert np.array_equal(fog[6:], corrupt(s.images, "fog", 5, 7, s.indices))
    labels = np.load(target / "labels.npy")
    assert labels.dtype == np.uint8 and np.array_equal(labels, np.tile(s.labels, 2))
    marker = json.loads((target / MARKER_NAME).read_text())
    assert marker["official"] is False and marker["local"] is True and marker["name"] == "cifar10-c-local"
    assert "NOT the official" in marker["description"]
    assert marker["severities"] == [2, 5] and marker["corruptions"] == ["fog", "pixelate"]
    assert marker["seed"] == 7 and marker["n_images"] == 6 and marker["n_official"] == 10000
    assert marker["indices"] == list(range(100, 106))
    assert marker["source_verified"] is False and marker["source"]["files"] == s.files
    assert marker["parameters"]["fog"]["5"] == [1.5, 1.75] and set(marker["parameters"]) == {"fog", "pixelate"}
    assert marker["generator_version"] and marker["libraries"]["numpy"] == np.__version__
    for name in ("fog.npy", "pixelate.npy", "labels.npy"):
        assert marker["files"][name] == file_digest(target / name)
    assert marker["frost_substitute"] is False
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_full_severities_match_the_official_layout_and_the_reader(tmp_path, fake_root):
    from cifarb.data.readers import load_cifar, load_cifar_c

    src = load_cifar("cifar10", "test", root=fake_root, trust_local=True)
    make_c(src, tmp_path / "gen", dataset="cifar10", corruptions=["frost", "contrast"], seed=1, progress=False)
    cs = load_cifar_c("cifar10", root=tmp_path / "gen")  # no trust_local needed for a generated set
    assert cs.local and cs.name == "cifar10-c-local" and not cs.verified  # made from unverified images
    assert cs.severities == [1, 2, 3, 4, 5] and cs.corruptions == ["frost", "contrast"]
    assert np.array_equal(cs.labels, src.labels)
    for sev in (1, 4):
        assert np.array_equal(cs.images("frost", sev), corrupt(src.images, "frost", sev, 1, src.indices))
    # frost_substitute is true only when the photographs are missing (tests/test_corruptions_frost.py)
    from cifarb.data.corruptions import frost_substitute_reason

    assert cs.manifest["frost_substitute"] is (frost_substitute_reason() is not None)


def test_cli_in_process(tmp_path, fake_root, capsys):
    out = tmp_path / "gen"
    rc = main(["data", "make-c", "--dataset", "cifar10", "--root", str(fake_root), "--trust-local", "--out", str(out),
               "--corruptions", "gaussian_noise,jpeg_compression", "--severities", "1,3-4", "--seed", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "LOCAL, NON-OFFICIAL" in text and "cifarb eval" in text
    target = out / "CIFAR-10-C"
    assert np.load(target / "gaussian_noise.npy").shape == (3 * N, 32, 32, 3)
    assert json.loads((target / MARKER_NAME).read_text())["severities"] == [1, 3, 4]
    # a second run into the same folder needs --overwrite; with it, the set is replaced
    args = ["data", "make-c", "--dataset", "cifar10", "--root", str(fake_root), "--trust-local", "--out", str(out),
            "--corruptions", "fog", "--severities", "2", "--no-progress"]
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in target.iterdir()) == [MARKER_NAME, "fog.npy", "labels.npy"]
    # without --trust-local the unverified source images are refused (the reader's message)
    assert main(["data", "make-c", "--dataset", "cifar10", "--root", str(fake_root), "--out", str(tmp_path / "g2")]) == 1
    assert "--trust-local" in capsys.readouterr().err
    assert not (tmp_path / "g2").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--corruptions", "fog,fogg"], "unknown corruption 'fogg'"),
        (["--severities", "0-3"], "severities are integers from 1 to 5"),
        (["--severities", "6"], "severities are integers from 1 to 5"),
        (["--severities", "a"], "expected severities like 1-5"),
        (["--seed", "-1"], "--seed: must be >= 0, got -1"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path, extra, message, capsys):
    rc = main(["data", "make-c", "--dataset", "cifar10", "--out", str(tmp_path / "g"), *extra])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_parsers():
    assert data_makec.parse_severities("1-5") == [1, 2, 3, 4, 5]
    assert data_makec.parse_severities("5,1,3,3") == [1, 3, 5]
    assert data_makec.parse_severities("1-2,4") == [1, 2, 4]
    assert data_makec.parse_corruptions("extra,fog,FOG") == [*EXTRA, "fog"]
    assert data_makec.parse_corruptions("all") == list(CORRUPTIONS)


def test_output_folder_errors(tmp_path, fake_root, capsys):
    base = ["data", "make-c", "--dataset", "cifar10", "--root", str(fake_root), "--trust-local",
            "--corruptions", "fog", "--severities", "1"]
    # an --out below a file
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*base, "--out", str(blocker / "sub")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    # a folder that already holds other files (e.g. the official set) is never touched
    official = tmp_path / "official" / "CIFAR-10-C"
    official.mkdir(parents=True)
    (official / "fog.npy").write_bytes(b"official")
    assert main([*base, "--out", str(tmp_path / "official"), "--overwrite"]) == 1
    assert "not a cifarb-generated set" in capsys.readouterr().err
    assert (official / "fog.npy").read_bytes() == b"official"


def test_read_only_output_is_a_clear_error(tmp_path, monkeypatch):
    import errno
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(CifarbError, match="read-only or not writable"):
        make_c(image_set(), tmp_path / "gen", dataset="cifar10", corruptions=["fog"], progress=False)
    assert not (tmp_path / "gen").exists()


def test_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    from cifarb.data.corruptions import _makec

    calls = {"n": 0}
    real = _makec.corrupt

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("disk went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(_makec, "corrupt", flaky)
    out = tmp_path / "gen"
    with pytest.raises(RuntimeError):
        make_c(image_set(), out, dataset="cifar10", corruptions=["fog", "snow"], progress=False)
    assert list(out.iterdir()) == []


def test_bad_arguments_of_make_c(tmp_path):
    s = image_set()
    for kwargs, message in [
        ({"corruptions": ["fog", "fog"]}, "repeat"),
        ({"corruptions": []}, "no corruptions selected"),
        ({"corruptions": ["nope"]}, "unknown corruption"),
        ({"severities": [0]}, "severity must be"),
        ({"seed": -3}, "non-negative"),
        ({"dataset": "svhn"}, "unknown dataset"),
    ]:
        with pytest.raises(CifarbError, match=message):
            make_c(s, tmp_path / "g", **{"dataset": "cifar10", "progress": False, **kwargs})
    assert not (tmp_path / "g").exists()


def test_make_c_command_never_imports_torch(tmp_path, fake_root):
    code = textwrap.dedent(f"""
        import sys
        from cifarb.cli import main
        rc = main(["data", "make-c", "--dataset", "cifar10", "--root", {str(fake_root)!r}, "--trust-local",
                   "--out", {str(tmp_path / "gen")!r}, "--corruptions", "all", "--severities", "3"])
        assert rc == 0, rc
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, loaded
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")
    assert len(list((tmp_path / "gen" / "CIFAR-10-C").glob("*.npy"))) == 20


def test_cifar100_folder_and_local_name(tmp_path):
    s = image_set(4)
    s.labels = np.array([0, 42, 99, 7])
    target = make_c(s, tmp_path, dataset="cifar100", corruptions=["contrast"], severities=[3], progress=False)
    assert target.name == "CIFAR-100-C"
    marker = json.loads((target / MARKER_NAME).read_text())
    assert marker["name"] == "cifar100-c-local" and marker["dataset"] == "cifar100"
    assert np.array_equal(np.load(target / "labels.npy"), [0, 42, 99, 7])


@pytest.fixture
def shared_cifar100(shared_data) -> Path:
    if not (shared_data / "cifar-100-python" / "test").exists():
        pytest.skip(f"real CIFAR-100 slice not found at {shared_data / 'cifar-100-python'}")
    return shared_data


def test_make_c_on_the_real_cifar100_slice(tmp_path, shared_cifar100, capsys):
    # CIFAR-100-C uses the reference's one CIFAR parameter set (make_cifar_c.py), as the official files do
    from cifarb.data.corruptions import SEVERITY_PARAMS, parameters_table
    from cifarb.data.readers import load_cifar, load_cifar_c

    names = "frost,zoom_blur,spatter"
    rc = main(["data", "make-c", "--dataset", "cifar100", "--root", str(shared_cifar100), "--trust-local",
               "--out", str(tmp_path / "gen"), "--corruptions", names, "--severities", "1,5", "--no-progress"])
    assert rc == 0 and "CIFAR-100-C" in capsys.readouterr().out
    src = load_cifar("cifar100", "test", root=shared_cifar100, trust_local=True)
    assert src.images.shape == (916, 32, 32, 3)
    cs = load_cifar_c("cifar100", root=tmp_path / "gen")
    assert cs.local and cs.name == "cifar100-c-local" and cs.severities == [1, 5]
    assert np.array_equal(cs.labels, src.labels) and src.labels.max() > 9  # the 100 fine labels
    marker = cs.manifest
    assert marker["dataset"] == "cifar100" and marker["n_images"] == 916 and marker["indices"] == list(range(916))
    assert marker["parameters"] == {n: parameters_table()[n] for n in names.split(",")}
    for name in names.split(","):
        for sev in (1, 5):
            assert np.array_equal(cs.images(name, sev), corrupt(src.images, name, sev, 0, src.indices)), (name, sev)
    assert SEVERITY_PARAMS["zoom_blur"][4][-1] == 1.2500000000000002  # the reference's unrounded factor
    x = np.load(tmp_path / "gen" / "CIFAR-100-C" / "frost.npy")
    assert x.shape == (2 * 916, 32, 32, 3) and not np.array_equal(x[:916], src.images)
