"""Eval throughput: cifarb's predict()/evaluate against a bare `model(x)` loop over the same images, same run.

    python bench/bench_eval.py [--archs resnet20,resnet56] [--n 2048] [--batch-size 256] [--reps 5]

The bare loop gets the images already converted to normalised float NCHW tensors (the conversion is
not timed) and is measured in both memory formats (contiguous and channels_last); the faster of the
two is the reference. predict() starts from uint8 NHWC images and includes the conversion, argmax and
logit collection. `evaluate` is predict() plus the CIFAR10-B metrics with 1,000 bootstrap resamples
(on the bundled 1,017-image sample). Methods are interleaved across repetitions and each is
summarised by its median, so a machine shared with other work affects them alike.
ResNet20 uses the bundled weights; ResNet56 is randomly initialised (speed does not depend on weights).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from cifarb.data.sample import load_demo_sample
from cifarb.eval import predict
from cifarb.eval.evaluate import evaluate_imageset, resolve_device
from cifarb.models import build_model
from cifarb.models.zoo import LoadedModel, resolve_model


def _model(arch: str) -> LoadedModel:
    if arch == "resnet20":
        return resolve_model("resnet20")
    torch.manual_seed(0)
    net = build_model(arch).eval()
    return LoadedModel(module=net, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), arch=arch, spec=arch,
                       sha256=None)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bare_loop(net: torch.nn.Module, batches: list[torch.Tensor], dev: torch.device) -> float:
    """Seconds for `model(x)` over pre-made float batches (results kept, as an evaluation must)."""
    _sync(dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        outs = [net(x) for x in batches]
    _sync(dev)
    del outs
    return time.perf_counter() - t0


def ours(net: torch.nn.Module, images: np.ndarray, m: LoadedModel, batch_size: int, dev: torch.device) -> float:
    t0 = time.perf_counter()
    predict(net, images, m.mean, m.std, batch_size=batch_size, device=dev)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet20,resnet56")
    parser.add_argument("--n", type=int, default=2048, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    dev = resolve_device(args.device)
    sample = load_demo_sample()
    reps = -(-args.n // sample.n_images)
    images = np.ascontiguousarray(np.concatenate([sample.images] * reps)[: args.n])
    print(f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} images, "
          f"batch {args.batch_size}, {args.reps} interleaved repetitions (median)")
    header = f"{'arch':<9} {'bare contig':>12} {'bare ch_last':>12} {'predict':>10} {'ratio':>6} " \
             f"{'evaluate':>10} {'ratio':>6}"
    print(header, flush=True)
    for arch in args.archs.split(","):
        m = _model(arch)
        net = m.module.to(dev)
        mean = torch.tensor(m.mean).view(1, 3, 1, 1)
        std = torch.tensor(m.std).view(1, 3, 1, 1)
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
        contig = [b.contiguous().to(dev) for b in x.split(args.batch_size)]
        chlast = [b.contiguous(memory_format=torch.channels_last).to(dev) for b in x.split(args.batch_size)]
        times: dict[str, list[float]] = {"contig": [], "cl": [], "predict": [], "evaluate": []}
        for rep in range(args.reps + 1):  # the first repetition warms up and is discarded
            net.to(memory_format=torch.contiguous_format)
            t_contig = bare_loop(net, contig, dev)
            net.to(memory_format=torch.channels_last)
            t_cl = bare_loop(net, chlast, dev)
            t_pred = ours(net, images, m, args.batch_size, dev)
            t0 = time.perf_counter()
            evaluate_imageset(m, sample, "cifar10-b", batch_size=args.batch_size, device=str(dev), bootstrap=1000,
                              progress=False)
            t_eval = time.perf_counter() - t0
            if rep:
                for key, t, n in (("contig", t_contig, args.n), ("cl", t_cl, args.n), ("predict", t_pred, args.n),
                                  ("evaluate", t_eval, sample.n_images)):
                    times[key].append(n / t)
        med = {k: statistics.median(v) for k, v in times.items()}
        best_bare = max(med["contig"], med["cl"])
        print(f"{arch:<9} {med['contig']:>10.0f}/s {med['cl']:>10.0f}/s {med['predict']:>8.0f}/s "
              f"{med['predict'] / best_bare:>6.2f} {med['evaluate']:>8.0f}/s {med['evaluate'] / best_bare:>6.2f}")
    print("ratio = img/s of cifarb / img/s of the faster bare loop (target >= 0.9)")


if __name__ == "__main__":
    main()
