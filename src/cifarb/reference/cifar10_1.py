"""CIFAR-10.1 labels from the data root (git-blob verified) and accuracy results for predictions on CIFAR-10.1.

The labels are under Tiny Images' terms, so cifarb never bundles them: they are read from
`<root>/CIFAR-10.1/cifar10.1_<version>_labels.npy`, checked against their published git blob id (or the
verified-download record), and accepted unverified only with `trust_local`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.data.registry import CIFAR10_1_SIZES, find_registered
from cifarb.data.root import resolve_root
from cifarb.data.verify import check_file
from cifarb.errors import CifarbError

VERSIONS: tuple[str, ...] = ("v6", "v4")
EXPECTED = "expected .npy ({n:,} class ids), .npz (key 'predictions'), or .csv/.parquet with columns index,prediction"


@dataclass(frozen=True)
class Cifar101Labels:
    """The labels of one CIFAR-10.1 version, whether they were verified, and where they came from."""

    version: str
    labels: np.ndarray
    verified: bool
    path: Path
    sha256: str

    @property
    def n_official(self) -> int:
        return CIFAR10_1_SIZES[self.version]


def check_version(version: str) -> str:
    if version not in CIFAR10_1_SIZES:
        raise CifarbError(f"unknown CIFAR-10.1 version {version!r}; choose v6 (default) or v4")
    return version


def load_cifar10_1_labels(root: str | Path | None = None, version: str = "v6",
                          trust_local: bool = False) -> Cifar101Labels:
    """The CIFAR-10.1 `version` labels under the data root; CifarbError when missing, unverified or damaged."""
    check_version(version)
    root_p = resolve_root(root)
    rel = f"CIFAR-10.1/cifar10.1_{version}_labels.npy"
    fetch = "cifar10.1" + ("" if version == "v6" else " --version v4")
    check = check_file(root_p, find_registered(rel), rel)
    if check.status == "MISSING":
        raise CifarbError(
            f"{check.path} is missing: the CIFAR-10.1 labels are not bundled with cifarb (they are under the Tiny "
            f"Images terms); run `cifarb data fetch {fetch} --root {root_p}`, or leave out --root to use the "
            "shipped CIFAR-10.1 accuracies of the reference models"
        )
    if check.status == "MISMATCH" and not trust_local:
        raise CifarbError(
            f"{check.path} is not verified ({check.how}); fetch the official file with `cifarb data fetch {fetch} "
            f"--root {root_p}`, or pass --trust-local to use it anyway (results then record data_verified: false)"
        )
    n = CIFAR10_1_SIZES[version]
    from cifarb.data.safeio import load_npy  # the header is checked against the file size first (#16)

    arr = load_npy(check.path, f"`cifarb data fetch {fetch}`", max_items=n)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 9:
        raise CifarbError(f"{check.path}: expected {n:,} integer labels in 0..9 for CIFAR-10.1 {version}, got "
                          f"{arr.dtype} {arr.shape}; `cifarb data fetch {fetch}`")
    labels = arr.astype(np.int64)
    labels.setflags(write=False)
    return Cifar101Labels(version, labels, check.ok, check.path, check.sha256 or "")


def read_cifar10_1_predictions(path: Path | str, version: str, class_names: list[str]
                               ) -> tuple[np.ndarray, np.ndarray]:
    """(indices into CIFAR-10.1, class ids) from a predictions file: .npy/.npz hold all n_official ids."""
    n = CIFAR10_1_SIZES[check_version(version)]
    path = Path(path)
    suffix = path.suffix.lower()
    expected = EXPECTED.format(n=n)
    if suffix not in (".npy", ".npz", ".csv", ".parquet"):
        raise CifarbError(f"{path}: unknown predictions format {path.suffix or '(no extension)'!r}; {expected}")
    if not path.is_file():
        raise CifarbError(f"{path}: {'is a directory' if path.is_dir() else 'does not exist'}; {expected}")
    try:
        if suffix in (".npy", ".npz"):
            from cifarb.data import safeio  # sizes are checked before anything is allocated (#16)

            if suffix == ".npy":
                arr = safeio.load_npy(path, expected, max_items=2 * n * 1000)
            else:
                arr = safeio.load_npz_member(path, "predictions", "save it with np.savez(FILE, predictions=ids)",
                                             2 * n * 1000)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise CifarbError(f"{path}: holds an array of shape {arr.shape}, but CIFAR-10.1 {version} predictions "
                                  f"in .npy/.npz need exactly {n:,} class ids in the order of the CIFAR-10.1 files; "
                                  "for a subset use .csv/.parquet with columns index,prediction")
            indices, values = np.arange(n), arr
        else:
            from cifarb.data import safeio

            read = safeio.read_csv_bounded if suffix == ".csv" else safeio.read_parquet_bounded
            df = read(path, n, expected)
            df = df.rename(columns=lambda c: str(c).strip().lower())
            if not {"index", "prediction"} <= set(df.columns) or len(df) == 0:
                raise CifarbError(f"{path}: needs a header with columns index,prediction and at least one row")
            indices, values = df["index"].to_numpy(), df["prediction"].to_numpy()
            if values.dtype == object:  # class names are accepted, as for CIFAR10-B
                lookup = {name.lower(): i for i, name in enumerate(class_names)}
                ids = []
                for raw in values:
                    text = str(raw).strip()
                    if text.lower() not in lookup and not text.isdigit():
                        raise CifarbError(f"{path}: prediction {raw!r} is neither a class id nor a class name "
                                          f"({', '.join(class_names)})")
                    ids.append(lookup[text.lower()] if text.lower() in lookup else int(text))
                values = np.array(ids, dtype=np.int64)
    except CifarbError:
        raise
    except Exception as exc:  # numpy/pandas/pyarrow raise many types for damaged files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CifarbError(f"cannot read {path} as {suffix}: {reason}; {expected}") from None
    for what, arr, hi in (("index", indices, n), ("prediction", values, len(class_names))):
        arr = np.asarray(arr)
        if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool or not np.all(arr == np.round(arr)):
            raise CifarbError(f"{path}: every {what} must be an integer")
        if arr.size and (arr.min() < 0 or arr.max() >= hi):
            raise CifarbError(f"{path}: {what} {int(arr.max() if arr.max() >= hi else arr.min())} is out of range "
                              f"0..{hi - 1} for CIFAR-10.1 {version}")
    indices = np.asarray(indices).astype(np.int64)
    if np.unique(indices).size != indices.size:
        raise CifarbError(f"{path}: an index appears more than once; give each CIFAR-10.1 image at most once")
    return indices, np.asarray(values).astype(np.int64)


def cifar10_1_result(path: Path | str, *, version: str = "v6", root: str | Path | None = None,
                     trust_local: bool = False, bootstrap: int = 1000, seed: int = 0, min_cell_size: int = 1,
                     min_cell_size_worst: int = 10) -> dict[str, Any]:
    """The result JSON of a predictions file on CIFAR-10.1: accuracy and class accuracy with CIs, no subgroups."""
    from cifarb._hashing import file_digest
    from cifarb.data.cifar_b import class_names
    from cifarb.metrics import accuracy_only, build_result

    labels = load_cifar10_1_labels(root, version, trust_local)
    names = class_names("cifar10")
    indices, preds = read_cifar10_1_predictions(path, version, names)
    metric = accuracy_only(labels.labels[indices], preds, class_names=names, n_classes=len(names),
                           bootstrap=bootstrap, seed=seed, min_cell_size=min_cell_size,
                           min_cell_size_worst=min_cell_size_worst).to_dict()  # a plain copy, to add the version
    metric["settings"]["cifar10_1_version"] = version
    return build_result(metric, dataset="cifar10.1", n_images=int(indices.size), n_official=labels.n_official,
                        data_verified=labels.verified,
                        provenance={"model": str(path), "model_sha256": file_digest(path, "sha256"),
                                    "data_sha256": {str(labels.path): labels.sha256}})


def run_metrics(args: Any) -> int:
    """`cifarb metrics PREDICTIONS --dataset cifar10.1`: print the accuracy table, write --json if given."""
    from cifarb._atomic import atomic_write_json
    from cifarb.eval.table import class_table
    from cifarb.metrics.table import format_result

    result = cifar10_1_result(args.predictions, version=args.cifar10_1_version, root=args.root,
                              trust_local=args.trust_local, bootstrap=args.bootstrap, seed=args.seed,
                              min_cell_size=args.min_cell_size, min_cell_size_worst=args.min_cell_size_worst)
    verified = "verified labels" if result["data_verified"] else "UNVERIFIED labels (--trust-local)"
    print(format_result(result, title=f"cifar10.1 {args.cifar10_1_version}: {args.predictions} "
                                      f"({result['n_images']:,} of {result['n_official']:,} images, {verified})"))
    print("", class_table(result), "", "(no subgroup labels: MacroStd is not defined for CIFAR-10.1)", sep="\n")
    if args.json:
        atomic_write_json(args.json, result)
        print(f"\nwrote {args.json}")
    return 0
