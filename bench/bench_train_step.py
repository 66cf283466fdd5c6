"""Training-step throughput: cifarb's loop against a bare PyTorch loop over the same model, batch and device.

    python bench/bench_train_step.py [--arch fastnet] [--batch-size 256] [--steps 8] [--reps 5]
                                     [--augs standard,none,cutout,...] [--device auto]
                                     [--workers N] [--amp]

"ours" is `Trainer.train_epoch` exactly as `cifarb train` runs it: keyed shuffling, gathering uint8
images, the augmentation pipeline (batched crop/flip on the tensor; per-sample policies in a DataLoader
worker), normalisation, channels_last, label-smoothed loss, SGD with param groups, the per-step LR
schedule and NaN check. The bare loop feeds pre-made normalised channels_last float batches to
forward / cross-entropy / backward / SGD step, with nothing else. Both run the same architecture and
batch size on the same device (the bare loop trains a copy of cifarb's freshly initialised
module); they are interleaved over repetitions and summarised by their medians,
so a machine shared with other work affects them alike. Images: the real 5,085-image training slice of
../shared/data when present (--root), else the bundled 1,017-image sample.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cifarb.train import TrainConfig
from cifarb.train.engine import Trainer, plan

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
ALL_AUGS = "standard,none,cutout,autoaugment,randaugment,trivialaugment,augmix,mixup,cutmix,standard+mixup"


def load_images(root: Path) -> tuple[object, object, str]:
    if (root / "cifar-10-batches-py" / "data_batch_1").exists():
        from cifarb.data.readers import load_cifar

        train = load_cifar("cifar10", "train", root=root, trust_local=True)
        test = load_cifar("cifar10", "test", root=root, trust_local=True)
        return train, test, f"{len(train.labels)} real training images from {root}"
    from cifarb.data.sample import load_demo_sample

    sample = load_demo_sample()
    return sample, sample, "the bundled 1,017-image sample"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def make_trainer(args: argparse.Namespace, aug: str, data: tuple, out: Path) -> Trainer:
    cfg = TrainConfig(
        dataset="cifar10", arch=args.arch, aug=aug, epochs=1000, batch_size=args.batch_size,
        limit_train=args.batch_size * args.steps, out=str(out / aug.replace("+", "_")), eval=False,
        progress=False, device=args.device, compile=False, workers=args.workers, amp=args.amp,
    )
    return Trainer(plan(cfg, data=data))


def time_ours(trainer: Trainer, epoch: int) -> float:
    sync(trainer.device)
    t0 = time.perf_counter()
    trainer.train_epoch(epoch)
    sync(trainer.device)
    return time.perf_counter() - t0


class Bare:
    """The reference: the same architecture, optimizer settings and batch, nothing but the step."""

    def __init__(self, trainer: Trainer) -> None:
        p = trainer.p
        self.dev = trainer.device
        # the very module cifarb trains, copied before its first step (same init, whitening included)
        self.model = copy.deepcopy(trainer.model)
        r = p.recipe
        self.opt = torch.optim.SGD(self.model.parameters(), lr=r.lr * 0.1, momentum=r.momentum,
                                   nesterov=r.nesterov, weight_decay=r.weight_decay)
        self.smoothing = r.label_smoothing
        self.autocast = trainer.path.autocast  # the same bf16 autocast as ours under --amp
        mean = torch.tensor(trainer.mean, device=self.dev).view(1, 3, 1, 1)
        std = torch.tensor(trainer.std, device=self.dev).view(1, 3, 1, 1)
        images = p.data.train_images.to(self.dev)
        self.batches = [
            (((images[i : i + r.batch_size].float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last),
             p.data.train_labels[i : i + r.batch_size].to(self.dev))
            for i in range(0, trainer.steps_per_epoch * r.batch_size, r.batch_size)
        ]

    def run(self) -> float:
        self.model.train()
        sync(self.dev)
        t0 = time.perf_counter()
        for x, y in self.batches:
            with self.autocast():
                logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.smoothing)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        sync(self.dev)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="fastnet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per timed pass")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (median)")
    parser.add_argument("--augs", default=ALL_AUGS, help="comma-separated; the first is the ratio's subject")
    parser.add_argument("--aug-reps", type=int, default=2, help="repetitions for the other augmentations")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast in both loops (`cifarb train --amp`)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers for per-sample policies (default: cifarb's choice)")
    args = parser.parse_args()
    train, test, what = load_images(args.root)
    data = (train, test)
    augs = args.augs.split(",")
    n = args.batch_size * args.steps
    with tempfile.TemporaryDirectory() as tmp:
        main_trainer = make_trainer(args, augs[0], data, Path(tmp))
        dev = main_trainer.device
        print(f"{args.arch}, batch {args.batch_size}, {args.steps} steps ({n} images) per pass, device {dev}, "
              f"amp {main_trainer.path.amp}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; images: {what}")
        bare = Bare(main_trainer)
        bare.run()  # warm-up (allocator, kernels)
        time_ours(main_trainer, 0)
        bare_t, ours_t = [], []
        for rep in range(args.reps):
            bare_t.append(bare.run())
            ours_t.append(time_ours(main_trainer, rep + 1))
        bare_ips = n / statistics.median(bare_t)
        ours_ips = n / statistics.median(ours_t)
        print(f"bare loop            {bare_ips:8.1f} img/s")
        print(f"cifarb {augs[0]:<13} {ours_ips:8.1f} img/s   ratio {ours_ips / bare_ips:.3f}")
        print(f"\nper augmentation ({args.aug_reps} interleaved repetitions each; ratio to the bare loop):")
        for aug in augs[1:]:
            trainer = make_trainer(args, aug, data, Path(tmp))
            time_ours(trainer, 0)
            ts, bs = [], []
            for rep in range(args.aug_reps):
                bs.append(bare.run())
                ts.append(time_ours(trainer, rep + 1))
            ips = n / statistics.median(ts)
            ref = n / statistics.median(bs)
            print(f"cifarb {aug:<16} {ips:8.1f} img/s   ratio {ips / ref:.3f}   (workers {trainer.p.runtime.workers}, "
                  f"views {trainer.p.pipeline.views})", flush=True)


if __name__ == "__main__":
    main()
