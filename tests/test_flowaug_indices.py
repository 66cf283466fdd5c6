"""FlowAug finds an image by its training-set index: the same variants as the old pixel-hash lookup, clear
errors when the indices point into another set than the pool's, and the FlowAugOptions object."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from cifarb.augment import build_pipeline
from cifarb.augment.flowaug import OPTIONS, FlowAug, FlowAugOptions
from cifarb.errors import CifarbError
from cifarb.train.data import TrainBatches
from test_flowaug_core import _batch, _write_flow

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def flow_ckpt(tmp_path_factory):
    return _write_flow(tmp_path_factory.mktemp("flow") / "flow.pt")


def _old_hash_rows(attached: torch.Tensor):
    """The lookup FlowAug used before batches carried indices (verbatim): a blake2b key per image's pixels,
    mapped to its row in the attached set; -1 for an image whose pixels are not there."""

    def image_keys(images):
        arr = np.ascontiguousarray(images.cpu().numpy())
        return [hashlib.blake2b(a.tobytes(), digest_size=12).digest() for a in arr]

    index = {k: i for i, k in enumerate(image_keys(attached))}

    def rows(self, images, chosen, indices):  # stands in for FlowAug._rows, ignoring the indices
        keys = image_keys(images[chosen]) if index else [b""] * len(chosen)
        return torch.tensor([index.get(k, -1) for k in keys], dtype=torch.int64)

    return rows


def _batches(x, steps=6, size=16):
    """Index batches into x; every other batch has a third of its images changed (as a per-sample piece would)."""
    for step in range(steps):
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(step))[:size]
        images = x[idx].clone()
        if step % 2:
            images[::3] = images[::3].flip(3)
        yield step, images, idx


@pytest.mark.parametrize(
    "settings",
    [dict(mode="offline", pool=3, p=0.7), dict(mode="online", swap="class", p=0.6),
     dict(mode="online", swap="any", resample=0.3, p=0.8)],
    ids=["offline", "online-class", "online-any"],
)
def test_index_lookup_gives_what_the_pixel_hash_lookup_gave(flow_ckpt, tmp_path, monkeypatch, settings):
    x, y = _batch(48, seed=3)
    opts = FlowAugOptions(flow_ckpt, progress=False, cache=tmp_path / "cache", **settings)
    new, old = FlowAug(opts), FlowAug(opts)
    new.attach(x, y, seed=5)
    old.attach(x, y, seed=5)
    old_rows = _old_hash_rows(x)
    for step, images, idx in _batches(x):
        chosen = torch.arange(len(idx))
        assert torch.equal(new._rows(images, chosen, idx), old_rows(old, images, chosen, None))
        got, labels = new(images, y[idx], torch.Generator().manual_seed(100 + step), indices=idx)
        with monkeypatch.context() as m:
            m.setattr(FlowAug, "_rows", old_rows)
            want, _ = old(images, y[idx], torch.Generator().manual_seed(100 + step), indices=idx)
        assert torch.equal(got, want) and torch.equal(labels, y[idx])
    assert new.stats == old.stats
    if settings["mode"] == "offline":  # both kinds of image occurred: pool hits and changed-image misses
        assert new.stats["pool_hits"] > 0 and new.stats["pool_misses"] > 0


def test_a_pool_for_another_training_set_is_a_clear_error(flow_ckpt, tmp_path):
    x, y = _batch(40)
    aug = FlowAug(FlowAugOptions(flow_ckpt, p=1.0, mode="offline", pool=2, cache=tmp_path / "c", progress=False))
    aug.attach(x, y)
    pool_json = str(aug.pool_dir / "pool.json")
    aug.check_dataset(x, y)  # the attached set itself is fine
    # the batches index a smaller set / other labels: checked once, from the whole set's fingerprint
    for images, labels in [(x[:20], y[:20]), (x, (y + 1) % 3)]:
        with pytest.raises(CifarbError) as err:
            aug.check_dataset(images, labels)
        msg = str(err.value)
        assert pool_json in msg and "FlowAug.attach(train_images, train_labels)" in msg
        assert "40 images" in msg and f"{len(images)} images" in msg
    # an index past the pool's end (a batch from a bigger set) is caught too, per batch
    with pytest.raises(CifarbError, match="batch index 40 is outside the 40 training images") as err:
        aug(x[:2], y[:2], torch.Generator(), indices=torch.tensor([3, 40]))
    assert pool_json in str(err.value)
    with pytest.raises(CifarbError, match="indices="):
        aug(x[:2], y[:2], torch.Generator())  # offline without indices cannot find the variants
    # indices pinned first (TrainBatches), then another set attached: the same error, naming the pool
    late = FlowAug(FlowAugOptions(flow_ckpt, p=1.0, mode="offline", pool=2, cache=tmp_path / "c", progress=False))
    late.check_dataset(x[:20], y[:20])
    with pytest.raises(CifarbError, match="pool.json was built for a training set of 40 images"):
        late.attach(x, y)


def test_train_batches_check_the_pool_once_at_start(flow_ckpt, tmp_path, monkeypatch):
    x, y = _batch(40)
    pipe = build_pipeline("standard+flowaug", num_classes=10, flowaug_flow=str(flow_ckpt), flowaug_p=1.0,
                          flowaug_mode="offline", flowaug_cache=str(tmp_path / "c"), flowaug_progress=False)
    piece = pipe.batch_pieces[0]
    piece.attach(x, y)
    with pytest.raises(CifarbError, match="pool.json"):
        TrainBatches(x[:32], y[:32], 8, seed=0, pipeline=pipe)
    hashed = []
    real = __import__("cifarb.augment.flowaug", fromlist=["data_sha256"]).data_sha256
    monkeypatch.setattr("cifarb.augment.flowaug.data_sha256", lambda *a: hashed.append(1) or real(*a))
    tb = TrainBatches(x, y, 8, seed=0, pipeline=pipe)
    for step, (images, labels, idx) in enumerate(tb.indexed_epoch(0)):
        pipe.prepare(images, labels, epoch=0, step=step, indices=idx)
    assert len(hashed) == 1  # the fingerprint is taken once, not per batch
    assert piece.stats["pool_hits"] == 40 and piece.stats["online"] == 0


def test_a_pool_json_of_another_format_is_rebuilt(flow_ckpt, tmp_path, monkeypatch):
    x, y = _batch(16)
    opts = FlowAugOptions(flow_ckpt, p=1.0, mode="offline", pool=1, cache=tmp_path / "c", progress=False)
    aug = FlowAug(opts)
    aug.attach(x, y)
    meta_path = aug.pool_dir / "pool.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format"] == "cifarb-flowaug-pool/1" and meta["n"] == 16 and meta["data_sha256"]
    meta["format"] = "cifarb-flowaug-pool/0"
    meta_path.write_text(json.dumps(meta))
    decodes = []
    real = FlowAug._decode
    monkeypatch.setattr(FlowAug, "_decode", lambda self, *a: decodes.append(1) or real(self, *a))
    again = FlowAug(opts)
    again.attach(x, y)
    assert decodes and torch.equal(again._pool, aug._pool)
    assert json.loads(meta_path.read_text())["format"] == "cifarb-flowaug-pool/1"


# FlowAug.__init__'s keyword defaults and the module's OPTIONS before the options object (commit 9e3adde)
OLD_DEFAULTS = dict(num_classes=10, p=0.5, tau=1.0, mode="online", swap="any", resample=0.5, pool=2, batch_size=256,
                    device=None, cache=None, progress=True, root=None, trust_local=False, seed=0, max_clip=0.2)
OLD_OPTIONS = ("flowaug_flow", "flowaug_p", "flowaug_tau", "flowaug_mode", "flowaug_swap", "flowaug_resample",
               "flowaug_pool", "flowaug_batch_size", "flowaug_device", "flowaug_cache", "flowaug_progress",
               "flowaug_root", "flowaug_trust_local", "flowaug_seed", "flowaug_max_clip")


def test_options_object_defaults_and_pipeline_names(flow_ckpt):
    opts = FlowAugOptions("f.pt")
    assert {k: v for k, v in dataclasses.asdict(opts).items() if k != "flow"} == OLD_DEFAULTS
    assert OPTIONS == OLD_OPTIONS
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.p = 1.0  # type: ignore[misc]
    # from_options reads flowaug_<field>; what is not given keeps its default
    built = FlowAugOptions.from_options(100, {"flowaug_flow": "f.pt", "flowaug_p": 1, "flowaug_pool": "3",
                                              "mean": (0.5,), "cutout_size": 8})
    assert built == dataclasses.replace(opts, p=1.0, pool=3, num_classes=100)
    assert isinstance(built.p, float) and isinstance(built.pool, int)
    with pytest.raises(CifarbError, match="needs --flow"):
        FlowAugOptions.from_options(10, {})
    for kw, needle in [({"resample": 2}, "flowaug_resample"), ({"pool": 0}, "flowaug_pool"),
                       ({"max_clip": -1}, "flowaug_max_clip")]:
        with pytest.raises(CifarbError, match=needle):
            FlowAugOptions("f.pt", **kw)
    with pytest.raises(TypeError, match="FlowAugOptions"):
        FlowAug(flow_ckpt)  # type: ignore[arg-type]
    # the registry factory builds the piece through from_options
    pipe = build_pipeline("flowaug", num_classes=10, flowaug_flow=str(flow_ckpt), flowaug_tau=0.5, flowaug_seed=4)
    piece = pipe.batch_pieces[0]
    assert piece.options == FlowAugOptions(str(flow_ckpt), tau=0.5, seed=4)
