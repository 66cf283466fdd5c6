"""The Python entry points a notebook user starts from (re-exported, lazily, as `cifarb.<name>`).

Each is the function behind a command: `evaluate_predictions` is `cifarb metrics`, `evaluate` is
`cifarb eval` (also for a plain `nn.Module`), `compare` is `cifarb compare`. They return an
`Evaluation`, whose `.to_dict()` is exactly the result JSON the commands write. Only `evaluate` and
`load_model` import torch, and only when called. docs/python-api.md walks through them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cifarb.errors import CifarbError, UsageError

if TYPE_CHECKING:
    from cifarb.data.readers import CorruptionSet, ImageSet
    from cifarb.eval.evaluation import Evaluation
    from cifarb.eval.settings import EvalSettings
    from cifarb.models.zoo import LoadedModel
    from cifarb.report.compare import Comparison


def _as_numpy(values: Any) -> np.ndarray:
    from cifarb.metrics.streaming import _numpy

    return _numpy(values)


def evaluate_predictions(
    predictions: Any,
    dataset: str | None = "cifar10-b",
    *,
    indices: Any = None,
    groups: str | Path | None = None,
    name: str | None = None,
    split: str | None = None,
    group_by: Sequence[str] | None = None,
    predicted: str = "fine",
    subgroup_names: Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    min_cell_size: int = 1,
    min_cell_size_worst: int = 10,
    permutations: int = 999,
) -> Evaluation:
    """Subgroup metrics of predictions already made: `cifarb metrics` as a function. No torch, no images.

    predictions: predicted class ids (array, list or tensor; logits (N, C) are argmax-ed), or the path
        of a predictions file in any form `cifarb metrics` reads.
    dataset: "cifar10-b", "cifar100-b" or "cifar100-super" (labels and subgroups are bundled).
        Arrays cover all 10,000 test images in official order, or the test indices in `indices`.
    groups: instead of `dataset`, a groups / SubpopBench / WILDS-style metadata file (docs/datasets.md);
        arrays then hold one prediction per row of it (after `split`), or per key in `indices`.
    predicted: cifar100-super only: "fine" (0..99, default) or "coarse" (0..19) class ids.
    bootstrap, seed, min_cell_size, min_cell_size_worst, permutations: as the command's flags
        (docs/metrics.md); bootstrap=0 turns CIs and the permutation p-value off.

    Example::

        >>> import numpy as np, cifarb
        >>> c10 = cifarb.load_cifar_b("cifar10")
        >>> ev = cifarb.evaluate_predictions(c10.labels, dataset="cifar10-b", bootstrap=0)
        >>> ev.accuracy, ev.macro_std
        (1.0, 0.0)
    """
    from cifarb.eval import predictions as P
    from cifarb.eval.evaluation import Evaluation
    from cifarb.eval.settings import EvalSettings

    settings = EvalSettings(bootstrap=bootstrap, seed=seed, min_cell_size=min_cell_size,
                            min_cell_size_worst=min_cell_size_worst, permutations=permutations)
    if groups is not None:
        dataset = None
    if isinstance(predictions, (str, Path)):
        result, metrics = P.read_and_score(predictions, dataset=dataset, groups=groups, name=name, split=split,
                                           group_by=group_by, predicted=predicted, subgroup_names=subgroup_names,
                                           settings=settings)
        return Evaluation(result, metrics)
    preds = _as_numpy(predictions)
    if preds.ndim == 2:
        preds = preds.argmax(axis=1)
    if groups is not None:
        import pandas as pd

        from cifarb.data.groups import join_predictions, read_groups

        table = read_groups(groups, name=name, split=split, group_by=group_by)
        keys = table.keys if indices is None else _as_numpy(indices)
        if len(keys) != preds.size:
            raise CifarbError(f"{preds.size} predictions for {len(keys)} rows of {table.path}; give one per row, "
                              f"or indices= ({table.key_column} of each prediction)")
        joined = join_predictions(pd.DataFrame({table.key_column: keys, "prediction": preds}), table,
                                  "predictions")
        result, metrics = P.score_groups(joined, table, settings=settings)
        return Evaluation(result, metrics)
    if dataset is None:
        raise UsageError("give dataset= (cifar10-b, cifar100-b, cifar100-super) or groups=FILE")
    key = dataset.strip().lower()
    if key == "cifar100-super":
        result, metrics = P.score_superclasses(preds, indices=indices, predicted=predicted, settings=settings)
    elif key in ("cifar10-b", "cifar100-b"):
        result, metrics = P.score_cifar_b(preds, key, indices=indices, subgroup_names=subgroup_names, settings=settings)
    else:
        raise UsageError(f"evaluate_predictions: unknown dataset {dataset!r}; choose one of "
                         f"{', '.join(P.PREDICTION_DATASETS)} or give groups=FILE")
    return Evaluation(result, metrics)


def load_model(spec: Any, *, arch: str | None = None, mean: Sequence[float] | None = None,
               std: Sequence[float] | None = None, num_classes: int | None = None) -> LoadedModel:
    """A ready-to-run model: a zoo name ("resnet20"), checkpoint path (+ arch), run directory, or
    "module:callable"; a plain `torch.nn.Module` is wrapped (then give mean and std).

    Example::

        >>> m = cifarb.load_model("resnet20")          # doctest: +SKIP
        >>> m.arch, m.mean, m.card.name                # doctest: +SKIP
    """
    from cifarb.models.zoo import LoadedModel, resolve_model

    if isinstance(spec, LoadedModel):
        return spec
    if isinstance(spec, (str, Path)):
        return resolve_model(str(spec), arch, mean, std, num_classes)
    import torch

    if not isinstance(spec, torch.nn.Module):
        raise CifarbError(f"cannot evaluate a {type(spec).__name__}: give a torch.nn.Module, a LoadedModel or a "
                          "model SPEC string")
    if mean is None or std is None:
        raise UsageError("a plain nn.Module needs mean= and std= (the per-channel normalisation it was "
                         "trained with, on [0, 1] RGB), e.g. mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261)")
    mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean_t) != 3 or len(std_t) != 3 or any(s <= 0 for s in std_t):
        raise UsageError(f"mean and std need three values each (std positive), got {mean_t}, {std_t}")
    kind = f"{type(spec).__module__}.{type(spec).__qualname__}"
    spec.eval()
    return LoadedModel(module=spec, mean=mean_t, std=std_t, arch=None, spec=kind, sha256=None,  # type: ignore[arg-type]
                       num_classes=num_classes, source=f"in-memory {kind}")


def evaluate(
    model: Any,
    dataset: str = "cifar10-b",
    *,
    settings: EvalSettings | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    arch: str | None = None,
    root: str | Path | None = None,
    trust_local: bool = False,
    corruptions: Sequence[str] | None = None,
    data: ImageSet | CorruptionSet | None = None,
    **options: Any,
) -> Evaluation:
    """Evaluate a model on an evaluation dataset: `cifarb eval` as a function.

    model: a plain `torch.nn.Module` (with `mean`/`std`), a `LoadedModel` or a model SPEC (zoo name,
        checkpoint + `arch`, run directory, "module:callable").
    dataset: cifar10-b, cifar100-b, cifar100-super (a 100- or 20-way CIFAR-100 model, scored on
        superclasses), cifar10-c, cifar100-c or cifar10.1. Images are read from `root` (verified;
        `trust_local=True` for a local prefix such as ../shared/data); `data=` skips reading.
    settings: a `cifarb.eval.settings.EvalSettings`, or its fields as keywords: bootstrap=1000, seed=0,
        min_cell_size=1, min_cell_size_worst=10, permutations=999, subgroup_names=None, batch_size=256,
        device=None, progress=True, save_logits=False, and tta="none" or "flip" (test-time
        augmentation, as `cifarb eval --tta`; recorded as settings.tta).
    Returns an Evaluation; `.to_dict()` equals the JSON `cifarb eval --json` writes; `.predictions`
    holds the per-image frame (index, label, prediction, subgroup, ...). Progress bars show on a
    terminal or in Jupyter, never in a log.

    Example::

        >>> net = torchvision.models.resnet18(num_classes=10)                      # doctest: +SKIP
        >>> ev = cifarb.evaluate(net, dataset="cifar10-b", mean=(0.49, 0.48, 0.45),
        ...                      std=(0.25, 0.24, 0.26), root="../shared/data", trust_local=True)
        >>> ev.summary()                                                           # doctest: +SKIP
    """
    from cifarb.eval.evaluation import Evaluation
    from cifarb.eval.settings import EvalSettings

    E = importlib.import_module("cifarb.eval.evaluate")  # the module (cifarb.eval.evaluate is also a function)
    s = EvalSettings.build(settings, **options)
    key = dataset.strip().lower()
    # cifar100-super takes a 100- (fine) or 20-way (coarse) model: its width is checked when it runs
    n_classes = None if key == E.SUPERCLASS_DATASET else E.dataset_info(key)[2]
    loaded = load_model(model, arch=arch, mean=mean, std=std, num_classes=n_classes)
    result, frame, metrics = E.evaluate_loaded(loaded, key, s, root=root, trust_local=trust_local,
                                               corruptions=corruptions, data=data)
    return Evaluation(result, metrics, frame)


def compare(a: str | Path | Sequence[str | Path], b: str | Path | Sequence[str | Path], dataset: str | None = None,
            *, corruption: str | None = None, severity: int | None = None, bootstrap: int = 1000, seed: int = 0,
            min_cell_size: int | None = None, min_cell_size_worst: int | None = None,
            permutations: int = 999) -> Comparison:
    """Paired comparison of A and B on the same images: `cifarb compare` as a function.

    `a` and `b` are each a run directory or a predictions file, or a list of them (one per seed:
    runs are paired by the seed in their manifests, predictions files by position, and the CIs come
    from a two-level bootstrap over images and seeds). Returns a `Comparison` with the paired CI of
    every metric's difference (A - B) and the verdict; `permutations` within-class permutations give
    each run's `p_subgroup_effect` (0: off), as `cifarb compare --permutations`.

    Example::

        >>> c = cifarb.compare("runs/a", "runs/b", dataset="cifar10-b")   # doctest: +SKIP
        >>> c = cifarb.compare(["runs/a-s0", "runs/a-s1"], ["runs/b-s0", "runs/b-s1"])   # doctest: +SKIP
    """
    from cifarb.report.compare import compare as compare_sides

    def side(x: str | Path | Sequence[str | Path]) -> list[str | Path]:
        return [x] if isinstance(x, (str, Path)) else list(x)

    return compare_sides(side(a), side(b), dataset, corruption=corruption, severity=severity, bootstrap=bootstrap,
                         seed=seed, min_cell_size=min_cell_size, min_cell_size_worst=min_cell_size_worst,
                         permutations=permutations)
