"""FlowAug: a semantic augmentation that re-decodes a training image with a swapped or resampled global code z.

For each image chosen (probability p) the flow encodes it into (z, eps); z is replaced by another
training image's z (`swap`: any image, or one of the same class) or, with probability `resample`, by
a fresh draw from the prior at temperature tau; the image is decoded with its own eps (structure kept,
global look changed) and keeps its label. A decode that blows up (more than `max_clip` of its values
outside the pixel range, which happens for (z, eps) pairs far from the training data) is discarded and
the original image kept; `stats["rejected"]` counts them.

Modes:
- `online`: encode/decode the chosen images of every batch.
- `offline`: precompute `pool` variants per training image once, cached in shards under
  <cache>/flowaug/<key>/ with key = sha256(flow checkpoint sha256, data sha256, settings); during
  training a chosen image is replaced by one of its variants, found by the hash of its pixels (FlowAug
  runs before crop/flip, so it sees the stored images). Images not in the pool fall back to online.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifarb._atomic import atomic_path, atomic_write_json
from cifarb.augment.base import BatchAugmentation, keyed_generator
from cifarb.augment.registry import register_augmentation
from cifarb.errors import CifarbError
from cifarb.seeds import PURPOSES

__all__ = ["FlowAug", "make_flowaug", "OPTIONS", "mix_latents", "data_sha256"]

OPTIONS = (
    "flowaug_flow",
    "flowaug_p",
    "flowaug_tau",
    "flowaug_mode",
    "flowaug_swap",
    "flowaug_resample",
    "flowaug_pool",
    "flowaug_batch_size",
    "flowaug_device",
    "flowaug_cache",
    "flowaug_progress",
    "flowaug_root",
    "flowaug_trust_local",
    "flowaug_seed",
    "flowaug_max_clip",
)
_POOL_FORMAT = "cifarb-flowaug-pool/1"


def data_sha256(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of a training set: its uint8 pixels (NCHW, C-order) and int64 labels."""
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    h.update(np.ascontiguousarray(images.cpu().numpy()).tobytes())
    h.update(np.ascontiguousarray(labels.cpu().numpy().astype(np.int64)).tobytes())
    return h.hexdigest()


def _image_keys(images: torch.Tensor) -> list[bytes]:
    """A short content hash per image (uint8 (N, C, H, W)): how a batch image finds its pool entry."""
    arr = np.ascontiguousarray(images.cpu().numpy())
    return [hashlib.blake2b(a.tobytes(), digest_size=12).digest() for a in arr]


def mix_latents(
    z: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    *,
    sample_z: Any,
    tau: float,
    swap: str,
    resample: float,
    bank_z: torch.Tensor | None = None,
    bank_labels: torch.Tensor | None = None,
    self_index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """New global codes for images with codes z (N, d) and labels (N,).

    Each image gets, with probability `resample`, z' = a prior draw at temperature tau (`sample_z(n,
    tau, generator)`), otherwise the z of a partner: another entry of the bank (default: the batch
    itself) with any label (`swap="any"`) or the same label (`swap="class"`). `self_index` gives each
    image's own row in the bank so it is never its own partner; an image without a valid partner is
    resampled. Returns (z', resampled mask). All randomness comes from `generator`, in a fixed order.
    """
    n = z.shape[0]
    if bank_z is None:
        bank_z, bank_labels = z, labels
        self_index = torch.arange(n)
    assert bank_labels is not None
    bank_labels = bank_labels.cpu()
    labels_cpu = labels.cpu()
    m = bank_z.shape[0]
    do_resample = torch.rand(n, generator=generator) < resample
    pick = torch.rand(n, generator=generator)  # a uniform position among the valid partners
    prior = sample_z(n, tau, generator).to(z.device, z.dtype)
    partner = torch.full((n,), -1, dtype=torch.int64)
    own = self_index.cpu() if self_index is not None else torch.full((n,), -1, dtype=torch.int64)
    for i in range(n):
        if do_resample[i]:
            continue
        if swap == "class":
            cand = torch.nonzero(bank_labels == labels_cpu[i]).flatten()
        else:
            cand = torch.arange(m)
        if own[i] >= 0:
            cand = cand[cand != own[i]]
        if len(cand) == 0:
            do_resample[i] = True
            continue
        partner[i] = cand[min(int(pick[i] * len(cand)), len(cand) - 1)]
    new_z = prior.clone()
    swapped = ~do_resample
    if bool(swapped.any()):
        new_z[swapped.to(z.device)] = bank_z[partner[swapped].to(bank_z.device)].to(z.device, z.dtype)
    return new_z, do_resample


class FlowAug(BatchAugmentation):
    """The `flowaug` batch piece; see the module docstring. Runs before crop/flip (priority 5)."""

    priority = 5

    def __init__(
        self,
        flow: str | Path | None,
        *,
        num_classes: int = 10,
        p: float = 0.5,
        tau: float = 1.0,
        mode: str = "online",
        swap: str = "any",
        resample: float = 0.5,
        pool: int = 2,
        batch_size: int = 256,
        device: str | None = None,
        cache: str | Path | None = None,
        progress: bool = True,
        root: str | Path | None = None,
        trust_local: bool = False,
        seed: int = 0,
        max_clip: float = 0.2,
    ) -> None:
        if flow is None or str(flow) == "":
            raise CifarbError(
                "--aug flowaug needs --flow CKPT: a flow checkpoint from `cifarb flow train` (its run directory "
                "or RUNDIR/checkpoints/last.pt), e.g. the bundled docs/assets/flow_small.pt"
            )
        if not 0.0 <= float(p) <= 1.0:
            raise CifarbError(f"--flowaug-p must be in [0, 1], got {p}")
        if not float(tau) > 0:
            raise CifarbError(f"--flowaug-tau must be positive, got {tau}")
        if mode not in ("online", "offline"):
            raise CifarbError(f"--flowaug-mode must be online or offline, got {mode!r}")
        if swap not in ("any", "class"):
            raise CifarbError(f"--flowaug-swap must be any or class, got {swap!r}")
        if not 0.0 <= float(resample) <= 1.0:
            raise CifarbError(f"flowaug_resample must be in [0, 1], got {resample}")
        if int(pool) <= 0 or int(batch_size) <= 0:
            raise CifarbError(
                f"flowaug_pool and flowaug_batch_size must be positive, got {pool}, {batch_size}"
            )
        from cifarb.flows.checkpoint import load_flow

        self.loaded = load_flow(flow, device="cpu")
        self.flow = self.loaded.model
        trained_on = self.loaded.meta.get("dataset")
        expected = {10: "cifar10", 100: "cifar100"}.get(int(num_classes))
        if trained_on and expected and trained_on != expected:
            raise CifarbError(
                f"flow checkpoint {self.loaded.path} was trained on {trained_on}, but this run has "
                f"{num_classes} classes ({expected}); train a flow on {expected} with `cifarb flow train`"
            )
        self.p, self.tau, self.mode, self.swap = float(p), float(tau), mode, swap
        self.resample, self.pool_size, self.batch_size = float(resample), int(pool), int(batch_size)
        self.device = torch.device(device) if device else None
        self.cache = Path(cache) if cache else None
        self.progress = bool(progress)
        if not 0.0 <= float(max_clip) <= 1.0:
            raise CifarbError(f"flowaug_max_clip must be in [0, 1], got {max_clip}")
        self.max_clip = float(max_clip)
        self.num_classes = int(num_classes)
        self.root, self.trust_local, self.seed = root, bool(trust_local), int(seed)
        # Set by attach(): the training set's z bank (for swaps across the whole set) and the offline pool.
        self._bank_z: torch.Tensor | None = None
        self._bank_labels: torch.Tensor | None = None
        self._index: dict[bytes, int] = {}
        self._pool: torch.Tensor | None = None
        self.pool_dir: Path | None = None
        self.stats = {"online": 0, "pool_hits": 0, "pool_misses": 0, "rejected": 0}

    # --- helpers ---------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "flow": str(self.loaded.path),
            "flow_sha256": self.loaded.sha256,
            "p": self.p,
            "tau": self.tau,
            "mode": self.mode,
            "swap": self.swap,
            "resample": self.resample,
            "pool": self.pool_size if self.mode == "offline" else None,
            "max_clip": self.max_clip,
        }

    def _model_on(self, device: torch.device) -> Any:
        target = self.device or device
        if next(self.flow.parameters()).device != target:
            self.flow = self.flow.to(target)
        return self.flow

    def _check_shape(self, images: torch.Tensor) -> None:
        cfg = self.flow.cfg
        want = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if images.dim() != 4:
            raise CifarbError(
                f"flowaug works on single-view batches (N, C, H, W), got {tuple(images.shape)}; it does not "
                "compose with multi-view pieces such as augmix with its JSD loss"
            )
        if tuple(images.shape[1:]) != want:
            raise CifarbError(
                f"flow checkpoint {self.loaded.path} models {want} images, but the batch has "
                f"{tuple(images.shape[1:])}; train a flow on this data with `cifarb flow train`"
            )

    @torch.no_grad()
    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = self._model_on(images.device)
        dev = next(model.parameters()).device
        zs, es = [], []
        for i in range(0, len(images), self.batch_size):
            z, e = model.encode(images[i : i + self.batch_size].to(dev))
            zs.append(z)
            es.append(e)
        return torch.cat(zs), torch.cat(es)

    @torch.no_grad()
    def _decode(self, z: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode in chunks; also return which images blew up (more than max_clip of values clipped)."""
        outs, clips = [], []
        for i in range(0, len(z), self.batch_size):
            x, clip = self.flow.decode_checked(z[i : i + self.batch_size], eps[i : i + self.batch_size])
            outs.append(x)
            clips.append(clip)
        return torch.cat(outs), torch.cat(clips) > self.max_clip

    def _new_z(
        self,
        z: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        self_index: torch.Tensor | None,
    ) -> torch.Tensor:
        use_bank = self._bank_z is not None and self_index is not None
        new_z, _ = mix_latents(
            z,
            labels,
            generator,
            sample_z=lambda n, t, g: _prior_draw(self.flow, n, t, g),
            tau=self.tau,
            swap=self.swap,
            resample=self.resample,
            bank_z=self._bank_z if use_bank else None,
            bank_labels=self._bank_labels if use_bank else None,
            self_index=self_index if use_bank else None,
        )
        return new_z

    @torch.no_grad()
    def transform(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        self_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Augment every image of the batch (no p): returns the new uint8 images and the latents used
        (`z`, `eps` from encoding, `z_new`), on the flow's device."""
        self._check_shape(images)
        z, eps = self._encode(images)
        z_new = self._new_z(z, labels, generator, self_index)
        out, rejected = self._decode(z_new, eps)
        out = out.to(images.device)
        # A blown-up decode would teach the classifier on garbage: keep the original image instead.
        rejected = rejected.to(images.device)
        out[rejected] = images[rejected]
        self.stats["rejected"] += int(rejected.sum())
        return out, {"z": z, "eps": eps, "z_new": z_new, "rejected": rejected}

    # --- the training-set hook -----------------------------------------------------------------------------
    @torch.no_grad()
    def attach(
        self, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, *, seed: int = 0
    ) -> None:
        """Give FlowAug the training set (uint8 (N, C, H, W) tensor or (N, H, W, C) array, labels).

        Encodes every image once so swaps draw partners from the whole set; in offline mode also builds
        (or loads from the cache) the pool of augmented variants. Call once before training.
        """
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        labels = torch.as_tensor(labels, dtype=torch.int64)
        self._check_shape(images)
        if len(images) != len(labels):
            raise CifarbError(f"flowaug.attach: {len(images)} images but {len(labels)} labels")
        z, eps = self._encode_progress(images, "flowaug encode")
        self._bank_z, self._bank_labels = z, labels.cpu()
        self._index = {k: i for i, k in enumerate(_image_keys(images))}
        if self.mode == "offline":
            self._pool = self._load_or_build_pool(images, labels, z, eps, self.seed if seed is None else seed)

    def _encode_progress(self, images: torch.Tensor, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
        bar = _bar(len(images), desc, self.progress)
        zs, es = [], []
        for i in range(0, len(images), self.batch_size):
            z, e = self._encode(images[i : i + self.batch_size])
            zs.append(z)
            es.append(e)
            bar.update(min(self.batch_size, len(images) - i))
        bar.close()
        return torch.cat(zs), torch.cat(es)

    def _pool_key(self, data_hash: str, seed: int) -> str:
        settings = {
            "tau": self.tau,
            "swap": self.swap,
            "resample": self.resample,
            "pool": self.pool_size,
            "seed": seed,
            "max_clip": self.max_clip,
        }
        blob = json.dumps(
            {"flow": self.loaded.sha256, "data": data_hash, "settings": settings}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def _load_or_build_pool(
        self, images: torch.Tensor, labels: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, seed: int
    ) -> torch.Tensor:
        from cifarb.data.root import cache_dir

        data_hash = data_sha256(images, labels)
        key = self._pool_key(data_hash, seed)
        folder = (self.cache or cache_dir() / "flowaug") / key
        self.pool_dir = folder
        meta_path = folder / "pool.json"
        shard = 4096
        n = len(images)
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                if (
                    meta.get("format") == _POOL_FORMAT
                    and meta.get("flow_sha256") == self.loaded.sha256
                    and meta.get("data_sha256") == data_hash
                    and meta.get("n") == n
                ):
                    parts = [_read_shard(folder, name) for name in meta["shards"]]
                    pool = torch.from_numpy(np.concatenate(parts))
                    if pool.shape == (n, self.pool_size, *images.shape[1:]):
                        return pool
            except (OSError, ValueError, KeyError, TypeError, EOFError, json.JSONDecodeError):
                pass  # a damaged cache is rebuilt below
        out = torch.empty((n, self.pool_size, *images.shape[1:]), dtype=torch.uint8)
        bar = _bar(n * self.pool_size, "flowaug pool", self.progress)
        names = []
        for s0 in range(0, n, shard):
            s1 = min(n, s0 + shard)
            for v in range(self.pool_size):
                for b0 in range(s0, s1, self.batch_size):
                    b1 = min(s1, b0 + self.batch_size)
                    # Keyed per (seed, variant, chunk start): a shard's content does not depend on the others.
                    g = keyed_generator(seed, PURPOSES["flowaug"], v, b0)
                    z_new = self._new_z(z[b0:b1], labels[b0:b1], g, torch.arange(b0, b1))
                    dec, rejected = self._decode(z_new, eps[b0:b1].to(z_new.device))
                    dec, rejected = dec.cpu(), rejected.cpu()
                    dec[rejected] = images[b0:b1][rejected]
                    self.stats["rejected"] += int(rejected.sum())
                    out[b0:b1, v] = dec
                    bar.update(b1 - b0)
            name = f"shard_{s0 // shard:04d}.npz"
            with atomic_path(folder / name, suffix=".npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, images=out[s0:s1].numpy())
            names.append(name)
        bar.close()
        atomic_write_json(
            meta_path,
            {
                "format": _POOL_FORMAT,
                "flow_sha256": self.loaded.sha256,
                "flow": str(self.loaded.path),
                "data_sha256": data_hash,
                "n": n,
                "pool": self.pool_size,
                "tau": self.tau,
                "swap": self.swap,
                "resample": self.resample,
                "seed": seed,
                "shards": names,
            },
        )
        return out

    # --- the batch stage ---------------------------------------------------------------------------------
    def _attach_from_readers(self) -> None:
        """Offline mode without attach(): read the training set the way the engine does and attach it."""
        from cifarb.data.readers import load_cifar

        dataset = {10: "cifar10", 100: "cifar100"}.get(self.num_classes)
        if dataset is None:
            raise CifarbError(
                f"flowaug offline mode needs the training set: call FlowAug.attach(images, labels) for a "
                f"{self.num_classes}-class dataset (only cifar10/cifar100 are read automatically)"
            )
        train = load_cifar(dataset, "train", self.root, self.trust_local)
        self.attach(train.images, train.labels, seed=self.seed)

    @torch.no_grad()
    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_shape(images)
        if self.mode == "offline" and self._pool is None:
            self._attach_from_readers()
        n = len(images)
        chosen = torch.rand(n, generator=generator) < self.p
        variant = torch.randint(self.pool_size, (n,), generator=generator)
        if not bool(chosen.any()):
            return images, labels
        out = images.clone()
        idx = torch.nonzero(chosen).flatten()
        keys = _image_keys(images[idx]) if self._index else [b""] * len(idx)
        rows = torch.tensor([self._index.get(k, -1) for k in keys], dtype=torch.int64)
        online = idx
        if self._pool is not None:
            hit = rows >= 0
            if bool(hit.any()):
                out[idx[hit]] = self._pool[rows[hit], variant[idx[hit]]].to(images.device)
            self.stats["pool_hits"] += int(hit.sum())
            self.stats["pool_misses"] += int((~hit).sum())
            online, rows = idx[~hit], rows[~hit]
        if len(online):
            self_index = rows if self._bank_z is not None else None
            aug, _ = self.transform(images[online], labels[online], generator, self_index)
            out[online] = aug.to(images.device)
            self.stats["online"] += len(online)
        return out, labels


def _prior_draw(model: Any, n: int, tau: float, generator: torch.Generator) -> torch.Tensor:
    """z ~ p(z) at temperature tau, with the noise drawn on the CPU generator (same result on any device)."""
    noise = torch.randn(n, model.cfg.z_dim, generator=generator)
    mean, logs = model.prior_mean.detach().cpu(), model.prior_logs.detach().cpu()
    return mean + tau * torch.exp(logs) * noise


def _bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, file=sys.stderr, leave=False, disable=not (progress and sys.stderr.isatty())
    )


def make_flowaug(num_classes: int, **opts: Any) -> FlowAug:
    """Registry factory: reads the `flowaug_*` options (the CLI's --flow and --flowaug-* flags)."""
    return FlowAug(
        opts.get("flowaug_flow"),
        num_classes=num_classes,
        p=opts.get("flowaug_p", 0.5),
        tau=opts.get("flowaug_tau", 1.0),
        mode=opts.get("flowaug_mode", "online"),
        swap=opts.get("flowaug_swap", "any"),
        resample=opts.get("flowaug_resample", 0.5),
        pool=opts.get("flowaug_pool", 2),
        root=opts.get("flowaug_root"),
        trust_local=opts.get("flowaug_trust_local", False),
        seed=opts.get("flowaug_seed", 0),
        max_clip=opts.get("flowaug_max_clip", 0.2),
        batch_size=opts.get("flowaug_batch_size", 256),
        device=opts.get("flowaug_device"),
        cache=opts.get("flowaug_cache"),
        progress=opts.get("flowaug_progress", True),
    )


register_augmentation("flowaug", make_flowaug, options=OPTIONS)


def _read_shard(folder: Path, name: Any) -> np.ndarray:
    """One cached pool shard: a plain file name inside the pool folder, read without pickle."""
    from cifarb.runs.rundir import is_plain_name

    if not is_plain_name(name):
        raise ValueError(f"pool shard name {name!r} is not a file name in {folder}")
    with np.load(folder / name, allow_pickle=False) as z:
        return np.asarray(z["images"])
