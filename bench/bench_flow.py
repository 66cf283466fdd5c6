"""Flow and FlowAug speed: encode/decode throughput, and the training-step overhead of `flowaug` vs `standard`.

Run: python bench/bench_flow.py [--flow docs/assets/flow_small.pt] [--arch fastnet] [--steps 6] [--rounds 3]
         [--normflows-path DIR]   (pip install --no-deps --target DIR normflows: the TARGETS.md anchor)

Every ratio is measured in this run, in alternating rounds (median of each side), so machine noise hits
both sides alike:
  - encode / decode: images per second of the flow, against one forward pass of the classifier being
    trained (`--arch`) on the same images as the in-run reference;
  - flow training: images/s of an optimizer step of our flow vs the normflows Glow of TARGETS.md;
  - training overhead: seconds per `cifarb.train` step with `standard+flowaug` (offline pool, online)
    divided by seconds per step with `standard`, same model, batches and seeds. The offline pool is
    built (or loaded from the cache) before timing; its one-off cost is reported separately.
Needs the real slice in ../shared/data (or --root with CIFAR-10 batches and --trust-local).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _median_pair(a_fn, b_fn, rounds: int) -> tuple[float, float]:
    a_fn(), b_fn()  # warm-up
    a, b = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        a_fn()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        b_fn()
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def _normflows_glow(levels: int = 3, steps: int = 8, hidden: int = 128):
    """The TARGETS.md anchor: normflows' Glow (its CIFAR example, unconditional GlowBase priors)."""
    import normflows as nf

    shape, q0, merges, flows = (3, 32, 32), [], [], []
    for i in range(levels):
        flows.append([nf.flows.GlowBlock(3 * 2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
                      for _ in range(steps)] + [nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (shape[0] * 2 ** (levels - i), shape[1] // 2 ** (levels - i), shape[2] // 2 ** (levels - i))
        else:
            latent = (shape[0] * 2 ** (levels + 1), shape[1] // 2**levels, shape[2] // 2**levels)
        q0.append(nf.distributions.GlowBase(latent))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def _flow_training_steps(args, x: torch.Tensor) -> None:
    """Images/s of one optimizer step of our flow (its own config) vs the normflows anchor, same batches."""
    import sys

    from cifarb.flows.checkpoint import read_flow_checkpoint
    from cifarb.flows.configs import config_from_dict
    from cifarb.flows.model import GlobalLocalFlow
    from cifarb.flows.train import make_optimizer

    cfg = config_from_dict(read_flow_checkpoint(Path(args.flow))["config"])
    batch = x[: cfg.batch_size]
    ours = GlobalLocalFlow(cfg)
    ours.initialize(batch)
    opt = make_optimizer(ours, cfg)

    def step_ours():
        for _ in range(args.flow_steps):
            loss = ours.loss_terms(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

    if args.normflows_path:
        sys.path.insert(0, args.normflows_path)
    try:
        ref = _normflows_glow()
    except ImportError:
        t, _ = _median_pair(step_ours, lambda: None, args.rounds)
        print(f"flow train step ({cfg.name}, batch {len(batch)}): {args.flow_steps * len(batch) / t:6.0f} img/s "
              "(normflows not importable: no reference; pass --normflows-path)")
        return
    ref_opt = torch.optim.Adamax(ref.parameters(), lr=1e-3)
    xf = (batch.float() + torch.rand(batch.shape)) / 256  # normflows' example: data in [0, 1), jittered
    ref.forward_kld(xf)  # ActNorm data initialisation

    def step_ref():
        for _ in range(args.flow_steps):
            loss = ref.forward_kld(xf)
            ref_opt.zero_grad()
            loss.backward()
            ref_opt.step()

    t_ours, t_ref = _median_pair(step_ours, step_ref, args.rounds)
    n = args.flow_steps * len(batch)
    print(f"flow train step, batch {len(batch)}: ours ({cfg.name}: L={cfg.levels} K={cfg.steps} hidden {cfg.hidden}, "
          f"+ encoder) {n / t_ours:6.0f} img/s, normflows Glow (L=3 K=8 hidden 128) {n / t_ref:6.0f} img/s "
          f"-> ours {t_ref / t_ours:.2f}x the anchor's speed")


def _trainer(aug: str, args, tmp: Path, **flow_opts):
    from cifarb.train.config import TrainConfig
    from cifarb.train.engine import Trainer, plan

    cfg = TrainConfig(dataset="cifar10", arch=args.arch, aug=aug, epochs=1, root=args.root, trust_local=True,
                      out=str(tmp / aug.replace("+", "_")), device="cpu", progress=False, eval=False, **flow_opts)
    return Trainer(plan(cfg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flow", default=str(REPO / "docs/assets/flow_small.pt"))
    ap.add_argument("--root", default=str(REPO.parent / "shared/data"))
    ap.add_argument("--arch", default="fastnet")
    ap.add_argument("--n", type=int, default=512, help="images for encode/decode timing")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6, help="training steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--flow-steps", type=int, default=3, help="flow optimizer steps per timed round")
    ap.add_argument("--normflows-path", help="folder holding the normflows package (the anchor's reference)")
    ap.add_argument("--skip-train", action="store_true", help="skip the cifarb.train overhead part")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from cifarb.augment.flowaug import FlowAug, FlowAugOptions
    from cifarb.data.readers import load_cifar
    from cifarb.flows.checkpoint import load_flow
    from cifarb.models import build_model

    print(f"# bench_flow {datetime.date.today()} | {platform.processor() or platform.machine()} | "
          f"torch {torch.__version__} | {torch.get_num_threads()} threads | flow {args.flow}")
    loaded = load_flow(args.flow)
    flow = loaded.model
    test = load_cifar("cifar10", "test", args.root, trust_local=True)
    x = torch.from_numpy(test.images[: args.n]).permute(0, 3, 1, 2).contiguous()

    # --- encode / decode throughput vs a classifier forward pass --------------------------------------------
    clf = build_model(args.arch, num_classes=10).eval()
    xf = (x.float() / 255).contiguous(memory_format=torch.channels_last)
    clf = clf.to(memory_format=torch.channels_last)
    with torch.no_grad():
        z, eps = flow.encode(x[: args.batch])

        def enc():
            for i in range(0, len(x), args.batch):
                flow.encode(x[i : i + args.batch])

        def dec():
            for i in range(0, len(x), args.batch):
                n = min(args.batch, len(x) - i)
                flow.decode(z[:n], eps[:n])

        def fwd():
            for i in range(0, len(x), args.batch):
                clf(xf[i : i + args.batch])

        t_enc, t_fwd = _median_pair(enc, fwd, args.rounds)
        t_dec, t_fwd2 = _median_pair(dec, fwd, args.rounds)
    n = len(x)
    print(f"encode: {n / t_enc:8.0f} img/s   ({args.arch} forward {n / t_fwd:6.0f} img/s; "
          f"encode costs {t_enc / t_fwd:.1f}x a forward)")
    print(f"decode: {n / t_dec:8.0f} img/s   ({args.arch} forward {n / t_fwd2:6.0f} img/s; "
          f"decode costs {t_dec / t_fwd2:.1f}x a forward)")

    # --- FlowAug on its own ---------------------------------------------------------------------------------
    labels = torch.as_tensor(test.labels[: args.n])
    online = FlowAug(FlowAugOptions(args.flow, p=0.5, progress=False))
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    for i in range(0, n, 128):
        online(x[i : i + 128], labels[i : i + 128], g)
    t_online = time.perf_counter() - t
    print(f"flowaug online, p=0.5, batch 128: {n / t_online:8.0f} img/s (augmentation alone)")

    # --- flow training speed vs the normflows anchor -----------------------------------------------------------
    _flow_training_steps(args, x)
    if args.skip_train:
        return

    # --- training overhead in cifarb.train -------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        cache = tmp / "cache"
        import os

        os.environ["CIFARB_CACHE"] = str(cache)
        std = _trainer("standard", args, tmp)
        off = _trainer("standard+flowaug", args, tmp, flow=args.flow, flowaug_mode="offline")
        onl = _trainer("standard+flowaug", args, tmp / "o", flow=args.flow, flowaug_mode="online")
        piece = next(p for p in off.p.pipeline.batch_pieces if p.name == "flowaug")
        t = time.perf_counter()
        piece._attach_from_readers()
        t_pool = time.perf_counter() - t
        print(f"offline pool: {len(piece._pool)} images x {piece.pool_size} variants built in {t_pool:.1f} s "
              f"({len(piece._pool) * piece.pool_size / t_pool:.0f} img/s), cached in {piece.pool_dir}")
        images, lab = std.p.data.train_images, std.p.data.train_labels
        bs = std.p.recipe.batch_size

        def steps(trainer):
            def fn():
                for s in range(args.steps):
                    j = (s * bs) % (len(images) - bs)
                    trainer.train_step(images[j : j + bs], lab[j : j + bs], 0, s, torch.arange(j, j + bs))
            return fn

        t_off, t_std = _median_pair(steps(off), steps(std), args.rounds)
        t_onl, t_std2 = _median_pair(steps(onl), steps(std), args.rounds)
        per = args.steps * bs
        print(f"train step ({args.arch}, batch {bs}), each pair timed in alternating rounds:")
        print(f"  standard+flowaug offline: {per / t_off:6.0f} img/s vs standard {per / t_std:6.0f} img/s -> "
              f"overhead {t_off / t_std:.2f}x (pool hits {piece.stats['pool_hits']}, misses "
              f"{piece.stats['pool_misses']}, rejected blow-ups {piece.stats['rejected']})")
        print(f"  standard+flowaug online:  {per / t_onl:6.0f} img/s vs standard {per / t_std2:6.0f} img/s -> "
              f"overhead {t_onl / t_std2:.2f}x")


if __name__ == "__main__":
    main()
