"""Readers: CIFAR pickles (any key encoding), CIFAR-C memmaps, CIFAR-10.1; verification and bad input."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from cifarb.data import cifar_b, readers, verify
from cifarb.data.readers import load_cifar, load_cifar10_1, load_cifar_c
from cifarb.errors import CifarbError

OFFICIAL10 = cifar_b.official_test_labels("cifar10")


def _batch(n: int, labels: np.ndarray, keys: str = "str", extra: dict | None = None, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    d = {"batch_label": "testing batch 1 of 1", "labels": [int(x) for x in labels],
         "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), **(extra or {})}
    return {k.encode() if keys == "bytes" else k: v for k, v in d.items()}


def _write_pickle(path, obj, protocol=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _record(root, *paths):
    verify.write_record(root, {str(p.relative_to(root)): {"sha256": verify.sha256_of(p)} for p in paths})


# ------------------------------------------------------------------------------------------ CIFAR pickles


@pytest.mark.parametrize("keys,protocol", [("str", 2), ("bytes", 2), ("str", 4), ("bytes", 5)])
def test_test_batch_prefix_any_key_encoding(tmp_path, keys, protocol):
    n = 37
    batch = _batch(n, OFFICIAL10[:n], keys)
    _write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", batch, protocol)
    s = load_cifar("cifar10", "test", root=tmp_path, trust_local=True)
    assert s.images.shape == (n, 32, 32, 3) and s.images.dtype == np.uint8 and s.images.flags.c_contiguous
    data = batch[b"data" if keys == "bytes" else "data"]
    # official layout: 1024 red, then green, then blue values, row-major
    assert np.array_equal(s.images[5, 2, 7], data[5, [2 * 32 + 7, 1024 + 2 * 32 + 7, 2048 + 2 * 32 + 7]])
    assert s.labels.dtype == np.int64 and np.array_equal(s.labels, OFFICIAL10[:n])
    assert np.array_equal(s.indices, np.arange(n)) and s.n_official == 10_000 and s.n_images == n
    assert s.verified is False and s.class_names[3] == "cat" and s.name == "cifar10-test"


def test_unverified_file_refused_naming_file_and_trust_local(tmp_path):
    path = _write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", _batch(5, OFFICIAL10[:5]))
    with pytest.raises(CifarbError) as err:
        load_cifar("cifar10", "test", root=tmp_path)
    assert str(path) in str(err.value) and "--trust-local" in str(err.value)


def test_recorded_file_is_verified_without_trust_local(tmp_path):
    path = _write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", _batch(5, OFFICIAL10[:5]))
    _record(tmp_path, path)
    s = load_cifar("cifar10", "test", root=tmp_path)
    assert s.verified is True and s.files == {str(path): verify.sha256_of(path)}


def test_missing_file_names_fetch(tmp_path):
    with pytest.raises(CifarbError, match=r"test_batch is missing; run `cifarb data fetch cifar10"):
        load_cifar("cifar10", "test", root=tmp_path)


def test_shuffled_test_set_is_refused_even_when_trusted(tmp_path):
    labels = OFFICIAL10[:50].copy()
    i, j = 0, int(np.flatnonzero(labels != labels[0])[0])
    labels[[i, j]] = labels[[j, i]]
    _write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", _batch(50, labels))
    with pytest.raises(CifarbError, match="shuffled or foreign"):
        load_cifar("cifar10", "test", root=tmp_path, trust_local=True)


def test_train_batches_and_indices(tmp_path):
    for k in range(1, 6):
        _write_pickle(tmp_path / "cifar-10-batches-py" / f"data_batch_{k}",
                      _batch(3, np.array([k, 0, 9]), seed=k))
    s = load_cifar("cifar10", "train", root=tmp_path, trust_local=True)
    assert s.images.shape == (15, 32, 32, 3) and s.n_official == 50_000
    assert s.indices.tolist() == [0, 1, 2, 10000, 10001, 10002, 20000, 20001, 20002, 30000, 30001, 30002,
                                  40000, 40001, 40002]
    assert s.labels.tolist()[:6] == [1, 0, 9, 2, 0, 9]


def test_cifar100_fine_and_coarse(tmp_path):
    b = cifar_b.load_cifar_b("cifar100")
    n = 30
    d = {"filenames": ["x"] * n, "fine_labels": b.labels[:n].tolist(), "coarse_labels": b.coarse_labels[:n].tolist(),
         "data": np.zeros((n, 3072), np.uint8)}
    _write_pickle(tmp_path / "cifar-100-python" / "test", {k.encode(): v for k, v in d.items()})
    s = load_cifar("cifar100", "test", root=tmp_path, trust_local=True)
    assert np.array_equal(s.labels, b.labels[:n]) and np.array_equal(s.coarse_labels, b.coarse_labels[:n])
    assert len(s.class_names) == 100
    d["coarse_labels"] = [(c + 1) % 20 for c in d["coarse_labels"]]
    _write_pickle(tmp_path / "cifar-100-python" / "test", d)
    with pytest.raises(CifarbError, match="coarse labels differ"):
        load_cifar("cifar100", "test", root=tmp_path, trust_local=True)


def test_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = _write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", {"data": Evil()})
    with pytest.raises(CifarbError, match="not a CIFAR python batch.*refusing to load"):
        load_cifar("cifar10", "test", root=tmp_path, trust_local=True)
    with pytest.raises(CifarbError, match="is not verified"):  # and by default it is not even unpickled
        load_cifar("cifar10", "test", root=tmp_path)
    assert not marker.exists() and path.exists()


@pytest.mark.parametrize("damage,match", [
    ("truncated", "truncated or not a CIFAR python batch"),
    ("garbage", "truncated or not a CIFAR python batch"),
    ("not_dict", "a dict was expected"),
    ("shape", r"uint8 array of shape \(N, 3072\)"),
    ("dtype", r"uint8 array of shape \(N, 3072\)"),
    ("nlabels", "holds 9 labels for 10 images"),
    ("range", "outside 0..9"),
    ("nolabels", "1-D list of integer labels"),
])
def test_bad_pickles_give_one_clear_error(tmp_path, damage, match):
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    good = _batch(10, OFFICIAL10[:10])
    if damage == "truncated":
        data = pickle.dumps(good, protocol=2)
        path.parent.mkdir(parents=True)
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(500))
    elif damage == "not_dict":
        _write_pickle(path, [1, 2, 3])
    elif damage == "shape":
        _write_pickle(path, {**good, "data": np.zeros((10, 3000), np.uint8)})
    elif damage == "dtype":
        _write_pickle(path, {**good, "data": np.zeros((10, 3072), np.float32)})
    elif damage == "nlabels":
        _write_pickle(path, {**good, "labels": good["labels"][:9]})
    elif damage == "range":
        _write_pickle(path, {**good, "labels": [12] * 10})
    else:
        _write_pickle(path, {"data": good["data"]})
    with pytest.raises(CifarbError, match=match) as err:
        load_cifar("cifar10", "test", root=tmp_path, trust_local=True)
    assert str(path) in str(err.value)


def test_unknown_dataset_and_split():
    with pytest.raises(CifarbError, match="unknown dataset"):
        load_cifar("mnist")
    with pytest.raises(CifarbError, match="unknown split"):
        load_cifar("cifar10", "val")


# ------------------------------------------------------------------------------------------ CIFAR-C


def _c_folder(root, n, corruptions=("gaussian_noise", "fog"), sevs=5, labels=None, folder="CIFAR-10-C"):
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    lab = OFFICIAL10[:n] if labels is None else labels
    np.save(d / "labels.npy", np.tile(lab.astype(np.uint8), sevs))
    for k, c in enumerate(corruptions):
        arr = np.zeros((sevs * n, 32, 32, 3), np.uint8)
        for s in range(sevs):  # pixel value encodes (corruption, severity, image)
            arr[s * n:(s + 1) * n, 0, 0, 0] = 10 * k + s
            arr[s * n:(s + 1) * n, 0, 0, 1] = np.arange(n)
        np.save(d / f"{c}.npy", arr)
    return d


def test_cifar_c_prefix_is_memory_mapped_and_sliced(tmp_path):
    n = 12
    _c_folder(tmp_path, n)
    with pytest.raises(CifarbError, match="labels.npy is not verified.*--trust-local"):
        load_cifar_c("cifar10", root=tmp_path)
    cs = load_cifar_c("cifar10", root=tmp_path, trust_local=True)
    assert cs.corruptions == ["gaussian_noise", "fog"]  # registry order, only those present
    assert cs.severities == [1, 2, 3, 4, 5] and cs.n_images == n and cs.n_official == 10_000
    assert not cs.local and not cs.verified and cs.name == "cifar10-c"
    img = cs.images("fog", 3)
    assert isinstance(img.base, np.memmap) or isinstance(img, np.memmap)
    assert img.shape == (n, 32, 32, 3) and (img[:, 0, 0, 0] == 12).all() and img[:, 0, 0, 1].tolist() == list(range(n))
    assert np.array_equal(cs.labels, OFFICIAL10[:n]) and np.array_equal(cs.indices, np.arange(n))
    # the subgroup join is exact for every corruption x severity: same indices for every pair
    assert np.array_equal(cifar_b.subgroups_for("cifar10", cs.indices), cifar_b.load_cifar_b("cifar10").subgroups[:n])
    with pytest.raises(CifarbError, match="severity 6"):
        cs.images("fog", 6)
    with pytest.raises(CifarbError, match="'snow' is not in"):
        cs.images("snow", 1)
    assert load_cifar_c("cifar10", root=tmp_path, trust_local=True, corruptions=["fog"]).corruptions == ["fog"]
    with pytest.raises(CifarbError, match="unknown corruption"):
        load_cifar_c("cifar10", root=tmp_path, trust_local=True, corruptions=["rain"])
    with pytest.raises(CifarbError, match="snow.npy is missing"):
        load_cifar_c("cifar10", root=tmp_path, trust_local=True, corruptions=["snow"])


@pytest.mark.parametrize("damage,match", [
    ("shuffled", "shuffled or foreign"),
    ("not_multiple", "not a multiple of the 5 severities"),
    ("blocks", "severity blocks do not hold the same labels"),
    ("shape", r"expected uint8 images of shape \(N, 32, 32, 3\)"),
    ("count", "holds 59 images, expected 60 to match labels.npy"),
    ("truncated", "truncated or damaged"),
    ("float_labels", "1-D integer label array"),
    ("pickled", "Python objects"),
])
def test_bad_cifar_c_gives_one_clear_error(tmp_path, damage, match):
    n = 12
    d = _c_folder(tmp_path, n)
    if damage == "shuffled":
        np.save(d / "labels.npy", np.tile(OFFICIAL10[:n][::-1].astype(np.uint8), 5))
    elif damage == "not_multiple":
        np.save(d / "labels.npy", np.tile(OFFICIAL10[:n], 5)[:-1])
    elif damage == "blocks":
        np.save(d / "labels.npy", np.concatenate([OFFICIAL10[:n]] * 4 + [OFFICIAL10[1:n + 1]]))
    elif damage == "shape":
        np.save(d / "fog.npy", np.zeros((5 * n, 32, 32), np.uint8))
    elif damage == "count":
        np.save(d / "fog.npy", np.zeros((5 * n - 1, 32, 32, 3), np.uint8))
    elif damage == "truncated":
        raw = (d / "fog.npy").read_bytes()
        (d / "fog.npy").write_bytes(raw[: len(raw) // 2])
    elif damage == "float_labels":
        np.save(d / "labels.npy", np.tile(OFFICIAL10[:n], 5).astype(np.float32))
    else:
        np.save(d / "labels.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CifarbError, match=match):
        load_cifar_c("cifar10", root=tmp_path, trust_local=True)


def _marker(d, n, sevs, verified, indices=None):
    files = {p.name: verify.sha256_of(p) for p in d.glob("*.npy")}
    m = {"format": "cifarb-local-corruptions", "format_version": 1, "dataset": "cifar10", "n_images": n,
         "severities": sevs, "source_verified": verified, "files": files}
    if indices is not None:
        m["indices"] = indices
    (d / ".cifarb-local.json").write_text(json.dumps(m))


def test_generated_local_set_reads_without_trust_local(tmp_path):
    n = 8
    d = _c_folder(tmp_path, n, sevs=2)
    _marker(d, n, [2, 4], verified=True)
    cs = load_cifar_c("cifar10", root=tmp_path)
    assert cs.local and cs.verified and cs.name == "cifar10-c-local" and cs.severities == [2, 4]
    assert (cs.images("fog", 4)[:, 0, 0, 0] == 11).all()  # second block = severity 4
    _marker(d, n, [2, 4], verified=False)
    assert load_cifar_c("cifar10", root=tmp_path).verified is False  # made from unverified images
    # a file changed after generation is refused, or accepted as unverified under --trust-local
    _marker(d, n, [2, 4], verified=True)
    arr = np.load(d / "fog.npy")
    arr[0, 0, 0, 2] = 99
    np.save(d / "fog.npy", arr)
    with pytest.raises(CifarbError, match="fog.npy does not match the sha256"):
        load_cifar_c("cifar10", root=tmp_path)
    assert load_cifar_c("cifar10", root=tmp_path, trust_local=True).verified is False


def test_local_set_with_non_prefix_indices(tmp_path):
    idx = [5, 17, 2, 900]
    d = _c_folder(tmp_path, 4, sevs=1, labels=OFFICIAL10[idx])
    _marker(d, 4, [1], verified=True, indices=idx)
    cs = load_cifar_c("cifar10", root=tmp_path)
    assert cs.indices.tolist() == idx
    _marker(d, 4, [1], verified=True, indices=[5, 17, 3, 900])  # label at index 3 differs
    with pytest.raises(CifarbError, match="shuffled or foreign"):
        load_cifar_c("cifar10", root=tmp_path)


def test_bad_marker_is_a_clear_error(tmp_path):
    d = _c_folder(tmp_path, 4, sevs=1)
    (d / ".cifarb-local.json").write_text("{oops")
    with pytest.raises(CifarbError, match="not valid JSON.*make-c"):
        load_cifar_c("cifar10", root=tmp_path)
    (d / ".cifarb-local.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CifarbError, match="not a cifarb make-c marker"):
        load_cifar_c("cifar10", root=tmp_path)


def test_make_c_output_reads_back(tmp_path):
    """Engineer G's make_c writes a set this reader accepts (the marker contract in architecture.md)."""
    from cifarb.data.corruptions import make_c

    n = 6
    rng = np.random.default_rng(0)
    src = readers.ImageSet(images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), labels=OFFICIAL10[:n].copy(),
                           indices=np.arange(n), class_names=cifar_b.class_names("cifar10"), n_official=10_000,
                           verified=False, files={}, name="cifar10-test")
    make_c(src, tmp_path, dataset="cifar10", corruptions=["brightness", "contrast"], severities=[1, 3],
           progress=False)
    cs = load_cifar_c("cifar10", root=tmp_path)
    assert cs.local and cs.name == "cifar10-c-local" and cs.verified is False
    assert cs.corruptions == ["brightness", "contrast"] and cs.severities == [1, 3] and cs.n_images == n
    assert cs.images("contrast", 3).shape == (n, 32, 32, 3)


# ------------------------------------------------------------------------------------------ CIFAR-10.1


def test_cifar10_1_reader(tmp_path):
    d = tmp_path / "CIFAR-10.1"
    d.mkdir()
    labels = np.arange(20, dtype=np.int32) % 10
    np.save(d / "cifar10.1_v6_data.npy", np.zeros((20, 32, 32, 3), np.uint8))
    np.save(d / "cifar10.1_v6_labels.npy", labels)
    with pytest.raises(CifarbError, match="cifar10.1_v6_data.npy is not verified"):
        load_cifar10_1(root=tmp_path)
    s = load_cifar10_1(root=tmp_path, trust_local=True)
    assert s.n_official == 2000 and s.n_images == 20 and not s.verified and s.labels.dtype == np.int64
    _record(tmp_path, d / "cifar10.1_v6_data.npy", d / "cifar10.1_v6_labels.npy")
    assert load_cifar10_1(root=tmp_path).verified is True
    with pytest.raises(CifarbError, match="cifar10.1_v4_data.npy is missing.*--version v4"):
        load_cifar10_1(root=tmp_path, version="v4")
    np.save(d / "cifar10.1_v6_labels.npy", labels[:19])
    with pytest.raises(CifarbError, match="holds 20 images, expected 19"):
        load_cifar10_1(root=tmp_path, trust_local=True)


# ------------------------------------------------------------------------------------------ real images


def test_real_slice_loads_with_right_labels_and_subgroups(shared_data):
    with pytest.raises(CifarbError, match="test_batch is not verified.*--trust-local"):
        load_cifar("cifar10", "test", root=shared_data)
    s = load_cifar("cifar10", "test", root=shared_data, trust_local=True)
    full = np.load(shared_data / "cifar10_full_labels.npz")["test_labels"]
    assert s.n_images == 1017 and s.n_official == 10_000 and s.verified is False
    assert np.array_equal(s.labels, full[:1017]) and np.array_equal(s.indices, np.arange(1017))
    assert list(s.files.values()) == ["98fbd9f1baeee32a3d27856d1aa409fe42e88742870fe236f584595900649b4b"]
    t = load_cifar("cifar10", "train", root=shared_data, trust_local=True)
    train = np.load(shared_data / "cifar10_full_labels.npz")["train_labels"]
    assert t.n_images == 5085 and np.array_equal(t.labels, train[t.indices])


def test_real_border_colours_agree_with_subgroup_names(shared_data, check_border_colours):
    s = load_cifar("cifar10", "test", root=shared_data, trust_local=True)
    b = cifar_b.load_cifar_b("cifar10")
    sub = b.subgroups_for(s.indices)
    check_border_colours(s.images, sub, b.subgroup_names)
    assert (np.bincount(sub, minlength=8) > 0).all()  # every subgroup occurs in the slice
