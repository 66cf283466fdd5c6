"""FlowAug: labels and eps kept, z changed, uint8 output, seeded determinism, swap rules, offline pool cache, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifarb.augment import build_pipeline
from cifarb.augment.flowaug import FlowAug, FlowAugOptions, mix_latents
from cifarb.errors import CifarbError
from cifarb.flows.checkpoint import FORMAT, FORMAT_VERSION
from cifarb.flows.configs import preset
from cifarb.flows.model import GlobalLocalFlow

pytestmark = pytest.mark.usefixtures("one_thread")


def _write_flow(path, seed: int = 0, dataset: str = "cifar10"):
    cfg = preset("tiny").replace(hidden=8, steps=1, z_dim=4, enc_channels=4, seed=seed)
    torch.manual_seed(seed)
    model = GlobalLocalFlow(cfg)
    model.initialize(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a stand-in for training: make z matter to the flow
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    torch.save({"format": FORMAT, "version": FORMAT_VERSION, "config": cfg.to_dict(), "model": model.state_dict(),
                "epoch": 1, "dataset": dataset}, path)
    return path


@pytest.fixture(scope="module")
def flow_ckpt(tmp_path_factory):
    return _write_flow(tmp_path_factory.mktemp("flow") / "flow.pt")


def _batch(n: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 3, n).astype(np.int64))
    return images, labels


def test_labels_kept_output_in_range_and_seeded(flow_ckpt):
    aug = FlowAug(FlowAugOptions(flow_ckpt, p=0.5))
    x, y = _batch()
    x_before = x.clone()
    out, labels = aug(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(x, x_before)  # the input batch is not modified in place
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(labels, y)
    changed = (out != x).flatten(1).any(1)
    assert 0 < int(changed.sum()) < len(x)  # p = 0.5: some images augmented, some untouched
    again, _ = aug(x, y, torch.Generator().manual_seed(1))
    other, _ = aug(x, y, torch.Generator().manual_seed(2))
    assert torch.equal(out, again) and not torch.equal(out, other)
    none = FlowAug(FlowAugOptions(flow_ckpt, p=0.0))
    assert torch.equal(none(x, y, torch.Generator().manual_seed(1))[0], x)


def test_eps_kept_and_z_changed(flow_ckpt):
    aug = FlowAug(FlowAugOptions(flow_ckpt, p=1.0))
    x, y = _batch()
    out, lat = aug.transform(x, y, torch.Generator().manual_seed(3))
    model = aug.flow
    with torch.no_grad():
        z_ref, eps_ref = model.encode(x)
        # Independent recomputation: the output is exactly decode(new z, the image's own eps).
        assert torch.equal(lat["eps"], eps_ref) and torch.equal(lat["z"], z_ref)
        assert torch.equal(out, model.decode(lat["z_new"], eps_ref))
        # Re-encoding the output with its new z recovers the image's eps up to pixel rounding.
        y_out = (out.float() + 0.5) / 256 - 0.5
        eps_back, _ = model.flow_forward(y_out, lat["z_new"])
    assert not lat["rejected"].any()
    assert (lat["z_new"] - z_ref).abs().amax(1).min() > 1e-3  # every image got another z
    err = (eps_back - eps_ref).abs().median()
    assert float(err) < 0.05 * float((eps_ref - eps_ref.roll(1, 0)).abs().median())
    assert not torch.equal(out, x)


def test_blown_up_decodes_are_rejected_and_the_original_kept(flow_ckpt, monkeypatch):
    aug = FlowAug(FlowAugOptions(flow_ckpt, p=1.0))
    x, y = _batch(8)
    real = type(aug.flow).flow_inverse
    calls = {"n": 0}

    def explode_odd_images(self, eps, z):
        out = real(self, eps, z)
        calls["n"] += 1
        out[1::2] = out[1::2] * 50  # every other image: almost all values far outside the pixel range
        return out

    monkeypatch.setattr(type(aug.flow), "flow_inverse", explode_odd_images)
    out, lat = aug.transform(x, y, torch.Generator().manual_seed(0))
    assert calls["n"] == 1
    assert lat["rejected"].tolist() == [False, True] * 4 and aug.stats["rejected"] == 4
    assert torch.equal(out[1::2], x[1::2]) and not torch.equal(out[0::2], x[0::2])


def test_swap_rules_any_class_and_resample():
    g = torch.Generator().manual_seed(0)
    z = torch.arange(12, dtype=torch.float32).view(6, 2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    prior = lambda n, t, gen: torch.full((n, 2), -100.0 * t)  # noqa: E731 - recognisable prior draws
    for _ in range(20):
        new, res = mix_latents(z, labels, g, sample_z=prior, tau=1.0, swap="class", resample=0.0)
        assert not res.any()
        # Each image gets the z of the *other* image of its class.
        assert torch.equal(new, z.view(3, 2, 2).flip(1).reshape(6, 2))
        new, res = mix_latents(z, labels, g, sample_z=prior, tau=1.0, swap="any", resample=0.0)
        rows = [(new[i] == z).all(1).nonzero().flatten().tolist() for i in range(6)]
        assert all(len(r) == 1 and r[0] != i for i, r in enumerate(rows))
    new, res = mix_latents(z, labels, g, sample_z=prior, tau=0.5, swap="any", resample=1.0)
    assert res.all() and torch.equal(new, torch.full((6, 2), -50.0))
    # An image alone in its class has no partner: it is resampled instead.
    new, res = mix_latents(z[:3], labels[:3], g, sample_z=prior, tau=1.0, swap="class", resample=0.0)
    assert res.tolist() == [False, False, True]


def test_resampled_z_follows_the_prior_at_temperature(flow_ckpt):
    aug = FlowAug(FlowAugOptions(flow_ckpt, p=1.0, resample=1.0, tau=0.5))
    x, y = _batch(200)
    _, lat = aug.transform(x, y, torch.Generator().manual_seed(4))
    m = aug.flow
    zs = (lat["z_new"] - m.prior_mean) / torch.exp(m.prior_logs)
    assert float(zs.std()) == pytest.approx(0.5, rel=0.1) and abs(float(zs.mean())) < 0.05


def test_class_swap_with_attached_bank_uses_same_class_partners(flow_ckpt):
    aug = FlowAug(FlowAugOptions(flow_ckpt, p=1.0, swap="class", resample=0.0, progress=False))
    x, y = _batch(30)
    aug.attach(x, y)
    _, lat = aug.transform(x[:10], y[:10], torch.Generator().manual_seed(5), torch.arange(10))
    bank_z, bank_y = aug._bank_z, aug._bank_labels
    for i in range(10):
        j = (lat["z_new"][i] == bank_z).all(1).nonzero().flatten()
        assert len(j) == 1 and int(j[0]) != i and bank_y[j[0]] == y[i]


def test_offline_pool_is_cached_and_used(flow_ckpt, tmp_path, monkeypatch):
    x, y = _batch(40)
    aug = FlowAug(FlowAugOptions(flow_ckpt, p=1.0, mode="offline", pool=2, cache=tmp_path / "cache", progress=False))
    aug.attach(x, y)
    pool_dir = aug.pool_dir
    assert (pool_dir / "pool.json").is_file() and list(pool_dir.glob("shard_*.npz"))
    out, labels = aug(x[:16], y[:16], torch.Generator().manual_seed(6), indices=torch.arange(16))
    assert torch.equal(labels, y[:16])
    assert aug.stats["pool_hits"] == 16 and aug.stats["online"] == 0
    for i in range(16):
        assert any(torch.equal(out[i], aug._pool[i, v]) for v in range(2))
    # A second FlowAug with the same flow, data and settings loads the shards instead of decoding.
    again = FlowAug(FlowAugOptions(flow_ckpt, p=1.0, mode="offline", pool=2, cache=tmp_path / "cache", progress=False))
    monkeypatch.setattr(FlowAug, "_decode", lambda *a, **k: pytest.fail("pool was rebuilt"))
    again.attach(x, y)
    monkeypatch.undo()
    assert again.pool_dir == pool_dir and torch.equal(again._pool, aug._pool)
    # Another flow checkpoint (another sha256) or other data gets another cache key.
    other = FlowAug(FlowAugOptions(_write_flow(tmp_path / "other.pt", seed=1), p=1.0, mode="offline", pool=2,
                                   cache=tmp_path / "cache", progress=False))
    other.attach(x, y)
    assert other.pool_dir != pool_dir
    aug.attach(x[:39], y[:39])
    assert aug.pool_dir != pool_dir
    # An image not in the pool (e.g. changed by a per-sample augmentation) falls back to online.
    flipped = x[:4].flip(3)
    out, _ = again(flipped, y[:4], torch.Generator().manual_seed(7), indices=torch.arange(4))
    assert again.stats["pool_misses"] == 4 and again.stats["online"] == 4
    assert out.dtype == torch.uint8


def test_pipeline_integration_standard_plus_flowaug(flow_ckpt):
    pipe = build_pipeline("standard+flowaug", num_classes=10, seed=3, flowaug_flow=str(flow_ckpt), flowaug_p=1.0)
    assert [p.name for p in pipe.batch_pieces] == ["flowaug", "standard"]  # the flow sees uncropped images
    x, y = _batch(8)
    a, ta = pipe.prepare(x, y, epoch=0, step=5)
    b, tb = pipe.prepare(x, y, epoch=0, step=5)
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(ta, y) and torch.equal(tb, y)
    cfg = pipe.config()["pieces"][1]
    assert cfg["name"] == "flowaug" and len(cfg["flow_sha256"]) == 64 and cfg["p"] == 1.0


def test_missing_or_mismatched_flow_is_a_clear_error(flow_ckpt, tmp_path):
    with pytest.raises(CifarbError, match="needs --flow"):
        build_pipeline("flowaug", num_classes=10)
    with pytest.raises(CifarbError, match="does not exist"):
        FlowAug(FlowAugOptions(tmp_path / "missing.pt"))
    foreign = tmp_path / "resnet.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CifarbError, match="not a cifarb flow checkpoint"):
        FlowAug(FlowAugOptions(foreign))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CifarbError, match="unreadable"):
        FlowAug(FlowAugOptions(junk))
    with pytest.raises(CifarbError, match="trained on cifar10.*100 classes"):
        FlowAug(FlowAugOptions(flow_ckpt, num_classes=100))
    aug = FlowAug(FlowAugOptions(flow_ckpt))
    with pytest.raises(CifarbError, match="models \\(3, 32, 32\\) images"):
        aug(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64),
            torch.Generator())
    for kw, needle in [({"p": 1.5}, "flowaug-p"), ({"tau": 0}, "flowaug-tau"), ({"mode": "batch"}, "flowaug-mode"),
                       ({"swap": "same"}, "flowaug-swap")]:
        with pytest.raises(CifarbError, match=needle):
            FlowAug(FlowAugOptions(flow_ckpt, **kw))


def test_offline_mode_reads_the_training_set_itself(flow_ckpt, shared_data, tmp_path):
    """How cifarb.train uses it: no attach() call, only flowaug_root/flowaug_trust_local options."""
    from cifarb.data.readers import load_cifar

    pipe = build_pipeline("standard+flowaug", num_classes=10, flowaug_flow=str(flow_ckpt), flowaug_p=1.0,
                          flowaug_mode="offline", flowaug_root=str(shared_data), flowaug_trust_local=True,
                          flowaug_cache=str(tmp_path / "cache"), flowaug_progress=False, flowaug_pool=1)
    piece = pipe.batch_pieces[0]
    train = load_cifar("cifar10", "train", shared_data, trust_local=True)
    x = torch.from_numpy(train.images[100:132]).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(train.labels[100:132])
    out, labels = piece(x, y, torch.Generator().manual_seed(0), indices=torch.arange(100, 132))
    assert len(piece._pool) == len(train.labels) and piece.stats["pool_hits"] == 32
    assert torch.equal(out, piece._pool[100:132, 0]) and torch.equal(labels, y)
