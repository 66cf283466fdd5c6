"""The top-level Python API: lazy exports, the rich Evaluation object, plots, streaming, progress."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import cifarb  # noqa: E402
from cifarb.cli import main  # noqa: E402
from cifarb.eval.evaluation import Evaluation  # noqa: E402
from cifarb.metrics import compute_metrics, validate_result  # noqa: E402
from cifarb.metrics.table import format_result  # noqa: E402


@pytest.fixture(scope="module")
def preds10():
    c10 = cifarb.load_cifar_b("cifar10")
    rng = np.random.default_rng(0)
    p_right = np.array([0.95, 0.9, 0.93, 0.85, 0.7, 0.92, 0.6, 0.8])[c10.subgroups]
    return np.where(rng.random(10_000) < p_right, c10.labels, (c10.labels + 1) % 10)


def test_every_export_resolves_has_a_docstring_and_import_stays_torch_free():
    code = (
        "import sys, cifarb\n"
        "assert 'cifarb.api' not in sys.modules  # lazy: nothing but the package itself on import\n"
        "for name in cifarb.__all__:\n"
        "    obj = getattr(cifarb, name)\n"
        "    assert name == '__version__' or (obj.__doc__ or '').strip(), name\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'cv2'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("compute_metrics", "evaluate_predictions", "evaluate", "load_model", "load_cifar_b", "compare",
                 "SubgroupAccumulator", "Evaluation", "plot_cells", "reference"):
        assert name in cifarb.__all__ and name in dir(cifarb)
    with pytest.raises(AttributeError):
        cifarb.no_such_thing  # noqa: B018
    # the historical import locations still work
    from cifarb.data.cifar_b import load_cifar_b
    from cifarb.metrics import compute_metrics as cm
    assert cifarb.load_cifar_b is load_cifar_b and cifarb.compute_metrics is cm
    import cifarb.reference as reference
    assert cifarb.reference is reference and callable(cifarb.reference.score)


def test_evaluate_predictions_equals_the_metrics_command(tmp_path, preds10):
    path = tmp_path / "p.npy"
    np.save(path, preds10)
    assert main(["metrics", str(path), "--dataset", "cifar10-b", "--bootstrap", "200", "--json",
                 str(tmp_path / "r.json")]) == 0
    cli = json.loads((tmp_path / "r.json").read_text())
    assert cifarb.evaluate_predictions(path, dataset="cifar10-b", bootstrap=200).to_dict() == cli
    # arrays: the same metrics; provenance has no file
    ev = cifarb.evaluate_predictions(preds10, dataset="cifar10-b", bootstrap=200)
    validate_result(ev.to_dict())
    assert {k: v for k, v in ev.to_dict().items() if k != "provenance"} == \
        {k: v for k, v in cli.items() if k != "provenance"}
    # a subset via indices, and torch-style logits (argmax-ed)
    idx = np.arange(0, 10_000, 7)
    logits = np.eye(10)[preds10[idx]]
    sub = cifarb.evaluate_predictions(logits, dataset="cifar10-b", indices=idx, bootstrap=0)
    c10 = cifarb.load_cifar_b("cifar10")
    assert sub.n_images == idx.size and sub.accuracy == pytest.approx((preds10[idx] == c10.labels[idx]).mean())
    with pytest.raises(cifarb.CifarbError, match="indices"):
        cifarb.evaluate_predictions(preds10[:10], dataset="cifar10-b")


def test_evaluate_predictions_with_a_groups_file(tmp_path):
    pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [0, 1, 0, 1], "group": [0, 0, 1, 1]}).to_csv(
        tmp_path / "g.csv", index=False)
    ev = cifarb.evaluate_predictions([0, 1, 1, 1], groups=tmp_path / "g.csv", bootstrap=0)
    assert ev.dataset == "g" and ev.accuracy == 0.75
    assert ev.subgroup_accuracy == {"0": 1.0, "1": 0.5}
    part = cifarb.evaluate_predictions([1, 1], groups=tmp_path / "g.csv", indices=["d", "a"], bootstrap=0)
    assert part.n_images == 2 and part.accuracy == 0.5


def test_evaluation_views(preds10, tmp_path):
    ev = cifarb.evaluate_predictions(preds10, dataset="cifar10-b", bootstrap=100)
    text = repr(ev)
    assert text.startswith("<Evaluation cifar10-b, 10,000 images, accuracy ") and "\n" not in text
    assert len(text) < 180
    html = ev._repr_html_()
    assert html.startswith("<div>") and "<table>" in html and "MacroStd" in html
    assert "MacroStd debiased" in html and "p (no subgroup effect)" in html
    old = {k: v for k, v in ev.to_dict().items() if k not in ("macro_std_debiased", "p_subgroup_effect")}
    older = Evaluation(old)  # a result written before those keys existed: shown as missing, no error
    assert older.macro_std_debiased is None
    assert "<td>MacroStd debiased</td><td style='text-align:right'>—</td>" in older._repr_html_()
    assert ev.summary() == format_result(ev.to_dict(), title="cifar10-b: 10,000 of 10,000 images")
    c10 = cifarb.load_cifar_b("cifar10")
    by_class = ev.by_class
    assert list(by_class.columns) == ["class", "n", "correct", "accuracy", "ci_lo", "ci_hi"]
    assert by_class["class"].dtype == pd.CategoricalDtype(c10.class_names, ordered=True)
    assert by_class["n"].tolist() == [1000] * 10
    cat = by_class.set_index("class").loc["cat"]
    assert cat["accuracy"] == pytest.approx((preds10[c10.labels == 3] == 3).mean())
    assert [cat["ci_lo"], cat["ci_hi"]] == ev.class_accuracy_ci95["cat"]
    by_sub = ev.by_subgroup
    assert by_sub["subgroup"].dtype == pd.CategoricalDtype(c10.subgroup_names, ordered=True)
    assert by_sub["n"].tolist() == np.bincount(c10.subgroups, minlength=8).tolist()
    assert by_sub["accuracy"].tolist() == pytest.approx(
        [(preds10 == c10.labels)[c10.subgroups == g].mean() for g in range(8)])
    cells = ev.by_cell
    assert len(cells) == 77 and {"ci_lo", "ci_hi"} <= set(cells.columns)
    assert (cells["ci_lo"] <= cells["accuracy"] + 1e-12).all() and cells["class"].cat.ordered
    assert ev.cell_matrix().shape == (10, 8)
    # a result read back from JSON gives the same frames (no cell CIs: those are not in the JSON)
    again = Evaluation.from_json(ev.to_json(tmp_path / "r.json"))
    assert again.to_dict() == ev.to_dict()
    pd.testing.assert_frame_equal(again.by_subgroup, by_sub)
    assert "ci_lo" not in again.by_cell.columns
    m = compute_metrics(c10.labels, preds10, c10.subgroups, class_names=c10.class_names,
                        subgroup_names=c10.subgroup_names, bootstrap=0)
    assert repr(m).startswith("<SubgroupMetrics (10 classes x 8 subgroups), 10,000 images")
    assert "<table>" in m._repr_html_() and "MacroStd" in m.summary()


def test_plots_draw_on_the_given_axes_and_return_it(preds10):
    import matplotlib.pyplot as plt

    ev = cifarb.evaluate_predictions(preds10, dataset="cifar10-b", bootstrap=50)
    fig, (a, b, c) = plt.subplots(1, 3)
    assert cifarb.plot_cells(ev, ax=a) is a and len(a.images) == 1
    assert cifarb.plot_subgroups(ev, ax=b) is b and len(b.patches) == 8
    assert cifarb.plot_classes(ev.to_dict(), ax=c) is c and len(c.patches) == 10
    assert "MacroStd" in a.get_title()
    made = cifarb.plot_subgroups(ev.metrics)
    assert made is not b and made.figure is not fig
    plt.close("all")
    with pytest.raises(TypeError, match="Evaluation"):
        cifarb.plot_cells([1, 2, 3])


def test_streaming_accumulator_equals_compute_metrics_and_merges_by_summing():
    rng = np.random.default_rng(4)
    n = 3000
    y, g = rng.integers(0, 5, n), rng.integers(0, 3, n)
    p = np.where(rng.random(n) < np.array([0.9, 0.7, 0.5])[g], y, rng.integers(0, 5, n))
    want = compute_metrics(y, p, g, n_classes=5, n_subgroups=3, bootstrap=200, seed=3).to_dict()
    acc = cifarb.SubgroupAccumulator(5, 3)
    for s in range(0, n, 256):  # batches; logits for some of them
        batch = p[s:s + 256]
        acc.update(np.eye(5)[batch] if s % 512 else batch, y[s:s + 256], g[s:s + 256])
    assert acc.compute(bootstrap=200, seed=3).to_dict() == want
    # two "ranks" with halves of the data: summing their states is the whole
    r0, r1 = cifarb.SubgroupAccumulator(5, 3), cifarb.SubgroupAccumulator(5, 3)
    r0.update(p[::2], y[::2], g[::2])
    r1.update(p[1::2], y[1::2], g[1::2])
    assert (r0 + r1).compute(bootstrap=200, seed=3).to_dict() == want
    reduced = cifarb.SubgroupAccumulator(5, 3)
    reduced.load_state(r0.state() + r1.state())  # what all_reduce(SUM) of the states gives
    assert reduced.compute(bootstrap=200, seed=3).to_dict() == want
    assert "3,000 samples" in repr(reduced)
    reduced.reset()
    assert reduced.n_samples == 0
    with pytest.raises(cifarb.CifarbError, match="only 3"):
        reduced.update([0], [0], [3])


def test_streaming_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    acc = cifarb.SubgroupAccumulator(3, 2)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 3.0, 0.0]], requires_grad=True)
    acc.update(logits, torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]))
    assert acc.n.tolist() == [[1, 0], [0, 2], [0, 0]] and acc.k.tolist() == [[1, 0], [0, 1], [0, 0]]


def test_progress_only_on_a_terminal_or_in_a_notebook(monkeypatch):
    import io
    import types

    from cifarb import _progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert not _progress.show_progress(True, io.StringIO())
    assert _progress.show_progress(True, Tty()) and not _progress.show_progress(False, Tty())
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert _progress.in_notebook() and _progress.show_progress(True, io.StringIO())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not _progress.in_notebook()
    bar = _progress.progress_bar(10, "x", progress=True)
    assert bar.disable  # no notebook now and pytest's stderr is not a terminal
    bar.close()


MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def tiny_net(num_classes: int = 10):
    """A small randomly initialised CNN (seeded), importable as `test_api:tiny_net` by `cifarb eval`."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))


def test_evaluate_a_plain_module_equals_the_eval_command(tmp_path, shared_data):
    pytest.importorskip("torch")
    out = tmp_path / "cli.json"
    assert main(["eval", "--model", "test_api:tiny_net", "--mean", ",".join(map(str, MEAN)), "--std",
                 ",".join(map(str, STD)), "--dataset", "cifar10-b", "--root", str(shared_data), "--trust-local",
                 "--bootstrap", "50", "--json", str(out)]) == 0
    cli = json.loads(out.read_text())
    got = cifarb.evaluate(tiny_net(), dataset="cifar10-b", mean=MEAN, std=STD, root=shared_data, trust_local=True,
                          bootstrap=50, progress=False)
    assert len(got.predictions) == 1017 and got.metrics is not None
    got = got.to_dict()
    assert got["provenance"].pop("model") == "torch.nn.modules.container.Sequential"
    cli["provenance"].pop("model")
    assert got == cli
    with pytest.raises(cifarb.CifarbError, match="mean= and std="):
        cifarb.evaluate(tiny_net(), dataset="cifar10-b", root=shared_data, trust_local=True)


def test_compare_is_the_compare_command_as_a_function():
    from pathlib import Path

    from cifarb.report.compare import compare_runs

    fixtures = Path(__file__).resolve().parent / "fixtures_runs"
    a, b = fixtures / "cifar10-fastnet-standard-s0", fixtures / "cifar10-fastnet-mixup-s0"
    got = cifarb.compare(a, b, dataset="cifar10-b", bootstrap=200)
    assert got.to_dict() == compare_runs(a, b, "cifar10-b", bootstrap=200).to_dict()
    assert got.n_images == 400 and "macro_std" in got.metrics
    assert got.p_subgroup_effect is not None and got.p_subgroup_effect["permutations"] == 999


def test_compare_takes_seed_lists_and_the_compare_options():
    from pathlib import Path

    from cifarb.report.compare import compare

    fixtures = Path(__file__).resolve().parent / "fixtures_runs"
    a = [fixtures / f"cifar10-fastnet-standard-s{s}" for s in (1, 0)]
    b = [fixtures / f"cifar10-fastnet-mixup-s{s}" for s in (0, 1)]
    got = cifarb.compare(a, b, dataset="cifar10-b", bootstrap=100, permutations=0, min_cell_size=3)
    assert got.to_dict() == compare(a, b, "cifar10-b", bootstrap=100, permutations=0, min_cell_size=3).to_dict()
    assert got.p_subgroup_effect is None and got.multi and got.seeds == ["seed 0", "seed 1"]
    with pytest.raises(cifarb.CifarbError, match="permutations"):
        cifarb.compare(a[0], b[0], dataset="cifar10-b", permutations=-1)


def test_evaluate_cifar100_super_reads_20_way_models_as_coarse():
    torch = pytest.importorskip("torch")
    from cifarb.data.readers import ImageSet

    sup = cifarb.load_superclasses()
    c100 = cifarb.load_cifar_b("cifar100")
    idx = np.arange(40, 100)
    images = np.random.default_rng(1).integers(0, 256, (idx.size, 32, 32, 3), dtype=np.uint8)
    data = ImageSet(images=images, labels=c100.labels[idx], indices=idx, class_names=c100.class_names,
                    n_official=10_000, verified=False, files={}, coarse_labels=c100.coarse_labels[idx])
    net = tiny_net(num_classes=20)
    ev = cifarb.evaluate(net, dataset="cifar100-super", data=data, mean=MEAN, std=STD, bootstrap=0, progress=False)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        coarse = net(x).argmax(1).numpy()
    assert ev.provenance["predictions"] == "coarse" and ev.n_images == idx.size
    assert ev.accuracy == pytest.approx(float(np.mean(coarse == sup.labels[idx])))
    assert np.array_equal(ev.predictions["prediction"], coarse)
    with pytest.raises(cifarb.CifarbError, match="100 fine or 20 coarse"):
        cifarb.evaluate(tiny_net(num_classes=7), dataset="cifar100-super", data=data, mean=MEAN, std=STD)
