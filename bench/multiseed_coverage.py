"""Coverage of `cifarb compare`'s two-level (images x seeds) bootstrap, by simulation.

A world with known truth: C classes x G subgroups; method M's cell (c, g) has accuracy p_M[c, g];
each training seed moves every cell's logit by N(0, sd_seed); each test image has a difficulty
N(0, sd_image) shared by every model (that is what pairing exploits). A test set is drawn once per
replicate and scored by S seeds of A and of B; `multiseed_paired_bootstrap` gives the 95 % CI of
mean_s(metric(A_s) - metric(B_s)), which should cover the true difference of the methods:

- accuracy: E over seeds and images of A's accuracy minus B's;
- MacroStd (what macro_std_excess and macro_std_debiased estimate): E over seeds of the population
  MacroStd of the seed's expected cell accuracies, A minus B.

Prints one line per scenario: the empirical coverage (with its binomial standard error) and the
mean CI width. Not a test: run it by hand, e.g.
    python bench/multiseed_coverage.py --reps 200 --bootstrap 400
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from cifarb.metrics.multiseed import multiseed_paired_bootstrap

C, G = 10, 4
HERMITE = np.polynomial.hermite_e.hermegauss(40)  # nodes, weights for E over N(0, 1)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def expected_cell_acc(logits: np.ndarray, sd_image: float) -> np.ndarray:
    """E over image difficulty of the cell accuracy, for logits of shape (..., C, G)."""
    nodes, weights = HERMITE
    vals = _expit(logits[..., None] + sd_image * nodes)
    return (vals * weights).sum(-1) / weights.sum()


def population_macro_std(q: np.ndarray, pi: np.ndarray) -> np.ndarray:
    w = pi / pi.sum(axis=1, keepdims=True)
    m = (w * q).sum(-1)
    return np.sqrt((w * (q - m[..., None]) ** 2).sum(-1)).mean(-1)


def truth(p: np.ndarray, pi: np.ndarray, sd_seed: float, sd_image: float, rng: np.random.Generator) -> dict[str, float]:
    """True accuracy and MacroStd of a method (expectation over seeds by Monte Carlo, images by quadrature)."""
    tau = rng.normal(0, sd_seed, size=(4000, C, G))
    q = expected_cell_acc(_logit(p) + tau, sd_image)
    return {"accuracy": float((q * pi).sum((-2, -1)).mean()), "macro_std": float(population_macro_std(q, pi).mean())}


def scenario(name: str, p_a: np.ndarray, p_b: np.ndarray, seeds: int, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    pi = np.full((C, G), 1.0 / (C * G))
    pi[:, -1] *= 0.25  # one rare subgroup: small cells, as in CIFAR-B
    pi /= pi.sum()
    ta, tb = (truth(p, pi, args.sd_seed, args.sd_image, rng) for p in (p_a, p_b))
    target = {"accuracy": ta["accuracy"] - tb["accuracy"],
              "macro_std_excess": ta["macro_std"] - tb["macro_std"],
              "macro_std_debiased": ta["macro_std"] - tb["macro_std"]}
    hits: dict[str, list[bool]] = {k: [] for k in target}
    widths: dict[str, list[float]] = {k: [] for k in target}
    t0 = time.perf_counter()
    for rep in range(args.reps):
        cell = rng.choice(C * G, size=args.images, p=pi.ravel())
        y, g = cell // G, cell % G
        beta = rng.normal(0, args.sd_image, size=args.images)
        pairs = []
        for _ in range(seeds):
            preds = []
            for p in (p_a, p_b):
                logit = _logit(p) + rng.normal(0, args.sd_seed, size=(C, G))
                right = rng.random(args.images) < _expit(logit[y, g] + beta)
                preds.append(np.where(right, y, (y + 1) % C))
            pairs.append((y, g, preds[0], preds[1]))
        res = multiseed_paired_bootstrap(pairs, same_images=True, n_classes=C, n_subgroups=G,
                                         bootstrap=args.bootstrap, seed=rep, null_draws=200)
        for k in target:
            if k not in res or res[k]["ci95"] is None:
                continue
            lo, hi = res[k]["ci95"]
            hits[k].append(lo <= target[k] <= hi)
            widths[k].append(hi - lo)
    dt = time.perf_counter() - t0
    for k in target:
        if not hits[k]:
            print(f"{name:<34} S={seeds:<2} {k:<20} (not computed by this build)")
            continue
        cov = float(np.mean(hits[k]))
        se = math.sqrt(cov * (1 - cov) / len(hits[k]))
        print(f"{name:<34} S={seeds:<2} {k:<20} truth {100 * target[k]:+6.2f} pp  coverage {100 * cov:5.1f} % "
              f"± {100 * se:.1f}  mean width {100 * float(np.mean(widths[k])):5.2f} pp  ({len(hits[k])} reps, {dt:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=400)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--sd-seed", type=float, default=0.15, help="seed-to-seed sd of each cell's logit")
    ap.add_argument("--sd-image", type=float, default=1.0, help="sd of image difficulty (logit scale)")
    ap.add_argument("--seeds", default="1,3,5")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    base = np.clip(np.linspace(0.6, 0.9, C)[:, None] + np.zeros((C, G)), 0.05, 0.95)
    uneven = base + np.array([0.05, 0.0, -0.05, -0.15])[None, :]
    print(f"images {args.images}, sd_seed {args.sd_seed}, sd_image {args.sd_image}, bootstrap {args.bootstrap}")
    for s in (int(x) for x in args.seeds.split(",")):
        scenario("no difference (A = B)", base, base, s, args)
        scenario("real difference (B uneven)", base, uneven, s, args)


if __name__ == "__main__":
    main()
