"""Readers for CIFAR-10/100 python batches, CIFAR-10-C/100-C .npy and CIFAR-10.1 .npy, with verification.

Every reader returns uint8 NHWC images and int64 labels and says which official test indices it holds.
Files whose checksum does not match the published one (or the verified-download record) are refused
unless `trust_local`; pickles are refused *before* unpickling and then unpickled with a restricted loader.
A test set whose labels differ from the bundled official labels is refused even with `trust_local`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.data import cifar_b
from cifarb.data._safepickle import load_pickle_file
from cifarb.data.names import train_dataset
from cifarb.data.registry import CIFAR10_1_SIZES, CIFAR_C_CORRUPTIONS, SEVERITIES
from cifarb.data.root import resolve_root
from cifarb.data.safeio import load_npy
from cifarb.data.verify import FileCheck, check_local, sha256_of
from cifarb.errors import CifarbError

N_TEST = 10_000
N_TRAIN = 50_000
IMAGE_SHAPE = (32, 32, 3)
LOCAL_MARKER = ".cifarb-local.json"
# written by cifarb.data.corruptions.make_c (`cifarb data make-c`); see docs/architecture.md
LOCAL_FORMAT = "cifarb-local-corruptions"

_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_C_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}


@dataclass
class ImageSet:
    """Images (uint8 NHWC), labels (int64) and the official index of each image."""

    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    class_names: list[str]
    n_official: int
    verified: bool
    files: dict[str, str]
    coarse_labels: np.ndarray | None = None
    name: str = ""

    @property
    def n_images(self) -> int:
        return int(self.labels.shape[0])

    def __len__(self) -> int:
        return self.n_images


@dataclass
class CorruptionSet:
    """A CIFAR-10-C / CIFAR-100-C folder: memory-mapped corruption files sliced by severity."""

    name: str
    dataset: str
    folder: Path
    corruptions: list[str]
    severities: list[int]
    labels: np.ndarray
    indices: np.ndarray
    class_names: list[str]
    n_official: int
    local: bool
    verified: bool
    files: dict[str, str]
    manifest: dict[str, Any] | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_images(self) -> int:
        """Images per (corruption, severity) pair."""
        return int(self.labels.shape[0])

    def images(self, corruption: str, severity: int) -> np.ndarray:
        """The (n, 32, 32, 3) uint8 images of one corruption at one severity (a memory-mapped view)."""
        if corruption not in self._arrays:
            raise CifarbError(f"corruption {corruption!r} is not in {self.folder}; "
                              f"available: {', '.join(self.corruptions)}")
        if severity not in self.severities:
            raise CifarbError(f"severity {severity} is not in {self.folder}; available: "
                              f"{', '.join(map(str, self.severities))}")
        k = self.severities.index(severity)
        n = self.n_images
        return self._arrays[corruption][k * n:(k + 1) * n]


# --------------------------------------------------------------------------------------------- helpers


def _dataset(dataset: str) -> str:
    key = train_dataset(dataset)
    if key is None:
        raise CifarbError(f"unknown dataset {dataset!r}; choose cifar10 or cifar100")
    return key


def _require(root: Path, relpath: str, fetch_name: str, trust_local: bool) -> FileCheck:
    """Check one file; refuse a missing one, and an unverified one unless trust_local."""
    check = check_local(root, relpath)
    if check.status == "MISSING":
        raise CifarbError(
            f"{check.path} is missing; run `cifarb data fetch {fetch_name} --root {root}` "
            f"(or `cifarb data where {fetch_name}` for the manual steps)"
        )
    if check.status == "MISMATCH" and not trust_local:
        raise CifarbError(
            f"{check.path} is not verified ({check.how}): its checksum matches neither checksums.md nor "
            f"the verified-download record. Fetch the official files with `cifarb data fetch {fetch_name} "
            f"--root {root}`, or pass --trust-local to use it anyway (results then record data_verified: false)"
        )
    return check


def _fix(fetch_name: str, root: Path) -> str:
    return f"replace it with the official file (`cifarb data fetch {fetch_name} --root {root}`)"


def _as_labels(value: Any, path: Path, key: str, n: int, n_classes: int, fix: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged or odd objects
        arr = np.asarray([], dtype=object)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise CifarbError(f"{path}: '{key}' must be a 1-D list of integer labels, got {arr.dtype} "
                          f"with shape {arr.shape}; {fix}")
    if arr.shape[0] != n:
        raise CifarbError(f"{path}: '{key}' holds {arr.shape[0]} labels for {n} images; {fix}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise CifarbError(f"{path}: '{key}' has labels outside 0..{n_classes - 1}; {fix}")
    return arr.astype(np.int64)


def _read_batch(path: Path, dataset: str, fetch_name: str, root: Path, max_n: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Images (NHWC), labels and (CIFAR-100) coarse labels of one python batch file."""
    fix = _fix(fetch_name, root)
    # a batch is max_n x 3,072 image bytes plus labels and file names: refuse anything much larger unread
    obj = load_pickle_file(path, fix, max_bytes=max_n * (3072 + 512) + (1 << 20))
    if not isinstance(obj, dict):
        raise CifarbError(f"{path} is not a CIFAR python batch (a dict was expected, got {type(obj).__name__}); {fix}")
    # Python 2 pickles give str keys under latin-1 decoding; re-pickled copies may carry bytes keys.
    d = {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}
    data = d.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CifarbError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {got}; {fix}")
    n = data.shape[0]
    if n > max_n:
        raise CifarbError(f"{path} holds {n} images, more than the official {max_n}; {fix}")
    images = np.ascontiguousarray(data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
    if dataset == "cifar10":
        labels = _as_labels(d.get("labels"), path, "labels", n, 10, fix)
        return images, labels, None
    fine = _as_labels(d.get("fine_labels"), path, "fine_labels", n, 100, fix)
    coarse = _as_labels(d.get("coarse_labels"), path, "coarse_labels", n, 20, fix)
    return images, fine, coarse


# The largest arrays a reader accepts (values): a -C corruption file is 5 x 10,000 x 3,072 bytes.
_MAX_C_ITEMS = len(SEVERITIES) * N_TEST * 3072
_MAX_LABEL_ITEMS = len(SEVERITIES) * N_TEST


def _load_npy(path: Path, fix: str, mmap: bool = False, max_items: int = _MAX_C_ITEMS) -> np.ndarray:
    """A pickle-free .npy whose header was checked against the file size (and `max_items`) first."""
    return load_npy(path, fix, mmap=mmap, max_items=max_items)


def _check_images(arr: np.ndarray, path: Path, n: int | None, fix: str) -> None:
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != IMAGE_SHAPE:
        raise CifarbError(f"{path}: expected uint8 images of shape (N, 32, 32, 3), got {arr.dtype} "
                          f"{arr.shape}; {fix}")
    if n is not None and arr.shape[0] != n:
        raise CifarbError(f"{path}: holds {arr.shape[0]} images, expected {n} to match labels.npy; {fix}")


def _check_label_array(arr: np.ndarray, path: Path, n_classes: int, fix: str) -> np.ndarray:
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise CifarbError(f"{path}: expected a 1-D integer label array, got {arr.dtype} {arr.shape}; {fix}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise CifarbError(f"{path}: labels outside 0..{n_classes - 1}; {fix}")
    return np.asarray(arr, dtype=np.int64)


# --------------------------------------------------------------------------------------------- CIFAR


def load_cifar(dataset: str, split: str = "test", root: str | Path | None = None,
               trust_local: bool = False) -> ImageSet:
    """CIFAR-10/100 (official python batches) train or test split from `<root>/cifar-10-batches-py/` etc.

    Test sets must be the official set or a prefix of it (labels are checked against the bundled ones).
    """
    ds = _dataset(dataset)
    if split not in ("train", "test"):
        raise CifarbError(f"unknown split {split!r}; choose train or test")
    root_p = resolve_root(root)
    folder = _FOLDERS[ds]
    if ds == "cifar10":
        names = ["test_batch"] if split == "test" else [f"data_batch_{k}" for k in range(1, 6)]
        per_file = N_TEST
    else:
        names = [split]
        per_file = N_TEST if split == "test" else N_TRAIN
    # Check every file (and refuse unverified ones) before unpickling any of them.
    checks = [_require(root_p, f"{folder}/{name}", ds, trust_local) for name in names]
    images, labels, coarse, indices = [], [], [], []
    for k, check in enumerate(checks):
        im, lab, co = _read_batch(check.path, ds, ds, root_p, per_file)
        images.append(im)
        labels.append(lab)
        if co is not None:
            coarse.append(co)
        indices.append(k * per_file + np.arange(lab.shape[0], dtype=np.int64))
    out = ImageSet(
        images=np.concatenate(images) if len(images) > 1 else images[0],
        labels=np.concatenate(labels),
        indices=np.concatenate(indices),
        class_names=cifar_b.class_names(ds),
        n_official=N_TEST if split == "test" else N_TRAIN,
        verified=all(c.ok for c in checks),
        files={str(c.path): c.sha256 or "" for c in checks},
        coarse_labels=np.concatenate(coarse) if coarse else None,
        name=f"{ds}-{split}",
    )
    if split == "test":
        path = checks[0].path
        cifar_b.check_official_labels(ds, out.labels, out.indices, path)
        if out.coarse_labels is not None:
            official_coarse = cifar_b.load_cifar_b(ds).coarse_labels
            assert official_coarse is not None
            if not np.array_equal(official_coarse[out.indices], out.coarse_labels):
                raise CifarbError(f"{path}: coarse labels differ from the official CIFAR-100 test labels; "
                                  "use the official files (cifarb data fetch cifar100)")
    return out


# --------------------------------------------------------------------------------------------- CIFAR-C


_MARKER_MAX_BYTES = 4 << 20  # a marker lists <= 20 files and <= 10,000 indices: well under 1 MB


def _read_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / LOCAL_MARKER
    if not path.exists():
        return None
    regen = "regenerate the set with `cifarb data make-c`"
    try:  # small JSON written by make-c; everything it claims is checked below
        if path.stat().st_size > _MARKER_MAX_BYTES:
            raise CifarbError(f"{path} is larger than a make-c marker can be; {regen}")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CifarbError(f"{path} is not valid JSON ({str(exc)[:160]}); {regen}") from None
    needed = ("format", "dataset", "n_images", "severities", "source_verified", "files")
    ok = (isinstance(manifest, dict) and all(k in manifest for k in needed)
          and manifest.get("format") == LOCAL_FORMAT and _is_int(manifest.get("format_version", 1))
          and manifest.get("format_version", 1) == 1)
    if not ok:
        raise CifarbError(f"{path} is not a cifarb make-c marker (format {LOCAL_FORMAT!r} version 1 with keys "
                          f"{', '.join(needed)}); {regen}")
    # every field has one type: a string "false" must never read as a true source_verified
    problems = []
    if not isinstance(manifest["dataset"], str):
        problems.append("'dataset' must be a string")
    if not _is_int(manifest["n_images"]) or not 0 < manifest["n_images"] <= N_TEST:
        problems.append(f"'n_images' must be an integer in 1..{N_TEST}")
    if not isinstance(manifest["severities"], list) or not all(_is_int(v) for v in manifest["severities"]):
        problems.append("'severities' must be a list of integers")
    if not isinstance(manifest["source_verified"], bool):
        problems.append("'source_verified' must be true or false (a JSON boolean)")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        problems.append("'files' must map file names to sha256 strings")
    indices = manifest.get("indices")
    if indices is not None and (not isinstance(indices, list) or not all(_is_int(v) for v in indices)):
        problems.append("'indices' must be a list of integers")
    if problems:
        raise CifarbError(f"{path}: {'; '.join(problems)}; {regen}")
    return manifest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_cifar_c(dataset: str, root: str | Path | None = None, trust_local: bool = False,
                 corruptions: Sequence[str] | None = None) -> CorruptionSet:
    """CIFAR-10-C / CIFAR-100-C from `<root>/CIFAR-10-C/` (official, a prefix, or a generated local set).

    `corruptions=None` takes every corruption file present. Generated sets (with the marker written by
    `cifarb data make-c`) are read without `trust_local`; their files are checked against the marker.
    """
    ds = _dataset(dataset)
    root_p = resolve_root(root)
    folder = root_p / _C_FOLDERS[ds]
    fetch_name = f"{ds}-c"
    fix = _fix(fetch_name, root_p)
    marker = _read_marker(folder)
    if marker is not None and str(marker["dataset"]) not in (ds, fetch_name):
        raise CifarbError(f"{folder / LOCAL_MARKER} describes {marker['dataset']}, not {ds}")
    known = [c for c in CIFAR_C_CORRUPTIONS if (folder / f"{c}.npy").exists()]
    if corruptions is None:
        wanted = known
        if not wanted:
            raise CifarbError(f"no corruption files found in {folder}; run `cifarb data fetch {fetch_name} "
                              f"--root {root_p}` or generate a set with `cifarb data make-c`")
    else:
        from cifarb.data.corruption_names import unknown_corruptions

        message = unknown_corruptions(corruptions)
        if message:
            raise CifarbError(message)
        wanted = list(dict.fromkeys(corruptions))
    names = ["labels", *wanted]

    if marker is None:
        checks = {n: _require(root_p, f"{_C_FOLDERS[ds]}/{n}.npy", fetch_name, trust_local) for n in names}
        verified = all(c.ok for c in checks.values())
        files = {str(c.path): c.sha256 or "" for c in checks.values()}
        severities = list(SEVERITIES)
    else:
        files, all_match = {}, True
        for n in names:
            path = folder / f"{n}.npy"
            if not path.exists():
                raise CifarbError(f"{path} is missing from the generated set; regenerate it with `cifarb data make-c`")
            sha = sha256_of(path)
            files[str(path)] = sha
            if marker["files"].get(f"{n}.npy") != sha:
                all_match = False
                if not trust_local:
                    raise CifarbError(f"{path} does not match the sha256 in {folder / LOCAL_MARKER}: it changed "
                                      "after generation; regenerate the set with `cifarb data make-c`, or pass "
                                      "--trust-local to use it anyway")
        verified = marker["source_verified"] is True and all_match
        severities = [int(s) for s in marker["severities"]]
        if not severities or any(s not in SEVERITIES for s in severities) or len(set(severities)) != len(severities):
            raise CifarbError(f"{folder / LOCAL_MARKER}: severities must be distinct values in 1..5")

    n_sev = len(severities)
    labels_path = folder / "labels.npy"
    all_labels = _check_label_array(_load_npy(labels_path, fix, max_items=_MAX_LABEL_ITEMS), labels_path,
                                    len(cifar_b.class_names(ds)), fix)
    if all_labels.shape[0] == 0 or all_labels.shape[0] % n_sev:
        raise CifarbError(f"{labels_path}: holds {all_labels.shape[0]} labels, not a multiple of the "
                          f"{n_sev} severities; {fix}")
    n = all_labels.shape[0] // n_sev
    if n > N_TEST:
        raise CifarbError(f"{labels_path}: {n} images per severity, more than the official {N_TEST}; {fix}")
    blocks = all_labels.reshape(n_sev, n)
    if not (blocks == blocks[0]).all():
        raise CifarbError(f"{labels_path}: the severity blocks do not hold the same labels in the same order; {fix}")
    if marker is not None and int(marker["n_images"]) != n:
        raise CifarbError(f"{labels_path}: {n} images per severity, but the marker says {marker['n_images']}")
    labels = blocks[0].copy()
    indices = np.arange(n, dtype=np.int64)
    if marker is not None and marker.get("indices") is not None:
        indices = np.asarray(marker["indices"], dtype=np.int64)
        if indices.shape != (n,) or np.unique(indices).size != n or (n and (indices.min() < 0 or indices.max() >= N_TEST)):
            raise CifarbError(f"{folder / LOCAL_MARKER}: 'indices' must hold {n} distinct test indices in "
                              f"0..{N_TEST - 1}; regenerate the set with `cifarb data make-c`")
    cifar_b.check_official_labels(ds, labels, indices, labels_path)

    arrays = {}
    for c in wanted:
        path = folder / f"{c}.npy"
        arr = _load_npy(path, fix, mmap=True)
        _check_images(arr, path, n * n_sev, fix)
        arrays[c] = arr
    return CorruptionSet(
        name=f"{fetch_name}-local" if marker is not None else fetch_name,
        dataset=ds, folder=folder, corruptions=wanted, severities=severities, labels=labels,
        indices=indices, class_names=cifar_b.class_names(ds), n_official=N_TEST,
        local=marker is not None, verified=verified, files=files, manifest=marker, _arrays=arrays,
    )


# --------------------------------------------------------------------------------------------- CIFAR-10.1


def load_cifar10_1(root: str | Path | None = None, version: str = "v6", trust_local: bool = False) -> ImageSet:
    """CIFAR-10.1 (v6: 2,000 images; v4: 2,021) from `<root>/CIFAR-10.1/`."""
    if version not in CIFAR10_1_SIZES:
        raise CifarbError(f"unknown CIFAR-10.1 version {version!r}; choose v6 (default) or v4")
    root_p = resolve_root(root)
    fetch_name = "cifar10.1" + ("" if version == "v6" else " --version v4")
    fix = _fix(fetch_name, root_p)
    data_check = _require(root_p, f"CIFAR-10.1/cifar10.1_{version}_data.npy", fetch_name, trust_local)
    label_check = _require(root_p, f"CIFAR-10.1/cifar10.1_{version}_labels.npy", fetch_name, trust_local)
    labels = _check_label_array(_load_npy(label_check.path, fix, max_items=N_TEST), label_check.path, 10, fix)
    images = _load_npy(data_check.path, fix, max_items=N_TEST * 3072)
    _check_images(images, data_check.path, labels.shape[0], fix)
    n_official = CIFAR10_1_SIZES[version]
    if labels.shape[0] > n_official:
        raise CifarbError(f"{label_check.path}: {labels.shape[0]} images, more than the {n_official} of "
                          f"CIFAR-10.1 {version}; {fix}")
    return ImageSet(
        images=images, labels=labels, indices=np.arange(labels.shape[0], dtype=np.int64),
        class_names=cifar_b.class_names("cifar10"), n_official=n_official,
        verified=data_check.ok and label_check.ok,
        files={str(data_check.path): data_check.sha256 or "", str(label_check.path): label_check.sha256 or ""},
        name=f"cifar10.1-{version}",
    )
