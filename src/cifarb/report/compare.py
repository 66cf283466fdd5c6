"""Paired comparison of two runs on the same test images: CIs of the metric differences and a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.errors import CifarbError, UsageError
from cifarb.report.load import Problem, Run, eval_kind, load_run

# Compared metrics, in display order; "lower is better" only for the MacroStd family and the gap.
COMPARED = ("accuracy", "macro_std", "macro_std_excess", "worst_cell_accuracy", "worst_subgroup_accuracy",
            "subgroup_gap", "mean_cell_accuracy")
LOWER_IS_BETTER = {"macro_std", "macro_std_excess", "subgroup_gap"}


@dataclass
class Comparison:
    a: Path
    b: Path
    dataset: str
    selection: str  # "" or "corruption=fog severity=3"
    n_images: int
    bootstrap: int
    seed: int
    metrics: dict[str, dict[str, Any]]  # metric -> {"a", "b", "diff", "ci95"}, diff = a - b
    verdict: str
    accuracy_verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"a": str(self.a), "b": str(self.b), "dataset": self.dataset, "selection": self.selection,
                "n_images": self.n_images, "bootstrap": self.bootstrap, "seed": self.seed,
                "metrics": self.metrics, "verdict": self.verdict, "accuracy_verdict": self.accuracy_verdict}


def _load(path: Path) -> Run:
    item = load_run(path)
    if isinstance(item, Problem):
        raise CifarbError(f"cannot compare {path}: {item.reason}")
    return item


def _pick_dataset(a: Run, b: Run, dataset: str | None) -> str:
    names_a = {p.stem for p in (a.path / "predictions").glob("*.parquet")}
    names_b = {p.stem for p in (b.path / "predictions").glob("*.parquet")}
    if dataset is None:
        dataset = a.eval_names["b"]
    elif dataset not in names_a & names_b and f"{dataset}-local" in names_a & names_b:
        dataset = f"{dataset}-local"  # the generated -C set is stored under its local name
    if dataset not in names_a or dataset not in names_b:
        lacking = [str(r.path) for r, names in ((a, names_a), (b, names_b)) if dataset not in names]
        hint = (f"run `cifarb eval --model RUNDIR --dataset {dataset.removesuffix('-local')} --out RUNDIR` "
                f"on it, or choose --dataset among those both have: {sorted(names_a & names_b) or 'none'}")
        raise CifarbError(f"no predictions/{dataset}.parquet in {', '.join(lacking)}; {hint}")
    return dataset


def _read_predictions(run: Run, dataset: str) -> Any:
    import pandas as pd

    path = run.path / "predictions" / f"{dataset}.parquet"
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise CifarbError(f"{path} is unreadable ({exc.__class__.__name__}); re-evaluate the run") from None
    need = ["index", "label", "prediction"]
    if eval_kind(dataset) != "10.1":
        need.append("subgroup")
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise CifarbError(f"{path} lacks columns {missing}; re-evaluate the run with this cifarb version")
    return frame


def _select(frame: Any, path: Path, corruption: str | None, severity: int | None) -> tuple[Any, str]:
    if "corruption" not in frame.columns:
        if corruption is not None or severity is not None:
            raise UsageError(f"--corruption/--severity apply only to -C predictions; {path} has none")
        return frame, ""
    pairs = sorted({(str(c), int(s)) for c, s in zip(frame["corruption"], frame["severity"], strict=True)})
    avail = ", ".join(sorted({c for c, _ in pairs})) + f"; severities {sorted({s for _, s in pairs})}"
    if corruption is None or severity is None:
        raise UsageError(
            f"{path} holds {len(pairs)} corruption x severity pairs; MacroStd is defined per pair, so choose "
            f"one with --corruption NAME --severity S (available: {avail})"
        )
    sel = frame[(frame["corruption"] == corruption) & (frame["severity"] == severity)]
    if sel.empty:
        raise CifarbError(f"{path} has no predictions for corruption {corruption} severity {severity} (available: {avail})")
    return sel, f"corruption={corruption} severity={severity}"


def _subgroup_ids(values: np.ndarray, names: list[str], path: Path) -> np.ndarray:
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    lookup = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(v) for v in values} - set(lookup))
    if unknown:
        raise CifarbError(f"{path}: subgroup names {unknown} are not in the result's subgroup_names {names}")
    return np.array([lookup[str(v)] for v in values], dtype=np.int64)


def compare_runs(a_path: Path | str, b_path: Path | str, dataset: str | None = None, *,
                 corruption: str | None = None, severity: int | None = None, bootstrap: int = 1000,
                 seed: int = 0, min_cell_size: int | None = None, min_cell_size_worst: int | None = None
                 ) -> Comparison:
    """Paired bootstrap of A against B over the test images both runs predicted (must be the same set)."""
    from cifarb.metrics import paired_bootstrap

    a, b = _load(Path(a_path)), _load(Path(b_path))
    dataset = _pick_dataset(a, b, dataset)
    fa, fb = _read_predictions(a, dataset), _read_predictions(b, dataset)
    fa, selection = _select(fa, a.path / "predictions" / f"{dataset}.parquet", corruption, severity)
    fb, _ = _select(fb, b.path / "predictions" / f"{dataset}.parquet", corruption, severity)
    for frame, run in ((fa, a), (fb, b)):
        if frame["index"].duplicated().any():
            raise CifarbError(f"{run.path}/predictions/{dataset}.parquet repeats test indices; re-evaluate the run")
    fa, fb = fa.sort_values("index"), fb.sort_values("index")
    ia, ib = fa["index"].to_numpy(), fb["index"].to_numpy()
    if ia.shape != ib.shape or not np.array_equal(ia, ib):
        shared = np.intersect1d(ia, ib).size
        raise CifarbError(
            f"the runs' predictions/{dataset}.parquet cover different test images (A: {ia.size}, B: {ib.size}, "
            f"shared: {shared}); a paired comparison needs the same images: evaluate both on the same data"
        )
    ya, yb = fa["label"].to_numpy(np.int64), fb["label"].to_numpy(np.int64)
    if not np.array_equal(ya, yb):
        raise CifarbError(f"the runs' predictions/{dataset}.parquet disagree on the true labels of the same "
                          "images; they were evaluated on different data")

    kind = eval_kind(dataset)
    res_a = a.results.get(kind) or a.results["b"]
    settings = res_a.get("settings") or {}
    class_names = list((res_a.get("class_accuracy") or a.results["b"]["class_accuracy"]).keys())
    sub_names = settings.get("subgroup_names") or a.results["b"]["settings"].get("subgroup_names")
    if kind == "10.1":
        subgroups, sub_names = None, None
    else:
        ga = _subgroup_ids(fa["subgroup"].to_numpy(), list(sub_names), a.path)
        gb = _subgroup_ids(fb["subgroup"].to_numpy(), list(sub_names), b.path)
        if not np.array_equal(ga, gb):
            raise CifarbError(f"the runs' predictions/{dataset}.parquet disagree on subgroups of the same images")
        subgroups = ga
    mcs = int(min_cell_size if min_cell_size is not None else settings.get("min_cell_size") or 1)
    mcw = int(min_cell_size_worst if min_cell_size_worst is not None else settings.get("min_cell_size_worst") or 10)
    metrics = paired_bootstrap(
        ya, fa["prediction"].to_numpy(np.int64), fb["prediction"].to_numpy(np.int64), subgroups,
        n_classes=len(class_names), class_names=class_names, subgroup_names=sub_names,
        bootstrap=bootstrap, seed=seed, min_cell_size=mcs, min_cell_size_worst=mcw,
    )
    ordered = {k: metrics[k] for k in COMPARED if k in metrics}
    return Comparison(a.path, b.path, dataset, selection, int(ia.size), bootstrap, seed, ordered,
                      verdict(ordered.get("macro_std"), "MacroStd", ia.size, bootstrap),
                      accuracy_verdict(ordered["accuracy"]))


def _pp(v: float) -> str:
    return f"{100 * v:.2f} pp"


def verdict(m: dict[str, Any] | None, name: str, n: int, bootstrap: int) -> str:
    """"A is fairer than B" only when the CI of the MacroStd difference (A - B) excludes 0."""
    if m is None:
        return "No MacroStd comparison: this dataset has no subgroups."
    if m["diff"] is None:
        return f"No verdict: {name} is undefined for one of the runs."
    if m["ci95"] is None:
        return f"No verdict without a bootstrap (--bootstrap 0): {name} A - B = {_pp(m['diff'])}."
    lo, hi = m["ci95"]
    ci = f"95% CI of A - B [{100 * lo:+.2f}, {100 * hi:+.2f}] pp, paired bootstrap over {n} images, {bootstrap} resamples"
    if hi < 0:
        return f"A is fairer than B: {name} is lower by {_pp(-m['diff'])} ({ci})."
    if lo > 0:
        return f"B is fairer than A: {name} is lower by {_pp(m['diff'])} ({ci})."
    return f"No detectable difference in fairness: the CI of the {name} difference includes 0 ({ci})."


def accuracy_verdict(m: dict[str, Any]) -> str:
    if m["ci95"] is None:
        return f"accuracy A - B = {_pp(m['diff'])} (no CI)."
    lo, hi = m["ci95"]
    ci = f"95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}] pp"
    if lo > 0:
        return f"A is more accurate than B by {_pp(m['diff'])} ({ci})."
    if hi < 0:
        return f"B is more accurate than A by {_pp(-m['diff'])} ({ci})."
    return f"No detectable accuracy difference ({ci} includes 0)."


def format_comparison(c: Comparison) -> str:
    sel = f" [{c.selection}]" if c.selection else ""
    lines = [f"A: {c.a}", f"B: {c.b}", f"dataset: {c.dataset}{sel}, {c.n_images} shared test images", ""]
    header = f"{'metric':<24} {'A %':>8} {'B %':>8} {'A-B pp':>8}  95% CI of A-B (pp)"
    lines += [header, "-" * len(header)]
    for name, m in c.metrics.items():
        def f(v: float | None) -> str:
            return "—" if v is None else f"{100 * v:.2f}"
        ci = "—" if m["ci95"] is None else f"[{100 * m['ci95'][0]:+.2f}, {100 * m['ci95'][1]:+.2f}]"
        diff = "—" if m["diff"] is None else f"{100 * m['diff']:+.2f}"
        arrow = " (lower is better)" if name in LOWER_IS_BETTER else ""
        lines.append(f"{name:<24} {f(m['a']):>8} {f(m['b']):>8} {diff:>8}  {ci}{arrow}")
    lines += ["", f"verdict: {c.verdict}", f"accuracy: {c.accuracy_verdict}"]
    ex = c.metrics.get("macro_std_excess")
    if ex and ex["diff"] is not None and "macro_std" in c.metrics:
        lines.append("macro_std_excess removes each run's own noise floor; its difference is the MacroStd "
                     "difference shifted by the difference of the floors.")
    return "\n".join(lines) + "\n"
