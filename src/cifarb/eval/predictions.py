"""Score predictions that are already made: CIFAR-B, cifar100-super or a bring-your-own groups file.

Each `score_*` function joins predictions to their labels and subgroups, computes the metrics and
returns `(result JSON, SubgroupMetrics)`; `cifarb metrics` and `cifarb.evaluate_predictions` are thin
front ends over them. No images are read (data_verified is true) and torch is never imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cifarb.errors import CifarbError, UsageError

if TYPE_CHECKING:
    from cifarb.data.groups import GroupTable, Joined
    from cifarb.eval.settings import EvalSettings
    from cifarb.metrics import SubgroupMetrics

N_OFFICIAL = 10_000
# the datasets whose labels are bundled, so predictions alone can be scored
PREDICTION_DATASETS: tuple[str, ...] = ("cifar10-b", "cifar100-b", "cifar100-super")

MetricOpts = Mapping[str, Any]  # bootstrap, seed, min_cell_size, min_cell_size_worst (compute_metrics keywords)


def score_arrays(labels: np.ndarray, predictions: np.ndarray, subgroups: np.ndarray, *, class_names: Sequence[str],
                 subgroup_names: Sequence[str], dataset: str, n_official: int, provenance: Mapping[str, Any],
                 settings: EvalSettings | None = None, **opts: Any) -> tuple[dict[str, Any], SubgroupMetrics]:
    """The result JSON and metrics of aligned per-sample arrays, with `settings` (an EvalSettings) or its
    statistics as keywords (bootstrap=, seed=, ...); every `score_*` function passes them through."""
    from cifarb.eval.settings import EvalSettings
    from cifarb.metrics import build_result, compute_metrics

    metric_options = EvalSettings.build(settings, **opts).metric_options()
    provenance = dict(provenance)
    if provenance.get("model") is None:  # arrays handed to the Python API: there is no file to name
        provenance["model"] = "in-memory predictions"
    metrics = compute_metrics(labels, predictions, subgroups, n_classes=len(class_names),
                              n_subgroups=len(subgroup_names), class_names=list(class_names),
                              subgroup_names=list(subgroup_names), **metric_options)
    result = build_result(metrics.to_dict(), dataset=dataset, n_images=int(np.asarray(labels).size),
                          n_official=n_official, data_verified=True,  # no images are read
                          provenance=dict(provenance))
    return result, metrics


def _test_indices(indices: Any, n: int, dataset: str) -> np.ndarray:
    """Official test indices of `n` predictions: all 10,000 when None, else checked 0..9999 and unique."""
    if indices is None:
        if n != N_OFFICIAL:
            raise CifarbError(f"{dataset}: {n:,} predictions without indices; give all {N_OFFICIAL:,} in "
                              "official test order, or pass indices= (official test index of each prediction)")
        return np.arange(N_OFFICIAL)
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size != n or not np.issubdtype(idx.dtype, np.integer):
        raise CifarbError(f"{dataset}: indices must be {n} integer test indices, one per prediction; "
                          f"got {idx.dtype} of shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= N_OFFICIAL):
        raise CifarbError(f"{dataset}: indices must lie in 0..{N_OFFICIAL - 1}")
    if np.unique(idx).size != idx.size:
        raise CifarbError(f"{dataset}: indices repeat; give each test image at most once")
    return idx.astype(np.int64)


def cifar_b_data_sha256(bundle: Any) -> dict[str, str]:
    """{file: sha256} of the label files behind the bundled CIFAR-B labels."""
    prov = dict(bundle.provenance or {})
    out = {}
    for key, name in prov.items():
        if key.endswith("_file") and f"{key[:-5]}_sha256" in prov:
            out[name] = prov[f"{key[:-5]}_sha256"]
    if bundle.source_file not in out:
        out[bundle.source_file] = bundle.source_sha256
    return out


def score_cifar_b(predictions: Any, dataset: str, *, indices: Any = None, subgroup_names: Sequence[str] | None = None,
                  model: str | None = None, model_sha256: str | None = None, **opts: Any
                  ) -> tuple[dict[str, Any], SubgroupMetrics]:
    """Predicted class ids on CIFAR10-B / CIFAR100-B (all 10,000 in test order, or at `indices`)."""
    from cifarb.data.cifar_b import load_cifar_b

    bundle = load_cifar_b(dataset, subgroup_names)
    preds = np.asarray(predictions)
    idx = _test_indices(indices, preds.size, dataset)
    name = f"{bundle.dataset}-b"
    return score_arrays(bundle.labels[idx], preds, bundle.subgroups[idx], class_names=bundle.class_names,
                        subgroup_names=bundle.subgroup_names, dataset=name, n_official=N_OFFICIAL,
                        provenance={"model": model, "model_sha256": model_sha256,
                                    "data_sha256": cifar_b_data_sha256(bundle)}, **opts)


def score_superclasses(predictions: Any, *, indices: Any = None, predicted: str = "fine", model: str | None = None,
                       model_sha256: str | None = None, **opts: Any) -> tuple[dict[str, Any], SubgroupMetrics]:
    """cifar100-super: superclasses as classes, fine classes as subgroups.

    `predicted` says what the predictions are: "fine" class ids (0..99, mapped to their superclass) or
    "coarse" superclass ids (0..19).
    """
    from cifarb.data.superclasses import DATASET, PREDICTION_KINDS, load_superclasses

    if predicted not in PREDICTION_KINDS:
        raise UsageError(f"--predictions must be fine or coarse, got {predicted!r}")
    sup = load_superclasses()
    preds = np.asarray(predictions).astype(np.int64, copy=False)
    width = 100 if predicted == "fine" else 20
    if preds.size and (preds.min() < 0 or preds.max() >= width):
        raise CifarbError(f"{DATASET}: {predicted} predictions must be class ids 0..{width - 1}, got values "
                          f"{int(preds.min())}..{int(preds.max())}"
                          + ("; are these coarse ids? use --predictions coarse" if predicted == "coarse" else ""))
    coarse = sup.to_coarse(preds) if predicted == "fine" else preds
    idx = _test_indices(indices, preds.size, DATASET)
    result, metrics = score_arrays(sup.labels[idx], coarse, sup.subgroups[idx], class_names=sup.class_names,
                                   subgroup_names=sup.subgroup_names, dataset=DATASET, n_official=N_OFFICIAL,
                                   provenance={"model": model, "model_sha256": model_sha256,
                                               "data_sha256": dict(sup.data_sha256), "predictions": predicted},
                                   **opts)
    return result, metrics


def score_groups(joined: Joined, table: GroupTable, *, model: str | None = None, model_sha256: str | None = None,
                 **opts: Any) -> tuple[dict[str, Any], SubgroupMetrics]:
    """A bring-your-own groups dataset: `joined` from `cifarb.data.groups.read_group_predictions`."""
    return score_arrays(joined.labels, joined.predictions, joined.groups, class_names=joined.class_names,
                        subgroup_names=table.group_names, dataset=table.name, n_official=table.n_rows,
                        provenance={"model": model, "model_sha256": model_sha256,
                                    "data_sha256": {str(table.path): table.sha256}, "groups": dict(table.settings)},
                        **opts)


def read_and_score(path: Path | str, *, dataset: str | None = None, groups: Path | str | None = None,
                   name: str | None = None, split: str | None = None, group_by: Sequence[str] | None = None,
                   predicted: str = "fine", subgroup_names: Sequence[str] | None = None, **opts: Any
                   ) -> tuple[dict[str, Any], SubgroupMetrics]:
    """Read a predictions file and score it on `dataset` or on a `groups` file (exactly one of them)."""
    from cifarb._hashing import file_digest

    if (dataset is None) == (groups is None):
        raise UsageError("give either --dataset or --groups FILE, not both" if dataset else
                         "give --dataset cifar10-b|cifar100-b|cifar100-super or --groups FILE")
    path = Path(path)
    if groups is not None:
        from cifarb.data.groups import read_group_predictions, read_groups

        if subgroup_names is not None:
            raise UsageError("--subgroup-names applies to CIFAR-B; with --groups give a group_name column")
        table = read_groups(groups, name=name, split=split, group_by=group_by)
        joined = read_group_predictions(path, table)
        return score_groups(joined, table, model=str(path), model_sha256=file_digest(path, "sha256"), **opts)
    if dataset not in PREDICTION_DATASETS:
        raise UsageError(f"unknown --dataset {dataset!r}; choose one of {', '.join(PREDICTION_DATASETS)}")
    if split is not None or group_by is not None or name is not None:
        raise UsageError("--split, --group-by and --name apply to --groups only")
    from cifarb.data.predictions import read_predictions

    if dataset == "cifar100-super":
        from cifarb.data.superclasses import load_superclasses

        sup = load_superclasses()
        names = sup.subgroup_names if predicted == "fine" else sup.class_names
        if subgroup_names is not None:
            raise UsageError("--subgroup-names applies to cifar10-b / cifar100-b; cifar100-super's subgroups "
                             "are the fine class names")
        indices, preds = read_predictions(path, names)
        return score_superclasses(preds, indices=indices, predicted=predicted, model=str(path),
                                  model_sha256=file_digest(path, "sha256"), **opts)
    if predicted != "fine":
        raise UsageError("--predictions coarse applies to --dataset cifar100-super only")
    from cifarb.data.cifar_b import load_cifar_b

    indices, preds = read_predictions(path, load_cifar_b(dataset).class_names)
    return score_cifar_b(preds, dataset, indices=indices, subgroup_names=subgroup_names, model=str(path),
                         model_sha256=file_digest(path, "sha256"), **opts)
