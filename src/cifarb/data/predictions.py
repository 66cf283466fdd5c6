"""Predictions files of the official test sets (docs/metrics.md forms): .npy/.npz in test order, .csv/.parquet subsets.

`read_predictions(path, class_names)` returns (official test indices, predicted class ids); every
problem is one CifarbError naming the file and the expected form. No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.errors import CifarbError

N_OFFICIAL = 10_000

EXPECTED = (
    "expected .npy (10,000 class ids), .npz (key 'predictions'), or .csv/.parquet with columns "
    "index,prediction"
)


def ids_by_name(values: Any, names: Sequence[str], unknown: Callable[[int, Any, str], int]) -> np.ndarray:
    """int64 ids of class names (case and surrounding spaces ignored); `unknown(row, raw, stripped text)`
    gives the id of any other value, or raises the caller's CifarbError."""
    lookup = {name.lower(): i for i, name in enumerate(names)}
    out = np.empty(len(values), dtype=np.int64)
    for row, raw in enumerate(values):
        text = str(raw).strip()
        out[row] = lookup[text.lower()] if text.lower() in lookup else unknown(row, raw, text)
    return out


def _first(bad: np.ndarray) -> int | None:
    """The first row flagged in `bad`, or None."""
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def _class_ids(values: Any, class_names: list[str], path: Path) -> np.ndarray:
    """Class ids from ids or official names; CifarbError naming the first bad value and the fix."""
    import pandas as pd

    col = pd.Series(values)
    n_classes = len(class_names)
    if pd.api.types.is_bool_dtype(col):
        raise CifarbError(f"{path}: prediction column holds booleans; give class ids (0..{n_classes - 1}) or names")
    if pd.api.types.is_numeric_dtype(col):
        arr = col.to_numpy(dtype=np.float64)
        if (i := _first(~np.isfinite(arr) | (arr != np.round(arr)))) is not None:
            raise CifarbError(
                f"{path}: prediction {col.iloc[i]!r} (row {i}) is not a class id; give integer class ids "
                f"0..{n_classes - 1} (for scores or logits take the argmax) or class names"
            )
        ids = arr.astype(np.int64)
    else:
        def unknown(row: int, raw: Any, text: str) -> int:
            if text.lstrip("-").isdigit():
                return int(text)
            shown = ", ".join(class_names[:10]) + (", ..." if n_classes > 10 else "")
            raise CifarbError(
                f"{path}: prediction {raw!r} (row {row}) is neither a class id nor an official class name "
                f"({shown})"
            )

        ids = ids_by_name(col, class_names, unknown)
    if (i := _first((ids < 0) | (ids >= n_classes))) is not None:
        raise CifarbError(
            f"{path}: prediction {int(ids[i])} (row {i}) is out of range; this dataset has classes "
            f"0..{n_classes - 1}"
        )
    return ids


def _from_array(arr: np.ndarray, path: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:

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
    if (i := _first(~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr >= N_OFFICIAL))) is not None:
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
