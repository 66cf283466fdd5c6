"""`cifarb metrics PREDICTIONS --dataset cifar10-b|cifar100-b`: subgroup metrics of a predictions file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifarb.commands._common import add_metric_args, add_root_args
from cifarb.errors import CifarbError, UsageError

if TYPE_CHECKING:
    import numpy as np

N_OFFICIAL = 10_000

FORMATS_HELP = """\
Predictions files:
  .npy             exactly 10,000 integer class ids in official test order
  .npz             the same array under the key "predictions"
  .csv or .parquet any subset of the test set, with a header naming the columns index,prediction
                   (extra columns are ignored): index = 0-based official test index,
                   prediction = class id or official class name (e.g. "airplane", "aquarium_fish")
Labels and background-colour subgroups come from the CIFAR-B labels bundled with cifarb, so no
images are read (and data_verified is true). The JSON follows the result contract
(cifarb/schemas/result.schema.json); provenance.model is the predictions file and its sha256.
--dataset cifar10.1 (--cifar10-1-version v6|v4): .npy/.npz hold all 2,000 (v6) or 2,021 (v4) ids; the
labels are read from <root>/CIFAR-10.1/ (not bundled), verified by git blob id or --trust-local.
"""

EXPECTED = (
    "expected .npy (10,000 class ids), .npz (key 'predictions'), or .csv/.parquet with columns "
    "index,prediction"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="subgroup metrics (MacroStd, worst cell, CIs) of a predictions file; no images needed",
        description="Compute accuracy, MacroStd with its noise floor, worst-cell and worst-subgroup accuracy "
        "and stratified bootstrap 95% CIs for predictions on the CIFAR10-B / CIFAR100-B test set.",
        epilog=FORMATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", metavar="PREDICTIONS", help="predictions file (.npy, .npz, .csv, .parquet)")
    parser.add_argument("--dataset", required=True, choices=("cifar10-b", "cifar100-b", "cifar10.1"),
                        help="which test set the predictions are for")
    parser.add_argument("--cifar10-1-version", choices=("v6", "v4"), default="v6",
                        help="CIFAR-10.1 version of --dataset cifar10.1 (default v6)")
    add_root_args(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the result JSON to FILE (atomically)")
    add_metric_args(parser)
    parser.set_defaults(func=run)


def _class_ids(values: Any, class_names: list[str], path: Path) -> np.ndarray:
    """Class ids from ids or official names; CifarbError naming the first bad value and the fix."""
    import numpy as np
    import pandas as pd

    col = pd.Series(values)
    n_classes = len(class_names)
    if pd.api.types.is_bool_dtype(col):
        raise CifarbError(f"{path}: prediction column holds booleans; give class ids (0..{n_classes - 1}) or names")
    if pd.api.types.is_numeric_dtype(col):
        arr = col.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CifarbError(
                f"{path}: prediction {col.iloc[i]!r} (row {i}) is not a class id; give integer class ids "
                f"0..{n_classes - 1} (for scores or logits take the argmax) or class names"
            )
        ids = arr.astype(np.int64)
    else:
        lookup = {name.lower(): i for i, name in enumerate(class_names)}
        ids = np.empty(len(col), dtype=np.int64)
        for i, raw in enumerate(col):
            text = str(raw).strip()
            if text.lower() in lookup:
                ids[i] = lookup[text.lower()]
            elif text.lstrip("-").isdigit():
                ids[i] = int(text)
            else:
                shown = ", ".join(class_names[:10]) + (", ..." if n_classes > 10 else "")
                raise CifarbError(
                    f"{path}: prediction {raw!r} (row {i}) is neither a class id nor an official class name "
                    f"({shown})"
                )
    out_of_range = (ids < 0) | (ids >= n_classes)
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise CifarbError(
            f"{path}: prediction {int(ids[i])} (row {i}) is out of range; this dataset has classes "
            f"0..{n_classes - 1}"
        )
    return ids


def _from_array(arr: np.ndarray, path: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if arr.ndim == 2 and arr.shape[0] == N_OFFICIAL:
        raise CifarbError(
            f"{path}: holds a {arr.shape} array, which looks like scores or logits; save the class ids "
            "instead (predictions = scores.argmax(axis=1))"
        )
    if arr.ndim != 1 or arr.shape[0] != N_OFFICIAL:
        raise CifarbError(
            f"{path}: holds an array of shape {arr.shape}, but a .npy/.npz needs exactly {N_OFFICIAL:,} class "
            "ids in official test order; for a subset of the test set use a .csv or .parquet with columns "
            "index,prediction"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) or arr.dtype == bool:
        raise CifarbError(f"{path}: holds {arr.dtype} values; give integer class ids")
    return np.arange(N_OFFICIAL), _class_ids(arr, class_names, path)


def _from_table(df: Any, path: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np
    import pandas as pd

    df = df.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in ("index", "prediction") if c not in df.columns]
    if missing:
        raise CifarbError(
            f"{path}: has no column {' or '.join(repr(m) for m in missing)} (found: "
            f"{', '.join(map(str, df.columns)) or 'none'}); the header must name the columns index,prediction"
        )
    if len(df) == 0:
        raise CifarbError(f"{path}: has a header but no rows; give at least one index,prediction row")
    idx = df["index"]
    if not pd.api.types.is_numeric_dtype(idx) or pd.api.types.is_bool_dtype(idx):
        raise CifarbError(f"{path}: the index column must hold integer test indices 0..{N_OFFICIAL - 1}")
    arr = idx.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr >= N_OFFICIAL)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CifarbError(
            f"{path}: index {idx.iloc[i]!r} (row {i}) is not an official test index; indices are integers "
            f"0..{N_OFFICIAL - 1}"
        )
    indices = arr.astype(np.int64)
    uniq, counts = np.unique(indices, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise CifarbError(
            f"{path}: index {int(dup[0])} appears {int(counts[counts > 1][0])} times ({dup.size} duplicated "
            "indices); give each test image at most once"
        )
    return indices, _class_ids(df["prediction"], class_names, path)


def read_predictions(path: Path | str, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(official test indices, predicted class ids) from a predictions file in one of the documented forms (docs/evaluation.md)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv", ".parquet"):
        raise CifarbError(f"{path}: unknown predictions format {path.suffix or '(no extension)'!r}; {EXPECTED}")
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise CifarbError(f"{path}: {what}; give a predictions file ({EXPECTED})")
    try:
        # sizes are checked before anything is allocated (cifarb.data.safeio)
        from cifarb.data import safeio

        cap = 2 * N_OFFICIAL * 1000  # generous: the shape checks below give the exact message
        if suffix == ".npy":
            return _from_array(safeio.load_npy(path, EXPECTED, max_items=cap), path, class_names)
        if suffix == ".npz":
            arr = safeio.load_npz_member(path, "predictions", "save it with np.savez(FILE, predictions=ids)", cap)
            return _from_array(arr, path, class_names)
        read = safeio.read_csv_bounded if suffix == ".csv" else safeio.read_parquet_bounded
        return _from_table(read(path, N_OFFICIAL, EXPECTED), path, class_names)
    except CifarbError:
        raise
    except Exception as exc:  # numpy/pandas/pyarrow raise many types for damaged files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CifarbError(f"cannot read {path} as {suffix}: {reason}; is it damaged or another format? "
                          f"{EXPECTED}") from None


def _data_sha256(bundle: Any) -> dict[str, str]:
    """{file: sha256} of the label files behind the bundled CIFAR-B labels."""
    prov = dict(bundle.provenance or {})
    out = {}
    for key, name in prov.items():
        if key.endswith("_file") and f"{key[:-5]}_sha256" in prov:
            out[name] = prov[f"{key[:-5]}_sha256"]
    if bundle.source_file not in out:
        out[bundle.source_file] = bundle.source_sha256
    return out


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.json and Path(args.json).is_dir():
        raise UsageError(f"--json {args.json} is a directory; give a file path")
    if args.dataset == "cifar10.1":  # labels from the data root, no subgroups (cifarb.reference.cifar10_1)
        from cifarb.reference.cifar10_1 import run_metrics

        return run_metrics(args)

    from cifarb._atomic import atomic_write_json
    from cifarb._hashing import file_digest
    from cifarb.data.cifar_b import load_cifar_b
    from cifarb.metrics import build_result, compute_metrics
    from cifarb.metrics.table import format_result

    bundle = load_cifar_b(args.dataset, args.subgroup_names)
    path = Path(args.predictions)
    indices, preds = read_predictions(path, bundle.class_names)
    metrics = compute_metrics(
        bundle.labels[indices], preds, bundle.subgroups[indices],
        n_classes=len(bundle.class_names), n_subgroups=len(bundle.subgroup_names),
        class_names=bundle.class_names, subgroup_names=bundle.subgroup_names,
        bootstrap=args.bootstrap, seed=args.seed, min_cell_size=args.min_cell_size,
        min_cell_size_worst=args.min_cell_size_worst, permutations=args.permutations,
    )
    result = build_result(
        metrics.to_dict(), dataset=args.dataset, n_images=int(indices.size), n_official=N_OFFICIAL,
        data_verified=True,  # no images are read: labels and subgroups are the bundled official ones
        provenance={"model": str(path), "model_sha256": file_digest(path, "sha256"),
                    "data_sha256": _data_sha256(bundle)},
    )
    print(format_result(result, title=f"{args.dataset}: {path} ({indices.size:,} of {N_OFFICIAL:,} test images)"))
    if args.json:
        atomic_write_json(args.json, result)
        print(f"\nwrote {args.json}")
    return 0
