"""fastnet trained briefly on the real ../shared/data slice ends with a valid CIFAR10-B evaluation."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cifarb.cli import main


def test_fastnet_on_the_real_slice_writes_a_valid_evaluation(shared_data, tmp_path):
    from cifarb.metrics import validate_result

    out = tmp_path / "run"
    argv = ["train", "--dataset", "cifar10", "--arch", "fastnet", "--aug", "standard", "--epochs", "1",
            "--limit-train", "256", "--root", str(shared_data), "--trust-local", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    result = json.loads((out / "eval" / "cifar10-b.json").read_text())
    validate_result(result)
    assert (result["dataset"], result["n_images"], result["n_official"]) == ("cifar10-b", 1017, 10000)
    assert result["data_verified"] is False
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epoch, evaluation = lines[0], lines[-1]
    assert epoch["event"] == "epoch" and evaluation["event"] == "eval" and len(lines) == 2
    # the loop's own test pass and the evaluation code see the same 1,017 images and the same model
    assert result["accuracy"] == pytest.approx(epoch["test_accuracy"])
    preds = pd.read_parquet(out / "predictions" / "cifar10-b.parquet")
    assert len(preds) == 1017 and (preds["index"].to_numpy() == range(1017)).all()
    assert (preds["prediction"] == preds["label"]).mean() == pytest.approx(result["accuracy"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["train"]["n_used"] == 256 and manifest["data"]["train"]["n_images"] == 5085
