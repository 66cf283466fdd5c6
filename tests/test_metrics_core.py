"""Point estimates of cifarb.metrics against a plain-loop reference, a hand-computed example and properties."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifarb.metrics import MetricsInputError, accuracy_only, compute_metrics, metrics_from_counts

# CIFAR10-B cell sizes (class x subgroup), from ../shared/cifar-b/FORMAT.md
CIFAR10_B_CELLS = np.array([
    [85, 112, 609, 81, 7, 102, 4, 0],
    [177, 262, 147, 130, 34, 230, 15, 5],
    [453, 58, 179, 32, 32, 237, 0, 9],
    [171, 130, 137, 57, 84, 299, 63, 59],
    [604, 27, 99, 8, 25, 227, 4, 6],
    [271, 90, 124, 39, 81, 297, 58, 40],
    [417, 64, 75, 56, 49, 238, 15, 86],
    [493, 29, 108, 41, 50, 251, 7, 21],
    [71, 88, 711, 45, 15, 56, 0, 14],
    [121, 180, 278, 187, 24, 177, 2, 31],
])


def reference(labels, preds, groups, min_cell_size=1, min_cell_size_worst=10):
    """DESIGN.md's definitions written as plain Python loops over samples (independent of cifarb)."""
    cells: dict[tuple[int, int], list[int]] = {}
    for y, p, g in zip(labels.tolist(), preds.tolist(), groups.tolist()):
        cells.setdefault((y, g), []).append(int(y == p))
    acc = {key: sum(v) / len(v) for key, v in cells.items()}
    size = {key: len(v) for key, v in cells.items()}
    out = {"accuracy": sum(sum(v) for v in cells.values()) / len(labels)}
    classes = sorted({c for c, _ in cells})
    groups_present = sorted({g for _, g in cells})
    out["class_accuracy"] = {
        c: sum(sum(v) for (cc, _), v in cells.items() if cc == c) / sum(n for (cc, _), n in size.items() if cc == c)
        for c in classes
    }
    stds = []
    for c in classes:
        kept = [(size[key], acc[key]) for key in cells if key[0] == c and size[key] >= min_cell_size]
        if not kept:
            continue
        total = sum(n for n, _ in kept)
        m = sum(n * a for n, a in kept) / total
        stds.append(math.sqrt(sum(n / total * (a - m) ** 2 for n, a in kept)))
    out["macro_std"] = sum(stds) / len(stds) if stds else None
    big = [acc[key] for key in cells if size[key] >= min_cell_size_worst]
    out["worst_cell_accuracy"] = min(big) if big else None
    sub = {}
    for g in groups_present:
        right = sum(sum(v) for (_, gg), v in cells.items() if gg == g)
        sub[g] = right / sum(n for (_, gg), n in size.items() if gg == g)
    out["subgroup_accuracy"] = sub
    out["worst_subgroup_accuracy"] = min(sub.values())
    out["subgroup_gap"] = max(sub.values()) - min(sub.values())
    out["mean_cell_accuracy"] = sum(acc.values()) / len(acc)
    return out


@st.composite
def datasets(draw, max_classes=5, max_groups=4, max_n=150):
    n_classes = draw(st.integers(1, max_classes))
    n_groups = draw(st.integers(1, max_groups))
    n = draw(st.integers(1, max_n))
    ints = st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)
    labels = np.array(draw(ints))
    groups = np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=n, max_size=n)))
    # predictions: mostly right, so cell accuracies spread over [0, 1]
    right = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    other = np.array(draw(ints))
    preds = np.where(right, labels, other)
    return labels, preds, groups, n_classes, n_groups


def assert_close(a, b):
    if a is None or b is None:
        assert a is None and b is None, (a, b)
    else:
        assert a == pytest.approx(b, abs=1e-12), (a, b)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(datasets(), st.integers(1, 6), st.integers(1, 12))
def test_agrees_with_plain_loop_reference(data, min_cell_size, min_cell_size_worst):
    labels, preds, groups, n_classes, n_groups = data
    m = compute_metrics(labels, preds, groups, n_classes=n_classes, n_subgroups=n_groups, bootstrap=0,
                        min_cell_size=min_cell_size, min_cell_size_worst=min_cell_size_worst, null_draws=5)
    ref = reference(labels, preds, groups, min_cell_size, min_cell_size_worst)
    for name in ("accuracy", "macro_std", "worst_cell_accuracy", "worst_subgroup_accuracy", "subgroup_gap",
                 "mean_cell_accuracy"):
        assert_close(getattr(m, name), ref[name])
    for c in range(n_classes):
        assert_close(m.class_accuracy[str(c)], ref["class_accuracy"].get(c))
    for g in range(n_groups):
        assert_close(m.subgroup_accuracy[str(g)], ref["subgroup_accuracy"].get(g))
    # cells: exactly the non-empty ones, with their sizes
    assert {(c["class"], c["subgroup"]): c["n"] for c in m.cells} == {
        (str(y), str(g)): int(((labels == y) & (groups == g)).sum())
        for y, g in set(zip(labels.tolist(), groups.tolist()))
    }
    assert sum(c["n"] for c in m.cells) == labels.size


@FAST
@given(datasets(), st.randoms(use_true_random=False))
def test_invariant_to_permuting_samples(data, rnd):
    labels, preds, groups, n_classes, n_groups = data
    order = list(range(labels.size))
    rnd.shuffle(order)
    kw = {"n_classes": n_classes, "n_subgroups": n_groups, "bootstrap": 50, "null_draws": 20, "seed": 3}
    a = compute_metrics(labels, preds, groups, **kw).to_dict()
    b = compute_metrics(labels[order], preds[order], groups[order], **kw).to_dict()
    assert a == b  # every metric and CI is a function of the cell counts alone


@FAST
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 5), st.lists(st.integers(1, 5), min_size=1, max_size=4)),
                min_size=1, max_size=5))
def test_macro_std_is_zero_when_cells_of_a_class_share_accuracy(spec):
    """Class c: every cell has q_c * mult images of which r_c * mult are right (same accuracy r_c / q_c)."""
    labels, preds, groups = [], [], []
    for c, (q, r, mults) in enumerate(spec):
        r = min(r, q)
        for g, mult in enumerate(mults):
            n, right = q * mult, r * mult
            labels += [c] * n
            groups += [g] * n
            preds += [c] * right + [(c + 1) % len(spec) if len(spec) > 1 else c + 1] * (n - right)
    labels, preds, groups = map(np.array, (labels, preds, groups))
    m = compute_metrics(labels, preds, groups, n_classes=max(len(spec), int(preds.max()) + 1), bootstrap=0)
    assert m.macro_std == pytest.approx(0.0, abs=1e-12)


@FAST
@given(datasets(max_n=200), st.integers(2, 8))
def test_min_cell_size_renormalises_over_kept_cells(data, m):
    """MacroStd with min_cell_size=m equals MacroStd of the data with the small cells' images removed
    (weights and m_c recomputed over the kept cells); the other metrics do not change."""
    labels, preds, groups, n_classes, n_groups = data
    kw = {"n_classes": n_classes, "n_subgroups": n_groups, "bootstrap": 0, "null_draws": 5}
    full = compute_metrics(labels, preds, groups, **kw)
    dropped = compute_metrics(labels, preds, groups, min_cell_size=m, **kw)
    cell_size = {key: int(v) for key, v in zip(*np.unique(labels * n_groups + groups, return_counts=True))}
    keep = np.array([cell_size[y * n_groups + g] >= m for y, g in zip(labels, groups)])
    if keep.any():
        reduced = compute_metrics(labels[keep], preds[keep], groups[keep], **kw)
        assert dropped.macro_std == pytest.approx(reduced.macro_std, abs=1e-12)
    else:
        assert dropped.macro_std is None
    for name in ("accuracy", "worst_cell_accuracy", "worst_subgroup_accuracy", "subgroup_gap",
                 "mean_cell_accuracy"):
        assert getattr(dropped, name) == getattr(full, name)
    assert dropped.class_accuracy == full.class_accuracy
    assert dropped.cells == full.cells


def tiny():
    """Class 0: g0 3/4 right, g1 1/2 right; class 1: g0 2/2 right, g1 0/2 right (10 images)."""
    cells = [(0, 0, 4, 3), (0, 1, 2, 1), (1, 0, 2, 2), (1, 1, 2, 0)]
    labels, preds, groups = [], [], []
    for c, g, n, k in cells:
        labels += [c] * n
        groups += [g] * n
        preds += [c] * k + [1 - c] * (n - k)
    return np.array(labels), np.array(preds), np.array(groups)


def test_golden_tiny_example():
    labels, preds, groups = tiny()
    m = compute_metrics(labels, preds, groups, class_names=["cat", "dog"], subgroup_names=["green", "blue"],
                        bootstrap=0, min_cell_size_worst=2)
    assert m.accuracy == pytest.approx(0.6)
    assert m.class_accuracy == pytest.approx({"cat": 4 / 6, "dog": 0.5})
    # class cat: weights 2/3, 1/3 around 2/3 -> var 1/72; class dog: weights 1/2 around 1/2 -> var 1/4
    assert m.macro_std == pytest.approx((1 / math.sqrt(72) + 0.5) / 2)
    assert m.macro_std == pytest.approx(0.30892556509887896)
    assert m.worst_cell_accuracy == 0.0
    assert m.subgroup_accuracy == pytest.approx({"green": 5 / 6, "blue": 0.25})
    assert m.worst_subgroup_accuracy == pytest.approx(0.25)
    assert m.subgroup_gap == pytest.approx(5 / 6 - 0.25)
    assert m.mean_cell_accuracy == pytest.approx(0.5625)
    assert m.cells == [
        {"class": "cat", "subgroup": "green", "n": 4, "accuracy": 0.75},
        {"class": "cat", "subgroup": "blue", "n": 2, "accuracy": 0.5},
        {"class": "dog", "subgroup": "green", "n": 2, "accuracy": 1.0},
        {"class": "dog", "subgroup": "blue", "n": 2, "accuracy": 0.0},
    ]
    # min_cell_size 3: cat keeps only green (std 0), dog keeps nothing (skipped) -> 0
    assert compute_metrics(labels, preds, groups, bootstrap=0, min_cell_size=3).macro_std == 0.0
    assert compute_metrics(labels, preds, groups, bootstrap=0, min_cell_size=5).macro_std is None
    # worst cell: only cells with n >= 3 count -> cat/green 0.75; none with n >= 5
    assert compute_metrics(labels, preds, groups, bootstrap=0, min_cell_size_worst=3).worst_cell_accuracy == 0.75
    assert compute_metrics(labels, preds, groups, bootstrap=0, min_cell_size_worst=5).worst_cell_accuracy is None


def exact_null(cells):
    """E[MacroStd] when cell (c, g) has Binomial(n, m_c) right answers: exact enumeration."""
    by_class: dict[int, list[int]] = {}
    for c, _, n, _ in cells:
        by_class.setdefault(c, []).append(n)
    m_c = {c: sum(k for cc, _, _, k in cells if cc == c) / sum(ns) for c, ns in by_class.items()}
    total = 0.0
    for c, ns in by_class.items():
        expected = 0.0
        for ks in product(*[range(n + 1) for n in ns]):
            prob = math.prod(math.comb(n, k) * m_c[c] ** k * (1 - m_c[c]) ** (n - k) for n, k in zip(ns, ks))
            a = [k / n for n, k in zip(ns, ks)]
            w = [n / sum(ns) for n in ns]
            mean = sum(wi * ai for wi, ai in zip(w, a))
            expected += prob * math.sqrt(sum(wi * (ai - mean) ** 2 for wi, ai in zip(w, a)))
        total += expected
    return total / len(by_class)


def test_noise_floor_matches_exact_enumeration():
    labels, preds, groups = tiny()
    m = compute_metrics(labels, preds, groups, bootstrap=0, null_draws=40_000, seed=1)
    exact = exact_null([(0, 0, 4, 3), (0, 1, 2, 1), (1, 0, 2, 2), (1, 1, 2, 0)])
    # Monte Carlo error of a mean of 40k draws of a quantity with sd < 0.2: < 0.001
    assert m.macro_std_null == pytest.approx(exact, abs=0.004)
    assert m.macro_std_excess == pytest.approx(m.macro_std - m.macro_std_null)


def cifar10_b_like(rng, class_acc, scale=1.0):
    """Labels/subgroups with the CIFAR10-B cell structure and predictions with no subgroup effect."""
    sizes = np.rint(CIFAR10_B_CELLS * scale).astype(int)
    labels = np.repeat(np.arange(10), sizes.sum(axis=1))
    groups = np.concatenate([np.repeat(np.arange(8), row) for row in sizes])
    right = rng.random(labels.size) < class_acc[labels]
    return labels, np.where(right, labels, (labels + 1) % 10), groups


@pytest.mark.parametrize("scale, lo, hi", [(1.0, 0.01, 0.03), (0.1017, 0.04, 0.14)])
def test_noise_floor_equals_macro_std_of_data_without_subgroup_effect(scale, lo, hi):
    """Simulate many test sets where accuracy depends on the class only: their mean MacroStd is the
    floor, and the floor estimated from any one of them must be close to it (DESIGN.md: ~0.02 on the
    full CIFAR-10 test set, ~0.06-0.12 on 1,017 images)."""
    rng = np.random.default_rng(0)
    class_acc = np.linspace(0.85, 0.97, 10)
    sims, floors = [], []
    for i in range(120):
        labels, preds, groups = cifar10_b_like(rng, class_acc, scale)
        m = compute_metrics(labels, preds, groups, bootstrap=0, null_draws=200 if i < 10 else 1, seed=i)
        sims.append(m.macro_std)
        if i < 10:
            floors.append(m.macro_std_null)
    truth = float(np.mean(sims))
    assert lo < truth < hi
    for floor in floors:  # each estimate (from one simulated set, with estimated m_c) is within 15 %
        assert floor == pytest.approx(truth, rel=0.15)
    assert np.mean(floors) == pytest.approx(truth, rel=0.06)


def test_names_views_and_frame():
    labels, preds, groups = tiny()
    m = compute_metrics(labels, preds, groups, class_names=["cat", "dog"], subgroup_names=["green", "blue"],
                        bootstrap=200)
    assert m.overall == m.accuracy and m.n_images == 10
    assert m.by_class.to_dict() == pytest.approx(m.class_accuracy)
    assert m.by_subgroup.to_dict() == pytest.approx(m.subgroup_accuracy)
    frame = m.to_frame()
    assert list(frame.columns) == ["class", "subgroup", "n", "correct", "accuracy", "ci_lo", "ci_hi"]
    assert frame["n"].tolist() == [4, 2, 2, 2] and frame["correct"].tolist() == [3, 1, 2, 0]
    assert (frame["ci_lo"] <= frame["accuracy"]).all() and (frame["accuracy"] <= frame["ci_hi"]).all()
    d = m.to_dict()
    assert d["settings"] == {"bootstrap": 200, "seed": 0, "min_cell_size": 1, "min_cell_size_worst": 10,
                             "subgroup_names": ["green", "blue"], "macro_std_null_draws": 1000,
                             "permutations": 999}
    assert d["worst_cell_accuracy"] is None and d["ci95"]["worst_cell_accuracy"] is None  # no cell >= 10


def test_empty_classes_and_subgroups_are_null_not_zero():
    labels = np.array([0, 0, 2, 2])
    m = compute_metrics(labels, labels, np.array([0, 1, 0, 1]), n_classes=3, n_subgroups=3, bootstrap=20)
    assert m.class_accuracy == {"0": 1.0, "1": None, "2": 1.0}
    assert m.subgroup_accuracy == {"0": 1.0, "1": 1.0, "2": None}
    assert m.subgroup_gap == 0.0 and m.macro_std == 0.0
    assert m.class_accuracy_ci95["1"] is None and m.subgroup_accuracy_ci95["2"] is None


def test_counts_entry_point_equals_arrays():
    labels, preds, groups = tiny()
    a = compute_metrics(labels, preds, groups, bootstrap=100, seed=5)
    b = metrics_from_counts(np.array([[4, 2], [2, 2]]), np.array([[3, 1], [2, 0]]), bootstrap=100, seed=5)
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": [0, 1], "predictions": [0], "subgroups": [0, 0]}, "predictions has 1 entries"),
    ({"labels": [], "predictions": [], "subgroups": []}, "no samples"),
    ({"labels": [0, 1], "predictions": [0, 5], "subgroups": [0, 0], "n_classes": 2}, "predictions contain class 5"),
    ({"labels": [0, -1], "predictions": [0, 0], "subgroups": [0, 0]}, "negative"),
    ({"labels": [0, 1], "predictions": [0.5, 1], "subgroups": [0, 0]}, "integer ids"),
    ({"labels": [0, 1], "predictions": [0, 1], "subgroups": [0, 3], "subgroup_names": ["a", "b"]}, "subgroups contain id 3"),
    ({"labels": [0, 1], "predictions": [0, 1], "subgroups": [0, 0], "class_names": ["a"]}, "labels contain class 1"),
    ({"labels": [0, 1], "predictions": [0, 1], "subgroups": [0, 0], "bootstrap": -1}, "bootstrap must be"),
    ({"labels": [0, 1], "predictions": [0, 1], "subgroups": [0, 0], "min_cell_size": 0}, "must be >= 1"),
    ({"labels": [[0, 1]], "predictions": [0, 1], "subgroups": [0, 0]}, "1-D"),
])
def test_bad_input_raises_a_clear_error(kwargs, match):
    args = [kwargs.pop(k) for k in ("labels", "predictions", "subgroups")]
    with pytest.raises(MetricsInputError, match=match):
        compute_metrics(*args, **kwargs)


def test_accuracy_only_has_null_subgroup_keys():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 200)
    preds = np.where(rng.random(2000) < 0.85, labels, (labels + 3) % 10)
    out = accuracy_only(labels, preds, class_names=[f"c{i}" for i in range(10)], bootstrap=500, seed=1)
    assert out["accuracy"] == pytest.approx((preds == labels).mean())
    assert out["class_accuracy"]["c3"] == pytest.approx((preds[labels == 3] == 3).mean())
    for key in ("macro_std", "macro_std_null", "macro_std_excess", "worst_cell_accuracy",
                "worst_subgroup_accuracy", "subgroup_gap", "mean_cell_accuracy", "subgroup_accuracy"):
        assert out[key] is None
    assert out["cells"] == []
    lo, hi = out["ci95"]["accuracy"]
    assert lo <= out["accuracy"] <= hi and hi - lo < 0.04
    assert all(v is None for k, v in out["ci95"].items() if k != "accuracy")
    assert out["settings"]["subgroup_names"] is None
