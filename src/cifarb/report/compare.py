"""Paired comparison of A and B on the same test images (one seed pair or several): CIs and a verdict.

The verdict is judged on the discrepancy measure the result contract makes the default
(`macro_std_debiased` when the metrics engine provides it, else `macro_std_excess`: MacroStd minus
its noise floor), states the accuracy difference beside it, and warns when the two disagree or a
model is near chance, where a low discrepancy only means it fails every subgroup alike.
"""

from __future__ import annotations

import glob as _glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.errors import CifarbError, UsageError
from cifarb.metrics import catalog
from cifarb.report.load import Problem, Run, eval_kind, load_run
from cifarb.runs.rundir import RunDir

# Compared metrics in display order, which are lower-is-better, and the verdict's discrepancy measure
# best first (the debiased MacroStd once the engine has it): all declared in metrics/catalog.toml.
COMPARED = catalog.view("compare")
LOWER_IS_BETTER = catalog.LOWER_IS_BETTER
PRIMARY = catalog.VERDICT_ORDER
# how verdicts name a measure: its key, except the plain MacroStd (kept for older callers of verdict())
PRIMARY_NAMES = {**{k: k for k in PRIMARY}, "macro_std": catalog.BY_KEY["macro_std"].label}
PREDICTION_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


def chance_threshold(n_classes: int) -> float:
    """Accuracy below which a model counts as near chance: chance + 0.25 x (1 - chance)."""
    chance = 1.0 / n_classes
    return chance + 0.25 * (1.0 - chance)


@dataclass
class Comparison:
    a: list[Path]
    b: list[Path]
    dataset: str
    selection: str  # "" or "corruption=fog severity=3"
    n_images: int
    bootstrap: int
    seed: int
    metrics: dict[str, dict[str, Any]]  # metric -> {"a", "b", "diff", "ci95"[, "per_seed"]}, diff = a - b
    verdict: str
    accuracy_verdict: str
    primary: str | None = None  # the metric the verdict is judged on
    pairing: str = ""  # how A and B runs were paired
    seeds: list[str] = field(default_factory=list)  # one label per pair
    n_classes: int = 10
    warnings: list[str] = field(default_factory=list)
    # each side's p_subgroup_effect (one per pair) and the permutations behind it; None when not computed
    p_subgroup_effect: dict[str, Any] | None = None

    @property
    def multi(self) -> bool:
        return len(self.a) > 1

    def to_dict(self) -> dict[str, Any]:
        one = not self.multi
        return {"a": str(self.a[0]) if one else [str(p) for p in self.a],
                "b": str(self.b[0]) if one else [str(p) for p in self.b],
                "dataset": self.dataset, "selection": self.selection, "n_images": self.n_images,
                "bootstrap": self.bootstrap, "seed": self.seed, "pairing": self.pairing, "pairs": self.seeds,
                "primary": self.primary, "metrics": self.metrics, "verdict": self.verdict,
                "accuracy_verdict": self.accuracy_verdict, "warnings": self.warnings,
                "near_chance_below": chance_threshold(self.n_classes),
                "p_subgroup_effect": None if self.p_subgroup_effect is None else {
                    **self.p_subgroup_effect, **{k: self.p_subgroup_effect[k][0] for k in ("a", "b") if one}}}


# --- inputs ------------------------------------------------------------------------------------------
@dataclass
class _Side:
    """One run of a comparison: its predictions aligned by test index, and what to call it."""

    path: Path
    seed: int | None
    index: np.ndarray
    labels: np.ndarray
    subgroups: np.ndarray | None
    pred: np.ndarray
    settings: dict[str, Any]
    class_names: list[str]
    subgroup_names: list[str] | None


def _load(path: Path) -> Run:
    item = load_run(path)
    if isinstance(item, Problem):
        raise CifarbError(f"cannot compare {path}: {item.reason}")
    return item


def is_predictions_file(path: Path | str) -> bool:
    p = Path(path)
    return p.suffix.lower() in PREDICTION_SUFFIXES and not p.is_dir()


def _pick_dataset(runs: list[Run], dataset: str | None) -> str:
    names = [{p.stem for p in RunDir(r.path).predictions_dir.glob("*.parquet")} for r in runs]
    common = set.intersection(*names)
    if dataset is None:
        dataset = runs[0].eval_names["b"]
    elif dataset not in common and f"{dataset}-local" in common:
        dataset = f"{dataset}-local"  # the generated -C set is stored under its local name
    lacking = [str(r.path) for r, have in zip(runs, names, strict=True) if dataset not in have]
    if lacking:
        hint = (f"run `cifarb eval --model RUNDIR --dataset {dataset.removesuffix('-local')} --out RUNDIR` "
                f"on it, or choose --dataset among those all have: {sorted(common) or 'none'}")
        raise CifarbError(f"no predictions/{dataset}.parquet in {', '.join(lacking)}; {hint}")
    return dataset


def _read_parquet(run: Run, dataset: str) -> Any:
    import pandas as pd

    path = RunDir(run.path).predictions_path(dataset)
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
    from cifarb.data.corruption_names import unknown_corruptions

    message = unknown_corruptions([corruption], sorted({c for c, _ in pairs}), where=str(path))
    if message:
        raise UsageError(f"--corruption: {message}")
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


def _run_side(run: Run, dataset: str, corruption: str | None, severity: int | None) -> tuple[_Side, str]:
    path = RunDir(run.path).predictions_path(dataset)
    frame, selection = _select(_read_parquet(run, dataset), path, corruption, severity)
    if frame["index"].duplicated().any():
        raise CifarbError(f"{path} repeats test indices; re-evaluate the run")
    frame = frame.sort_values("index")
    kind = eval_kind(dataset)
    res = run.results.get(kind) or run.results["b"]
    settings = dict(res.get("settings") or {})
    class_names = list((res.get("class_accuracy") or run.results["b"]["class_accuracy"]).keys())
    sub_names = settings.get("subgroup_names") or run.results["b"]["settings"].get("subgroup_names")
    subgroups = None
    if kind != "10.1":
        subgroups = _subgroup_ids(frame["subgroup"].to_numpy(), list(sub_names), run.path)
    else:
        sub_names = None
    side = _Side(run.path, run.seed, frame["index"].to_numpy(np.int64), frame["label"].to_numpy(np.int64),
                 subgroups, frame["prediction"].to_numpy(np.int64), settings, class_names,
                 None if sub_names is None else list(sub_names))
    return side, selection


def _file_side(path: Path, dataset: str) -> _Side:
    from cifarb.data.cifar_b import load_cifar_b
    from cifarb.data.predictions import read_predictions

    bundle = load_cifar_b(dataset)
    index, pred = read_predictions(path, bundle.class_names)
    order = np.argsort(index, kind="stable")
    index, pred = index[order], pred[order]
    return _Side(path, None, index, bundle.labels[index], bundle.subgroups[index], pred, {},
                 list(bundle.class_names), list(bundle.subgroup_names))


def expand_globs(pattern: str, what: str) -> list[Path]:
    """Paths matching a glob (sorted), or the path itself when it exists; CifarbError when nothing matches."""
    hits = sorted(Path(p) for p in _glob.glob(pattern))
    if not hits and Path(pattern).exists():
        hits = [Path(pattern)]
    hits = [p for p in hits if not p.name.startswith(("_", "."))]  # a study's _logs, _submitit
    if not hits:
        raise CifarbError(f"{what} {pattern!r} matches nothing; give run directories or predictions files")
    return hits


# --- the comparison ----------------------------------------------------------------------------------
def _pair(a: list[Path], b: list[Path], files: bool, runs: dict[Path, Run]) -> tuple[list[tuple[Path, Path]], str, list[str]]:
    if len(a) != len(b):
        raise UsageError(f"A has {len(a)} runs and B has {len(b)}; give one B run per A run (paired by seed)")
    if len(a) == 1:
        return [(a[0], b[0])], "one pair", [""]
    if files:
        return list(zip(a, b, strict=True)), "paired by position (predictions files record no seed)", \
            [f"#{i + 1}" for i in range(len(a))]
    seeds_a = [runs[p].seed for p in a]
    seeds_b = [runs[p].seed for p in b]
    for paths, seeds in ((a, seeds_a), (b, seeds_b)):
        unknown = [str(p) for p, s in zip(paths, seeds, strict=True) if s is None]
        if unknown:
            raise CifarbError(f"{', '.join(unknown)} record no seed in manifest.json, so runs cannot be paired by "
                              "seed; compare their predictions files instead (paired by position)")
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            raise CifarbError(f"seed {dup[0]} appears twice among {', '.join(map(str, paths))}; give one run per seed")
    if set(seeds_a) != set(seeds_b):
        raise CifarbError(f"A has seeds {sorted(seeds_a)} and B has seeds {sorted(seeds_b)}; runs are paired by the "
                          f"seed in their manifests, so give both sides the same seeds")
    by_seed = dict(zip(seeds_b, b, strict=True))
    order = sorted(zip(seeds_a, a, strict=True))
    return [(pa, by_seed[s]) for s, pa in order], "paired by the seed in each manifest", [f"seed {s}" for s, _ in order]


def compare(a_paths: list[Path | str], b_paths: list[Path | str], dataset: str | None = None, *,
            corruption: str | None = None, severity: int | None = None, bootstrap: int = 1000, seed: int = 0,
            min_cell_size: int | None = None, min_cell_size_worst: int | None = None,
            permutations: int = 999) -> Comparison:
    """Compare A against B: run directories (paired by seed) or predictions files (paired by position).

    One pair is a paired bootstrap over the shared images (`cifarb.metrics.paired_bootstrap`); several
    pairs are a two-level bootstrap over images and seeds (`cifarb.metrics.multiseed`). Each run's own
    `p_subgroup_effect` (`permutations` within-class permutations, as `cifarb eval`; computed only
    with `bootstrap` > 0, and 0 turns it off) is reported beside the verdict.
    """
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
        raise UsageError(f"--permutations must be a non-negative integer, got {permutations!r}")
    a, b = [Path(p) for p in a_paths], [Path(p) for p in b_paths]
    if not a or not b:
        raise UsageError("give at least one run for A and one for B")
    kinds = {is_predictions_file(p) for p in a + b}
    if len(kinds) > 1:
        raise UsageError("give either run directories or predictions files on both sides, not a mix")
    files = kinds == {True}
    runs: dict[Path, Run] = {}
    selection = ""
    if files:
        if dataset not in ("cifar10-b", "cifar100-b"):
            raise UsageError("predictions files need --dataset cifar10-b or cifar100-b (the test set they are for)")
        if corruption is not None or severity is not None:
            raise UsageError("--corruption/--severity apply only to -C predictions of run directories")
    else:
        runs = {p: _load(p) for p in a + b}
        dataset = _pick_dataset(list(runs.values()), dataset)
    pairs, pairing, labels = _pair(a, b, files, runs)

    sides: list[tuple[_Side, _Side]] = []
    for pa, pb in pairs:
        if files:
            sa, sb = _file_side(pa, str(dataset)), _file_side(pb, str(dataset))
        else:
            (sa, selection), (sb, _) = (_run_side(runs[p], str(dataset), corruption, severity) for p in (pa, pb))
        if sa.index.shape != sb.index.shape or not np.array_equal(sa.index, sb.index):
            shared = np.intersect1d(sa.index, sb.index).size
            where = f"{pa} and {pb}"
            raise CifarbError(
                f"{where} cover different test images (A: {sa.index.size}, B: {sb.index.size}, shared: {shared}); "
                "a paired comparison needs the same images: evaluate both on the same data"
            )
        if not np.array_equal(sa.labels, sb.labels):
            raise CifarbError(f"{pa} and {pb} disagree on the true labels of the same images; they were "
                              "evaluated on different data")
        if (sa.subgroups is None) != (sb.subgroups is None) or (
                sa.subgroups is not None and not np.array_equal(sa.subgroups, sb.subgroups)):
            raise CifarbError(f"{pa} and {pb} disagree on the subgroups of the same images")
        sides.append((sa, sb))

    first = sides[0][0]
    settings = first.settings
    mcs = int(min_cell_size if min_cell_size is not None else settings.get("min_cell_size") or 1)
    mcw = int(min_cell_size_worst if min_cell_size_worst is not None else settings.get("min_cell_size_worst") or 10)
    C = len(first.class_names)
    common = {"n_classes": C, "class_names": first.class_names, "subgroup_names": first.subgroup_names,
              "bootstrap": bootstrap, "seed": seed, "min_cell_size": mcs, "min_cell_size_worst": mcw}
    if len(sides) == 1:
        from cifarb.metrics import paired_bootstrap

        sa, sb = sides[0]
        metrics = paired_bootstrap(sa.labels, sa.pred, sb.pred, sa.subgroups, **common)
    else:
        from cifarb.metrics.multiseed import multiseed_paired_bootstrap

        same = all(np.array_equal(s.index, first.index) for s, _ in sides)
        if first.subgroups is None:  # CIFAR-10.1: accuracy only, one pseudo-subgroup
            seeds = [(s.labels, np.zeros_like(s.labels), s.pred, t.pred) for s, t in sides]
            metrics = multiseed_paired_bootstrap(seeds, same_images=same, **{**common, "subgroup_names": ["all"]})
            metrics = {"accuracy": metrics["accuracy"]}
        else:
            seeds = [(s.labels, s.subgroups, s.pred, t.pred) for s, t in sides]
            metrics = multiseed_paired_bootstrap(seeds, same_images=same, **common)
        if not same:
            pairing += "; the pairs hold different test images, so each is resampled on its own"
    ordered = {k: metrics[k] for k in COMPARED if k in metrics}
    primary = next((k for k in PRIMARY if k in ordered and ordered[k]["diff"] is not None), None)
    n = int(first.index.size)
    if len(sides) > 1:
        what = f"two-level bootstrap over {len(sides)} seed pairs and {n} images, {bootstrap} resamples"
    elif primary == "macro_std_debiased":  # paired_bootstrap's ΔD interval is not a bootstrap percentile
        what = (f"{n} shared images; the difference of the two models' own test-inversion intervals for "
                f"the debiased MacroStd, {bootstrap} resamples")
    else:
        what = f"paired bootstrap over {n} images, {bootstrap} resamples"
    near = {side: (v is not None and v < chance_threshold(C)) for side, v in
            (("A", ordered["accuracy"]["a"]), ("B", ordered["accuracy"]["b"]))}
    fair = verdict(ordered.get(primary) if primary else None, PRIMARY_NAMES.get(primary or "", ""), what,
                   bootstrap, near=near, accuracy=ordered["accuracy"])
    acc = accuracy_verdict(ordered["accuracy"])
    warnings = verdict_warnings(ordered, primary, near, C)
    p_effect = None
    if bootstrap > 0 and permutations > 0 and first.subgroups is not None:
        from cifarb.metrics.core import subgroup_effect_p

        opts = {"n_classes": C, "n_subgroups": len(first.subgroup_names or []) or None, "seed": seed,
                "min_cell_size": mcs, "permutations": permutations}
        p_effect = {"a": [subgroup_effect_p(s.labels, s.pred, s.subgroups, **opts) for s, _ in sides],
                    "b": [subgroup_effect_p(t.labels, t.pred, t.subgroups, **opts) for _, t in sides],
                    "permutations": permutations}
    a, b = [p for p, _ in pairs], [p for _, p in pairs]  # in pair order
    return Comparison(a, b, str(dataset), selection, n, bootstrap, seed, ordered, fair, acc, primary, pairing,
                      labels, C, warnings, p_effect)


def compare_runs(a_path: Path | str, b_path: Path | str, dataset: str | None = None, **kwargs: Any) -> Comparison:
    """Compare two run directories (or two predictions files): `compare([a], [b], ...)`."""
    return compare([a_path], [b_path], dataset, **kwargs)


# --- verdicts ----------------------------------------------------------------------------------------
def _pp(v: float) -> str:
    return f"{100 * v:.2f} pp"


def _ci(m: dict[str, Any]) -> str:
    lo, hi = m["ci95"]
    return f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"


def _significant(m: dict[str, Any] | None) -> int:
    """+1 when the CI of A - B lies above 0, -1 below, 0 when it includes 0 or is missing."""
    if not m or m.get("ci95") is None or m.get("diff") is None:
        return 0
    lo, hi = m["ci95"]
    return 1 if lo > 0 else (-1 if hi < 0 else 0)


def verdict(m: dict[str, Any] | None, name: str, what: str | int, bootstrap: int, *,
            near: dict[str, bool] | None = None, accuracy: dict[str, Any] | None = None) -> str:
    """"A is fairer than B" only when the CI of the discrepancy difference (A - B) lies below 0, and A is
    not near chance; the accuracy difference is stated beside it."""
    near = near or {}
    if isinstance(what, int):  # (n images) from older callers
        what = f"paired bootstrap over {what} images, {bootstrap} resamples"
    acc = ""
    if accuracy is not None and accuracy.get("diff") is not None:
        acc = f"; accuracy A - B {100 * accuracy['diff']:+.2f} pp" + (
            f" {_ci(accuracy)}" if accuracy.get("ci95") is not None else "")
    if m is None:
        return "No discrepancy comparison: this dataset has no subgroups."
    if m["diff"] is None:
        return f"No verdict: {name} is undefined for one of the runs."
    if m["ci95"] is None:
        return f"No verdict without a bootstrap (--bootstrap 0): {name} A - B = {_pp(m['diff'])}{acc}."
    ci = f"95% CI of A - B {_ci(m)} pp, {what}{acc}"
    sign = _significant(m)
    if sign == 0:
        return f"No detectable difference in fairness: the CI of the {name} difference includes 0 ({ci})."
    lower, higher = ("A", "B") if sign < 0 else ("B", "A")
    by = _pp(abs(m["diff"]))
    if near.get(lower):
        return (f"No fairness verdict: {lower} has the lower {name} (by {by}), but {lower} is near chance, where "
                f"a low discrepancy only means it fails every subgroup alike ({ci}).")
    return f"{lower} is fairer than {higher}: {name} is lower by {by} ({ci})."


def accuracy_verdict(m: dict[str, Any]) -> str:
    if m["ci95"] is None:
        return f"accuracy A - B = {_pp(m['diff'])} (no CI)."
    ci = f"95% CI {_ci(m)} pp"
    sign = _significant(m)
    if sign > 0:
        return f"A is more accurate than B by {_pp(m['diff'])} ({ci})."
    if sign < 0:
        return f"B is more accurate than A by {_pp(-m['diff'])} ({ci})."
    return f"No detectable accuracy difference ({ci} includes 0)."


def verdict_warnings(metrics: dict[str, dict[str, Any]], primary: str | None, near: dict[str, bool],
                     n_classes: int) -> list[str]:
    """Near-chance models, and accuracy and discrepancy pointing opposite ways."""
    out = []
    threshold = chance_threshold(n_classes)
    acc = metrics["accuracy"]
    for side, key in (("A", "a"), ("B", "b")):
        if near.get(side):
            out.append(f"{side} is near chance: accuracy {100 * acc[key]:.1f} % is below {100 * threshold:.1f} % "
                       f"(chance {100 / n_classes:.1f} % + a quarter of the rest); its discrepancy says little "
                       "about fairness")
    if primary is not None:
        d, s_acc = _significant(metrics[primary]), _significant(acc)
        # lower discrepancy for the side that is significantly less accurate
        if d != 0 and s_acc != 0 and d == s_acc:
            lower = "A" if d < 0 else "B"
            other = "B" if lower == "A" else "A"
            out.append(f"accuracy and discrepancy disagree: {lower} has the lower {PRIMARY_NAMES[primary]} but "
                       f"{other} is more accurate; a lower discrepancy bought with accuracy is not a fairer model")
    return out


def format_comparison(c: Comparison) -> str:
    sel = f" [{c.selection}]" if c.selection else ""
    if c.multi:
        lines = [f"A: {len(c.a)} runs, B: {len(c.b)} runs, {c.pairing}:"]
        lines += [f"  {s}: A {pa}  B {pb}" for s, pa, pb in zip(c.seeds, c.a, c.b, strict=True)]
    else:
        lines = [f"A: {c.a[0]}", f"B: {c.b[0]}"]
    lines += [f"dataset: {c.dataset}{sel}, {c.n_images} shared test images", ""]
    header = f"{'metric':<24} {'A %':>8} {'B %':>8} {'A-B pp':>8}  95% CI of A-B (pp)"
    lines += [header, "-" * len(header)]

    def f(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.2f}"

    for name, m in c.metrics.items():
        ci = "—" if m["ci95"] is None else _ci(m)
        diff = "—" if m["diff"] is None else f"{100 * m['diff']:+.2f}"
        arrow = " (lower is better)" if name in LOWER_IS_BETTER else ""
        lines.append(f"{name:<24} {f(m['a']):>8} {f(m['b']):>8} {diff:>8}  {ci}{arrow}")
    if c.multi:
        lines += ["", f"A %, B %: means over the {len(c.seeds)} seed pairs; per pair A-B (pp):"]
        for name in ("accuracy", c.primary):
            if name and c.metrics.get(name, {}).get("per_seed"):
                per = ", ".join(f"{s} {'—' if v is None else f'{100 * v:+.2f}'}"
                                for s, v in zip(c.seeds, c.metrics[name]["per_seed"], strict=True))
                lines.append(f"  {name}: {per}")
    if c.p_subgroup_effect is not None:
        def p_text(v: float | None) -> str:
            return "—" if v is None else f"{v:.3g}"

        sides = []
        for side in ("a", "b"):
            values = c.p_subgroup_effect[side]
            sides.append(f"{side.upper()} " + (p_text(values[0]) if not c.multi else ", ".join(
                f"{s} {p_text(v)}" for s, v in zip(c.seeds, values, strict=True))))
        lines += ["", f"p_subgroup_effect (each run's test of no subgroup effect, "
                  f"{c.p_subgroup_effect['permutations']} within-class permutations): {'; '.join(sides)}"]
    lines += ["", f"verdict: {c.verdict}", f"accuracy: {c.accuracy_verdict}"]
    lines += [f"warning: {w}" for w in c.warnings]
    if c.primary == "macro_std_excess":
        lines.append("macro_std_excess removes each run's own noise floor (MacroStd expected from sampling noise "
                     "alone); the verdict uses it, not raw MacroStd, which small cells inflate.")
    elif c.primary == "macro_std_debiased":
        lines.append("macro_std_debiased removes each class's binomial noise from MacroStd; the verdict uses it, "
                     "not raw MacroStd, which small cells inflate.")
    return "\n".join(lines) + "\n"
