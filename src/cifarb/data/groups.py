"""Bring-your-own (class, subgroup) labels: read a groups or metadata file and join predictions to it.

Three layouts are read, all one row per sample:
- cifarb groups: `index` or `id` (join key), `label`, `group`, optional `class_name`, `group_name`;
- SubpopBench metadata: `filename,y,a,split` (split 0/1/2 = train/val/test), joined on `filename`;
- WILDS-style metadata: label `y` plus attribute columns (CSV, parquet or .npz, where an .npz holds one
  array per field or WILDS' `metadata_array` + `metadata_fields`); `group_by` forms subgroups from the
  combinations of fields in CombinatorialGrouper's mixed-radix order (first field varies fastest).
  Rows are joined on `index`/`id` when present, else on the 0-based row number (`index`).
Strings are factorised in sorted order and become the names. Every problem is one CifarbError that
names the file and the fix. No torch, no images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.errors import CifarbError, UsageError

GROUP_FORMATS = ("groups", "subpopbench", "wilds")
SPLITS = {"train": 0, "val": 1, "test": 2}  # SubpopBench's split codes
SUBPOPBENCH_COLUMNS = ("filename", "y", "a", "split")
KEY_COLUMNS = ("index", "id", "filename")

# names of cifarb's own datasets: a --groups dataset must not be mistaken for one of them
RESERVED_NAMES = ("cifar10", "cifar100", "cifar10-b", "cifar100-b", "cifar100-super", "cifar10-c", "cifar100-c",
                  "cifar10.1", "cifar10-c-local", "cifar100-c-local")

LAYOUTS_HELP = (
    "a groups file needs columns index|id,label,group (optional class_name,group_name); SubpopBench "
    "metadata needs filename,y,a,split; WILDS-style metadata needs y plus the fields named by --group-by"
)


@dataclass(frozen=True)
class GroupTable:
    """Per-sample class and subgroup ids of a bring-your-own dataset, keyed by a unique join key."""

    name: str
    format: str  # one of GROUP_FORMATS
    key_column: str  # "index", "id" or "filename": what predictions join on
    keys: np.ndarray  # int64 or str, unique, one per row
    labels: np.ndarray  # int64 class ids
    groups: np.ndarray  # int64 subgroup ids
    class_names: list[str]
    group_names: list[str]
    path: Path
    sha256: str
    labels_are_names: bool  # class labels were strings: predictions must be names or ids into class_names
    settings: dict[str, Any] = field(default_factory=dict)  # split / group_by, recorded in provenance

    @property
    def n_rows(self) -> int:
        return int(self.keys.shape[0])


@dataclass(frozen=True)
class Joined:
    """Predictions aligned with their rows of a GroupTable."""

    labels: np.ndarray
    predictions: np.ndarray
    groups: np.ndarray
    class_names: list[str]
    rows: np.ndarray  # row of the GroupTable for each prediction


# --- reading tables ---------------------------------------------------------------------------------


def _read_table(path: Path, what: str) -> Any:
    """A DataFrame from .csv/.parquet/.npz; damage is a CifarbError naming the file."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".npz"):
        raise CifarbError(f"{path}: unknown {what} format {path.suffix or '(no extension)'!r}; "
                          "give a .csv, .parquet or .npz file")
    if not path.is_file():
        raise CifarbError(f"{path}: {'is a directory' if path.is_dir() else 'does not exist'}; give a {what} file")
    try:
        if suffix == ".csv":
            df = pd.read_csv(path)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = _npz_frame(path)
    except CifarbError:
        raise
    except Exception as exc:  # pandas/pyarrow/numpy raise many types for damaged files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CifarbError(f"cannot read {path} as {suffix}: {reason}; is it damaged or another format?") from None
    df = df.rename(columns=lambda c: str(c).strip())
    if len(set(df.columns)) != len(df.columns):
        raise CifarbError(f"{path}: column names repeat ({', '.join(df.columns)}); give each column once")
    if len(df) == 0:
        raise CifarbError(f"{path}: has no rows; give one row per sample")
    return df


def _npz_frame(path: Path) -> Any:
    """WILDS-style .npz: `metadata_array` (N, F) + `metadata_fields` (F names), or one 1-D array per field."""
    import pandas as pd

    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    if "metadata_array" in arrays:
        meta = arrays["metadata_array"]
        names = [str(s) for s in arrays.get("metadata_fields", [])]
        if meta.ndim != 2 or len(names) != meta.shape[1]:
            raise CifarbError(f"{path}: metadata_array must be (N, F) with F names in metadata_fields; "
                              f"got shape {meta.shape} and {len(names)} names")
        return pd.DataFrame({name: meta[:, j] for j, name in enumerate(names)})
    lengths = {name: a.shape for name, a in arrays.items()}
    if not arrays or any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
        raise CifarbError(f"{path}: an .npz of metadata needs one 1-D array per field, all the same length "
                          f"(or metadata_array + metadata_fields); found {lengths}")
    return pd.DataFrame(arrays)


def _show(value: Any) -> str:
    """A value for a message: 7 or 'a.jpg', never np.int64(7)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_integral(col: Any) -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        return False
    arr = col.to_numpy(dtype=np.float64)
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def _factorise(col: Any, column: str, path: Path) -> tuple[np.ndarray, list[str], bool]:
    """(ids, names, were_strings): non-negative integers kept as ids, anything else factorised in sorted order."""
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise CifarbError(f"{path}: column {column!r} is empty at row {row}; every row needs a value")
    if _is_integral(col):
        ids = col.to_numpy(dtype=np.float64).astype(np.int64)
        if ids.min() < 0:
            row = int(np.flatnonzero(ids < 0)[0])
            raise CifarbError(f"{path}: column {column!r} holds {ids[row]} at row {row}; integer ids start at 0 "
                              "(or give names as strings)")
        return ids, [str(i) for i in range(int(ids.max()) + 1)], False
    text = col.astype(str).str.strip()
    names = sorted(set(text))
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[t] for t in text], dtype=np.int64), names, True


def _override_names(ids: np.ndarray, names: list[str], df: Any, column: str, path: Path) -> list[str]:
    """Names from an optional `class_name`/`group_name` column; each id must have exactly one name."""
    if column not in df.columns:
        return names
    given = df[column].astype(str).str.strip().to_numpy()
    out = list(names)
    for i in np.unique(ids):
        seen = sorted(set(given[ids == i]))
        if len(seen) != 1:
            raise CifarbError(f"{path}: {column} gives id {names[i]!r} several names ({', '.join(seen[:4])}); "
                              "give one name per id")
        out[i] = seen[0]
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise CifarbError(f"{path}: {column} gives the name {dup[0]!r} to several ids; names must be unique")
    return out


def _keys(col: Any, column: str, path: Path) -> np.ndarray:
    """Unique join keys: int64 when integral, else stripped strings."""
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise CifarbError(f"{path}: column {column!r} is empty at row {row}; every row needs a {column}")
    keys = col.to_numpy(dtype=np.float64).astype(np.int64) if _is_integral(col) else col.astype(str).str.strip().to_numpy()
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise CifarbError(f"{path}: {column} {_show(dup[0])} appears {int(counts[counts > 1][0])} times "
                          f"({dup.size} duplicated); each sample must appear once")
    return keys


def _split_mask(df: Any, split: str | None, path: Path, default_test: bool) -> tuple[np.ndarray | None, str | None]:
    """Rows of the requested split (`train`/`val`/`test` or 0/1/2) as a mask; SubpopBench defaults to test."""
    if split is None and (not default_test or "split" not in df.columns):
        return None, None  # nothing asked for, or a SubpopBench-like file without splits: every row
    if "split" not in df.columns:
        raise UsageError(f"--split {split}: {path} has no 'split' column; drop --split")
    split = "test" if split is None else str(split).strip().lower()
    code = SPLITS.get(split)
    if code is None and split.isdigit() and int(split) in SPLITS.values():
        code = int(split)
        split = next(name for name, c in SPLITS.items() if c == code)
    if code is None:
        raise UsageError(f"--split must be train, val or test (or 0, 1, 2), got {split!r}")
    col = df["split"]
    mask = (col.to_numpy(dtype=np.float64) == code) if _is_integral(col) else (col.astype(str).str.strip() == split)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        found = ", ".join(sorted(map(str, col.unique()))[:6])
        raise CifarbError(f"{path}: no rows with split {split} ({code}); the file's split values are {found}")
    return mask, split


def _detect(df: Any, group_by: Sequence[str] | None) -> str:
    cols = set(df.columns)
    if group_by:
        return "wilds"
    if {"label", "group"} <= cols:
        return "groups"
    if set(SUBPOPBENCH_COLUMNS[:3]) <= cols:
        return "subpopbench"
    return ""


def wilds_groups(df: Any, fields: Sequence[str], path: Path) -> tuple[np.ndarray, list[str]]:
    """Subgroup ids and names of the field combinations, as WILDS' CombinatorialGrouper numbers them.

    Each field's cardinality is its largest value + 1 over the whole file; the group id is
    sum_j value_j * prod_{i<j} cardinality_i, so the first field varies fastest, and every
    combination (also the empty ones) has an id. String fields are factorised in sorted order first.
    """
    codes, vocab = [], []
    for name in fields:
        if name not in df.columns:
            raise UsageError(f"--group-by {','.join(fields)}: {path} has no field {name!r} "
                             f"(fields: {', '.join(df.columns)})")
        ids, names, _ = _factorise(df[name], name, path)
        codes.append(ids)
        vocab.append(names)
    cards = [len(v) for v in vocab]
    factors = np.concatenate(([1], np.cumprod(cards)[:-1])).astype(np.int64)
    groups = sum(c * f for c, f in zip(codes, factors))
    n_groups = int(np.prod(cards))
    if n_groups > 10_000:
        raise UsageError(f"--group-by {','.join(fields)} makes {n_groups:,} combinations; group by fewer fields")
    names = []
    for g in range(n_groups):
        parts = [f"{field_}={vocab[j][(g // int(factors[j])) % cards[j]]}" for j, field_ in enumerate(fields)]
        names.append(",".join(parts))
    return np.asarray(groups, dtype=np.int64), names


def read_groups(path: Path | str, *, name: str | None = None, split: str | None = None,
                group_by: Sequence[str] | None = None) -> GroupTable:
    """Read a groups / SubpopBench / WILDS-style metadata file (see the module docstring)."""
    from cifarb._hashing import file_digest

    path = Path(path)
    where = "--name" if name is not None else f"the stem of {path.name}"
    name = (name if name is not None else path.stem).strip()
    if not name or name.lower() in RESERVED_NAMES:
        raise UsageError(f"dataset name {name!r} ({where}) is empty or reserved for cifarb's own datasets; "
                         "give another one with --name")
    df = _read_table(path, "groups")
    fmt = _detect(df, group_by)
    if not fmt:
        raise CifarbError(f"{path}: columns {', '.join(df.columns)} match no known layout; {LAYOUTS_HELP}")
    mask, split_used = _split_mask(df, split, path, default_test=fmt == "subpopbench")
    if fmt == "groups":
        key_col = next((c for c in ("index", "id") if c in df.columns), None)
        if key_col is None:
            raise CifarbError(f"{path}: a groups file needs an 'index' or 'id' column to join predictions on; "
                              f"found {', '.join(df.columns)}")
        label_col, group_col = "label", "group"
    elif fmt == "subpopbench":
        key_col, label_col, group_col = "filename", "y", "a"
    else:
        label_col = "y" if "y" in df.columns else ("label" if "label" in df.columns else None)
        if label_col is None:
            raise CifarbError(f"{path}: WILDS-style metadata needs a label field 'y' (or 'label'); "
                              f"found {', '.join(df.columns)}")
        key_col = next((c for c in ("index", "id") if c in df.columns), None)
        group_col = None
    # ids and names come from the whole file (as WILDS' grouper and a fixed class list expect); the split
    # only selects rows afterwards
    keys = _keys(df[key_col], key_col, path) if key_col else np.arange(len(df), dtype=np.int64)
    labels, class_names, label_strings = _factorise(df[label_col], label_col, path)
    class_names = _override_names(labels, class_names, df, "class_name", path)
    if group_col is not None:
        groups, group_names, _ = _factorise(df[group_col], group_col, path)
        group_names = _override_names(groups, group_names, df, "group_name", path)
    else:
        groups, group_names = wilds_groups(df, list(group_by or ()), path)
    if mask is not None:
        keys, labels, groups = keys[mask], labels[mask], groups[mask]
    settings: dict[str, Any] = {"format": fmt, "key": key_col or "index (row number)"}
    if split_used is not None:
        settings["split"] = split_used
    if group_by:
        settings["group_by"] = list(group_by)
    return GroupTable(
        name=name, format=fmt, key_column=key_col or "index", keys=keys, labels=labels,
        groups=groups, class_names=class_names, group_names=group_names, path=path,
        sha256=file_digest(path, "sha256"), labels_are_names=label_strings, settings=settings,
    )


# --- joining predictions ------------------------------------------------------------------------------


def _prediction_ids(col: Any, table: GroupTable, path: Path) -> tuple[np.ndarray, list[str]]:
    """Predicted class ids (from ids or class names) and the class names, extended for unseen int ids."""
    import pandas as pd

    names = list(table.class_names)
    if pd.api.types.is_bool_dtype(col):
        raise CifarbError(f"{path}: prediction column holds booleans; give class ids or class names")
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise CifarbError(f"{path}: prediction is empty at row {row}; every row needs a predicted class")
    if pd.api.types.is_numeric_dtype(col):
        if not _is_integral(col):
            row = int(np.flatnonzero(col.to_numpy(dtype=np.float64) != np.round(col.to_numpy(dtype=np.float64)))[0])
            raise CifarbError(f"{path}: prediction {_show(col.iloc[row])} (row {row}) is not a class id; give integer "
                              "class ids (for scores take the argmax) or class names")
        ids = col.to_numpy(dtype=np.float64).astype(np.int64)
        if ids.min() < 0:
            raise CifarbError(f"{path}: prediction {int(ids.min())} is negative; class ids start at 0")
        if table.labels_are_names and ids.max() >= len(names):
            raise CifarbError(f"{path}: prediction {int(ids.max())} is out of range; the classes of "
                              f"{table.path} are 0..{len(names) - 1} ({', '.join(names[:5])}, ...)")
        # an integer-labelled dataset: a predicted class absent from the labels is simply a wrong answer
        names += [str(i) for i in range(len(names), int(ids.max()) + 1)]
        return ids, names
    from cifarb.data.predictions import ids_by_name

    def unknown(row: int, raw: Any, text: str) -> int:
        raise CifarbError(f"{path}: prediction {raw!r} (row {row}) is not a class of {table.path} "
                          f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")

    return ids_by_name(col, names, unknown), names


def _check_labels(given: Any, table: GroupTable, rows: np.ndarray, keys: np.ndarray, path: Path) -> None:
    """A `label` column in the predictions must say what the groups file says (ids, or names)."""
    expect_ids = table.labels[rows]
    if _is_integral(given) and not table.labels_are_names:
        disagree = given.to_numpy(dtype=np.float64) != expect_ids
    else:  # compare as names, case-insensitively
        names = np.array([n.lower() for n in table.class_names])
        disagree = given.astype(str).str.strip().str.lower().to_numpy() != names[expect_ids]
    if disagree.any():
        r = int(np.flatnonzero(disagree)[0])
        raise CifarbError(f"{path}: label disagrees with {table.path} for {int(disagree.sum())} sample(s) (first: "
                          f"{table.key_column} {_show(keys[r])}: {_show(given.iloc[r])} here, "
                          f"{table.class_names[expect_ids[r]]!r} there); the two files describe different "
                          "samples or label orders")


def read_group_predictions(path: Path | str, table: GroupTable) -> Joined:
    """Read a predictions file and join it to `table` on its key; any mismatch is one CifarbError.

    .npy/.npz: one class id per row of `table`, in its row order. .csv/.parquet: the table's key column
    (`index`, `id` or `filename`) and `prediction`; any subset of the rows, each at most once; an
    optional `label` column must agree with the groups file.
    """
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        if not path.is_file():
            raise CifarbError(f"{path}: {'is a directory' if path.is_dir() else 'does not exist'}; "
                              "give a predictions file")
        from cifarb.data import safeio

        fix = f"give one class id per row of {table.path}"
        cap = 1000 * max(table.n_rows, 1)  # sizes checked before allocation; the shape check below is exact
        try:
            if suffix == ".npy":
                arr = safeio.load_npy(path, fix, max_items=cap)
            else:
                arr = safeio.load_npz_member(path, "predictions", "save it with np.savez(FILE, predictions=ids)", cap)
        except CifarbError:
            raise
        except Exception as exc:
            raise CifarbError(f"cannot read {path} as {suffix}: {exc}; is it damaged?") from None
        if arr.ndim != 1 or arr.shape[0] != table.n_rows:
            raise CifarbError(f"{path}: holds shape {arr.shape}, but a .npy/.npz needs one class id per row of "
                              f"{table.path} ({table.n_rows:,}, in its row order); for a subset use a .csv "
                              f"with columns {table.key_column},prediction")
        frame = pd.DataFrame({table.key_column: table.keys, "prediction": arr})
    else:
        if suffix not in (".csv", ".parquet"):
            raise CifarbError(f"{path}: unknown predictions format {path.suffix or '(no extension)'!r}; give "
                              f".npy/.npz (one id per groups row) or .csv/.parquet with {table.key_column},prediction")
        frame = _read_table(path, "predictions")
        frame = frame.rename(columns=lambda c: c.lower())
    return join_predictions(frame, table, path)


def join_predictions(frame: Any, table: GroupTable, path: Path | str = "predictions") -> Joined:
    """Join a predictions frame (the table's key column + `prediction`, optional `label`) to `table`."""
    path = Path(path)
    missing = [c for c in (table.key_column, "prediction") if c not in frame.columns]
    if missing:
        raise CifarbError(f"{path}: has no column {' or '.join(map(repr, missing))} (found: "
                          f"{', '.join(frame.columns)}); {table.path} is joined on {table.key_column!r}, so give "
                          f"columns {table.key_column},prediction")
    keys = _keys(frame[table.key_column], table.key_column, path)
    if keys.dtype.kind != table.keys.dtype.kind:  # e.g. ids written as "7" in one file and 7 in the other
        keys, table_keys = keys.astype(str), table.keys.astype(str)
    else:
        table_keys = table.keys
    order = np.argsort(table_keys, kind="stable")
    pos = np.searchsorted(table_keys[order], keys)
    pos = np.minimum(pos, len(order) - 1)
    found = table_keys[order][pos] == keys
    if not found.all():
        bad = keys[~found]
        raise CifarbError(f"{path}: {bad.size} {table.key_column} value(s) are not in {table.path} (first: "
                          f"{_show(bad[0])}); predictions must be for samples of the groups file"
                          + (f" (split {table.settings['split']})" if "split" in table.settings else ""))
    rows = order[pos]
    preds, names = _prediction_ids(frame["prediction"], table, path)
    if "label" in frame.columns:
        _check_labels(frame["label"], table, rows, keys, path)
    return Joined(labels=table.labels[rows], predictions=preds, groups=table.groups[rows], class_names=names,
                  rows=rows)
