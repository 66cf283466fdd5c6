"""The bundled CIFAR10-B / CIFAR100-B subgroup labels and official test labels, keyed by test index."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cifarb.data._npz import read_npz
from cifarb.data.names import TRAIN_DATASETS, train_dataset
from cifarb.errors import CifarbError

N_TEST = 10_000
N_SUBGROUPS = 8
DATASETS: tuple[str, ...] = TRAIN_DATASETS

# The release does not name its subgroup ids; these background colours were inferred from border-pixel
# statistics and montages of real test images (see ../shared/cifar-b/FORMAT.md). Id 7 ("other") is the
# least certain. Users can override them (`--subgroup-names`).
DEFAULT_SUBGROUP_NAMES: tuple[str, ...] = ("green", "gray", "blue", "white", "black", "brown", "red", "other")

ASSET_FILES = {"cifar10": "cifar10_b.npz", "cifar100": "cifar100_b.npz"}



def normalize_dataset(dataset: str) -> str:
    """'cifar10' or 'cifar100' for a data/training/evaluation name of the B sets; else CifarbError."""
    base = train_dataset(dataset, cifar_b_aliases=True)
    if base is None:
        raise CifarbError(f"unknown CIFAR-B dataset {dataset!r}; choose cifar10 (cifar10-b) or cifar100 (cifar100-b)")
    return base


def asset_path(name: str) -> Path:
    """Path of a file bundled in cifarb/data/assets/."""
    return Path(str(resources.files("cifarb.data").joinpath("assets", name)))


def resolve_subgroup_names(override: Sequence[str] | None = None) -> list[str]:
    """The 8 subgroup names: the inferred colours, or `override` after checking it has 8 distinct names."""
    if override is None:
        return list(DEFAULT_SUBGROUP_NAMES)
    names = [str(n).strip() for n in override]
    if len(names) != N_SUBGROUPS or any(not n for n in names):
        raise CifarbError(
            f"--subgroup-names needs {N_SUBGROUPS} non-empty comma-separated names (ids 0..7, "
            f"default {','.join(DEFAULT_SUBGROUP_NAMES)}); got {len(names)}: {','.join(names)}"
        )
    if len(set(names)) != N_SUBGROUPS:
        raise CifarbError(f"--subgroup-names must be distinct; got {','.join(names)}")
    return names


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class CifarB:
    """Labels and background-colour subgroups of all 10,000 official test images of one dataset.

    Arrays are indexed by official test index and read-only (they are shared by every caller).
    """

    dataset: str
    labels: np.ndarray
    subgroups: np.ndarray
    class_names: list[str]
    subgroup_names: list[str]
    source_file: str
    source_sha256: str
    coarse_labels: np.ndarray | None = None
    coarse_class_names: list[str] | None = None
    provenance: dict[str, str] | None = None

    def _take(self, arr: np.ndarray, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= N_TEST):
            raise CifarbError(
                f"{self.dataset}-b: test indices must be integers in 0..{N_TEST - 1}; "
                f"got values from {idx.min()} to {idx.max()}"
            )
        return arr[idx.astype(np.int64, copy=False)]

    def subgroups_for(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Subgroup id (0..7, int64) of each official test index."""
        return self._take(self.subgroups, indices)

    def labels_for(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Official (fine) label of each official test index."""
        return self._take(self.labels, indices)


@functools.cache
def _load_bundle(dataset: str) -> dict[str, np.ndarray]:
    path = asset_path(ASSET_FILES[dataset])
    z = read_npz(path, what=f"bundled {dataset}-b label file")
    needed = ["index", "label", "subgroup", "class_names", "source_file", "source_sha256"]
    if dataset == "cifar100":
        needed += ["coarse_label", "coarse_class_names"]
    missing = [k for k in needed if k not in z]
    if missing or z["index"].shape != (N_TEST,) or not np.array_equal(z["index"], np.arange(N_TEST)):
        raise CifarbError(f"bundled label file {path} is damaged (missing {missing or 'index order'}); reinstall cifarb")
    return z


def load_cifar_b(dataset: str, subgroup_names: Sequence[str] | None = None) -> CifarB:
    """The bundled CIFAR-B labels of 'cifar10' or 'cifar100' (also accepts 'cifar10-b' / 'cifar100-b')."""
    ds = normalize_dataset(dataset)
    z = _load_bundle(ds)
    provenance = {
        k: str(z[k]) for k in z if k.endswith("_sha256") or k.endswith("_file") or k == "format_version"
    }
    return CifarB(
        dataset=ds,
        labels=_readonly(z["label"].astype(np.int64)),
        subgroups=_readonly(z["subgroup"].astype(np.int64)),
        class_names=[str(s) for s in z["class_names"]],
        subgroup_names=resolve_subgroup_names(subgroup_names),
        source_file=str(z["source_file"]),
        source_sha256=str(z["source_sha256"]),
        coarse_labels=_readonly(z["coarse_label"].astype(np.int64)) if ds == "cifar100" else None,
        coarse_class_names=[str(s) for s in z["coarse_class_names"]] if ds == "cifar100" else None,
        provenance=provenance,
    )


def subgroups_for(dataset: str, indices: np.ndarray | Sequence[int]) -> np.ndarray:
    """Subgroup ids of the given official test indices of `dataset`."""
    return load_cifar_b(dataset).subgroups_for(indices)


def official_test_labels(dataset: str) -> np.ndarray:
    """The 10,000 official test labels (fine labels for CIFAR-100), int64, read-only."""
    return load_cifar_b(dataset).labels


def class_names(dataset: str) -> list[str]:
    """Official class names (CIFAR-10 label_names / CIFAR-100 fine_label_names), in label order."""
    return load_cifar_b(dataset).class_names


def check_official_labels(dataset: str, labels: np.ndarray, indices: np.ndarray, path: Path | str) -> None:
    """Refuse a test set whose labels differ from the official ones at the same test indices.

    A shuffled or foreign copy would otherwise silently receive the wrong CIFAR-B subgroups.
    """
    official = official_test_labels(dataset)
    labels = np.asarray(labels)
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= N_TEST):
        raise CifarbError(f"{path}: holds {indices.size} test images, more than the official {N_TEST}; "
                          "use the official test set (cifarb data fetch)")
    bad = np.flatnonzero(official[indices] != labels)
    if bad.size:
        i = int(bad[0])
        raise CifarbError(
            f"{path}: labels differ from the official {dataset} test labels at {bad.size} of "
            f"{labels.size} positions (first: position {i}, label {int(labels[i])}, official "
            f"{int(official[indices[i]])}). A shuffled or foreign copy would get the wrong CIFAR-B "
            "subgroups, so it is refused; use the official files (cifarb data fetch) or an official prefix"
        )
