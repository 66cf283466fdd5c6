"""Calibration bench: cifarb's estimates and 95 % intervals scored against known truth by simulation.

A scenario fixes true cell accuracies p_cg on a real test-set composition (the CIFAR10-B / CIFAR100-B
cell sizes n_cg of the full 10,000-image test sets, or the first 1,017 CIFAR-10 test images that the
demo bundles). Each simulated test set draws k_cg ~ Binomial(n_cg, p_cg) and is scored by cifarb's own
`metrics_from_counts` exactly as a user's predictions would be (same bootstrap, same permutation test).
Because p is known, every estimate has a true value: bias, RMSE, coverage and mean width follow.

Scenarios (true MacroStd at the composition in brackets, see the printed table):
  null       every cell of a class at the class accuracy (no subgroup effect)
  weak       a small subgroup effect (true MacroStd 1 %)
  realistic  CIFAR-10: a real model's cell pattern (the 93.3 % ResNet-56 of the CIFAR-10.1 repository's
             predictions, each class's deviations shrunk to their debiased size); CIFAR-100: a synthetic
             pattern at 4 %
  strong     a large subgroup effect (true MacroStd 10 %)
Class accuracies come from that ResNet-56 on CIFAR-10 and are drawn (seeded) in [0.55, 0.9] on
CIFAR-100; the synthetic patterns are a subgroup main effect plus a cell interaction, scaled by
bisection to the target. What each interval is scored against:
  macro_std_debiased, its CI   the true MacroStd (the model's spread at this composition)
  macro_std, excess, their CIs their own expectation at this composition (what the docs say they
                               cover); bias of macro_std is also shown against the true MacroStd
  worst cell / subgroup, gap   their true values (cells with >= 10 images for the worst cell)
  class / subgroup accuracies  each class's / subgroup's true accuracy (coverage averaged, and the worst)
  p_subgroup_effect            rejection rate at 5 % (the size under "null", power otherwise)

    nice python bench/calibration.py [--sets 300] [--bootstrap 1000] [--permutations 999]
                                     [--structures ...] [--scenarios ...] [--json FILE]
    nice python bench/calibration.py --paired 200 [--structures ...]   # ΔD of two models
    python bench/calibration.py --render FILE.json                      # tables of a saved run
    nice python bench/calibration.py --timing                           # seconds per result

Figures: docs/bench/calibration.md. A small version runs in tests/test_metrics_calibration.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.data.cifar_b import load_cifar_b
from cifarb.metrics import _engine as E
from cifarb.metrics import metrics_from_counts

SCENARIOS = ("null", "weak", "realistic", "strong")
STRUCTURES = ("cifar10-b", "cifar10-b-1017", "cifar100-b")
TARGET = {"weak": 0.01, "strong": 0.10}
REALISTIC_C100 = 0.04
REAL_MODEL = "resnet_basic_56"
PREDICTIONS = Path(__file__).resolve().parents[1].parent / "shared" / "cifar10.1-repo" / "model_predictions" \
    / "original_predictions"
MIN_CELL_SIZE_WORST = 10

# (name in the table, key in the result, key in ci95 or None, what the truth is)
SCALARS = (
    ("accuracy", "accuracy", "accuracy"),
    ("macro_std_debiased", "macro_std_debiased", "macro_std_debiased"),
    ("macro_std", "macro_std", "macro_std"),
    ("macro_std_excess", "macro_std_excess", "macro_std_excess"),
    ("worst_cell_accuracy", "worst_cell_accuracy", "worst_cell_accuracy"),
    ("worst_subgroup_accuracy", "worst_subgroup_accuracy", "worst_subgroup_accuracy"),
    ("subgroup_gap", "subgroup_gap", "subgroup_gap"),
    ("mean_cell_accuracy", "mean_cell_accuracy", "mean_cell_accuracy"),
)


def structure(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, labels, subgroups) of a real test-set composition."""
    bundle = load_cifar_b("cifar100" if name == "cifar100-b" else "cifar10")
    labels, groups = bundle.labels, bundle.subgroups
    if name == "cifar10-b-1017":
        labels, groups = labels[:1017], groups[:1017]
    C, G = len(bundle.class_names), len(bundle.subgroup_names)
    n = np.bincount(labels * G + groups, minlength=C * G).reshape(C, G)
    return n, labels, groups


def real_model_cells(G: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(class accuracies, debiased cell pattern) of the real CIFAR-10 model on the full test set."""
    path = PREDICTIONS / f"{REAL_MODEL}_predictions.json"
    if not path.exists():
        return None
    bundle = load_cifar_b("cifar10")
    pred = np.asarray(json.loads(path.read_text()), dtype=np.int64)
    n, k = E.cell_counts(bundle.labels, pred == bundle.labels, bundle.subgroups, 10, G)
    a = E.cell_accuracy(n, k)
    w = n / n.sum(axis=1, keepdims=True)
    m = (w * a).sum(axis=1)
    var, noise, _ = E.debiased_terms(n, k)
    shrink = np.sqrt(np.maximum(var - noise, 0.0) / var)
    return m, np.where(n > 0, m[:, None] + shrink[:, None] * (a - m[:, None]), m[:, None])


def scaled(n: np.ndarray, m: np.ndarray, pattern: np.ndarray, target: float) -> np.ndarray:
    """p = clip(m_c + s * pattern) with s chosen so that the true MacroStd at composition n is `target`."""
    lo, hi = 0.0, 1.0
    while E.true_macro_std(n, np.clip(m[:, None] + hi * pattern, 0.01, 0.999)) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if E.true_macro_std(n, np.clip(m[:, None] + mid * pattern, 0.01, 0.999)) < target:
            lo = mid
        else:
            hi = mid
    return np.clip(m[:, None] + hi * pattern, 0.01, 0.999)


def scenario_p(struct: str, scenario: str, n: np.ndarray, seed: int = 0) -> np.ndarray:
    """True cell accuracies (C, G) of one scenario on one composition."""
    C, G = n.shape
    rng = np.random.default_rng([seed, C])
    real = real_model_cells(G) if C == 10 else None
    if C == 10 and real is None:
        raise SystemExit(f"needs the CIFAR-10.1 repository's predictions under {PREDICTIONS}")
    m = real[0] if real is not None else rng.uniform(0.55, 0.9, size=C)
    pattern = rng.normal(size=(1, G)) + 0.7 * rng.normal(size=(C, G))
    if scenario == "null":
        return np.repeat(m[:, None], G, axis=1)
    if scenario == "realistic":
        if real is not None:
            return real[1]
        return scaled(n, m, pattern, REALISTIC_C100)
    return scaled(n, m, pattern, TARGET[scenario])


def truths(n: np.ndarray, p: np.ndarray, rng: np.random.Generator, draws: int = 4000) -> dict[str, Any]:
    """The true value of every scored quantity (expectations of the plug-ins by Monte Carlo)."""
    present = n > 0
    n_g = n.sum(axis=0)
    sub = (n * p).sum(axis=0) / np.maximum(n_g, 1)
    sub_present = sub[n_g > 0]
    qual = present & (n >= MIN_CELL_SIZE_WORST)
    m_c = (n * p).sum(axis=1) / np.maximum(n.sum(axis=1), 1)
    sims = E.binomial_replicates(n, p, draws, rng)
    null_sims = E.binomial_replicates(n, np.repeat(m_c[:, None], n.shape[1], axis=1), draws, rng)
    expected_ms = float(E.macro_std(n, sims).mean())
    return {
        "accuracy": float((n * p).sum() / n.sum()),
        "macro_std_debiased": float(E.true_macro_std(n, p)),
        "macro_std": expected_ms,
        "macro_std_excess": expected_ms - float(E.macro_std(n, null_sims).mean()),
        "worst_cell_accuracy": float(p[qual].min()) if qual.any() else None,
        "worst_subgroup_accuracy": float(sub_present.min()),
        "subgroup_gap": float(sub_present.max() - sub_present.min()),
        "mean_cell_accuracy": float(p[present].mean()),
        "class_accuracy": m_c,
        "subgroup_accuracy": sub,
        "true_macro_std": float(E.true_macro_std(n, p)),
    }


def simulate(n: np.ndarray, p: np.ndarray, sets: int, *, seed: int, bootstrap: int, permutations: int,
             progress: bool = False) -> list[dict[str, Any]]:
    """`sets` simulated test sets scored by cifarb, as result dicts."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(sets):
        k = rng.binomial(n, p)
        m = metrics_from_counts(n, k, bootstrap=bootstrap, seed=i, permutations=permutations,
                                min_cell_size_worst=MIN_CELL_SIZE_WORST)
        out.append(m.to_dict())
        if progress and (i + 1) % 100 == 0:
            print(f"  {i + 1}/{sets}", file=sys.stderr, flush=True)
    return out


def score(results: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Bias, RMSE, coverage and mean width of every estimate/interval; rejection rate of the test."""
    rows: dict[str, dict[str, float | None]] = {}
    for name, key, ci_key in SCALARS:
        t = truth[name]
        if t is None:
            continue
        est = np.array([r[key] for r in results], dtype=float)
        cis = [r["ci95"][ci_key] if r["ci95"] else None for r in results]
        row: dict[str, float | None] = {"truth": t, "bias": float(np.nanmean(est - t)),
                                        "rmse": float(np.sqrt(np.nanmean((est - t) ** 2)))}
        if all(c is not None for c in cis):
            lo, hi = np.array(cis, dtype=float).T
            row["coverage"] = float(np.mean((lo <= t + 1e-12) & (t - 1e-12 <= hi)))
            row["width"] = float(np.mean(hi - lo))
            row["contains_estimate"] = float(np.mean((lo <= est + 1e-12) & (est - 1e-12 <= hi)))
        rows[name] = row
    # the plug-in and the excess against the true MacroStd: the bias a reader of either would suffer
    true_ms = truth["true_macro_std"]
    for name, key in (("macro_std vs true MacroStd", "macro_std"), ("excess vs true MacroStd", "macro_std_excess")):
        est = np.array([r[key] for r in results], dtype=float)
        rows[name] = {"truth": true_ms, "bias": float(np.mean(est - true_ms)),
                      "rmse": float(np.sqrt(np.mean((est - true_ms) ** 2)))}
    for what in ("class_accuracy", "subgroup_accuracy"):
        t = truth[what]
        names = list(results[0][what])
        cover, width = [], []
        for j, nm in enumerate(names):
            if results[0][what][nm] is None:
                continue
            cis = np.array([r[f"{what}_ci95"][nm] for r in results], dtype=float)
            cover.append(np.mean((cis[:, 0] <= t[j] + 1e-12) & (t[j] - 1e-12 <= cis[:, 1])))
            width.append(np.mean(cis[:, 1] - cis[:, 0]))
        rows[what] = {"coverage": float(np.mean(cover)), "worst_coverage": float(np.min(cover)),
                      "width": float(np.mean(width))}
    pv = np.array([r["p_subgroup_effect"] for r in results], dtype=float)
    rows["p_subgroup_effect"] = {"reject_5pct": float(np.mean(pv <= 0.05))}
    return rows


def run(structures: list[str], scenarios: list[str], sets: int, bootstrap: int, permutations: int,
        progress: bool = False, json_path: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for struct in structures:
        n, _, _ = structure(struct)
        for scenario in scenarios:
            p = scenario_p(struct, scenario, n)
            truth = truths(n, p, np.random.default_rng(1))
            t0 = time.perf_counter()
            results = simulate(n, p, sets, seed=2, bootstrap=bootstrap, permutations=permutations,
                               progress=progress)
            seconds = (time.perf_counter() - t0) / sets
            key = f"{struct}/{scenario}"
            out[key] = {"rows": score(results, truth), "seconds_per_result": seconds,
                        "true_macro_std": truth["true_macro_std"]}
            if progress:  # each block as soon as it is done: the full run takes long
                print(markdown({key: out[key]}), flush=True)
                if json_path:
                    Path(json_path).write_text(json.dumps(out, indent=1))
    return out


def paired_worlds(struct: str, n: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two models' true cell accuracies (A, B) for the paired comparison.

    "accuracy only": neither has a subgroup effect and A is 3 points more accurate (true ΔD = 0);
    "A fairer": A has no subgroup effect, B a weak one (true MacroStd 2 %), same accuracy.
    """
    null = scenario_p(struct, "null", n)
    m = null[:, 0]
    C, G = n.shape
    rng = np.random.default_rng([5, C])
    pattern = rng.normal(size=(1, G)) + 0.7 * rng.normal(size=(C, G))
    return {"accuracy only": (np.clip(null + 0.03, 0, 0.999), null),
            "A fairer": (null, scaled(n, m, pattern, 0.02))}


def simulate_paired(struct: str, sets: int, *, bootstrap: int, seed: int = 3) -> dict[str, dict[str, float]]:
    """Coverage of ΔD's interval (`paired_bootstrap`) and how often each difference's CI calls A fairer."""
    from cifarb.metrics import paired_bootstrap

    n, labels, groups = structure(struct)
    C = n.shape[0]
    cell = labels * n.shape[1] + groups
    out = {}
    for name, (pa, pb) in paired_worlds(struct, n).items():
        true_diff = float(E.true_macro_std(n, pa) - E.true_macro_std(n, pb))
        rng = np.random.default_rng(seed)
        cover, fair_d, fair_ms, width = [], [], [], []
        for i in range(sets):
            u = rng.random(labels.size)  # shared: the models find the same images hard (paired errors)
            ya = np.where(u < pa.ravel()[cell], labels, (labels + 1) % C)
            yb = np.where(u < pb.ravel()[cell], labels, (labels + 1) % C)
            res = paired_bootstrap(labels, ya, yb, groups, n_classes=C, n_subgroups=n.shape[1],
                                   bootstrap=bootstrap, seed=i, null_draws=100)
            lo, hi = res["macro_std_debiased"]["ci95"]
            cover.append(lo <= true_diff <= hi)
            width.append(hi - lo)
            fair_d.append(hi < 0)
            fair_ms.append(res["macro_std"]["ci95"][1] < 0)
        out[name] = {"true_diff": true_diff, "coverage": float(np.mean(cover)), "width": float(np.mean(width)),
                     "A_fairer_by_dD": float(np.mean(fair_d)), "A_fairer_by_dMacroStd": float(np.mean(fair_ms))}
    return out


def paired_markdown(struct: str, rows: dict[str, dict[str, float]]) -> str:
    lines = [f"### paired comparison on {struct}", "",
             "| world | true ΔD pp | ΔD CI coverage % | width pp | 'A fairer' by ΔD % | 'A fairer' by ΔMacroStd % |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {100 * r['true_diff']:+.2f} | {100 * r['coverage']:.1f} | {100 * r['width']:.2f} | "
                     f"{100 * r['A_fairer_by_dD']:.1f} | {100 * r['A_fairer_by_dMacroStd']:.1f} |")
    return "\n".join(lines) + "\n"


def timing(struct: str, repeats: int = 5) -> str:
    """CPU seconds per result of D's interval and of the permutation test, against all of compute_metrics
    without them (the reference, same run): median of `repeats` calls on the realistic scenario.

    CPU time (time.process_time), not wall time: on a shared, loaded machine wall time mostly measures
    the other jobs; the work is single-threaded numpy, so CPU time is what an idle machine takes.
    """
    n, _, _ = structure(struct)
    k = np.random.default_rng(0).binomial(n, scenario_p(struct, "realistic", n))

    def median(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        return float(np.median(times))

    ref = median(lambda: metrics_from_counts(n, k, bootstrap=1000, permutations=0))
    ci = median(lambda: E.debiased_interval(n, k, min_cell_size=1, rng_seed=np.random.SeedSequence(0)))
    perm = median(lambda: E.permutation_null(n, k, 999, np.random.default_rng(0)))
    base = ref - ci  # compute_metrics with permutations=0 still computes D's interval
    return (f"| {struct} | {base:.3f} | {ci:.3f} ({ci / base:.1f}x) | {perm:.3f} ({perm / base:.1f}x) | "
            f"{base + ci + perm:.3f} |")


def _f(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "—"
    return f"{100 * v:+.2f}" if pct else f"{100 * v:.1f}"


def _w(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def summary(out: dict[str, Any]) -> str:
    """One row per scenario: every interval's coverage (%), D's and the plug-in's bias (pp), the test's rejections."""
    cols = [("accuracy", "acc"), ("macro_std_debiased", "D"), ("macro_std", "MacroStd"),
            ("macro_std_excess", "excess"), ("worst_cell_accuracy", "worst cell"),
            ("worst_subgroup_accuracy", "worst sub."), ("subgroup_gap", "gap"), ("mean_cell_accuracy", "mean cell")]
    head = ("| scenario | true MacroStd % | D bias pp | plug-in bias pp | D CI width pp | "
            + " | ".join(f"{label} cov. %" for _, label in cols)
            + " | class cov. % (worst) | subgroup cov. % (worst) | p ≤ 0.05 % |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, block in out.items():
        r = block["rows"]
        cov = " | ".join(_f(r[name].get("coverage"), False) if name in r else "—" for name, _ in cols)
        lines.append(
            f"| {key} | {100 * block['true_macro_std']:.2f} | {_f(r['macro_std_debiased']['bias'])} | "
            f"{_f(r['macro_std vs true MacroStd']['bias'])} | {_w(r['macro_std_debiased'].get('width'))} | {cov} | "
            f"{_f(r['class_accuracy']['coverage'], False)} ({_f(r['class_accuracy']['worst_coverage'], False)}) | "
            f"{_f(r['subgroup_accuracy']['coverage'], False)} ({_f(r['subgroup_accuracy']['worst_coverage'], False)}) | "
            f"{_f(r['p_subgroup_effect']['reject_5pct'], False)} |")
    return "\n".join(lines) + "\n"


def markdown(out: dict[str, Any]) -> str:
    lines = []
    for key, block in out.items():
        lines += [f"### {key} (true MacroStd {100 * block['true_macro_std']:.2f} %, "
                  f"{block['seconds_per_result']:.3f} s wall per result on the loaded machine)", "",
                  "| quantity | truth % | bias pp | RMSE pp | coverage % | width pp | contains estimate % |",
                  "|---|---|---|---|---|---|---|"]
        for name, row in block["rows"].items():
            if name in ("class_accuracy", "subgroup_accuracy"):
                lines.append(f"| {name} (mean / worst over {name.split('_')[0].replace('class', 'classe')}s) | | | | "
                             f"{_f(row['coverage'], False)} / {_f(row['worst_coverage'], False)} | "
                             f"{100 * row['width']:.2f} | |")
            elif name == "p_subgroup_effect":
                lines.append(f"| p_subgroup_effect ≤ 0.05 | | | | rejects {_f(row['reject_5pct'], False)} | | |")
            else:
                lines.append(f"| {name} | {100 * row['truth']:.2f} | {_f(row['bias'])} | {100 * row['rmse']:.2f} | "
                             f"{_f(row.get('coverage'), False)} | "
                             f"{_w(row.get('width'))} | "
                             f"{_f(row.get('contains_estimate'), False)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=int, default=300, help="simulated test sets per scenario (default 300)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--structures", nargs="+", default=list(STRUCTURES), choices=STRUCTURES)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--json", help="also write the raw figures to this file")
    ap.add_argument("--paired", type=int, metavar="SETS",
                    help="instead: the paired comparison (ΔD) with SETS simulated pairs of models per world")
    ap.add_argument("--timing", action="store_true", help="instead: seconds per result of D's CI and the test")
    ap.add_argument("--render", metavar="JSON", help="instead: print the tables of a --json file again")
    args = ap.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        print(summary(saved))
        print(markdown(saved))
        return 0
    if args.timing:
        print("| composition | rest of compute_metrics, CPU s | D's interval, CPU s (x rest) | "
              "permutation test, CPU s (x rest) | total CPU s |\n|---|---|---|---|---|")
        for struct in args.structures:
            print(timing(struct), flush=True)
        return 0
    if args.paired:
        for struct in args.structures:
            print(paired_markdown(struct, simulate_paired(struct, args.paired, bootstrap=args.bootstrap)), flush=True)
        return 0
    print(f"# python {platform.python_version()}, numpy {np.__version__}; {args.sets} sets per scenario, "
          f"bootstrap {args.bootstrap}, permutations {args.permutations}", flush=True)
    t0 = time.perf_counter()
    run(args.structures, args.scenarios, args.sets, args.bootstrap, args.permutations, progress=True,
        json_path=args.json)
    print(f"# total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
