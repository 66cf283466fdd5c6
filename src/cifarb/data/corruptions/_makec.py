"""`make_c`: write a generated corruption set in the official CIFAR-10-C / CIFAR-100-C layout, with a marker."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cifarb import __version__
from cifarb._atomic import atomic_path, atomic_write_json, os_error_message
from cifarb._hashing import file_digest
from cifarb._threads import threads_info
from cifarb.data.corruptions import (
    CORRUPTIONS,
    FROST_SUBSTITUTE_NOTE,
    GENERATOR_VERSION,
    REGISTRY,
    SEVERITIES,
    check_name,
    check_seed,
    check_severity,
    corrupt,
    parameters_table,
)
from cifarb.data.readers import LOCAL_FORMAT, LOCAL_MARKER
from cifarb.errors import CifarbError

if TYPE_CHECKING:
    from cifarb.data.readers import ImageSet

# The marker's name and format are shared with the reader (cifarb.data.readers.load_cifar_c).
MARKER_NAME = LOCAL_MARKER
_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}


def folder_name(dataset: str) -> str:
    """The official folder name of the -C set of `dataset` ('cifar10' or 'cifar100')."""
    try:
        return _FOLDERS[dataset]
    except KeyError:
        raise CifarbError(f"unknown dataset {dataset!r} for make-c; choose cifar10 or cifar100") from None


def frost_substitute_reason() -> str | None:
    """Why frost would fall back to the procedural substitute here (None: the reference's photographs are used)."""
    from cifarb.data.corruptions._frost import frost_photos

    return frost_photos()[1]


def _library_versions() -> dict[str, str | None]:
    import importlib.metadata

    import cv2
    import PIL
    import scipy

    try:  # not used to make images (only a test reference), so not a dependency: recorded when installed
        skimage_version: str | None = importlib.metadata.version("scikit-image")
    except importlib.metadata.PackageNotFoundError:
        skimage_version = None
    return {
        "numpy": np.__version__, "scipy": scipy.__version__, "scikit-image": skimage_version,
        "opencv": cv2.__version__, "pillow": PIL.__version__,
    }


def _prepare_target(target: Path, overwrite: bool) -> None:
    """Refuse to clobber anything that is not a previous generated set (e.g. the official files)."""
    if target.exists() and not target.is_dir():
        raise CifarbError(f"{target} exists and is not a folder; choose another --out")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not (target / MARKER_NAME).is_file():
        raise CifarbError(
            f"{target} already holds files that are not a cifarb-generated set (perhaps the official "
            f"files); choose another --out"
        )
    if not overwrite:
        raise CifarbError(f"{target} already holds a generated set; pass --overwrite to replace it, or choose another --out")


def check_out(target: Path, overwrite: bool = False) -> None:
    """Fail early (before any data is read) if `target` cannot be written or would clobber other files."""
    target = Path(target)
    _prepare_target(target, overwrite)
    probe_dir = target.parent
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise CifarbError(f"cannot create {target}: {probe_dir} is a file, not a folder; choose another --out")
    try:  # a real write test: os.access says yes to root even on read-only mounts of some kinds
        fd, probe = tempfile.mkstemp(prefix=".cifarb-write-test-", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CifarbError(os_error_message(target, exc)) from None


def _apply_umask(folder: Path) -> None:
    """Give the staging folder and its files the usual permissions (mkdtemp/mkstemp make them private)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _replace_dir(staging: Path, target: Path) -> None:
    """Move the finished staging folder onto `target`; an old generated set is swapped out, then removed."""
    old = None
    try:
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(staging, target)
    except OSError as exc:
        raise CifarbError(os_error_message(target, exc)) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def make_c(
    image_set: ImageSet,
    out: str | Path,
    *,
    dataset: str,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    batch_size: int = 500,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Corrupt every image of `image_set` and write `out/CIFAR-10-C/` (or `CIFAR-100-C/`); return that folder.

    `<corruption>.npy` is uint8 (len(severities) * N, 32, 32, 3): rows k*N .. (k+1)*N - 1 hold all images at
    severities[k] (ascending), which is the official layout when all five severities are made.
    `labels.npy` (uint8) repeats the N labels once per severity. The marker `.cifarb-local.json` names the
    set as local and non-official and holds the manifest. Everything is written in a hidden staging folder
    that is renamed into place at the end, so an interrupted run leaves nothing half-written behind.
    """
    names = list(CORRUPTIONS if corruptions is None else corruptions)
    if not names:
        raise CifarbError("no corruptions selected; name at least one, or leave --corruptions out for all 19")
    for name in names:
        check_name(name)
    if len(set(names)) != len(names):
        raise CifarbError(f"corruption names repeat in {','.join(names)}; name each once")
    sevs = sorted({check_severity(s) for s in severities})
    if not sevs:
        raise CifarbError("no severities selected; give some of 1-5")
    seed = check_seed(seed)
    folder = folder_name(dataset)
    images = np.asarray(image_set.images)
    labels = np.asarray(image_set.labels)
    indices = np.asarray(image_set.indices, dtype=np.int64)
    n = images.shape[0]
    if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3):
        raise CifarbError(f"make-c needs uint8 (N, 32, 32, 3) images, got {images.dtype} {images.shape}")
    if labels.shape != (n,) or indices.shape != (n,):
        raise CifarbError(f"labels and indices must hold one entry per image ({n})")
    if n and (labels.min() < 0 or labels.max() > 255):
        raise CifarbError("labels must fit the official uint8 labels.npy (0..255)")

    out = Path(out)
    target = out / folder
    check_out(target, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder}.partial-", dir=out))
    except OSError as exc:
        raise CifarbError(os_error_message(out, exc)) from None

    substitute = frost_substitute_reason() if "frost" in names else None
    if substitute is not None:
        print(f"warning: frost uses the PROCEDURAL SUBSTITUTE: {substitute}; the set records frost_substitute: true "
              f"and its frost is easier than the reference's", file=sys.stderr)
    notes = {k: REGISTRY[k].note for k in names}
    if substitute is not None:
        notes["frost"] = FROST_SUBSTITUTE_NOTE
    try:
        digests = _write_arrays(
            staging, images, labels, indices, names, sevs, seed, batch_size, progress and n > 0
        )
        source_files = {str(k): str(v) for k, v in dict(getattr(image_set, "files", {}) or {}).items()}
        verified = bool(getattr(image_set, "verified", False))
        marker: dict[str, Any] = {
            "format": LOCAL_FORMAT,
            "format_version": 1,
            "official": False,
            "local": True,
            "name": f"{dataset}-c-local",
            "dataset": dataset,
            "description": (
                f"Corruptions generated locally by cifarb (`cifarb data make-c`) following the CIFAR-10-C "
                f"definitions and parameters (make_cifar_c.py); NOT the official {folder} benchmark files."
                + (" Frost uses a procedural substitute for the reference's photographs." if substitute else "")
            ),
            "generator": "cifarb.data.corruptions",
            "generator_version": GENERATOR_VERSION,
            "cifarb_version": __version__,
            "libraries": _library_versions(),
            "threads": threads_info(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "seed": seed,
            "corruptions": names,
            "severities": sevs,
            "n_images": int(n),
            "n_official": int(getattr(image_set, "n_official", n)),
            "layout": (
                "<corruption>.npy is uint8 (len(severities) * n_images, 32, 32, 3); row k * n_images + i is "
                "the image with official index indices[i] at severity severities[k]; labels.npy is uint8 "
                "(len(severities) * n_images,), the labels repeated once per severity"
            ),
            "indices": indices.tolist(),
            "source": {"name": getattr(image_set, "name", dataset), "files": source_files, "verified": verified},
            "source_verified": verified,
            "parameters": {k: v for k, v in parameters_table().items() if k in names},
            "implementation_notes": notes,
            "frost_substitute": substitute is not None,
            "frost_photos": _frost_photo_record() if "frost" in names and substitute is None else None,
            "files": digests,
        }
        atomic_write_json(staging / MARKER_NAME, marker)
        _apply_umask(staging)
        _replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _frost_photo_record() -> dict[str, Any]:
    from cifarb.data.corruptions._frost import PHOTO_SHA256, photo_folder

    return {"source": "imagecorruptions package (the reference's frost photographs)", "folder": str(photo_folder()),
            "sha256": dict(PHOTO_SHA256)}


def _write_arrays(
    staging: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    names: list[str],
    sevs: list[int],
    seed: int,
    batch_size: int,
    progress: bool,
) -> dict[str, str]:
    from cifarb._progress import progress_bar

    n = images.shape[0]
    digests: dict[str, str] = {}
    bar = progress_bar(len(names) * len(sevs) * n, "make-c", unit="img", progress=progress, leave=True)
    with bar:
        for name in names:
            bar.set_description(name)
            path = staging / f"{name}.npy"
            with atomic_path(path) as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(sevs) * n, 32, 32, 3))
                for k, sev in enumerate(sevs):
                    for start in range(0, n, batch_size):
                        stop = min(start + batch_size, n)
                        arr[k * n + start:k * n + stop] = corrupt(
                            images[start:stop], name, sev, seed, indices[start:stop]
                        )
                        bar.update(stop - start)
                arr.flush()
                del arr
            digests[path.name] = file_digest(path, "sha256")
    path = staging / "labels.npy"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.tile(labels.astype(np.uint8), len(sevs)))
    digests[path.name] = file_digest(path, "sha256")
    return digests
