"""predict(): batched inference equals a plain normalise-then-forward reference, whatever the batching or input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifarb.errors import CifarbError, UsageError
from cifarb.eval import predict
from cifarb.eval.evaluate import dataset_info, resolve_device
from cifarb.models.zoo import resolve_model

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Blocky random colour images: varied enough that a network's predictions differ between them."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
    return np.ascontiguousarray(coarse.repeat(8, axis=1).repeat(8, axis=2))


def _reference(module: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32) / 255.0
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    # the bundled trained ResNet20: a random-init net predicts one class for everything
    return resolve_model("resnet20").module


def test_predict_matches_reference_for_any_batch_size(net):
    images = _images(12)
    ref = _reference(net, images)
    for batch_size in (1, 5, 256):
        pred, logits = predict(net, images, MEAN, STD, batch_size=batch_size, device="cpu")
        assert pred.dtype == np.int64 and pred.shape == (12,)
        assert logits.dtype == np.float32 and logits.shape == (12, 10)
        np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(pred, logits.argmax(1))
    assert len(set(pred.tolist())) > 1  # the check is not vacuous: predictions vary


def test_predict_reads_memory_mapped_and_strided_input(net, tmp_path):
    images = _images(16, seed=1)
    expected, _ = predict(net, images, MEAN, STD, batch_size=8, device="cpu")
    np.save(tmp_path / "x.npy", images)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert not mm.flags.writeable
    with_mm, no_logits = predict(net, mm, MEAN, STD, batch_size=8, device="cpu", return_logits=False)
    assert no_logits is None
    np.testing.assert_array_equal(with_mm, expected)
    strided = images[::2]  # a non-contiguous view
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(predict(net, strided, MEAN, STD, batch_size=8, device="cpu")[0], expected[::2])


def test_predict_counts_batches_and_leaves_eval_mode(net):
    seen: list[int] = []
    net.train()
    predict(net, _images(10), MEAN, STD, batch_size=4, device="cpu", on_batch=seen.append)
    assert seen == [4, 4, 2] and not net.training


def test_predict_rejects_bad_input(net):
    with pytest.raises(CifarbError, match="uint8"):
        predict(net, _images(2).astype(np.float32), MEAN, STD, device="cpu")
    with pytest.raises(CifarbError, match="uint8"):
        predict(net, _images(2)[..., :1], MEAN, STD, device="cpu")
    with pytest.raises(UsageError):
        predict(net, _images(2), MEAN, STD, batch_size=0, device="cpu")
    pred, logits = predict(net, _images(0), MEAN, STD, device="cpu")
    assert pred.shape == (0,)


def test_devices_and_dataset_names():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="unknown --device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(CifarbError, match="no CUDA device"):
            resolve_device("cuda")
    assert dataset_info("CIFAR100-C") == ("cifar100", "c", 100)
    assert dataset_info("cifar10.1") == ("cifar10", "10.1", 10)
    with pytest.raises(UsageError, match="unknown evaluation dataset"):
        dataset_info("cifar10")
