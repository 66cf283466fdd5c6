#!/usr/bin/env python
"""Regenerate the table, the figure and the correlation block of docs/reference-models.md.

Usage: python scripts/make_reference_docs.py   (from the repository root; about a minute on 2 cores)

Runs `cifarb.reference.score` over all 30 bundled reference models on the full CIFAR10-B test set
(1,000 bootstrap resamples, 2,000 model resamples for the correlations, seed 0), writes
docs/assets/reference-models.png, and replaces the text between the `<!-- reference:NAME:start -->` /
`<!-- reference:NAME:end -->` markers of docs/reference-models.md. Everything else in the page is prose.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cifarb.reference import render  # noqa: E402
from cifarb.reference.score import score  # noqa: E402

DOC = REPO / "docs" / "reference-models.md"
FIGURE = REPO / "docs" / "assets" / "reference-models.png"


def correlation_block(table: dict) -> str:
    """The headline correlations (v6 and v4) as a Markdown table with their CIs and names."""
    a = table["analysis"]
    rows = ["| correlation over the 30 models | r | 95 % CI | JSON name |", "|---|---:|---:|---|"]
    labels = {"accuracy": "CIFAR-10 accuracy", "macro_std": "MacroStd", "macro_std_excess": "excess",
              "macro_std_debiased": "debiased MacroStd", "macro_std_adjusted": "accuracy-adjusted discrepancy"}
    wanted = [f"pearson__{x}__accuracy" for x in ("macro_std", "macro_std_excess", "macro_std_debiased")]
    for y in ("cifar10_1_v6_accuracy", "drop_v6"):
        wanted += [f"{k}__{x}__{y}" for k in ("pearson", "spearman") for x in labels]
    wanted += [f"{k}__{x}__{y}__given__accuracy" for y in ("cifar10_1_v6_accuracy", "cifar10_1_v4_accuracy")
               for k in ("partial_pearson", "partial_spearman")
               for x in ("macro_std", "macro_std_excess", "macro_std_debiased", "macro_std_adjusted")]
    targets = {"cifar10_1_v6_accuracy": "CIFAR-10.1 v6 accuracy", "cifar10_1_v4_accuracy": "CIFAR-10.1 v4 accuracy",
               "drop_v6": "10 → 10.1 v6 drop", "accuracy": "CIFAR-10 accuracy"}
    for key in wanted:
        c = a.get(key)
        if c is None or c["r"] is None:
            continue
        kind, x, y = key.split("__")[:3]
        label = f"{labels[x]} vs {targets[y]}"
        if kind.startswith("partial"):
            label += " given CIFAR-10 accuracy"
        label = f"{kind.replace('_', ' ')}: {label}"
        ci = "—" if c["ci95"] is None else f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
        rows.append(f"| {label} | {c['r']:+.3f} | {ci} | `{key}` |")
    fit = table["analysis_info"]["adjusted_fit"]
    rows.append("")
    rows.append(f"Adjusted-discrepancy trend (over the 30 models, d = `{table['discrepancy_key']}`): "
                f"d ≈ {100 * fit['alpha']:.3f} % + {100 * fit['beta']:.3f} % × sqrt(1 − accuracy).")
    return "\n".join(rows)


def replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- reference:{name}:start -->\n).*?(<!-- reference:{name}:end -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"error: {DOC} has no reference:{name} markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> int:
    table = score(bootstrap=1000, seed=0, analysis_bootstrap=2000)
    FIGURE.write_bytes(render.scatter_png(table))
    text = DOC.read_text(encoding="utf-8")
    text = replace(text, "table", render.markdown_table(table, "accuracy").rstrip("\n"))
    text = replace(text, "correlations", correlation_block(table))
    text = replace(text, "settings", f"discrepancy column = `{table['discrepancy_key']}`; per-model 95 % CIs: "
                   f"{table['settings']['bootstrap']} stratified bootstrap resamples, seed {table['settings']['seed']}; "
                   f"correlation CIs: {table['analysis_info']['bootstrap']} resamples of the models.")
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC} and {FIGURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
