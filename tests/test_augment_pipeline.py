"""The pipeline contract: spec parsing, registry and options, custom pieces, worker determinism, prepare."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from cifarb.augment import (
    LAZY,
    BatchAugmentation,
    SampleAugmentation,
    available,
    build_pipeline,
    derive_seed,
    register_augmentation,
)
from cifarb.augment import registry as reg
from cifarb.errors import CifarbError

CONTRACT = [
    "none",
    "standard",
    "cutout",
    "autoaugment",
    "randaugment",
    "trivialaugment",
    "augmix",
    "mixup",
    "cutmix",
]


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg._REGISTRY))
    monkeypatch.setattr(reg, "LAZY", dict(reg.LAZY))


def test_contract_names_are_registered_and_config_is_json():
    assert set(CONTRACT) <= set(available()) and "flowaug" in available()
    for name in CONTRACT:
        pipe = build_pipeline(name, num_classes=10)
        cfg = json.loads(json.dumps(pipe.config()))
        assert cfg["spec"] == name and [p["name"] for p in cfg["pieces"]] == [name]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("standard++mixup", "empty piece"),
        ("standard+bogus", "bogus"),
        ("mixup+mixup", "repeats"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(CifarbError, match=message):
        build_pipeline(spec, num_classes=10)


def test_unknown_options_are_rejected_but_lazy_pieces_options_pass():
    with pytest.raises(CifarbError, match="mixup_alhpa"):
        build_pipeline("mixup", num_classes=10, mixup_alhpa=0.2)
    # the engine may always pass flowaug's options; they must not fail a pipeline without flowaug
    build_pipeline("standard", num_classes=10, flowaug_p=0.5)


def test_stage_order_and_spec_composition():
    pipe = build_pipeline("Mixup + cutout + autoaugment + standard", num_classes=10)
    assert pipe.spec == "mixup+cutout+autoaugment+standard"
    assert [p.name for p in pipe.sample_pieces] == ["autoaugment"]
    assert [p.name for p in pipe.batch_pieces] == ["standard", "cutout"]
    assert [p.name for p in pipe.mix_pieces] == ["mixup"]


class _AddOne(BatchAugmentation):
    def __init__(self, amount: int) -> None:
        self.amount = amount

    def __call__(self, images, labels, generator):
        return images + self.amount, labels

    def config(self):
        return {"addone_amount": self.amount}


class _Invert(SampleAugmentation):
    def __call__(self, image):
        return 255 - image


def test_custom_pieces_plug_in_through_the_registry(clean_registry):
    register_augmentation(
        "addone", lambda num_classes, **o: _AddOne(o.get("addone_amount", 1)), options=["addone_amount"]
    )
    register_augmentation("invert", lambda num_classes, **o: _Invert())
    pipe = build_pipeline("invert+addone", num_classes=10, addone_amount=2, invert_whatever=1)
    img = torch.full((2, 3, 4, 4), 10, dtype=torch.uint8)
    sampled = torch.stack([pipe.sample(i, epoch=0, index=k) for k, i in enumerate(img)])
    out, _ = pipe.batch(sampled, torch.zeros(2, dtype=torch.int64), pipe.generator(epoch=0, step=0))
    assert (out == 247).all()
    assert pipe.config()["pieces"][1] == {"name": "addone", "stage": "batch", "addone_amount": 2}
    register_augmentation("notapiece", lambda num_classes, **o: object())
    with pytest.raises(TypeError, match="notapiece"):
        build_pipeline("notapiece", num_classes=10)
    with pytest.raises(ValueError):
        register_augmentation("a+b", lambda num_classes, **o: _Invert())


class _Lookup(BatchAugmentation):
    """Declares it wants indices: adds each image's index to it, and records what the pipeline handed over."""

    uses_indices = True
    priority = 1

    def __init__(self):
        self.seen, self.datasets = [], []

    def __call__(self, images, labels, generator, indices=None):
        self.seen.append(None if indices is None else indices.clone())
        return (images if indices is None else images + indices.view(-1, 1, 1, 1).to(images.dtype)), labels

    def check_dataset(self, images, labels):
        self.datasets.append((images, labels))


def test_indices_reach_only_the_pieces_that_declare_them(clean_registry):
    lookup = _Lookup()
    register_augmentation("lookup", lambda num_classes, **o: lookup, options=())
    register_augmentation("addone", lambda num_classes, **o: _AddOne(1), options=["addone_amount"])
    plain = build_pipeline("addone", num_classes=10)
    assert not plain.uses_indices  # _AddOne's __call__ has no indices parameter and never gets one
    img = torch.full((3, 3, 4, 4), 10, dtype=torch.uint8)
    y = torch.zeros(3, dtype=torch.int64)
    out, _ = plain.batch(img, y, plain.generator(epoch=0, step=0), torch.tensor([4, 0, 7]))
    assert (out == 11).all()
    pipe = build_pipeline("addone+lookup", num_classes=10)
    assert pipe.uses_indices and [p.name for p in pipe.batch_pieces] == ["lookup", "addone"]
    out, _ = pipe.batch(img, y, pipe.generator(epoch=0, step=0), torch.tensor([4, 0, 7]))
    assert out[:, 0, 0, 0].tolist() == [15, 11, 18] and lookup.seen[-1].tolist() == [4, 0, 7]
    x, _ = pipe.prepare(img, y, epoch=0, step=0, indices=torch.tensor([1, 2, 3]), mean=(0, 0, 0), std=(1, 1, 1),
                        channels_last=False)
    assert lookup.seen[-1].tolist() == [1, 2, 3] and (x[:, 0, 0, 0] * 255).round().tolist() == [12, 13, 14]
    pipe.prepare(img, y, epoch=0, step=1)
    assert lookup.seen[-1] is None  # a caller without indices: the piece is told so
    images, labels = torch.zeros(5, 3, 4, 4, dtype=torch.uint8), torch.arange(5)
    pipe.check_dataset(images, labels)
    assert len(lookup.datasets) == 1 and lookup.datasets[0][0] is images


LAZY_MODULE = """
from cifarb.augment import MixAugmentation, register_augmentation

class Swap(MixAugmentation):
    def __call__(self, x, targets, generator):
        return x.flip(0), targets.flip(0)

register_augmentation("lazyaug", lambda num_classes, **opts: Swap(), options=["lazyaug_p"])
"""


def test_lazy_registration_imports_the_module_on_first_use(clean_registry, monkeypatch, tmp_path):
    (tmp_path / "_cifarb_test_lazyaug.py").write_text(LAZY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "_cifarb_test_lazyaug", raising=False)
    reg.LAZY["lazyaug"] = "_cifarb_test_lazyaug"
    assert "lazyaug" in available() and "lazyaug" not in reg._REGISTRY
    build_pipeline("standard", num_classes=3, lazyaug_p=0.1)  # options of a not-yet-imported piece pass
    assert "_cifarb_test_lazyaug" not in sys.modules  # ... without importing it
    pipe = build_pipeline("lazyaug", num_classes=3)
    x, t = pipe.mix(
        torch.arange(3.0).view(3, 1, 1, 1), torch.tensor([0, 1, 2]), pipe.generator(epoch=0, step=0)
    )
    assert x.flatten().tolist() == [2.0, 1.0, 0.0] and t.argmax(1).tolist() == [2, 1, 0]
    with pytest.raises(CifarbError, match="lazyaug_q"):
        build_pipeline("lazyaug", num_classes=3, lazyaug_q=1)
    reg.LAZY["missing"] = "cifarb.augment._does_not_exist"
    with pytest.raises(CifarbError, match="not available"):
        build_pipeline("missing", num_classes=10)
    assert LAZY["flowaug"] == "cifarb.augment.flowaug"


def test_dataloader_workers_reproduce_the_main_process():
    pipe = build_pipeline("standard+trivialaugment", num_classes=10, seed=4)
    images = np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    ds = pipe.dataset(images, np.arange(24) % 10)
    assert torch.equal(ds.images[3], torch.from_numpy(images[3]).permute(2, 0, 1))
    ds.set_epoch(2)
    main = torch.stack([ds[i][0] for i in range(24)])
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    got = torch.cat([b for b, _ in loader])
    assert torch.equal(main, got)
    keyed = torch.stack([ds[(2, i)][0] for i in range(24)])
    assert torch.equal(main, keyed)
    ds.set_epoch(3)
    assert not torch.equal(main, torch.stack([ds[i][0] for i in range(24)]))


def test_prepare_normalises_and_validates():
    pipe = build_pipeline("none", num_classes=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 3, 1, 3).contiguous()
    x, _ = pipe.prepare(images, torch.tensor([1, 2]), epoch=0, step=0)
    assert torch.allclose(x[0, 0, 0], torch.tensor([-2.0, (128 / 255 - 0.5) / 0.25, 2.0]), atol=1e-6)
    x2, _ = pipe.prepare(images, torch.tensor([1, 2]), epoch=0, step=0, mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.allclose(x2[0, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]), atol=1e-6)
    with pytest.raises(TypeError):
        pipe.prepare(images.float(), torch.tensor([1, 2]), epoch=0, step=0)
    with pytest.raises(CifarbError, match="label_smoothing"):
        build_pipeline("none", num_classes=10, label_smoothing=1.5)


def test_sample_seed_is_derive_seed_of_seed_epoch_index():
    """The per-epoch prefix cache must give exactly derive_seed(seed, tag, epoch, index)."""
    pipe = build_pipeline("trivialaugment", num_classes=10, seed=9)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for epoch, index in [(0, 5), (3, 5), (0, 6), (3, 6)]:
        torch.default_generator.manual_seed(derive_seed(9, 1, epoch, index))
        expected = pipe.sample_pieces[0](img)
        assert torch.equal(pipe.sample(img, epoch=epoch, index=index), expected)


def test_derive_seed_is_stable_and_mixes():
    assert derive_seed(0, 1, 0, 0) == derive_seed(0, 1, 0, 0)
    seeds = {derive_seed(0, 1, e, i) for e in range(10) for i in range(100)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    # pinned value: a change here would silently change every seeded run
    assert derive_seed(1, 2, 3) == 7510213797696614745 and derive_seed(1, 2, 3) != derive_seed(1, 3, 2)
