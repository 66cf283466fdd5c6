"""Eval streams memory-mapped -C files: pages read are released, so resident memory does not grow with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

STATUS = Path("/proc/self/status")


def _rss_file_mb() -> float:
    for line in STATUS.read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile line")


@pytest.mark.skipif(not STATUS.exists(), reason="needs Linux /proc/self/status (RssFile)")
def test_predict_on_a_memory_map_keeps_file_pages_out_of_the_resident_set(tmp_path):
    import torch

    from cifarb.eval import predict

    n = 8192  # 24 MiB of images
    path = tmp_path / "gaussian_noise.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 32, 32, 3))
    arr[:] = np.random.default_rng(0).integers(0, 256, arr.shape, dtype=np.uint8)
    arr.flush()
    del arr
    images = np.load(path, mmap_mode="r")
    model = torch.nn.Sequential(torch.nn.AvgPool2d(32), torch.nn.Flatten(), torch.nn.Linear(3, 10))
    predict(model, np.zeros((4, 32, 32, 3), np.uint8), (0.5,) * 3, (0.25,) * 3, device="cpu")  # load kernels
    before = _rss_file_mb()
    pred, _ = predict(model, images, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), batch_size=512, device="cpu",
                      return_logits=False)
    grown = _rss_file_mb() - before
    assert pred.shape == (n,)
    assert grown < 4, f"{grown:.1f} MiB of the 24 MiB file stayed resident"
    # and the predictions are those of the plain in-memory array
    again, _ = predict(model, np.array(images), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), batch_size=512, device="cpu",
                       return_logits=False)
    np.testing.assert_array_equal(pred, again)
    # without the release, the same pass keeps the file resident: the measurement above can fail
    touched = np.load(path, mmap_mode="r")
    before = _rss_file_mb()
    int(touched.sum(dtype=np.int64))
    assert _rss_file_mb() - before > 16
