"""The tensor-resident loader: keyed shuffling, DDP shards of one global batch, worker-count independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifarb.augment import build_pipeline
from cifarb.errors import UsageError
from cifarb.train.data import TrainBatches, epoch_permutation, eval_batches, normalize, to_nchw


def data(n: int = 50):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, torch.arange(n) % 10


def test_permutation_is_keyed_by_seed_and_epoch():
    a = epoch_permutation(100, seed=1, epoch=0)
    assert sorted(a.tolist()) == list(range(100))
    assert torch.equal(a, epoch_permutation(100, seed=1, epoch=0))
    assert not torch.equal(a, epoch_permutation(100, seed=1, epoch=1))
    assert not torch.equal(a, epoch_permutation(100, seed=2, epoch=0))


def test_batches_drop_the_remainder_and_follow_the_permutation():
    images, labels = data(50)
    tb = TrainBatches(images, labels, 16, seed=3)
    assert len(tb) == 3
    batches = list(tb.epoch(4))
    perm = epoch_permutation(50, 3, 4)
    for s, (x, y) in enumerate(batches):
        idx = perm[s * 16 : (s + 1) * 16]
        assert torch.equal(x, images[idx]) and torch.equal(y, labels[idx]) and x.dtype == torch.uint8


def test_ddp_shards_partition_the_global_batch():
    images, labels = data(50)
    single = TrainBatches(images, labels, 16, seed=0)
    shards = [TrainBatches(images, labels, 16, seed=0, rank=r, world=2) for r in range(2)]
    for e in range(2):
        whole = single.batch_indices(e)
        parts = [s.batch_indices(e) for s in shards]
        for step, idx in enumerate(whole):
            assert torch.equal(torch.cat([parts[0][step], parts[1][step]]), idx)
            assert len(parts[0][step]) == len(parts[1][step]) == 8
    with pytest.raises(UsageError, match="divisible"):
        TrainBatches(images, labels, 15, seed=0, world=2)
    with pytest.raises(UsageError, match="larger"):
        TrainBatches(images, labels, 64, seed=0)


def test_per_sample_stage_is_the_same_with_or_without_workers():
    images, labels = data(24)
    pipe = build_pipeline("autoaugment", num_classes=10, seed=5)
    assert pipe.has_sample_stage
    inline = TrainBatches(images, labels, 8, seed=1, pipeline=pipe, workers=0)
    workers = TrainBatches(images, labels, 8, seed=1, pipeline=pipe, workers=2)
    a, b = list(inline.epoch(2)), list(workers.epoch(2))
    assert len(a) == len(b) == 3
    changed = 0
    perm = epoch_permutation(24, 1, 2)
    for s, ((xa, ya), (xb, yb)) in enumerate(zip(a, b)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and xa.dtype == torch.uint8
        assert torch.equal(ya, labels[perm[s * 8 : (s + 1) * 8]])
        changed += int((xa != images[perm[s * 8 : (s + 1) * 8]]).any(dim=(1, 2, 3)).sum())
    assert changed > 0  # the policy really ran
    # and a different epoch gives different augmentations
    assert not all(torch.equal(x, y) for (x, _), (y, _) in zip(a, list(inline.epoch(3))))


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_carry_the_dataset_positions_of_their_images(workers):
    """indexed_epoch: through the tensor path and the DataLoader (inline and in worker processes), a batch's
    indices are the positions in the training set of exactly the images it holds."""
    images, labels = data(24)
    labels = torch.arange(24)  # a label per image, so labels name the image independently of the indices
    pipe = build_pipeline("autoaugment", num_classes=24, seed=5)
    loaders = {"tensor": TrainBatches(images, labels, 8, seed=1)}
    loaders["dataloader"] = TrainBatches(images, labels, 8, seed=1, pipeline=pipe, workers=workers)
    perm = epoch_permutation(24, 1, 2)
    for name, tb in loaders.items():
        got = list(tb.indexed_epoch(2))
        assert len(got) == 3, name
        for s, (x, y, idx) in enumerate(got):
            assert idx.dtype == torch.int64 and idx.device.type == "cpu"
            assert torch.equal(idx, perm[s * 8 : (s + 1) * 8]) and torch.equal(y, labels[idx]), name
            if name == "tensor":
                assert torch.equal(x, images[idx])
            else:  # each image is the per-sample stage's output for the image at its index
                expected = torch.stack([pipe.sample(images[i], epoch=2, index=int(i)) for i in idx])
                assert torch.equal(x, expected)
        # epoch() is the same batches without the indices
        assert all(torch.equal(a, x) and torch.equal(b, y) for (a, b), (x, y, _) in zip(tb.epoch(2), got))


def test_index_using_pipelines_check_the_dataset_once():
    images, labels = data(24)
    calls = []

    class _Pipe:  # the two hooks TrainBatches uses
        has_sample_stage = False
        uses_indices = True

        def check_dataset(self, imgs, labs):
            calls.append((imgs, labs))

    tb = TrainBatches(images, labels, 8, seed=1, pipeline=_Pipe())
    for e in range(3):
        list(tb.indexed_epoch(e))
    assert len(calls) == 1 and calls[0][0] is images and calls[0][1] is labels
    _Pipe.uses_indices = False
    TrainBatches(images, labels, 8, seed=1, pipeline=_Pipe())
    assert len(calls) == 1


def test_normalize_and_to_nchw():
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = to_nchw(nhwc)
    assert x.shape == (4, 3, 32, 32) and torch.equal(x[1, 2], torch.from_numpy(nhwc[1, :, :, 2]))
    mean, std = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.25, 0.2])
    out = normalize(x, mean, std, channels_last=True)
    ref = (nhwc.astype(np.float64) / 255 - mean.numpy()) / std.numpy()
    np.testing.assert_allclose(out.permute(0, 2, 3, 1).numpy(), ref, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_eval_shards_cover_every_image_once():
    images, labels = data(23)
    seen = []
    for rank in range(3):
        for _, y in eval_batches(images, labels, 4, rank, 3):
            seen += y.tolist()
    assert sorted(seen) == sorted(labels.tolist())
