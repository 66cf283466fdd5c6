"""Batched inference and evaluation on CIFAR-B, CIFAR-C (joined with the subgroups) and CIFAR-10.1."""

from __future__ import annotations

import mmap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cifarb._device import resolve_device
from cifarb.data.names import EVAL_DATASETS, NUM_CLASSES, parse_eval_name
from cifarb.errors import CifarbError, UsageError
from cifarb.eval.settings import EvalSettings

if TYPE_CHECKING:  # torch and pandas are imported only when work is done
    import pandas as pd
    import torch

    from cifarb.data.readers import CorruptionSet, ImageSet
    from cifarb.models.zoo import LoadedModel
    from cifarb.runs import RunDir

# CIFAR-100 test images scored on their 20 superclasses (cifarb.data.superclasses); not a data name
SUPERCLASS_DATASET = "cifar100-super"

# Upload at most this many bytes of uint8 images to an accelerator at once (the rest stays on the host).
_DEVICE_CHUNK_BYTES = 256 << 20


def dataset_info(dataset: str) -> tuple[str, str, int]:
    """(training dataset, kind 'b'|'c'|'10.1', number of classes) of an evaluation name."""
    parsed = parse_eval_name(dataset.strip().lower())
    if parsed is None or parsed.local:
        raise UsageError(f"unknown evaluation dataset {dataset!r}; choose one of: {', '.join(EVAL_DATASETS)}")
    return parsed.base, parsed.kind, parsed.n_classes


def _progress_bar(total: int, desc: str, progress: bool) -> Any:
    from cifarb._progress import progress_bar

    return progress_bar(total, desc, unit="img", progress=progress)  # terminal or notebook only


def predict(
    module: torch.nn.Module,
    images_nhwc_uint8: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    return_logits: bool = True,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-1 predictions (int64) and logits (float32, or None) of `module` on uint8 NHWC images.

    Each batch is converted on the target device: uint8 NHWC viewed as NCHW (which is already the
    channels_last layout), cast to float and normalised in place, so the host does no float work and
    nothing is pinned. The module is put in eval mode, moved to `device` and to channels_last.
    `on_batch(n)` is called after each batch (progress bars spanning several calls).
    """
    import torch

    images = np.asarray(images_nhwc_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise CifarbError(f"images must be uint8 of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    if batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {batch_size}")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    module.eval()
    module.to(device=dev, memory_format=torch.channels_last)
    # (x/255 - mean)/std == (x - 255*mean) * (1/(255*std)): one subtract and one multiply per element
    shift = torch.tensor([255.0 * float(m) for m in mean], device=dev).view(1, 3, 1, 1)
    scale = torch.tensor([1.0 / (255.0 * float(s)) for s in std], device=dev).view(1, 3, 1, 1)
    n = images.shape[0]
    preds: list[torch.Tensor] = []
    logits_out: list[torch.Tensor] = []
    on_host = dev.type == "cpu"
    chunk = max(n, 1) if on_host else max(batch_size, _DEVICE_CHUNK_BYTES // max(1, images[:1].nbytes) // batch_size * batch_size)
    bar = _progress_bar(n, "predict", progress)
    try:
        with torch.inference_mode():
            for c0 in range(0, n, chunk):
                block = images[c0:c0 + chunk]
                if not on_host:  # one upload per chunk; the batches below are views on the device
                    host = block
                    block = torch.from_numpy(_plain(block)).to(dev)
                    _release_pages(host)
                for b0 in range(0, block.shape[0], batch_size):
                    if on_host:  # a view, or one small copy of a memory-mapped or strided slice
                        part = block[b0:b0 + batch_size]
                        xb = torch.from_numpy(_plain(part))
                        _release_pages(part)  # memory stays flat however many -C images stream past
                    else:
                        xb = block[b0:b0 + batch_size]
                    x = xb.permute(0, 3, 1, 2).float()  # keeps NHWC strides: channels_last NCHW
                    x.sub_(shift).mul_(scale)
                    out = module(x)
                    if out.ndim != 2:
                        raise CifarbError(f"the model returned shape {tuple(out.shape)}; expected "
                                          "(batch, classes) logits")
                    preds.append(out.argmax(1))
                    if return_logits:
                        logits_out.append(out.float())
                    k = int(xb.shape[0])
                    bar.update(k)
                    if on_batch is not None:
                        on_batch(k)
    finally:
        bar.close()
    if not preds:
        return np.zeros(0, dtype=np.int64), (np.zeros((0, 0), dtype=np.float32) if return_logits else None)
    # accelerator results stay on the device until here: one synchronisation per call, not per batch
    pred = torch.cat(preds).cpu().numpy().astype(np.int64, copy=False)
    logits = torch.cat(logits_out).cpu().numpy() if return_logits else None
    return pred, logits


def _release_pages(arr: np.ndarray) -> None:
    """Drop the pages of `arr` from this process's resident set if it is a read-only memory map.

    Reading a memory-mapped -C file maps each page into the process, and those pages count as resident
    until the map is closed, so without this a 950,000-image pass would end holding 2.9 GB. The data
    stays in the kernel's page cache (a later read is a minor fault, not disk I/O). A no-op for
    anything else, and for a map opened writable (its pages may be dirty).
    """
    owner: Any = arr  # np.asarray() of a memmap is a plain view: the map sits on its base chain
    while owner is not None and getattr(owner, "_mmap", None) is None:
        owner = getattr(owner, "base", None)
    mm = getattr(owner, "_mmap", None)
    if mm is None or arr.flags.writeable or not hasattr(mm, "madvise") or arr.nbytes == 0:
        return
    try:
        base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError, BufferError):
        return
    start = arr.ctypes.data - base
    lo = start // mmap.PAGESIZE * mmap.PAGESIZE
    # from the page of its first byte to its last whole page: a page it shares with the next batch is
    # released with that batch
    hi = (start + arr.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if 0 <= lo < hi <= len(mm):
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc `malloc_trim`; a no-op elsewhere).

    Each batch allocates megabytes of tensors; glibc's adaptive mmap threshold soon serves them from
    the heap, and the small long-lived allocations of each pair's results land above them, so the
    freed space is never returned: measured, resident memory grew by ~4 KB per -C image (1.5 GB for
    95,000 images, bench/bench_scale.py). Trimming once per corruption x severity pair keeps it flat.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        import ctypes

        try:
            _MALLOC_TRIM = ctypes.CDLL(None).malloc_trim
        except (AttributeError, OSError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def _plain(arr: np.ndarray) -> np.ndarray:
    """`arr` itself if torch can wrap it without a copy and without a read-only warning, else a copy."""
    return arr if arr.flags.c_contiguous and arr.flags.writeable else np.array(arr)


# --- evaluation -------------------------------------------------------------------------------


def _provenance(model: LoadedModel, files: dict[str, str]) -> dict[str, Any]:
    return {
        "model": model.spec,
        "model_sha256": model.sha256,
        "data_sha256": {path: digest for path, digest in files.items() if digest},
        "arch": model.arch,
        "model_card": model.card.name if model.card is not None else None,
        "mean": list(model.mean),
        "std": list(model.std),
    }


def _check_classes(model: LoadedModel, images: np.ndarray, n_classes: int, dataset: str, device: Any) -> None:
    """Run one image first, so a model with the wrong number of outputs fails before the long pass."""
    if images.shape[0] == 0:
        raise CifarbError(f"{dataset}: no images to evaluate")
    _, logits = predict(model.module, images[:1], model.mean, model.std, batch_size=1, device=device)
    logits_width = logits.shape[1]
    if logits_width != n_classes:
        raise CifarbError(f"model {model.spec} outputs {logits_width} classes but {dataset} has {n_classes}; "
                          "evaluate it on a dataset with the same classes")


def _check_predictions(pred: np.ndarray, n_classes: int, model: LoadedModel) -> None:
    if pred.size and (pred.min() < 0 or pred.max() >= n_classes):
        raise CifarbError(f"model {model.spec} predicted class ids outside 0..{n_classes - 1}")


def _predict_checked(model: LoadedModel, images: np.ndarray, n_classes: int, settings: EvalSettings,
                     bar: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, logits or None) of one image block, advancing `bar`; class ids checked against `n_classes`."""
    pred, logits = predict(model.module, images, model.mean, model.std, batch_size=settings.batch_size,
                           device=settings.device, return_logits=settings.save_logits, on_batch=bar.update)
    _check_predictions(pred, n_classes, model)
    return pred, logits


def evaluate_imageset(
    model: LoadedModel,
    data: ImageSet,
    dataset: str,
    settings: EvalSettings | None = None,
    **options: Any,
) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    """(result JSON, predictions frame, SubgroupMetrics or None) for a loaded CIFAR-B or CIFAR-10.1 set.

    `settings` (an EvalSettings) or its fields as keywords (`bootstrap=`, `seed=`, `batch_size=`, ...).
    """
    import pandas as pd

    from cifarb.metrics import accuracy_only, build_result, compute_metrics

    s = EvalSettings.build(settings, **options)
    base, kind, n_classes = dataset_info(dataset)
    if kind == "c":
        raise UsageError("use evaluate() for the corruption sets")
    _check_classes(model, data.images, n_classes, dataset, s.device)
    bar = _progress_bar(data.n_images, f"eval {dataset}", s.progress)
    try:
        pred, logits = _predict_checked(model, data.images, n_classes, s, bar)
    finally:
        bar.close()
    frame: dict[str, Any] = {"index": data.indices.astype(np.int64), "label": data.labels.astype(np.int64),
                             "prediction": pred}
    metrics = None
    if kind == "b":
        from cifarb.data.cifar_b import load_cifar_b, resolve_subgroup_names

        cb = load_cifar_b(base)
        subgroups = cb.subgroups_for(data.indices)
        names = resolve_subgroup_names(s.subgroups)
        metrics = compute_metrics(data.labels, pred, subgroups, n_classes=n_classes, n_subgroups=len(names),
                                  class_names=data.class_names, subgroup_names=names, **s.metric_options())
        metric_dict = metrics.to_dict()
        frame["subgroup"] = subgroups.astype(np.int64)
    else:
        metric_dict = accuracy_only(data.labels, pred, class_names=data.class_names, n_classes=n_classes,
                                    **s.metric_options())
        frame["subgroup"] = pd.array([None] * data.n_images, dtype="Int64")
    result = build_result(metric_dict, dataset=dataset, n_images=data.n_images, n_official=data.n_official,
                          data_verified=data.verified, provenance=_provenance(model, data.files))
    df = pd.DataFrame(frame)
    if s.save_logits:
        df["logits"] = list(logits)
    return result, df, metrics


def evaluate_corruptions(
    model: LoadedModel,
    cset: CorruptionSet,
    settings: EvalSettings | None = None,
    **options: Any,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """(result JSON, predictions frame) over every corruption x severity pair of a loaded -C set.

    `settings` (an EvalSettings) or its fields as keywords, as for `evaluate_imageset`.
    """
    import pandas as pd

    from cifarb.data.cifar_b import load_cifar_b, resolve_subgroup_names
    from cifarb.metrics import build_result
    from cifarb.metrics.corruptions import corruption_metrics

    s = EvalSettings.build(settings, **options)
    n_classes = NUM_CLASSES[cset.dataset]
    subgroups = load_cifar_b(cset.dataset).subgroups_for(cset.indices)
    names = resolve_subgroup_names(s.subgroups)
    pairs = [(c, sev) for c in cset.corruptions for sev in cset.severities]
    n = cset.n_images
    _check_classes(model, cset.images(*pairs[0]), n_classes, cset.name, s.device)
    bar = _progress_bar(n * len(pairs), f"eval {cset.name}", s.progress)
    predictions: dict[str, dict[int, np.ndarray]] = {c: {} for c in cset.corruptions}
    categories = sorted(cset.corruptions)  # what astype("category") of the names gave before
    # the predictions table is filled in place, pair by pair: one allocation of ~41 bytes an image, no
    # per-pair frames to concatenate (which held the table twice at its peak)
    total = n * len(pairs)
    columns = {"index": np.empty(total, dtype=np.asarray(cset.indices).dtype),
               "label": np.empty(total, dtype=np.asarray(cset.labels).dtype),
               "prediction": np.empty(total, dtype=np.int64),
               "subgroup": np.empty(total, dtype=np.asarray(subgroups).dtype),
               "severity": np.empty(total, dtype=np.int64)}
    codes = np.empty(total, dtype=np.int8)
    all_logits: list[np.ndarray] = []
    try:
        for j, (c, sev) in enumerate(pairs):
            bar.set_postfix_str(f"{c} {sev}", refresh=False)
            pred, logits = _predict_checked(model, cset.images(c, sev), n_classes, s, bar)
            rows = slice(j * n, (j + 1) * n)
            columns["prediction"][rows] = pred
            predictions[c][sev] = columns["prediction"][rows]  # a view: no second copy
            columns["index"][rows] = cset.indices
            columns["label"][rows] = cset.labels
            columns["subgroup"][rows] = subgroups
            columns["severity"][rows] = sev
            codes[rows] = categories.index(c)
            if s.save_logits:
                all_logits.extend(logits)
            del pred, logits
            _trim_heap()
    finally:
        bar.close()
    metric_dict = corruption_metrics(cset.labels, predictions, subgroups, n_classes=n_classes,
                                     n_subgroups=len(names), class_names=cset.class_names,
                                     subgroup_names=names, progress=s.progress, **s.metric_options())
    result = build_result(metric_dict, dataset=cset.name, n_images=n, n_official=cset.n_official,
                          data_verified=cset.verified, provenance=_provenance(model, cset.files))
    frame = pd.DataFrame({"index": columns["index"], "label": columns["label"], "prediction": columns["prediction"],
                          "subgroup": columns["subgroup"],
                          "corruption": pd.Categorical.from_codes(codes, categories),
                          "severity": columns["severity"]}, copy=False)
    if s.save_logits:
        frame["logits"] = all_logits
    return result, frame


def evaluate_superclasses(model: LoadedModel, data: ImageSet, settings: EvalSettings
                          ) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    """cifar100-super from CIFAR-100 test images: fine (100-way) or coarse (20-way) model outputs,
    scored on superclasses; (result JSON, predictions frame, SubgroupMetrics)."""
    import pandas as pd

    from cifarb.data.superclasses import load_superclasses
    from cifarb.eval.predictions import score_superclasses

    _, logits = predict(model.module, data.images[:1], model.mean, model.std, batch_size=1, device=settings.device)
    width = int(logits.shape[1])
    if width not in (100, 20):
        raise CifarbError(f"model {model.spec} outputs {width} classes; cifar100-super needs a CIFAR-100 model "
                          "with 100 fine or 20 coarse outputs")
    bar = _progress_bar(len(data.images), f"eval {SUPERCLASS_DATASET}", settings.progress)
    try:
        pred, out = _predict_checked(model, data.images, width, settings, bar)
    finally:
        bar.close()
    predicted = "fine" if width == 100 else "coarse"
    result, metrics = score_superclasses(pred, indices=data.indices, predicted=predicted, model=model.spec,
                                         model_sha256=model.sha256, **settings.metric_options())
    result["data_verified"] = bool(data.verified)  # images were read: verified iff they were
    result["provenance"]["data_sha256"].update({p: d for p, d in data.files.items() if d})
    sup = load_superclasses()
    coarse = sup.to_coarse(pred) if predicted == "fine" else pred
    # the per-image frame in the result's terms: superclass label and prediction, fine class as subgroup
    frame = pd.DataFrame({"index": data.indices, "label": sup.labels[data.indices], "prediction": coarse,
                          "subgroup": sup.subgroups[data.indices]})
    if settings.save_logits:
        frame["logits"] = list(out)
    return result, frame, metrics


def load_eval_data(dataset: str, *, root: str | Path | None = None, trust_local: bool = False,
                   corruptions: Sequence[str] | None = None, cifar10_1_version: str = "v6"
                   ) -> ImageSet | CorruptionSet:
    """Read (and verify) the images of an evaluation dataset; nothing is predicted yet."""
    from cifarb.data import readers

    base, kind, _ = dataset_info(dataset)
    if corruptions is not None and kind != "c":
        raise UsageError("--corruptions applies to cifar10-c / cifar100-c only")
    if kind == "b":
        return readers.load_cifar(base, "test", root=root, trust_local=trust_local)
    if kind == "c":
        return readers.load_cifar_c(base, root=root, trust_local=trust_local, corruptions=corruptions)
    return readers.load_cifar10_1(root=root, version=cifar10_1_version, trust_local=trust_local)


def with_tta(model: LoadedModel, tta: str) -> LoadedModel:
    """`model` wrapped in test-time augmentation `tta` ("none": unchanged)."""
    if tta == "none":
        return model
    import dataclasses

    from cifarb.eval.tta import with_tta as wrap

    return dataclasses.replace(model, module=wrap(model.module, tta))


def evaluate_loaded(
    model: LoadedModel,
    dataset: str,
    settings: EvalSettings,
    *,
    root: str | Path | None = None,
    trust_local: bool = False,
    corruptions: Sequence[str] | None = None,
    data: ImageSet | CorruptionSet | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    """(result JSON, predictions frame, SubgroupMetrics or None): what `evaluate` and `cifarb.evaluate` share.

    Reads the data unless given, applies `settings.tta` and records it as `settings.tta`. `dataset` may
    also be cifar100-super (CIFAR-100 images scored on superclasses; see `evaluate_superclasses`).
    """
    key = dataset.strip().lower()
    superclasses = key == SUPERCLASS_DATASET
    images_of = "cifar100-b" if superclasses else key  # the superclass set is scored on the CIFAR-100 test images
    _, kind, _ = dataset_info(images_of)
    model = with_tta(model, settings.tta)
    if data is None:
        data = load_eval_data(images_of, root=root, trust_local=trust_local, corruptions=corruptions)
    metrics = None
    if superclasses:
        result, frame, metrics = evaluate_superclasses(model, data, settings)  # type: ignore[arg-type]
    elif kind == "c":
        result, frame = evaluate_corruptions(model, data, settings)  # type: ignore[arg-type]
    else:
        result, frame, metrics = evaluate_imageset(model, data, key, settings)  # type: ignore[arg-type]
    result["settings"]["tta"] = settings.tta
    return result, frame, metrics


def evaluate(
    model: LoadedModel,
    dataset: str,
    *,
    settings: EvalSettings | None = None,
    root: str | Path | None = None,
    trust_local: bool = False,
    rundir: RunDir | None = None,
    corruptions: Sequence[str] | None = None,
    data: ImageSet | CorruptionSet | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate `model` on an evaluation dataset and return the result JSON (cifarb/schemas/result.schema.json).

    `settings` (an EvalSettings) or its fields as keywords: bootstrap, seed, min_cell_size,
    min_cell_size_worst, permutations, subgroup_names, tta ("none" or "flip", see cifarb.eval.tta;
    recorded as `settings.tta`), batch_size, device, progress, save_logits. With `rundir`, also writes
    `eval/<name>.json` and `predictions/<name>.parquet` there, where `name` is the result's `dataset`
    (e.g. `cifar10-c-local` for a generated corruption set), and appends an "eval" line to
    metrics.jsonl. `data` may be given when the caller has already loaded it.
    """
    s = EvalSettings.build(settings, **options)
    result, frame, _ = evaluate_loaded(model, dataset, s, root=root, trust_local=trust_local,
                                       corruptions=corruptions, data=data)
    if rundir is not None:
        write_outputs(rundir, result, frame)
    return result


def write_outputs(rundir: RunDir, result: dict[str, Any], frame: pd.DataFrame) -> None:
    """Write a result and its predictions into a run directory (atomically), plus an "eval" metrics line."""
    name = result["dataset"]
    rundir.create()
    rundir.write_predictions(name, frame)
    rundir.write_eval(name, result)
    rundir.append_metrics({"event": "eval", "dataset": name, "n_images": result["n_images"],
                           **{k: result.get(k) for k in ("accuracy", "macro_std", "macro_std_excess",
                                                         "worst_cell_accuracy")}})
