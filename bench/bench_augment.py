"""Augmentation throughput: each per-sample policy vs the bare torchvision transform, and the batched stages.

Run: python bench/bench_augment.py [--n 2000] [--rounds 5]. One core (torch.set_num_threads(1)); rounds
alternate ours/reference and the median of each is reported, so machine noise hits both sides alike.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from cifarb.augment import build_pipeline


def _images(n: int) -> torch.Tensor:
    """Real CIFAR-10 test images from ../shared when present (ops such as equalize are content-dependent)."""
    try:
        import pickle
        from pathlib import Path

        import numpy as np

        path = Path(__file__).resolve().parents[1].parent / "shared/data/cifar-10-batches-py/test_batch"
        with open(path, "rb") as fh:
            data = np.asarray(pickle.load(fh, encoding="latin1")["data"], dtype=np.uint8).reshape(
                -1, 3, 32, 32
            )
        reps = -(-n // len(data))
        return torch.from_numpy(np.concatenate([data] * reps)[:n]).contiguous()
    except OSError:
        g = torch.Generator().manual_seed(0)
        low = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float()
        return F.interpolate(low, size=32, mode="bilinear").round().to(torch.uint8)


def _time(fn, rounds: int, warm: int = 1) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _pair(ours, ref, rounds: int) -> tuple[float, float]:
    """Median seconds of `ours` and `ref`, measured in alternating rounds."""
    ours(), ref()
    a, b = [], []
    for _ in range(rounds):
        a += _time(ours, 1, 0)
        b += _time(ref, 1, 0)
    return statistics.median(a), statistics.median(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images per per-sample round")
    ap.add_argument("--batch", type=int, default=512, help="batch size for the batched stages")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    images = _images(max(args.n, args.batch))
    labels = torch.arange(len(images)) % 10
    n = args.n
    print(
        f"# bench_augment  {datetime.date.today()}  torch {torch.__version__}  {platform.processor() or platform.machine()}"
    )
    print(
        f"# per-sample: {n} uint8 3x32x32 images, one thread; batched: batch {args.batch}; median of {args.rounds} rounds\n"
    )
    print("| stage | spec | cifarb img/s | reference | reference img/s | ratio |")
    print("|---|---|---:|---|---:|---:|")

    policies = {
        "autoaugment": v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
        "randaugment": v2.RandAugment(),
        "trivialaugment": v2.TrivialAugmentWide(),
        "augmix": v2.AugMix(all_ops=False),
    }
    for name, bare in policies.items():
        pipe = build_pipeline(name, num_classes=10, augmix_jsd=False)

        def ours(pipe=pipe):
            for i in range(n):
                pipe.sample(images[i], epoch=0, index=i)

        def ref(bare=bare):
            for i in range(n):
                bare(images[i])

        a, b = _pair(ours, ref, args.rounds)
        print(
            f"| sample | {name} | {n / a:,.0f} | torchvision v2 {type(bare).__name__} | {n / b:,.0f} | {b / a:.2f} |"
        )

    jsd = build_pipeline("augmix", num_classes=10)
    bare = policies["augmix"]

    def ours_jsd():
        for i in range(n):
            jsd.sample(images[i], epoch=0, index=i)

    def ref_jsd():
        for i in range(n):
            torch.stack([images[i], bare(images[i]), bare(images[i])])

    a, b = _pair(ours_jsd, ref_jsd, args.rounds)
    print(
        f"| sample | augmix (JSD, 3 views) | {n / a:,.0f} | clean + 2x v2 AugMix | {n / b:,.0f} | {b / a:.2f} |"
    )

    # batched uint8 stage vs the usual per-sample torchvision pipeline doing the same thing
    batch, blabels = images[: args.batch], labels[: args.batch]
    per_sample = {
        "standard": v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]),
        "standard+cutout": v2.Compose(
            [
                v2.RandomCrop(32, padding=4),
                v2.RandomHorizontalFlip(),
                v2.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1, 1)),
            ]
        ),
    }
    for spec, ref_t in per_sample.items():
        pipe = build_pipeline(spec, num_classes=10)
        g = pipe.generator(epoch=0, step=0)

        def ours(pipe=pipe, g=g):
            pipe.batch(batch, blabels, g)

        def ref(ref_t=ref_t):
            for i in range(len(batch)):
                ref_t(batch[i])

        a, b = _pair(ours, ref, args.rounds)
        label = "per-sample v2 RandomCrop(pad 4)+Flip" + ("+RandomErasing 16x16" if "cutout" in spec else "")
        print(f"| batch | {spec} | {len(batch) / a:,.0f} | {label} | {len(batch) / b:,.0f} | {b / a:.2f} |")

    # mix stage vs torchvision's batched v2.MixUp / v2.CutMix on the same float batch
    x = batch.float() / 255
    for spec, ref_t in (("mixup", v2.MixUp(num_classes=10)), ("cutmix", v2.CutMix(num_classes=10))):
        pipe = build_pipeline(spec, num_classes=10)
        g = pipe.generator(epoch=0, step=0)

        def ours(pipe=pipe, g=g):
            pipe.mix(x, blabels, g)

        def ref(ref_t=ref_t):
            ref_t(x, blabels)

        a, b = _pair(ours, ref, args.rounds * 4)
        print(
            f"| mix | {spec} | {len(x) / a:,.0f} | torchvision v2 {type(ref_t).__name__} (batched) | {len(x) / b:,.0f} | {b / a:.2f} |"
        )

    # the whole prepare() call of the training loop: batch stage + normalise + channels_last (+ mix)
    for spec in ("standard", "standard+mixup"):
        pipe = build_pipeline(spec, num_classes=10)

        def ours(pipe=pipe):
            pipe.prepare(batch, blabels, epoch=0, step=0)

        def ref():
            (batch.float() / 255).contiguous(memory_format=torch.channels_last)

        a, b = _pair(ours, ref, args.rounds * 4)
        print(
            f"| prepare | {spec} | {len(batch) / a:,.0f} | bare uint8->float+channels_last | {len(batch) / b:,.0f} | {b / a:.2f} |"
        )


if __name__ == "__main__":
    main()
