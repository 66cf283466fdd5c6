"""Time-to-accuracy levers as recipe options: flip test-time augmentation (train and `eval --tta`) and an
EMA of the weights, each checked against an independent computation, and resumable bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarb.cli import main
from cifarb.errors import CifarbError, UsageError
from cifarb.eval.tta import with_tta
from cifarb.train import TrainConfig
from cifarb.train.ema import WeightEMA
from cifarb.train.engine import Trainer, run
from cifarb.train.hparams import resolve_recipe
from test_train_helpers import write_cifar10_root

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_cifar10_root(tmp_path_factory.mktemp("data"), n_train=32, n_test=24)


def test_flip_tta_is_the_mean_of_both_views():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 5)).eval()
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        expected = (net(x) + net(torch.flip(x, dims=[3]))) / 2
        got = with_tta(net, "flip")(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert with_tta(net, "none") is net
    with pytest.raises(UsageError, match="flip"):
        with_tta(net, "rotate")


def test_flip_translate_tta_is_the_weighted_mean_of_six_hand_made_views():
    from cifarb.eval.tta import TTA_MODES
    from cifarb.train.hparams import TTA_MODES as RECIPE_TTA_MODES

    assert RECIPE_TTA_MODES == TTA_MODES
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 5)).eval()
    x = torch.randn(6, 3, 32, 32)
    # one-pixel shifts with reflected borders, built row by row: down-right repeats row/column 1 on top/left,
    # up-left repeats row/column 30 at the bottom/right
    down = torch.cat([x[:, :, 1:2], x[:, :, :31]], dim=2)
    down_right = torch.cat([down[:, :, :, 1:2], down[:, :, :, :31]], dim=3)
    up = torch.cat([x[:, :, 1:], x[:, :, 30:31]], dim=2)
    up_left = torch.cat([up[:, :, :, 1:], up[:, :, :, 30:31]], dim=3)
    with torch.no_grad():
        def pair(v):
            return net(v) + net(torch.flip(v, dims=[3]))

        expected = pair(x) / 4 + pair(down_right) / 8 + pair(up_left) / 8
        got = with_tta(net, "flip+translate")(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_weight_ema_matches_the_closed_form():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = WeightEMA(model, decay=0.5, start_step=1)
    values = [1.0, 3.0, 5.0, 9.0]
    for step, v in enumerate(values):
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model, step)
    # step 0 < start: copy (1); then 0.5*1+0.5*3 = 2, 0.5*2+0.5*5 = 3.5, 0.5*3.5+0.5*9 = 6.25
    assert torch.allclose(ema.shadow.weight, torch.full((1, 2), 6.25))
    assert ema.updates == 3
    assert not ema.shadow.weight.requires_grad
    with pytest.raises(ValueError):
        WeightEMA(model, decay=1.0)


@pytest.mark.parametrize("field,value,match", [("tta", "rotate", "tta"), ("ema_decay", 1.0, "ema_decay"),
                                               ("ema_start", 1.0, "ema_start"), ("tta_each_epoch", 1, "tta_each_epoch")])
def test_recipe_rejects_bad_lever_values(field, value, match):
    with pytest.raises(CifarbError, match=match):
        resolve_recipe("fastnet", {field: value})


def test_eval_tta_flag_records_and_applies_flip(root, tmp_path):
    from cifarb.data.readers import load_cifar
    from cifarb.models.zoo import resolve_model

    base = ["eval", "--model", "resnet20", "--dataset", "cifar10-b", "--root", str(root), "--trust-local",
            "--bootstrap", "0", "--no-progress"]
    assert main([*base, "--json", str(tmp_path / "plain.json")]) == 0
    assert main([*base, "--json", str(tmp_path / "tta.json"), "--tta", "flip"]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    tta = json.loads((tmp_path / "tta.json").read_text())
    assert plain["settings"]["tta"] == "none" and tta["settings"]["tta"] == "flip"  # off unless asked
    # independent: mean logits of the image and its mirror, normalised by hand
    model = resolve_model("resnet20")
    test = load_cifar("cifar10", "test", root=root, trust_local=True)
    x = _normalised(test.images, model.mean, model.std)
    with torch.no_grad():
        logits = model.module.eval()(x) + model.module(x.flip(3))
    expected = float((logits.argmax(1).numpy() == test.labels).mean())
    assert tta["accuracy"] == pytest.approx(expected)


def _normalised(images_nhwc, mean, std) -> torch.Tensor:
    """uint8 NHWC test images as the model's normalised float NCHW input (written out, not cifarb's code)."""
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _saved_model_and_test(ckpt: dict, manifest: dict, root: Path):  # noqa: ANN202
    """The run's saved ("model") fastnet weights in eval mode, its normalised test images, and the test set."""
    from cifarb.data.readers import load_cifar
    from cifarb.models import build_model

    net = build_model("fastnet", num_classes=10)
    net.load_state_dict(ckpt["model"])
    net.eval()
    test = load_cifar("cifar10", "test", root=root, trust_local=True)
    norm = manifest["normalization"]
    return net, _normalised(test.images, norm["mean"], norm["std"]), test


def _cfg(root: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", epochs=2, batch_size=16, root=str(root),
                       trust_local=True, out=str(out), progress=False, eval_bootstrap=0,
                       hparams={"ema_decay": 0.6, "ema_start": 0.25, "tta": "flip"}, **kw)


def test_ema_and_tta_train_evaluate_and_save_the_averaged_weights(root, tmp_path):
    out = tmp_path / "run"
    result = run(_cfg(root, out))
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert set(ckpt) >= {"model", "train_model", "ema"} and ckpt["ema"]["updates"] == 3  # 4 steps, EMA from step 1
    assert any(not torch.equal(ckpt["model"][k], ckpt["train_model"][k]) for k in ckpt["model"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hparams"]["tta"] == "flip" and manifest["hparams"]["ema_decay"] == 0.6
    # the logged test accuracy and the final eval are those of the saved ("model") weights with flip TTA
    net, x, test = _saved_model_and_test(ckpt, manifest, root)
    with torch.no_grad():
        pred = (net(x) + net(x.flip(3))).argmax(1).numpy()
    expected = float((pred == test.labels).mean())
    assert result.history[-1]["test_accuracy"] == pytest.approx(expected)
    final = json.loads((out / "eval" / "cifar10-b.json").read_text())
    assert final["settings"]["tta"] == "flip" and final["accuracy"] == pytest.approx(expected)


class _Stop(Exception):
    pass


def test_ema_run_resumes_bit_for_bit(root, tmp_path, monkeypatch):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    run(_cfg(root, ref, eval=False))
    real = Trainer.test_epoch
    calls = []

    def stop_in_epoch_2(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise _Stop
        return real(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "test_epoch", stop_in_epoch_2)
        with pytest.raises(_Stop):
            run(_cfg(root, cut, eval=False))
    run(TrainConfig(out=str(cut), resume=True, progress=False))
    a = torch.load(ref / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(cut / "checkpoints" / "last.pt", weights_only=True)
    assert a["ema"] == b["ema"]
    for key in ("model", "train_model"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    np.testing.assert_equal([r["test_accuracy"] for r in a["history"]], [r["test_accuracy"] for r in b["history"]])


def test_tta_for_the_final_eval_only_leaves_the_epoch_test_pass_plain(root, tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", epochs=1, batch_size=16, root=str(root),
                      trust_local=True, out=str(out), progress=False, eval_bootstrap=0,
                      hparams={"tta": "flip+translate", "tta_each_epoch": False})
    result = run(cfg)
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hparams"]["tta"] == "flip+translate" and manifest["hparams"]["tta_each_epoch"] is False
    net, x, test = _saved_model_and_test(ckpt, manifest, root)
    labels = torch.from_numpy(test.labels)
    with torch.no_grad():
        logits, tta_logits = net(x), with_tta(net, "flip+translate")(x)
    plain = float((logits.argmax(1) == labels).float().mean())
    tta = float((tta_logits.argmax(1) == labels).float().mean())
    # the loss tells the two passes apart even where the accuracies coincide on 24 images
    plain_loss, tta_loss = (float(torch.nn.functional.cross_entropy(v, labels)) for v in (logits, tta_logits))
    assert abs(plain_loss - tta_loss) > 1e-4
    assert result.history[-1]["test_loss"] == pytest.approx(plain_loss, rel=1e-5)
    assert result.history[-1]["test_accuracy"] == pytest.approx(plain)
    final = json.loads((out / "eval" / "cifar10-b.json").read_text())
    assert final["settings"]["tta"] == "flip+translate" and final["accuracy"] == pytest.approx(tta)
