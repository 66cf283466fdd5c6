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
  training a chosen image is replaced by one of its variants, found by the image's index in the training
  set, which the batch carries (`indices=`). An image that is no longer the stored one (changed by a
  per-sample augmentation before the batch stage) falls back to online. FlowAug runs before crop/flip,
  so it sees the stored images.

All settings travel as one `FlowAugOptions`, built from the pipeline's `flowaug_*` options in one place
(`FlowAugOptions.from_options`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifarb._atomic import atomic_path, atomic_write_json
from cifarb.augment.base import BatchAugmentation, keyed_generator
from cifarb.augment.registry import register_augmentation
from cifarb.errors import CifarbError
from cifarb.seeds import PURPOSES

__all__ = ["FlowAug", "FlowAugOptions", "make_flowaug", "OPTIONS", "mix_latents", "data_sha256"]

# Unchanged since the pixel-hash lookup: row i of a pool is still the i-th attached image, so pools
# cached before indices were carried stay valid. A pool.json of another format is rebuilt.
_POOL_FORMAT = "cifarb-flowaug-pool/1"


@dataclass(frozen=True)
class FlowAugOptions:
    """Every FlowAug setting; the pipeline option `flowaug_<field>` sets `<field>` (num_classes aside).

    flow: checkpoint file or flow run directory. p: probability an image is augmented. tau: prior
    temperature. mode: online | offline. swap: any | class. resample: probability of a prior draw
    instead of a partner's z. pool: offline variants per image. batch_size: images per encode/decode
    chunk. device: the flow's device (default: the batch's). cache: pool folder (default
    <cifarb cache>/flowaug). progress: progress bars. root, trust_local: where offline mode reads the
    training set when nobody attached it. seed: the pool's seed. max_clip: largest clipped fraction a
    decode may have before it is rejected. num_classes: the run's classes (checked against the flow).
    """

    flow: str | Path | None
    p: float = 0.5
    tau: float = 1.0
    mode: str = "online"
    swap: str = "any"
    resample: float = 0.5
    pool: int = 2
    batch_size: int = 256
    device: str | None = None
    cache: str | Path | None = None
    progress: bool = True
    root: str | Path | None = None
    trust_local: bool = False
    seed: int = 0
    max_clip: float = 0.2
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.flow is None or str(self.flow) == "":
            raise CifarbError(
                "--aug flowaug needs --flow CKPT: a flow checkpoint from `cifarb flow train` (its run directory "
                "or RUNDIR/checkpoints/last.pt), e.g. the bundled docs/assets/flow_small.pt"
            )
        if not 0.0 <= float(self.p) <= 1.0:
            raise CifarbError(f"--flowaug-p must be in [0, 1], got {self.p}")
        if not float(self.tau) > 0:
            raise CifarbError(f"--flowaug-tau must be positive, got {self.tau}")
        if self.mode not in ("online", "offline"):
            raise CifarbError(f"--flowaug-mode must be online or offline, got {self.mode!r}")
        if self.swap not in ("any", "class"):
            raise CifarbError(f"--flowaug-swap must be any or class, got {self.swap!r}")
        if not 0.0 <= float(self.resample) <= 1.0:
            raise CifarbError(f"flowaug_resample must be in [0, 1], got {self.resample}")
        if int(self.pool) <= 0 or int(self.batch_size) <= 0:
            raise CifarbError(
                f"flowaug_pool and flowaug_batch_size must be positive, got {self.pool}, {self.batch_size}"
            )
        if not 0.0 <= float(self.max_clip) <= 1.0:
            raise CifarbError(f"flowaug_max_clip must be in [0, 1], got {self.max_clip}")
        # frozen: normalise the types once, so every reader sees plain floats/ints/bools
        for name, kind in (
            ("p", float),
            ("tau", float),
            ("resample", float),
            ("max_clip", float),
            ("pool", int),
            ("batch_size", int),
            ("seed", int),
            ("num_classes", int),
            ("progress", bool),
            ("trust_local", bool),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))

    @classmethod
    def from_options(cls, num_classes: int, opts: Mapping[str, Any]) -> FlowAugOptions:
        """The one place pipeline options (the CLI's --flow and --flowaug-* flags) become FlowAug settings."""
        given = {f.name: opts[f"flowaug_{f.name}"] for f in fields(cls) if f"flowaug_{f.name}" in opts}
        given.pop("num_classes", None)
        return cls(**{"flow": None, **given, "num_classes": num_classes})


# the pipeline options FlowAug reads, declared to the registry so misspelt ones are caught
OPTIONS = tuple(f"flowaug_{f.name}" for f in fields(FlowAugOptions) if f.name != "num_classes")


def data_sha256(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of a training set: its uint8 pixels (NCHW, C-order) and int64 labels."""
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    h.update(np.ascontiguousarray(images.cpu().numpy()).tobytes())
    h.update(np.ascontiguousarray(labels.cpu().numpy().astype(np.int64)).tobytes())
    return h.hexdigest()


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
    uses_indices = True  # the offline pool is looked up by each image's training-set index

    def __init__(self, options: FlowAugOptions) -> None:
        if not isinstance(options, FlowAugOptions):
            raise TypeError(f"FlowAug takes a FlowAugOptions, got {type(options).__name__}")
        from cifarb.flows.checkpoint import load_flow

        self.options = options
        self.loaded = load_flow(options.flow, device="cpu")
        self.flow = self.loaded.model
        trained_on = self.loaded.meta.get("dataset")
        expected = {10: "cifar10", 100: "cifar100"}.get(options.num_classes)
        if trained_on and expected and trained_on != expected:
            raise CifarbError(
                f"flow checkpoint {self.loaded.path} was trained on {trained_on}, but this run has "
                f"{options.num_classes} classes ({expected}); train a flow on {expected} with `cifarb flow train`"
            )
        self.device = torch.device(options.device) if options.device else None
        # Set by attach(): the training set (row i = index i), its z bank (for swaps across the whole set),
        # its fingerprint and the offline pool.
        self._images: torch.Tensor | None = None
        self._bank_z: torch.Tensor | None = None
        self._bank_labels: torch.Tensor | None = None
        self._data_sha256: str | None = None
        self._pool: torch.Tensor | None = None
        self.pool_dir: Path | None = None
        # Set by check_dataset() before attach(): the fingerprint of the set the batch indices point into.
        self._indexed_sha256: tuple[int, str] | None = None
        self.stats = {"online": 0, "pool_hits": 0, "pool_misses": 0, "rejected": 0}

    @property
    def pool_size(self) -> int:
        return self.options.pool

    # --- helpers ---------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "flow": str(self.loaded.path),
            "flow_sha256": self.loaded.sha256,
            "p": self.options.p,
            "tau": self.options.tau,
            "mode": self.options.mode,
            "swap": self.options.swap,
            "resample": self.options.resample,
            "pool": self.options.pool if self.options.mode == "offline" else None,
            "max_clip": self.options.max_clip,
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
        zs, es, bs = [], [], self.options.batch_size
        for i in range(0, len(images), bs):
            z, e = model.encode(images[i : i + bs].to(dev))
            zs.append(z)
            es.append(e)
        return torch.cat(zs), torch.cat(es)

    @torch.no_grad()
    def _decode(self, z: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode in chunks; also return which images blew up (more than max_clip of values clipped)."""
        outs, clips, bs = [], [], self.options.batch_size
        for i in range(0, len(z), bs):
            x, clip = self.flow.decode_checked(z[i : i + bs], eps[i : i + bs])
            outs.append(x)
            clips.append(clip)
        return torch.cat(outs), torch.cat(clips) > self.options.max_clip

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
            tau=self.options.tau,
            swap=self.options.swap,
            resample=self.options.resample,
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
        seed = self.options.seed if seed is None else seed
        data_hash = data_sha256(images, labels)
        if self.options.mode == "offline":
            self.pool_dir = self._pool_folder(data_hash, seed)
        if self._indexed_sha256 is not None and self._indexed_sha256[1] != data_hash:
            raise self._mismatch((len(images), data_hash), self._indexed_sha256)
        z, eps = self._encode_progress(images, "flowaug encode")
        self._images, self._data_sha256 = images.cpu(), data_hash
        self._bank_z, self._bank_labels = z, labels.cpu()
        if self.options.mode == "offline":
            self._pool = self._load_or_build_pool(images, labels, z, eps, data_hash, seed)

    def check_dataset(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Pin the training set the batch indices point into (TrainBatches calls this once): raise
        CifarbError if it is not the attached set, or, when attach() comes later, if that set is not it.
        Hashes the whole set once; batches are never hashed."""
        indexed = (len(images), data_sha256(images, torch.as_tensor(labels, dtype=torch.int64)))
        if self._images is not None and self._data_sha256 != indexed[1]:
            raise self._mismatch((len(self._images), str(self._data_sha256)), indexed)
        self._indexed_sha256 = indexed

    def _where(self) -> str:
        """What to name in an error: the pool file in offline mode, else the flow checkpoint."""
        if self.options.mode == "offline" and self.pool_dir is not None:
            return f"flowaug's offline pool {self.pool_dir / 'pool.json'}"
        return f"flowaug (flow {self.loaded.path})"

    def _mismatch(self, attached: tuple[int, str], indexed: tuple[int, str]) -> CifarbError:
        return CifarbError(
            f"{self._where()} was built for a training set of {attached[0]} images (data sha256 "
            f"{attached[1][:12]}), but the batch indices point into another one ({indexed[0]} images, sha256 "
            f"{indexed[1][:12]}), so an index would pick another image's variants; attach the set you train "
            "on, FlowAug.attach(train_images, train_labels), as `cifarb train` does"
        )

    def _encode_progress(self, images: torch.Tensor, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
        bar = _bar(len(images), desc, self.options.progress)
        zs, es, bs = [], [], self.options.batch_size
        for i in range(0, len(images), bs):
            z, e = self._encode(images[i : i + bs])
            zs.append(z)
            es.append(e)
            bar.update(min(bs, len(images) - i))
        bar.close()
        return torch.cat(zs), torch.cat(es)

    def _pool_key(self, data_hash: str, seed: int) -> str:
        settings = {
            "tau": self.options.tau,
            "swap": self.options.swap,
            "resample": self.options.resample,
            "pool": self.options.pool,
            "seed": seed,
            "max_clip": self.options.max_clip,
        }
        blob = json.dumps(
            {"flow": self.loaded.sha256, "data": data_hash, "settings": settings}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def _pool_folder(self, data_hash: str, seed: int) -> Path:
        from cifarb.data.root import cache_dir

        root = Path(self.options.cache) if self.options.cache else cache_dir() / "flowaug"
        return root / self._pool_key(data_hash, seed)

    def _load_or_build_pool(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        z: torch.Tensor,
        eps: torch.Tensor,
        data_hash: str,
        seed: int,
    ) -> torch.Tensor:
        folder = self._pool_folder(data_hash, seed)
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
                    if pool.shape == (n, self.options.pool, *images.shape[1:]):
                        return pool
            except (OSError, ValueError, KeyError, TypeError, EOFError, json.JSONDecodeError):
                pass  # a damaged cache is rebuilt below
        out = torch.empty((n, self.options.pool, *images.shape[1:]), dtype=torch.uint8)
        bar = _bar(n * self.options.pool, "flowaug pool", self.options.progress)
        names = []
        for s0 in range(0, n, shard):
            s1 = min(n, s0 + shard)
            for v in range(self.options.pool):
                for b0 in range(s0, s1, self.options.batch_size):
                    b1 = min(s1, b0 + self.options.batch_size)
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
                "pool": self.options.pool,
                "tau": self.options.tau,
                "swap": self.options.swap,
                "resample": self.options.resample,
                "seed": seed,
                "shards": names,
            },
        )
        return out

    # --- the batch stage ---------------------------------------------------------------------------------
    def _attach_from_readers(self) -> None:
        """Offline mode without attach(): read the training set the way the engine does and attach it."""
        from cifarb.data.readers import load_cifar

        dataset = {10: "cifar10", 100: "cifar100"}.get(self.options.num_classes)
        if dataset is None:
            raise CifarbError(
                f"flowaug offline mode needs the training set: call FlowAug.attach(images, labels) for a "
                f"{self.options.num_classes}-class dataset (only cifar10/cifar100 are read automatically)"
            )
        train = load_cifar(dataset, "train", self.options.root, self.options.trust_local)
        self.attach(train.images, train.labels, seed=self.options.seed)

    def _rows(self, images: torch.Tensor, chosen: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        """Row in the attached set of each chosen image, or -1 where there is none: no indices, nothing
        attached, or the image is no longer the stored one (a per-sample augmentation changed it)."""
        if indices is None or self._images is None:
            return torch.full((len(chosen),), -1, dtype=torch.int64)
        rows = indices[chosen]
        same = (images[chosen].cpu() == self._images[rows]).flatten(1).all(1)
        return torch.where(same, rows, -1)

    def _check_indices(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        indices = torch.as_tensor(indices).to("cpu", torch.int64)
        if indices.shape != (len(images),):
            raise ValueError(f"flowaug: {len(images)} images but indices of shape {tuple(indices.shape)}")
        n = len(self._images) if self._images is not None else None
        if n is not None and len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n):
            bad = int(indices.max()) if int(indices.max()) >= n else int(indices.min())
            raise CifarbError(
                f"batch index {bad} is outside the {n} training images {self._where()} was built for: the "
                "batches come from another training set; attach the set you train on, "
                "FlowAug.attach(train_images, train_labels), as `cifarb train` does"
            )
        return indices

    @torch.no_grad()
    def __call__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a uint8 batch; `indices` are the images' positions in the training set (int64 (N,))."""
        self._check_shape(images)
        if self.options.mode == "offline":
            if indices is None:
                raise CifarbError(
                    "flowaug offline mode finds an image's pool variants by its training-set index: pass "
                    "indices= (the batch's positions in the training set) to AugmentPipeline.prepare, as "
                    "cifarb.train's TrainBatches.indexed_epoch yields them"
                )
            if self._pool is None:
                self._attach_from_readers()
        if indices is not None:
            indices = self._check_indices(images, indices)
        n = len(images)
        chosen = torch.rand(n, generator=generator) < self.options.p
        variant = torch.randint(self.options.pool, (n,), generator=generator)
        if not bool(chosen.any()):
            return images, labels
        out = images.clone()
        idx = torch.nonzero(chosen).flatten()
        rows = self._rows(images, idx, indices)
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
    from cifarb._progress import progress_bar

    return progress_bar(total, desc, progress=progress)


def make_flowaug(num_classes: int, **opts: Any) -> FlowAug:
    """Registry factory: the `flowaug_*` options (the CLI's --flow and --flowaug-* flags) -> FlowAug."""
    return FlowAug(FlowAugOptions.from_options(num_classes, opts))


register_augmentation("flowaug", make_flowaug, options=OPTIONS)


def _read_shard(folder: Path, name: Any) -> np.ndarray:
    """One cached pool shard: a plain file name inside the pool folder, read without pickle."""
    from cifarb.runs.rundir import is_plain_name

    if not is_plain_name(name):
        raise ValueError(f"pool shard name {name!r} is not a file name in {folder}")
    with np.load(folder / name, allow_pickle=False) as z:
        return np.asarray(z["images"])
