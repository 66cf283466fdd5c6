"""Tiny synthetic CIFAR-10 roots in the official pickle format, for the training tests (and a check of them)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

TRAIN_BATCHES = 5


def write_cifar10_root(root: Path, n_train: int = 40, n_test: int = 24, seed: int = 0) -> Path:
    """Write `root/cifar-10-batches-py/` with `n_train` training images over the 5 data batches and a
    test_batch of the first `n_test` official test images' labels (so readers accept it as a prefix).

    Images are noise with a class-dependent colour shift, so a net can learn something from them.
    """
    from cifarb.data.cifar_b import official_test_labels

    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def images_for(labels: np.ndarray) -> np.ndarray:
        base = rng.integers(0, 160, size=(len(labels), 3, 32, 32))
        shift = (labels[:, None] * np.array([9, 17, 25])[None, :]) % 96  # a colour per class
        return (base + shift[:, :, None, None]).astype(np.uint8).reshape(len(labels), 3072)

    def dump(name: str, labels: np.ndarray, label: str) -> None:
        batch = {"batch_label": label, "labels": [int(v) for v in labels], "data": images_for(labels)}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)

    per_batch = np.array_split(rng.integers(0, 10, size=n_train), TRAIN_BATCHES)
    for k, labels in enumerate(per_batch, start=1):
        dump(f"data_batch_{k}", labels, f"training batch {k} of 5")
    dump("test_batch", np.asarray(official_test_labels("cifar10")[:n_test]), "testing batch 1 of 1")
    meta = {"num_cases_per_batch": 10000, "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
            "frog", "horse", "ship", "truck"], "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return Path(root)


def test_synthetic_root_reads_back(tmp_path):
    from cifarb.data.cifar_b import official_test_labels
    from cifarb.data.readers import load_cifar

    root = write_cifar10_root(tmp_path / "data", n_train=23, n_test=11)
    train = load_cifar("cifar10", "train", root=root, trust_local=True)
    test = load_cifar("cifar10", "test", root=root, trust_local=True)
    assert train.images.shape == (23, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (11, 32, 32, 3)
    np.testing.assert_array_equal(test.labels, official_test_labels("cifar10")[:11])
    assert not train.verified and not test.verified
