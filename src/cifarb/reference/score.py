"""Score the reference models (and added models) on CIFAR10-B on one shared set of test indices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cifarb.errors import CifarbError
from cifarb.reference.bundle import N_CIFAR10, VERSIONS, ReferenceBundle, load_reference

DATASET = "cifar10-b"
# the discrepancy estimate the statistics issue (#12) makes the default, and the plug-in it falls back to
DEBIASED, PLUGIN = "macro_std_debiased", "macro_std"


@dataclass
class AddedModel:
    """A model placed among the reference models: per-image predictions, or a full-set result JSON.

    `indices` are official CIFAR-10 test indices with one prediction each. A `result` (result-JSON dict)
    has no per-image predictions, so it cannot be re-scored on a subset and gets no paired comparison.
    `cifar10_1` optionally holds its full-set CIFAR-10.1 accuracy per version ("v4"/"v6").
    """

    name: str
    indices: np.ndarray | None = None
    predictions: np.ndarray | None = None
    result: dict[str, Any] | None = None
    source: str = ""
    cifar10_1: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.result is None) == (self.predictions is None):
            raise CifarbError(f"added model {self.name!r}: give per-image predictions or a result JSON, not both")
        if self.predictions is not None:
            idx = np.asarray(self.indices if self.indices is not None else np.arange(N_CIFAR10), dtype=np.int64)
            pred = np.asarray(self.predictions, dtype=np.int64)
            if idx.shape != pred.shape or idx.ndim != 1:
                raise CifarbError(f"added model {self.name!r}: {pred.size} predictions for {idx.size} indices")
            if idx.size == 0 or idx.min() < 0 or idx.max() >= N_CIFAR10 or np.unique(idx).size != idx.size:
                raise CifarbError(f"added model {self.name!r}: indices must be distinct official test indices "
                                  f"0..{N_CIFAR10 - 1}")
            if pred.min() < 0 or pred.max() > 9:
                raise CifarbError(f"added model {self.name!r}: predictions must be CIFAR-10 class ids 0..9")
            self.indices, self.predictions = idx, pred
        else:
            check_result(self.result, self.source or self.name)

    def aligned(self, indices: np.ndarray) -> np.ndarray:
        """Its predictions at `indices` (which its own indices must cover)."""
        full = np.full(N_CIFAR10, -1, dtype=np.int64)
        full[self.indices] = self.predictions
        out = full[indices]
        if (out < 0).any():
            raise CifarbError(f"added model {self.name!r} has no prediction for some scored index")
        return out


def check_result(result: Any, where: str) -> None:
    """A result JSON may be added only if it is a CIFAR10-B result on the full test set."""
    if not isinstance(result, dict) or "accuracy" not in result or "dataset" not in result:
        raise CifarbError(f"{where}: not a cifarb result JSON (no 'dataset'/'accuracy'); give a result JSON "
                          "from `cifarb eval`/`cifarb metrics`, a predictions file or a run directory")
    if result.get("dataset") != DATASET:
        raise CifarbError(f"{where}: is a result for {result.get('dataset')!r}, but reference models are scored on "
                          f"{DATASET}; give its {DATASET} result or predictions")
    if result.get("n_images") != N_CIFAR10 or result.get("n_official", N_CIFAR10) != N_CIFAR10:
        raise CifarbError(f"{where}: covers {result.get('n_images')} of {result.get('n_official')} test images; a "
                          f"result JSON is accepted only for the full test set ({N_CIFAR10:,} images), because the "
                          "reference models cannot be re-scored on its images without per-image predictions; give "
                          "its predictions file (or run directory) instead")


def metric_options(bootstrap: int, seed: int, permutations: int | None, min_cell_size: int,
                   min_cell_size_worst: int) -> dict[str, Any]:
    """Keyword arguments for compute_metrics (`permutations` None: the metrics engine's default)."""
    from cifarb.metrics.core import PERMUTATIONS

    return {"bootstrap": int(bootstrap), "seed": int(seed), "min_cell_size": int(min_cell_size),
            "min_cell_size_worst": int(min_cell_size_worst),
            "permutations": int(PERMUTATIONS if permutations is None else permutations)}


def _worst_subgroup(sub: Mapping[str, float | None] | None) -> str | None:
    defined = {k: v for k, v in (sub or {}).items() if v is not None}
    return min(defined, key=defined.__getitem__) if defined else None


def _row(name: str, metric: Mapping[str, Any], *, added: bool, n_images: int) -> dict[str, Any]:
    """One table row from a metric dict (SubgroupMetrics.to_dict() or a result JSON)."""
    ci = metric.get("ci95") or {}
    row: dict[str, Any] = {"name": name, "added": added, "n_images": n_images}
    for key in ("accuracy", "macro_std", "macro_std_null", "macro_std_excess", DEBIASED, "p_subgroup_effect",
                "worst_subgroup_accuracy", "worst_cell_accuracy", "subgroup_gap"):
        row[key] = metric.get(key)
    row["worst_subgroup"] = _worst_subgroup(metric.get("subgroup_accuracy"))
    row["subgroup_accuracy"] = dict(metric.get("subgroup_accuracy") or {})
    row["ci95"] = {key: ci.get(key) for key in ("accuracy", "macro_std", "macro_std_excess", DEBIASED)}
    return row


def _cifar10_1(bundle: ReferenceBundle, labels: Mapping[str, np.ndarray] | None) -> dict[str, dict[str, Any]]:
    """{version: {name: (accuracy, ci95)}}: shipped numbers, or recomputed from `labels` when given."""
    out: dict[str, dict[str, Any]] = {}
    for v in VERSIONS:
        out[v] = {}
        for name in bundle.names:
            shipped = bundle.cifar10_1_accuracy[v][name]
            if labels is None or v not in labels:
                out[v][name] = (shipped.accuracy, list(shipped.ci95))
            else:
                k = int((bundle.cifar10_1[v][name] == labels[v]).sum())
                out[v][name] = (k / labels[v].size, list(wilson(k, int(labels[v].size))))
    return out


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95 % interval of k successes in n trials (as shipped by scripts/convert_reference.py)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def common_indices(added: Sequence[AddedModel]) -> np.ndarray:
    """The test indices every added model with predictions covers (all 10,000 when none is added)."""
    idx = np.arange(N_CIFAR10)
    for model in added:
        if model.indices is not None:
            idx = np.intersect1d(idx, model.indices)
    if idx.size == 0:
        raise CifarbError("the added models' predictions share no test index; give predictions on common images")
    if idx.size < N_CIFAR10 and any(m.result is not None for m in added):
        which = next(m for m in added if m.result is not None)
        raise CifarbError(f"{which.source or which.name}: a result JSON covers the full test set and cannot be "
                          f"re-scored on the {idx.size:,} images the other added models share; give its predictions "
                          "file or run directory instead")
    return idx


def score(models: Sequence[str] | None = None, added: Sequence[AddedModel] = (), *, bootstrap: int = 1000,
          seed: int = 0, permutations: int | None = None, min_cell_size: int = 1, min_cell_size_worst: int = 10,
          cifar10_1_labels: Mapping[str, np.ndarray] | None = None, paired_bootstrap: int | None = None,
          analysis_bootstrap: int = 2000, subgroup_names: Sequence[str] | None = None,
          bundle: ReferenceBundle | None = None) -> dict[str, Any]:
    """The reference table as the `cifarb reference --json` contract: every model scored on the same indices.

    `models` restricts the reference models (default: all 30). Added models' predictions fix the scored
    indices (their intersection when several). `cifar10_1_labels` ({"v4"/"v6": labels}) recomputes the
    CIFAR-10.1 accuracies of those versions instead of using the shipped ones; `subgroup_names` renames
    the 8 subgroups. Every added model with per-image predictions is compared (paired bootstrap,
    `paired_bootstrap` resamples, default `bootstrap`) with the reference model nearest to it in accuracy.
    """
    from cifarb.data.cifar_b import load_cifar_b
    from cifarb.metrics import compute_metrics
    from cifarb.reference.analysis import adjusted_discrepancy, analyse

    ref = bundle or load_reference()
    names = ref.check_names(list(models)) if models else list(ref.names)
    if not names:
        raise CifarbError("no reference model selected; give at least one name to --models")
    taken = [m.name for m in added]
    clash = sorted({n for n in taken if n in ref.names} | {n for n in taken if taken.count(n) > 1})
    if clash:
        raise CifarbError(f"added model name {clash[0]!r} is already used; give each --add NAME a new name")
    b = load_cifar_b("cifar10", subgroup_names)
    idx = common_indices(added)
    full = idx.size == N_CIFAR10
    opts = metric_options(bootstrap, seed, permutations, min_cell_size, min_cell_size_worst)
    kw = {"n_classes": len(b.class_names), "n_subgroups": len(b.subgroup_names), "class_names": b.class_names,
          "subgroup_names": b.subgroup_names}
    labels, subgroups = b.labels[idx], b.subgroups[idx]
    c101 = _cifar10_1(ref, cifar10_1_labels)

    rows, preds = [], {}
    for name in names:
        preds[name] = ref.cifar10[name][idx]
        metric = compute_metrics(labels, preds[name], subgroups, **kw, **opts).to_dict()
        row = _row(name, metric, added=False, n_images=int(idx.size))
        card = ref.cards[name]
        row.update(display_name=card.display_name, family=card.family, source="bundled")
        row["cifar10_full_accuracy"] = float((ref.cifar10[name] == b.labels).mean())
        for v in VERSIONS:
            row[f"cifar10_1_{v}_accuracy"], row[f"cifar10_1_{v}_ci95"] = c101[v][name]
        rows.append(row)
    notes: list[str] = []
    for model in added:
        if model.result is not None:
            metric = model.result
            notes.append(f"{model.name}: a result JSON has no per-image predictions, so no paired comparison; its "
                         "metrics are as computed there (its own bootstrap and cell-size settings)")
        else:
            preds[model.name] = model.aligned(idx)
            metric = compute_metrics(labels, preds[model.name], subgroups, **kw, **opts).to_dict()
        row = _row(model.name, metric, added=True, n_images=int(idx.size))
        row.update(display_name=model.name, family="added", source=model.source)
        covers_all = model.result is not None or (model.indices is not None and model.indices.size == N_CIFAR10)
        row["cifar10_full_accuracy"] = (row["accuracy"] if model.result is not None else
                                        float((model.aligned(np.arange(N_CIFAR10)) == b.labels).mean())
                                        if covers_all else None)
        for v in VERSIONS:
            row[f"cifar10_1_{v}_accuracy"] = model.cifar10_1.get(v)
            row[f"cifar10_1_{v}_ci95"] = None
        rows.append(row)

    disc = DEBIASED if all(r.get(DEBIASED) is not None for r in rows) else PLUGIN
    if disc == PLUGIN:  # e.g. a result JSON written before macro_std_debiased existed
        lacking = [r["name"] for r in rows if r.get(DEBIASED) is None]
        notes.append(f"{', '.join(lacking[:3])}{' and others' if len(lacking) > 3 else ''} lack "
                     f"{DEBIASED}, so the discrepancy column is the plug-in {PLUGIN} for every row")
    for row in rows:
        row["discrepancy"] = row[disc]
        row["discrepancy_ci95"] = row["ci95"].get(disc)
        for v in VERSIONS:
            a, f = row[f"cifar10_1_{v}_accuracy"], row["cifar10_full_accuracy"]
            row[f"drop_{v}"] = None if a is None or f is None else f - a
    fit = adjusted_discrepancy(rows)
    _rank(rows, "accuracy", "rank_accuracy", descending=True)
    _rank(rows, "discrepancy", "rank_discrepancy", descending=False)

    comparisons = []
    for model in added:
        if model.predictions is None:
            continue
        mine = next(r for r in rows if r["name"] == model.name)
        nearest = min((r for r in rows if not r["added"]), key=lambda r: abs(r["accuracy"] - mine["accuracy"]))
        comparisons.append(paired_comparison(model.name, nearest["name"], preds, labels, subgroups, kw, opts,
                                             paired_bootstrap))

    if not full:
        notes.insert(0, f"scored on the {idx.size:,} test images the added predictions cover"
                     + (" (their intersection)" if sum(m.indices is not None for m in added) > 1 else "")
                     + "; every reference model is re-scored on exactly these images. CIFAR-10.1 accuracies and "
                     "the 10 -> 10.1 drop use the full sets and full-test-set CIFAR-10 accuracy")
    if not opts["bootstrap"]:
        notes.append("--bootstrap 0: no intervals and no p_subgroup_effect (the permutation test runs with the "
                     "intervals)")
    analysis, info = analyse(rows, bootstrap=analysis_bootstrap, seed=seed)
    info["adjusted_fit"] = fit
    return {
        "dataset": DATASET,
        "n_images": int(idx.size),
        "n_official": N_CIFAR10,
        "indices": "all" if full else "subset",
        "discrepancy_key": disc,
        "models": rows,
        "comparisons": comparisons,
        "analysis": analysis,
        "analysis_info": info,
        "notes": notes,
        "settings": {**opts, "cifar10_1": {v: "recomputed from labels" if v in (cifar10_1_labels or {}) else "shipped"
                                           for v in VERSIONS},
                     "subgroup_names": list(b.subgroup_names)},
        "provenance": {"reference": ref.provenance["source"], "indices_sha256": _indices_digest(idx)},
    }


def _indices_digest(idx: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(idx, dtype="<i8").tobytes()).hexdigest()


def _rank(rows: list[dict[str, Any]], key: str, out: str, *, descending: bool) -> None:
    """1-based competition ranks ("1224") of `key` over the rows; None where the value is missing."""
    values = [(r[key], i) for i, r in enumerate(rows) if r.get(key) is not None]
    for r in rows:
        r[out] = None
    for _, i in values:
        v = rows[i][key]
        better = sum(1 for w, _ in values if (w > v if descending else w < v))
        rows[i][out] = better + 1


def paired_comparison(a: str, b: str, preds: Mapping[str, np.ndarray], labels: np.ndarray, subgroups: np.ndarray,
                      kw: Mapping[str, Any], opts: Mapping[str, Any], bootstrap: int | None) -> dict[str, Any]:
    """`compare` semantics: paired bootstrap of model a minus model b on the scored images."""
    from cifarb.metrics import paired_bootstrap

    boot = int(opts["bootstrap"] if bootstrap is None else bootstrap)
    metrics = paired_bootstrap(labels, preds[a], preds[b], subgroups, **kw, bootstrap=boot, seed=opts["seed"],
                               min_cell_size=opts["min_cell_size"], min_cell_size_worst=opts["min_cell_size_worst"])
    return {"a": a, "b": b, "why": "reference model nearest in accuracy", "n_images": int(labels.size),
            "bootstrap": boot, "metrics": metrics.to_dict()}


def reference_frame(table: Mapping[str, Any]) -> Any:
    """The table's models as a pandas DataFrame (one row per model, subgroup accuracies as columns)."""
    import pandas as pd

    flat = []
    for row in table["models"]:
        item = {k: v for k, v in row.items() if not isinstance(v, dict | list)}
        for key, interval in (("discrepancy", row.get("discrepancy_ci95")),):
            item[f"{key}_ci_lo"], item[f"{key}_ci_hi"] = interval if interval else (None, None)
        item.update({f"subgroup_{g}": a for g, a in row["subgroup_accuracy"].items()})
        flat.append(item)
    return pd.DataFrame(flat)
