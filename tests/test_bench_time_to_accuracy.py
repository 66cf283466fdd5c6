"""bench/time_to_accuracy.py --seeds: one row per seed and the mean, the recipe it ran, its cost in image
passes, and the same weights scored at every TTA level (the recipe's own level is the reported accuracy)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.usefixtures("one_thread")
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "time_to_accuracy.py"


def test_seeds_table_rows_recipe_and_cost(tmp_path, monkeypatch, capsys):
    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=24)
    spec = importlib.util.spec_from_file_location("time_to_accuracy", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(sys, "argv", ["time_to_accuracy.py", "--root", str(root), "--seeds", "0,1", "--epochs", "1",
                                      "--hparam", "tta=flip+translate", "--hparam", "tta_each_epoch=false",
                                      "--hparam", "batch_size=16"])
    bench.main()
    out = capsys.readouterr().out
    per_seed = {int(m[0]): float(m[1]) for m in re.findall(r"^seed (\d): ([\d.]+) %", out, re.M)}
    assert sorted(per_seed) == [0, 1]
    # the reported accuracy is the final eval: the raw weights with the recipe's TTA, scored again here
    for seed, acc in per_seed.items():
        line = next(s for s in out.splitlines() if s.startswith(f"seed {seed}:"))
        assert f"raw, tta flip+translate {acc:.2f} %" in line
    rows = dict(re.findall(r"^\| (seed \d|mean of 2 seeds) \| ([\d.]+) % \| \d+ s \|$", out, re.M))
    assert set(rows) == {"seed 0", "seed 1", "mean of 2 seeds"}
    assert float(rows["mean of 2 seeds"]) == pytest.approx(sum(per_seed.values()) / 2, abs=0.051)
    assert "tta=flip+translate, tta_each_epoch=False" in out
    # 32 images / batch 16 = 2 steps: 3 x 2 x 16 + 24 plain test images = 120 an epoch; 6 x 24 = 144 at the end
    assert "-> 120 an epoch, 144 for the final evaluation, 264 in all" in out
