"""The flow training loop: a resumable run directory with per-epoch bits/dim, atomic checkpoints and PNG grids."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifarb._device import resolve_device
from cifarb.errors import CifarbError, UsageError
from cifarb.flows.checkpoint import FORMAT, FORMAT_VERSION, build_from_state
from cifarb.flows.configs import FlowConfig, config_from_dict
from cifarb.flows.grid import save_grid
from cifarb.flows.model import GlobalLocalFlow
from cifarb.runs import RunDir, provenance_info
from cifarb.seeds import derive_seed


@dataclass
class FlowData:
    """Training and test images (uint8 NCHW tensors) and what they came from."""

    train: torch.Tensor
    test: torch.Tensor
    dataset: str
    verified: bool
    files: dict[str, str]
    n_official_test: int


def load_flow_data(dataset: str, root: str | Path | None, trust_local: bool) -> FlowData:
    """Read the CIFAR training and test images through the verifying readers."""
    from cifarb.data.readers import load_cifar

    if dataset not in ("cifar10", "cifar100"):
        raise UsageError(f"--dataset {dataset!r}: flows train on cifar10 or cifar100")
    train = load_cifar(dataset, "train", root, trust_local)
    test = load_cifar(dataset, "test", root, trust_local)
    return FlowData(
        train=nhwc_to_tensor(train.images),
        test=nhwc_to_tensor(test.images),
        dataset=dataset,
        verified=bool(train.verified and test.verified),
        files={**train.files, **test.files},
        n_official_test=int(test.n_official),
    )


def nhwc_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC numpy -> uint8 NCHW torch (contiguous)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise CifarbError(f"flow training needs uint8 images of shape (N, H, W, 3), got {arr.dtype} {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def lr_at(step: int, total_steps: int, cfg: FlowConfig) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to zero at the last step of the last epoch."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: GlobalLocalFlow, cfg: FlowConfig) -> torch.optim.Optimizer:
    """Adam; the prior on z gets its own group with a larger step, because Adam moves each parameter
    by about lr per step and the prior must keep up with the encoder's posteriors."""
    prior = [model.prior_mean, model.prior_logs]
    ids = {id(p) for p in prior}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": rest, "lr_mult": 1.0},
                             {"params": prior, "lr_mult": cfg.prior_lr_mult}], lr=cfg.lr)


def _progress_bar(total: int, desc: str, progress: bool):
    from cifarb._progress import progress_bar

    return progress_bar(total, desc, progress=progress)


@torch.no_grad()
def evaluate_bpd(model: GlobalLocalFlow, images: torch.Tensor, batch_size: int, seed: int,
                 device: torch.device, progress: bool = False) -> tuple[float, float]:
    """Mean test bits/dim bound and its KL part, with fixed dequantisation and z noise (comparable across epochs)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    total, total_kl, n = 0.0, 0.0, 0
    bar = _progress_bar(len(images), "test bpd", progress)
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        out = model.loss_terms(x, gen)
        total += float(out["bpd"].double().sum())
        total_kl += float(out["kl_bpd"].double().sum())
        n += len(x)
        bar.update(len(x))
    bar.close()
    model.train(was_training)
    return total / n, total_kl / n


@torch.no_grad()
def write_epoch_grid(model: GlobalLocalFlow, test: torch.Tensor, path: Path, cfg: FlowConfig,
                     device: torch.device) -> Path:
    """Rows: samples at the grid temperature (2 rows), test images, their reconstructions, and the same
    images decoded with the z of the next image (a first look at what the global code controls)."""
    was_training = model.training
    model.eval()
    n = min(cfg.grid_n, len(test))
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 7)
    samples = model.sample(2 * n, cfg.grid_temperature, gen).cpu()
    x = test[:n].to(device)
    z, eps = model.encode(x)
    recon = model.decode(z, eps).cpu()
    swapped = model.decode(z.roll(1, dims=0), eps).cpu()
    model.train(was_training)
    return save_grid(path, [samples[:n], samples[n:], x.cpu(), recon, swapped], scale=2)


def _check_finite(loss: torch.Tensor, epoch: int, step: int, cfg: FlowConfig) -> None:
    if not torch.isfinite(loss):
        raise CifarbError(
            f"flow training diverged (loss {float(loss.detach())}) at epoch {epoch}, step {step}; start a new run "
            f"with a lower learning rate, e.g. a TOML file with `base = \"{cfg.name}\"` and `lr = {cfg.lr / 4:g}`"
            if cfg.name in ("tiny", "small", "paper")
            else f"flow training diverged (loss {float(loss.detach())}) at epoch {epoch}, step {step}; lower lr in your "
            "config and start a new run"
        )


@dataclass
class FlowRunPlan:
    """A flow run's settled settings: from the flags for a new run, from its manifest for a resume."""

    cfg: FlowConfig
    epochs: int
    dataset: str
    root: str | None
    trust_local: bool
    saved: dict[str, Any] | None = None  # the manifest being resumed
    changes: dict[str, Any] | None = None  # what the resume changes (recorded under the manifest's resumes)


def prepare_run(cfg: FlowConfig | None, out: Path, resume: bool, epochs: int | None, *,
                dataset: str | None = None, root: str | Path | None = None,
                trust_local: bool | None = None) -> FlowRunPlan:
    """Check --out/--resume and settle the config, epochs and data source, writing nothing.

    A resume takes every setting from the manifest (config, epochs, dataset, --root, --trust-local); it may
    give a larger --epochs (the run is extended) and other runtime settings; any other change exits 2.
    """
    rundir = RunDir(out)
    rundir.check_can_start(resume)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0):
        raise UsageError(f"--epochs must be a positive integer, got {epochs!r}")
    root_s = str(Path(root).expanduser().absolute()) if root is not None else None
    if not resume:
        if cfg is None:
            raise UsageError("--config is required to start a new flow run (tiny, small, paper or FILE.toml)")
        return FlowRunPlan(cfg, epochs if epochs is not None else cfg.epochs, dataset or "cifar10", root_s,
                           bool(trust_local))
    manifest = rundir.read_manifest()
    if manifest.get("kind") != "flow" or not isinstance(manifest.get("config"), dict):
        raise UsageError(f"--resume: {out} is not a flow run (manifest kind {manifest.get('kind')!r})")
    stored = config_from_dict(manifest["config"], f"{rundir.manifest_path} (config)")
    if cfg is not None and cfg.to_dict() != stored.to_dict():
        raise UsageError(
            f"--resume: --config {cfg.name!r} differs from the config of the run in {out} "
            f"({stored.name!r}); drop --config to resume with the stored one"
        )
    saved_epochs = manifest.get("epochs")
    if isinstance(saved_epochs, bool) or not isinstance(saved_epochs, int) or saved_epochs <= 0:
        raise CifarbError(f"{rundir.manifest_path}: 'epochs' is {saved_epochs!r}, not a positive integer; "
                          "the run is damaged—start a new one")
    changes: dict[str, Any] = {}
    if epochs is not None and epochs != saved_epochs:
        if epochs < saved_epochs:
            raise UsageError(f"--resume: --epochs {epochs} is fewer than the run's {saved_epochs} (manifest.json); "
                             "drop --epochs to resume, or give a larger number to extend the run")
        changes["epochs"] = {"from": saved_epochs, "to": epochs}
    saved_dataset = manifest.get("dataset")
    if dataset is not None and saved_dataset is not None and dataset != saved_dataset:
        raise UsageError(f"--resume: --dataset {dataset} differs from the run's {saved_dataset!r} (manifest.json); "
                         "drop --dataset to resume, or start a new run in another --out")
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    saved_root = source.get("root") if isinstance(source.get("root"), str) else None
    saved_trust = source.get("trust_local") is True
    return FlowRunPlan(
        stored, epochs if epochs is not None else saved_epochs, str(saved_dataset or dataset or "cifar10"),
        root_s if root_s is not None else saved_root, bool(trust_local) or saved_trust, manifest, changes,
    )


def train_flow(
    cfg: FlowConfig | None,
    out: str | Path,
    *,
    data: FlowData | None = None,
    dataset: str | None = None,
    root: str | Path | None = None,
    trust_local: bool | None = None,
    epochs: int | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    log: Any = None,
    trackers: Any = None,
) -> Path:
    """Train (or resume) a flow in run directory `out` and return its path.

    Each epoch appends {"event": "epoch", epoch, train_bpd, test_bpd, lr, elapsed_s, ...} to
    metrics.jsonl, rewrites checkpoints/last.pt atomically (and best.pt on a new best test bpd), and
    writes samples/epoch_NNNN.png. `data` overrides reading `dataset` from `root` (tests). A resume
    reuses the run's config, epochs, dataset, root and trust_local (see `prepare_run`). `trackers`
    (a cifarb.train.trackers.TrackerSpec, passed in by the command layer) mirror each epoch line and
    the final bits/dim to TensorBoard, MLflow or wandb.
    """
    out = Path(out)
    plan = prepare_run(cfg, out, resume, epochs, dataset=dataset, root=root, trust_local=trust_local)
    cfg = plan.cfg
    dev = resolve_device(device)
    if data is None:
        data = load_flow_data(plan.dataset, plan.root, plan.trust_local)
    if cfg.train_limit or cfg.test_limit:
        data = FlowData(
            train=data.train[: cfg.train_limit or None], test=data.test[: cfg.test_limit or None],
            dataset=data.dataset, verified=data.verified, files=data.files, n_official_test=data.n_official_test,
        )
    if len(data.train) == 0 or len(data.test) == 0:
        raise CifarbError("flow training needs at least one training and one test image")
    rundir = RunDir(out)
    # one writer per run directory, for the life of the run; the OS releases the lock if this process dies
    with rundir.lock("flow run directory"):
        rundir.check_can_start(resume)  # again: the folder may have changed while the data was read
        return _train_locked(plan, data, rundir, dev, progress, log, trackers)


def _train_locked(plan: FlowRunPlan, data: FlowData, rundir: RunDir, dev: torch.device, progress: bool,
                  log: Any, trackers: Any = None) -> Path:
    cfg, n_epochs, out = plan.cfg, plan.epochs, rundir.path
    tracker_names = list(trackers.names) if trackers is not None else []
    say = log if log is not None else (lambda msg: print(msg, file=sys.stderr))
    torch.manual_seed(cfg.seed)
    model = GlobalLocalFlow(cfg).to(dev)
    opt = make_optimizer(model, cfg)
    start_epoch, step, elapsed, best, cpu = 0, 0, 0.0, math.inf, 0.0
    if plan.saved is not None:
        state = rundir.load_checkpoint("last.pt") if rundir.checkpoint_path("last.pt").exists() else None
        if state is not None:
            try:
                model = build_from_state(state, rundir.checkpoint_path("last.pt")).to(dev)
                opt = make_optimizer(model, cfg)
                opt.load_state_dict(state["optimizer"])
                start_epoch, step = int(state["epoch"]), int(state["step"])
                elapsed, best = float(state["elapsed_s"]), float(state.get("best_test_bpd", math.inf))
                cpu = float(state.get("cpu_s", 0.0))
                torch.set_rng_state(state["torch_rng"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CifarbError(f"flow checkpoint {rundir.checkpoint_path('last.pt')} is not a complete training "
                                  f"state ({exc.__class__.__name__}: {str(exc)[:100]}); delete it to restart the run "
                                  "from scratch, or start a new run") from None
            say(f"resuming {out} after epoch {start_epoch}")
        # validated: now the run may be changed
        rundir.clean_stale_staging()
        rundir.truncate_epochs(start_epoch)
        manifest = dict(plan.saved)
        manifest["epochs"] = n_epochs
        entry: dict[str, Any] = {"from_epoch": start_epoch, "torch_threads": torch.get_num_threads(),
                                 "trackers": tracker_names, **(plan.changes or {})}
        entry.update({k: v for k, v in provenance_info().items() if k != "versions"})
        manifest.setdefault("resumes", []).append(entry)
        rundir.write_manifest(manifest)
    else:
        # built under a temporary name and renamed: a kill never leaves a half-made run behind
        rundir.create_with_manifest({
            "kind": "flow",
            "config": cfg.to_dict(),
            "dataset": data.dataset,
            "epochs": n_epochs,
            "seed": cfg.seed,
            "device": str(dev),
            "source": {"root": plan.root, "trust_local": plan.trust_local},
            "data": {"n_train": len(data.train), "n_test": len(data.test), "n_official_test": data.n_official_test,
                     "verified": data.verified, "sha256": data.files},
            **provenance_info(),
            "trackers": tracker_names,
            "resumes": [],
        })

    tracker = trackers.open(out, config={**cfg.to_dict(), "dataset": data.dataset, "epochs": n_epochs}) \
        if trackers is not None else None
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    total_steps = steps_per_epoch * n_epochs
    if start_epoch == 0:
        # Data-dependent ActNorm init from one (seeded) batch.
        g = torch.Generator().manual_seed(cfg.seed)
        idx = torch.randperm(len(data.train), generator=g)[: max(cfg.batch_size, 256)]
        model.initialize(data.train[idx].to(dev))
    model.train()
    for epoch in range(start_epoch + 1, n_epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        # The epoch's order and flips depend only on (seed, epoch), so a resumed run sees the same data.
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, "flow-epoch", epoch))
        order = torch.randperm(len(data.train), generator=g)
        flips = torch.rand(len(data.train), generator=g) < 0.5 if cfg.hflip else None
        bar = _progress_bar(steps_per_epoch, f"flow epoch {epoch}/{n_epochs}", progress)
        sum_bpd, seen = 0.0, 0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = data.train[idx]
            if flips is not None:
                f = flips[idx]
                x = torch.where(f.view(-1, 1, 1, 1), x.flip(3), x)
            x = x.to(dev, non_blocking=True)
            lr = lr_at(step, total_steps, cfg)
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_mult"]
            kl_w = cfg.kl_weight * min(1.0, (step + 1) / cfg.kl_warmup_steps) if cfg.kl_warmup_steps else cfg.kl_weight
            terms = model.loss_terms(x, kl_weight=kl_w, free_bits=cfg.free_bits)
            loss = terms["loss"]
            _check_finite(loss, epoch, step, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            sum_bpd += float(terms["bpd"].detach().sum())
            seen += len(x)
            bar.set_postfix(bpd=f"{sum_bpd / seen:.3f}", refresh=False)
            bar.update(1)
        bar.close()
        test_bpd, test_kl = evaluate_bpd(model, data.test, cfg.test_batch_size, cfg.seed + 12345, dev, progress)
        if not math.isfinite(test_bpd):
            _check_finite(torch.tensor(test_bpd), epoch, step, cfg)
        write_epoch_grid(model, data.test, rundir.path / "samples" / f"epoch_{epoch:04d}.png", cfg, dev)
        epoch_s = time.perf_counter() - t0
        elapsed += epoch_s
        cpu += time.process_time() - c0  # CPU seconds of this process: robust to a busy, shared machine
        state = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "step": step,
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "test_bpd": test_bpd,
            "best_test_bpd": min(best, test_bpd),
            "torch_rng": torch.get_rng_state(),
            "dataset": data.dataset,
            "data_sha256": data.files,
        }
        if test_bpd < best:
            best = test_bpd
            rundir.save_checkpoint(state, "best.pt")
        rundir.save_checkpoint(state, "last.pt")
        rundir.append_metrics(record := {
            "event": "epoch",
            "epoch": epoch,
            "train_bpd": sum_bpd / seen,
            "test_bpd": test_bpd,
            "test_kl_bpd": test_kl,
            "lr": lr,
            "elapsed_s": round(elapsed, 3),
            "epoch_s": round(epoch_s, 3),
            "cpu_s": round(cpu, 3),
        })
        if tracker is not None:
            tracker.log_epoch(record)
        say(f"epoch {epoch}/{n_epochs}: train {sum_bpd / seen:.4f} bpd, test {test_bpd:.4f} bpd "
            f"(KL {test_kl:.4f}), {epoch_s:.1f} s")
    if tracker is not None:
        done = rundir.read_metrics("epoch")  # the final result: the last epoch's line and the best test bpd
        if done:
            tracker.log_summary({**done[-1], "best_test_bpd": min(r["test_bpd"] for r in done)})
        tracker.close()
    return rundir.path
