"""Write the small committed run directories the report tests read (python tests/fixtures_runs/make_fixtures.py).

Predictions are synthetic and deterministic, on the real CIFAR10-B labels and subgroups of the first
N_TEST official test images; every result JSON goes through the real metrics code (compute_metrics,
accuracy_only, combine_corruptions, build_result), so the directories follow the run-directory and
result contracts. Three methods x two seeds are good runs; four more directories are broken on purpose
(partial training, truncated result, out-of-range value, not a run at all).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cifarb.data.cifar_b import load_cifar_b
from cifarb.metrics import accuracy_only, build_result, combine_corruptions, compute_metrics
from cifarb.seeds import derive_seed

HERE = Path(__file__).resolve().parent
N_TEST = 400  # first official test images: real labels and subgroups, tiny files
N_101 = 200  # images in the synthetic CIFAR-10.1 evaluation
CORRUPTIONS = ("gaussian_noise", "fog")
SEVERITIES = (1, 3)
BOOTSTRAP = 200
EPOCHS = 3
# method -> (base accuracy, subgroup-effect strength, accuracy lost per severity step)
METHODS = {"standard": (0.80, 1.0, 0.08), "mixup": (0.83, 0.6, 0.06), "augmix": (0.78, 0.3, 0.03)}
# how much each subgroup (green, gray, blue, white, black, brown, red, other) helps or hurts
SUBGROUP_EFFECT = np.array([0.06, -0.04, 0.04, -0.02, -0.20, 0.02, -0.12, -0.10])
# seed 1 of augmix has no CIFAR-10.1 evaluation: tables must say n=1 there, not average a gap in
NO_101 = {("augmix", 1)}


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_compact(obj), encoding="utf-8")


def _predict(rng: np.random.Generator, labels: np.ndarray, p_correct: np.ndarray) -> np.ndarray:
    correct = rng.random(labels.size) < p_correct
    wrong = (labels + rng.integers(1, 10, size=labels.size)) % 10
    return np.where(correct, labels, wrong).astype(np.int64)


def _provenance(name: str) -> dict[str, Any]:
    return {"model": name, "model_sha256": None, "data_sha256": {}, "synthetic": True}


def _manifest(aug: str, seed: int, epochs: int = EPOCHS) -> dict[str, Any]:
    config = {"dataset": "cifar10", "arch": "fastnet", "aug": aug, "epochs": epochs, "seed": seed}
    return {"kind": "train", "config": config, "hparams": {"epochs": epochs}, "seed": seed,
            "data_verified": False, "note": "synthetic fixture written by tests/fixtures_runs/make_fixtures.py"}


def _metrics_lines(epochs: int, base: float) -> str:
    lines = []
    for e in range(1, epochs + 1):
        acc = round(base * e / epochs, 4)
        lines.append(_compact({"event": "epoch", "epoch": e, "train_loss": round(2.0 / e, 4), "train_accuracy": acc,
                               "test_loss": round(2.1 / e, 4), "test_accuracy": acc, "lr": 0.1, "elapsed_s": 1.5 * e}))
    return "".join(lines)


def make_run(out: Path, aug: str, seed: int, cb: Any) -> None:
    base, strength, drop = METHODS[aug]
    name = f"cifar10-fastnet-{aug}-s{seed}"
    rundir = out / name
    rng = np.random.default_rng([seed, list(METHODS).index(aug)])
    idx = np.arange(N_TEST)
    y, g = cb.labels[:N_TEST], cb.subgroups[:N_TEST]
    names = {"class_names": cb.class_names, "subgroup_names": cb.subgroup_names}
    p_clean = np.clip(base + strength * SUBGROUP_EFFECT[g], 0.02, 0.99)

    _write_json(rundir / "manifest.json", _manifest(aug, seed))
    (rundir / "metrics.jsonl").write_text(_metrics_lines(EPOCHS, base), encoding="utf-8")

    pred = _predict(rng, y, p_clean)
    # the training run's own evaluation: its CIs are seeded by (run seed, "eval-ci"), as cifarb train does
    m = compute_metrics(y, pred, g, **names, bootstrap=BOOTSTRAP, seed=derive_seed(seed, "eval-ci")).to_dict()
    _write_json(rundir / "eval" / "cifar10-b.json",
                build_result(m, dataset="cifar10-b", n_images=N_TEST, n_official=10000, data_verified=False,
                             provenance=_provenance(name)))
    frame = pd.DataFrame({"index": idx, "label": y, "prediction": pred, "subgroup": g})
    (rundir / "predictions").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(rundir / "predictions" / "cifar10-b.parquet", index=False)

    per_pair: dict[str, dict[int, dict[str, Any]]] = {}
    frames = []
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            # corruptions hurt the weak subgroups more when the method's subgroup effect is strong
            p = np.clip(p_clean - drop * s * (1 - strength * SUBGROUP_EFFECT[g] * 3), 0.02, 0.99)
            pc = _predict(rng, y, p)
            per_pair.setdefault(c, {})[s] = compute_metrics(y, pc, g, **names, bootstrap=0, seed=0).to_dict()
            frames.append(pd.DataFrame({"index": idx, "label": y, "prediction": pc, "subgroup": g,
                                        "corruption": c, "severity": s}))
    _write_json(rundir / "eval" / "cifar10-c-local.json",
                build_result(combine_corruptions(per_pair), dataset="cifar10-c-local", n_images=N_TEST,
                             n_official=10000, data_verified=False, provenance=_provenance(name)))
    pd.concat(frames, ignore_index=True).to_parquet(rundir / "predictions" / "cifar10-c-local.parquet", index=False)

    if (aug, seed) not in NO_101:
        y101 = np.arange(N_101, dtype=np.int64) % 10
        p101 = _predict(rng, y101, np.full(N_101, base - 0.1 * strength))
        m101 = accuracy_only(y101, p101, class_names=cb.class_names, bootstrap=BOOTSTRAP, seed=0)
        _write_json(rundir / "eval" / "cifar10.1.json",
                    build_result(m101, dataset="cifar10.1", n_images=N_101, n_official=2000, data_verified=False,
                                 provenance=_provenance(name)))
        pd.DataFrame({"index": np.arange(N_101), "label": y101, "prediction": p101}).to_parquet(
            rundir / "predictions" / "cifar10.1.parquet", index=False)


def make_broken(out: Path, good: Path) -> None:
    # training stopped after 2 of 3 epochs: manifest and log, no results
    partial = out / "broken-partial-training"
    _write_json(partial / "manifest.json", _manifest("cutout", 0))
    (partial / "metrics.jsonl").write_text(_metrics_lines(2, 0.7), encoding="utf-8")
    # a result cut off mid-write (what a non-atomic writer leaves after a crash)
    def copy_small(dst: Path) -> None:  # manifest, log and CIFAR-B result only: keeps the fixtures small
        (dst / "eval").mkdir(parents=True)
        for rel in ("manifest.json", "metrics.jsonl", "eval/cifar10-b.json"):
            shutil.copyfile(good / rel, dst / rel)

    trunc = out / "broken-truncated-result"
    copy_small(trunc)
    text = (trunc / "eval" / "cifar10-b.json").read_text()
    (trunc / "eval" / "cifar10-b.json").write_text(text[: len(text) // 2])
    # valid JSON, impossible value
    bad = out / "broken-accuracy-out-of-range"
    copy_small(bad)
    result = json.loads((bad / "eval" / "cifar10-b.json").read_text())
    result["accuracy"] = 1.7
    _write_json(bad / "eval" / "cifar10-b.json", result)
    # a folder that is no run at all
    (out / "broken-not-a-run").mkdir()
    (out / "broken-not-a-run" / "notes.txt").write_text("not a run directory\n")


def make_all(out: Path) -> list[Path]:
    """(Re)write every fixture directory under `out`; returns the good run directories."""
    cb = load_cifar_b("cifar10")
    good = []
    for aug in METHODS:
        for seed in (0, 1):
            d = out / f"cifar10-fastnet-{aug}-s{seed}"
            if d.exists():
                shutil.rmtree(d)
            make_run(out, aug, seed, cb)
            good.append(d)
    for d in out.glob("broken-*"):
        shutil.rmtree(d)
    make_broken(out, good[0])
    return good


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    make_all(target)
    total = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"wrote fixtures to {target} ({total / 1024:.0f} KiB)")
