"""Report figures as PNG bytes (matplotlib's Agg canvas directly, so no pyplot state or display).

Inside `export_figures(DIR)` every figure drawn with a `name` is also saved as DIR/<name>.pdf and
.svg (vector, for papers).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_EXPORT: list[tuple[Path, tuple[str, ...], list[Path]]] = []  # the active export_figures, if any


@contextlib.contextmanager
def export_figures(folder: Path | str, formats: Sequence[str] = ("pdf", "svg")) -> Iterator[list[Path]]:
    """Also write every named figure drawn inside the block to `folder` as each of `formats`."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    _EXPORT.append((out, tuple(formats), written))
    try:
        yield written
    finally:
        _EXPORT.pop()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "figure"


def _png(fig: Figure, name: str | None = None) -> bytes:
    from PIL import Image

    FigureCanvasAgg(fig)
    if name and _EXPORT:
        folder, formats, written = _EXPORT[-1]
        for fmt in formats:
            path = folder / f"{_safe(name)}.{fmt}"
            meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)  # reproducible files
            fig.savefig(path, format=fmt, bbox_inches="tight", metadata=meta)
            written.append(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    # A 256-colour palette makes plots ~3x smaller with no visible loss: reports embed many figures.
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _ordered(seen: Sequence[str], preferred: Sequence[str] | None) -> list[str]:
    """`preferred` order first (only names that occur), then any others in order of appearance."""
    names = [n for n in (preferred or []) if n in set(seen)]
    names += [n for n in dict.fromkeys(seen) if n not in set(names)]
    return names


def cell_matrix(result: Mapping[str, Any]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(classes, subgroups, accuracy[c, g] with NaN for empty cells, n[c, g]) from a result's `cells`."""
    cells = result.get("cells") or []
    if not cells:
        raise ValueError(f"result for {result.get('dataset', '?')} has no (class, subgroup) cells to plot")
    classes = _ordered([c["class"] for c in cells], list((result.get("class_accuracy") or {}).keys()))
    settings = result.get("settings") or {}
    subgroups = _ordered([c["subgroup"] for c in cells], settings.get("subgroup_names"))
    acc = np.full((len(classes), len(subgroups)), np.nan)
    n = np.zeros((len(classes), len(subgroups)), dtype=np.int64)
    ci, gi = {c: i for i, c in enumerate(classes)}, {g: i for i, g in enumerate(subgroups)}
    for c in cells:
        i, j = ci[c["class"]], gi[c["subgroup"]]
        acc[i, j] = c["accuracy"]
        n[i, j] = c["n"]
    return classes, subgroups, acc, n


def heatmap_png(result: Mapping[str, Any], title: str | None = None, name: str | None = None) -> bytes:
    """Class x subgroup accuracy heatmap of one result JSON, each cell annotated with accuracy % and n."""
    classes, subgroups, acc, n = cell_matrix(result)
    w = max(6.0, 0.85 * len(subgroups) + 2.5)
    h = max(3.5, 0.42 * len(classes) + 1.5)
    fig = Figure(figsize=(w, h))
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(acc)
    cmap = _cmap()
    im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(subgroups)), subgroups, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("subgroup")
    ax.set_ylabel("class")
    small = len(classes) > 30  # CIFAR-100: 100 rows, annotations would be unreadable
    if not small:
        for i in range(len(classes)):
            for j in range(len(subgroups)):
                if math.isnan(acc[i, j]):
                    ax.text(j, i, "–", ha="center", va="center", fontsize=8, color="#666")
                    continue
                colour = "white" if acc[i, j] < 0.45 else "black"
                ax.text(j, i, f"{100 * acc[i, j]:.0f}\nn={n[i, j]}", ha="center", va="center",
                        fontsize=7, color=colour, linespacing=0.95)
    cbar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label("cell accuracy")
    ms, ex = result.get("macro_std"), result.get("macro_std_excess")
    head = title or f"{result.get('dataset', '')}: class x subgroup accuracy"
    if ms is not None:
        head += f"\nMacroStd {100 * ms:.2f}%"
        if ex is not None:
            head += f" (excess over the noise floor {100 * ex:+.2f} pp)"
    ax.set_title(head, fontsize=10)
    return _png(fig, name)


def _cmap() -> Any:
    import matplotlib

    return matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")  # grey: empty cells


def accuracy_vs_macrostd_png(points: Sequence[Mapping[str, Any]], title: str = "", name: str | None = None) -> bytes:
    """Accuracy (x) against MacroStd (left) and macro_std_excess (right), one point per method.

    Each point: label, n_seeds, accuracy, macro_std, macro_std_excess, their `_sd` (None for one
    seed) and optionally `runs`: [(accuracy, macro_std, macro_std_excess)] drawn as small dots.
    Error bars are ±1 sd over seeds. The dashed line on the left is the mean noise floor
    (macro_std_null) when points carry it; on the right, 0 is the floor.
    """
    fig = Figure(figsize=(11.0, 4.6))
    axes = (fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2))
    colours = _colours(len(points))
    for ax, key, metric in zip(axes, ("macro_std", "macro_std_excess"), ("MacroStd", "macro_std_excess"), strict=True):
        for p, col in zip(points, colours, strict=True):
            x, y = p["accuracy"], p.get(key)
            if x is None or y is None:
                continue
            xe, ye = p.get("accuracy_sd"), p.get(f"{key}_sd")
            ax.errorbar(100 * x, 100 * y, xerr=None if xe is None else 100 * xe, yerr=None if ye is None else 100 * ye,
                        fmt="o", ms=7, color=col, capsize=4, label=f"{p['label']} (n={p['n_seeds']})")
            runs = [r for r in p.get("runs", []) if r[0] is not None and r[1 if key == "macro_std" else 2] is not None]
            if runs:
                ax.scatter([100 * r[0] for r in runs], [100 * r[1 if key == "macro_std" else 2] for r in runs],
                           s=12, color=col, alpha=0.45, marker="x")
        if key == "macro_std":
            nulls = [p["macro_std_null"] for p in points if p.get("macro_std_null") is not None]
            if nulls:
                ax.axhline(100 * float(np.mean(nulls)), ls="--", color="#888", lw=1, label="noise floor (mean null)")
        else:
            ax.axhline(0.0, ls="--", color="#888", lw=1, label="noise floor")
        ax.set_xlabel("clean accuracy (%)")
        ax.set_ylabel(f"clean {metric} (%)")
        ax.grid(alpha=0.3)
        ax.set_title(f"accuracy vs {metric}", fontsize=10)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title or "methods: mean over seeds, error bars ±1 sd over seeds, x = single runs", fontsize=10)
    return _png(fig, name)


def severity_png(
    label: str,
    subgroup_accuracy: Mapping[str, Sequence[float | None]],
    severities: Sequence[int],
    macro_std: Sequence[float | None],
    macro_std_excess: Sequence[float | None],
    accuracy: Sequence[float | None],
    macro_std_debiased: Sequence[float | None] | None = None,
    name: str | None = None,
) -> bytes:
    """Left: accuracy per subgroup (and overall) against corruption severity; right: MacroStd and excess.

    Severity 0 is the clean test set when present. Values are fractions; None is a gap.
    """
    fig = Figure(figsize=(11.0, 4.2))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    xs = list(severities)
    colours = _colours(len(subgroup_accuracy))
    for (subgroup, ys), col in zip(subgroup_accuracy.items(), colours, strict=True):
        ax1.plot(xs, _pct(ys), marker="o", ms=3, color=col, label=subgroup)
    ax1.plot(xs, _pct(accuracy), marker="s", color="black", lw=2, label="overall")
    ax1.set_xlabel("corruption severity (0 = clean)")
    ax1.set_ylabel("accuracy (%)")
    # the run label goes in one suptitle: two long panel titles would run into each other
    fig.suptitle(label, fontsize=10)
    ax1.set_title("accuracy per subgroup", fontsize=10)
    ax1.set_xticks(xs)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7, ncol=2)
    ax2.plot(xs, _pct(macro_std), marker="o", color="tab:red", label="MacroStd")
    ax2.plot(xs, _pct(macro_std_excess), marker="^", color="tab:purple", label="macro_std_excess")
    if macro_std_debiased is not None and any(v is not None for v in macro_std_debiased):
        ax2.plot(xs, _pct(macro_std_debiased), marker="v", color="tab:green", label="macro_std_debiased")
    ax2.axhline(0, color="#888", lw=0.8)
    ax2.set_xlabel("corruption severity (0 = clean)")
    ax2.set_ylabel("%")
    ax2.set_title("MacroStd and its excess over the noise floor", fontsize=10)
    ax2.set_xticks(xs)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    return _png(fig, name)


def _pct(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else 100 * float(v) for v in values]


def _colours(k: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def mean_result(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A result-like dict whose cells hold the accuracy averaged over `results` (seeds on one test set).

    Cell sizes are the first result's (the seeds were scored on the same images); a cell absent from
    a result does not count towards its mean. MacroStd and its excess are the means of the results'.
    """
    if not results:
        raise ValueError("no results to average")
    sums: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], int] = {}
    for r in results:
        for c in r.get("cells") or []:
            key = (c["class"], c["subgroup"])
            sums.setdefault(key, []).append(float(c["accuracy"]))
            sizes.setdefault(key, int(c["n"]))
    cells = [{"class": k[0], "subgroup": k[1], "n": sizes[k], "accuracy": float(np.mean(v))} for k, v in sums.items()]
    first = results[0]

    def avg(key: str) -> float | None:
        vals = [r.get(key) for r in results if r.get(key) is not None]
        return float(np.mean(vals)) if vals else None

    classes = list((first.get("class_accuracy") or {}).keys())
    class_acc = {c: float(np.mean([r["class_accuracy"][c] for r in results if (r.get("class_accuracy") or {}).get(c)
                                   is not None] or [np.nan])) for c in classes}
    return {"dataset": first.get("dataset"), "cells": cells, "class_accuracy": class_acc,
            "settings": first.get("settings") or {}, "macro_std": avg("macro_std"),
            "macro_std_excess": avg("macro_std_excess"), "accuracy": avg("accuracy"), "n_runs": len(results)}


def _diverging(ax: Any, fig: Figure, values: np.ndarray, n: np.ndarray, classes: list[str], subgroups: list[str],
               small: int, label: str) -> None:
    """A diverging heatmap centred on 0 (red below, blue above), small cells hatched, empty cells grey."""
    import matplotlib

    finite = values[np.isfinite(values)]
    vmax = max(float(np.abs(finite).max()) if finite.size else 0.0, 0.05)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(range(len(subgroups)), subgroups, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("subgroup")
    ax.set_ylabel("class")
    annotate = len(classes) <= 30
    for i in range(len(classes)):
        for j in range(len(subgroups)):
            if n[i, j] > 0 and n[i, j] < small:
                ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                                          edgecolor="#555555", lw=0))
            if annotate and np.isfinite(values[i, j]):
                ax.text(j, i, f"{100 * values[i, j]:+.0f}\nn={n[i, j]}", ha="center", va="center", fontsize=7,
                        color="white" if abs(values[i, j]) > 0.6 * vmax else "black", linespacing=0.95)
    cbar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label(label)


def _size(classes: Sequence[str], subgroups: Sequence[str]) -> tuple[float, float]:
    return max(6.0, 0.85 * len(subgroups) + 2.5), max(3.5, 0.42 * len(classes) + 1.5)


def deviation_heatmap_png(result: Mapping[str, Any], title: str = "", name: str | None = None) -> bytes:
    """a_cg - m_c (cell accuracy minus its class's accuracy) on a diverging scale, what MacroStd measures.

    Cells smaller than the result's min_cell_size_worst (default 10) are hatched: their accuracy is
    too noisy to read on its own.
    """
    classes, subgroups, acc, n = cell_matrix(result)
    class_acc = result.get("class_accuracy") or {}
    m = np.array([class_acc.get(c, np.nan) if class_acc.get(c) is not None else np.nan for c in classes])
    small = int((result.get("settings") or {}).get("min_cell_size_worst") or 10)
    fig = Figure(figsize=_size(classes, subgroups))
    ax = fig.add_subplot()
    _diverging(ax, fig, acc - m[:, None], n, classes, subgroups, small, "a_cg − m_c (cell − class accuracy)")
    ax.set_title((title or "cell accuracy minus class accuracy") + f"\nhatched: n < {small} images", fontsize=10)
    return _png(fig, name)


def difference_heatmap_png(result: Mapping[str, Any], baseline: Mapping[str, Any], title: str = "",
                           name: str | None = None) -> bytes:
    """Cell accuracy of `result` minus that of `baseline` (same cells), diverging, small cells hatched."""
    classes, subgroups, acc, n = cell_matrix(result)
    b_classes, b_subgroups, b_acc, _ = cell_matrix(baseline)
    bi, bj = {c: i for i, c in enumerate(b_classes)}, {g: j for j, g in enumerate(b_subgroups)}
    diff = np.full(acc.shape, np.nan)
    for i, c in enumerate(classes):
        for j, g in enumerate(subgroups):
            if c in bi and g in bj:
                diff[i, j] = acc[i, j] - b_acc[bi[c], bj[g]]
    small = int((result.get("settings") or {}).get("min_cell_size_worst") or 10)
    fig = Figure(figsize=_size(classes, subgroups))
    ax = fig.add_subplot()
    _diverging(ax, fig, diff, n, classes, subgroups, small, "cell accuracy difference")
    ax.set_title((title or "difference from the baseline") + f"\nblue: better than the baseline; hatched: n < {small}",
                 fontsize=10)
    return _png(fig, name)


def severity_overlay_png(series: Sequence[Mapping[str, Any]], discrepancy: str = "macro_std_excess",
                         name: str | None = None) -> bytes:
    """Left: `discrepancy` against corruption severity, one line per method; right: accuracy beside it.

    Each series: label, severities (0 = clean), accuracy, and the discrepancy key (fractions; None gaps).
    """
    fig = Figure(figsize=(11.0, 4.2))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colours = _colours(len(series))
    for s_, col in zip(series, colours, strict=True):
        xs = list(s_["severities"])
        ax1.plot(xs, _pct(s_.get(discrepancy) or [None] * len(xs)), marker="o", color=col, label=s_["label"])
        ax2.plot(xs, _pct(s_["accuracy"]), marker="s", color=col, label=s_["label"])
    for ax, what in ((ax1, discrepancy), (ax2, "accuracy")):
        ax.set_xlabel("corruption severity (0 = clean)")
        ax.set_ylabel(f"{what} (%)")
        ax.grid(alpha=0.3)
        ax.set_title(f"{what} by severity", fontsize=10)
    ticks = sorted({int(x) for s_ in series for x in s_["severities"]})
    for ax in (ax1, ax2):
        ax.set_xticks(ticks)
    ax1.axhline(0, color="#888", lw=0.8)
    ax1.legend(fontsize=7)
    fig.suptitle("methods overlaid: mean over seeds and over corruptions", fontsize=10)
    return _png(fig, name)
