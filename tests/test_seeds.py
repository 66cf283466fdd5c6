"""cifarb.seeds: every seed is derive_seed(run seed, purpose, *keys); stable, distinct per purpose, one chain."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest

from cifarb import seeds
from cifarb.seeds import PURPOSES, derive_seed, mix_keys

_MASK64 = (1 << 64) - 1


def _splitmix64_reference(keys: tuple[int, ...]) -> int:
    """splitmix64 (Steele, Lea & Flood 2014) written out again: absorb each key by xor, then one output step."""
    z = 0
    for k in keys:
        z ^= k & _MASK64
        z = (z + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
    return z >> 1


def test_values_are_pinned():
    # these seed every training run's CIs and the flow's epochs: a change here changes published results
    assert derive_seed(0, "eval-ci") == 5925726403892485592
    assert derive_seed(1, "eval-ci") == 4944743068455217098
    assert derive_seed(0, "flow-epoch", 0) == 2869816678364599639
    # the streams that predate the table keep their values (augment.base's pinned mix of (1, 2, 3))
    assert derive_seed(1, "augment-batch", 3) == 7510213797696614745


def test_matches_an_independent_splitmix64():
    for run_seed in (0, 1, 12345, 2**40 + 3):
        for purpose, tag in PURPOSES.items():
            for keys in ((), (0,), (7, 3)):
                assert derive_seed(run_seed, purpose, *keys) == _splitmix64_reference((run_seed, tag, *keys))


def test_distinct_purposes_give_distinct_seeds():
    assert len(set(PURPOSES.values())) == len(PURPOSES)  # no two purposes share a tag
    for run_seed in range(50):
        got = [derive_seed(run_seed, p) for p in PURPOSES]
        assert len(set(got)) == len(got)
        # and none is the run seed itself, nor another run's seed for the same purpose
        assert run_seed not in got
    assert len({derive_seed(s, "eval-ci") for s in range(1000)}) == 1000
    assert all(0 <= derive_seed(s, p) < 2**63 for s in range(20) for p in PURPOSES)


def test_keys_pick_draws_within_a_purpose():
    assert len({derive_seed(0, "shuffle", e) for e in range(500)}) == 500
    assert derive_seed(0, "train-epoch", 1, 2) != derive_seed(0, "train-epoch", 2, 1)


def test_the_keyed_streams_of_augment_and_data_are_this_scheme():
    import torch

    from cifarb.augment.base import derive_seed as augment_mix
    from cifarb.augment.base import keyed_generator
    from cifarb.train.data import epoch_permutation

    assert augment_mix(9, PURPOSES["augment-sample"], 4, 11) == derive_seed(9, "augment-sample", 4, 11)
    assert mix_keys(5, PURPOSES["flowaug"], 1, 256) == derive_seed(5, "flowaug", 1, 256)
    g = torch.Generator().manual_seed(derive_seed(3, "shuffle", 2))
    assert torch.equal(epoch_permutation(50, 3, 2), torch.randperm(50, generator=g))
    assert torch.equal(torch.rand(4, generator=keyed_generator(3, PURPOSES["shuffle"], 2)),
                       torch.rand(4, generator=torch.Generator().manual_seed(derive_seed(3, "shuffle", 2))))


def test_unknown_purpose_names_the_known_ones():
    with pytest.raises(KeyError, match="eval-ci"):
        derive_seed(0, "eval-cis")


def test_documented_example_holds_and_no_torch():
    assert doctest.testmod(seeds).failed == 0
    code = ("import sys, cifarb.seeds; assert 'torch' not in sys.modules and 'numpy' not in sys.modules; "
            "import cifarb.eval.settings; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.usefixtures("one_thread")
def test_a_training_run_seeds_its_cis_apart_from_its_training(tmp_path):
    """The final evaluation's CIs use derive_seed(run seed, "eval-ci"), not the training seed, and that
    recorded seed reproduces them from the saved predictions."""
    import json

    import pandas as pd

    from cifarb.metrics import compute_metrics
    from cifarb.train import TrainConfig
    from cifarb.train.engine import run
    from test_train_helpers import write_cifar10_root

    root = write_cifar10_root(tmp_path / "data", n_train=32, n_test=24)
    out = tmp_path / "run"
    cfg = TrainConfig(dataset="cifar10", arch="resnet20", aug="standard", epochs=1, seed=3, root=str(root),
                      trust_local=True, batch_size=16, out=str(out), progress=False, eval_bootstrap=50)
    result = run(cfg).eval_result
    assert result is not None
    recorded = json.loads((out / "eval" / "cifar10-b.json").read_text())["settings"]
    assert json.loads((out / "manifest.json").read_text())["seed"] == 3
    assert recorded["seed"] == derive_seed(3, "eval-ci") != 3
    frame = pd.read_parquet(out / "predictions" / "cifar10-b.parquet")
    again = compute_metrics(frame["label"].to_numpy(), frame["prediction"].to_numpy(), frame["subgroup"].to_numpy(),
                            n_classes=10, n_subgroups=8, bootstrap=50, seed=recorded["seed"], min_cell_size=1,
                            min_cell_size_worst=10, permutations=recorded["permutations"])
    _assert_same_intervals(again.to_dict()["ci95"], result["ci95"])


def _assert_same_intervals(got: dict, expected: dict) -> None:
    # pytest.approx takes no nested mappings: compare interval by interval (None = no interval)
    assert set(got) == set(expected)
    for key, bounds in expected.items():
        assert got[key] == (None if bounds is None else pytest.approx(bounds)), key
