"""Report figures as PNG bytes (matplotlib's Agg canvas directly, so no pyplot state or display)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _png(fig: Figure) -> bytes:
    from PIL import Image

    FigureCanvasAgg(fig)
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


def heatmap_png(result: Mapping[str, Any], title: str | None = None) -> bytes:
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
    return _png(fig)


def _cmap() -> Any:
    import matplotlib

    return matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")  # grey: empty cells


def accuracy_vs_macrostd_png(points: Sequence[Mapping[str, Any]], title: str = "") -> bytes:
    """Accuracy (x) against MacroStd (left) and macro_std_excess (right), one point per method.

    Each point: label, n_seeds, accuracy, macro_std, macro_std_excess, their `_sd` (None for one
    seed) and optionally `runs`: [(accuracy, macro_std, macro_std_excess)] drawn as small dots.
    Error bars are ±1 sd over seeds. The dashed line on the left is the mean noise floor
    (macro_std_null) when points carry it; on the right, 0 is the floor.
    """
    fig = Figure(figsize=(11.0, 4.6))
    axes = (fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2))
    colours = _colours(len(points))
    for ax, key, name in zip(axes, ("macro_std", "macro_std_excess"), ("MacroStd", "macro_std_excess"), strict=True):
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
        ax.set_ylabel(f"clean {name} (%)")
        ax.grid(alpha=0.3)
        ax.set_title(f"accuracy vs {name}", fontsize=10)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title or "methods: mean over seeds, error bars ±1 sd over seeds, x = single runs", fontsize=10)
    return _png(fig)


def severity_png(
    label: str,
    subgroup_accuracy: Mapping[str, Sequence[float | None]],
    severities: Sequence[int],
    macro_std: Sequence[float | None],
    macro_std_excess: Sequence[float | None],
    accuracy: Sequence[float | None],
) -> bytes:
    """Left: accuracy per subgroup (and overall) against corruption severity; right: MacroStd and excess.

    Severity 0 is the clean test set when present. Values are fractions; None is a gap.
    """
    fig = Figure(figsize=(11.0, 4.2))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    xs = list(severities)
    colours = _colours(len(subgroup_accuracy))
    for (name, ys), col in zip(subgroup_accuracy.items(), colours, strict=True):
        ax1.plot(xs, _pct(ys), marker="o", ms=3, color=col, label=name)
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
    ax2.axhline(0, color="#888", lw=0.8)
    ax2.set_xlabel("corruption severity (0 = clean)")
    ax2.set_ylabel("%")
    ax2.set_title("MacroStd and its excess over the noise floor", fontsize=10)
    ax2.set_xticks(xs)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    return _png(fig)


def _pct(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else 100 * float(v) for v in values]


def _colours(k: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]
