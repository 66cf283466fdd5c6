"""Time-to-accuracy on the real slice: fastnet + standard on 5,085 training images, tested on 1,017 images.

    python bench/time_to_accuracy.py [--epochs 3,10,16] [--root ../shared/data] [--reference]

Each --epochs value is one `cifarb train` run (the LR schedule rescales to it); every epoch line gives
test accuracy on the 1,017 real test images against cumulative wall time (training plus the per-epoch
test pass, not start-up). With --reference, the same run also trains a plain hand-written PyTorch loop
in the style of TARGETS.md's anchor (the same fastnet module; crop+flip, label smoothing 0.2,
SGD-nesterov, one-cycle, batch 128, no whitening init, no per-group LR) for the largest epoch count,
so the two are compared on this machine under the same load. On a shared machine wall time depends on
the other work; the process CPU time of each run is printed as well.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cifarb.train import TrainConfig
from cifarb.train.engine import run

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def ours(epochs: int, root: Path, tmp: Path, aug: str, arch: str) -> list[dict]:
    cfg = TrainConfig(dataset="cifar10", arch=arch, aug=aug, epochs=epochs, root=str(root), trust_local=True,
                      out=str(tmp / f"{arch}-{aug}-{epochs}"), eval=False, progress=False)
    return run(cfg).history


def reference(epochs: int, root: Path, batch: int = 128, lr: float = 0.2) -> list[dict]:
    """A plain loop: pad-4 crop + flip, label smoothing 0.2, SGD-nesterov 0.9, wd 5e-4, linear one-cycle."""
    from cifarb.data.readers import load_cifar
    from cifarb.models import build_model

    torch.manual_seed(0)
    tr = load_cifar("cifar10", "train", root=root, trust_local=True)
    te = load_cifar("cifar10", "test", root=root, trust_local=True)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)

    def prep(a: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255 - mean) / std

    x_train, y_train = prep(tr.images), torch.from_numpy(tr.labels)
    x_test, y_test = prep(te.images).contiguous(memory_format=torch.channels_last), torch.from_numpy(te.labels)
    model = build_model("fastnet").to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * (len(x_train) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25,
                                                anneal_strategy="linear")
    padded = F.pad(x_train, (4, 4, 4, 4), mode="reflect")
    out, elapsed = [], 0.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(x_train))
        for s in range(len(x_train) // batch):
            idx = perm[s * batch : (s + 1) * batch]
            dx, dy = np.random.randint(0, 9, 2)
            x = padded[idx, :, dy : dy + 32, dx : dx + 32]
            flip = torch.rand(len(idx)) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), y_train[idx], label_smoothing=0.2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(x_test[i : i + 500]).argmax(1) for i in range(0, len(x_test), 500)])
        elapsed += time.perf_counter() - t0
        out.append({"epoch": epoch + 1, "test_accuracy": float((pred == y_test).float().mean()), "elapsed_s": elapsed})
    return out


def first_reaching(history: list[dict], target: float) -> str:
    for r in history:
        if r["test_accuracy"] >= target:
            return f"{r['elapsed_s']:.0f} s (epoch {r['epoch']})"
    return "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", default="3,10,16", help="comma-separated epoch counts, one run each")
    parser.add_argument("--arch", default="fastnet")
    parser.add_argument("--aug", default="standard")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--reference", action="store_true", help="also train the plain-loop reference")
    args = parser.parse_args()
    if not (args.root / "cifar-10-batches-py" / "test_batch").exists():
        raise SystemExit(f"the real data slice is not at {args.root}; pass --root")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.arch} + {args.aug}; data {args.root}")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for e in (int(v) for v in args.epochs.split(",")):
            cpu0 = time.process_time()
            history = ours(e, args.root, Path(tmp), args.aug, args.arch)
            cpu = time.process_time() - cpu0
            runs[f"cifarb {e} epochs"] = history
            print(f"\ncifarb {args.arch}+{args.aug}, {e} epochs (schedule rescaled); process CPU time {cpu:.0f} s "
                  "(whole run, start-up included):")
            for r in history:
                print(f"  epoch {r['epoch']:>3}  {r['elapsed_s']:7.1f} s  test accuracy {100 * r['test_accuracy']:.2f} %")
            print(f"  final {100 * history[-1]['test_accuracy']:.2f} % at {history[-1]['elapsed_s']:.0f} s", flush=True)
    if args.reference:
        e = max(int(v) for v in args.epochs.split(","))
        cpu0 = time.process_time()
        history = reference(e, args.root)
        cpu = time.process_time() - cpu0
        runs[f"plain loop {e} epochs"] = history
        print(f"\nplain PyTorch loop (anchor style), {e} epochs; process CPU time {cpu:.0f} s:")
        for r in history:
            print(f"  epoch {r['epoch']:>3}  {r['elapsed_s']:7.1f} s  test accuracy {100 * r['test_accuracy']:.2f} %")
    print("\nsummary: time to reach 75 % / 81 % test accuracy, and the final accuracy")
    for name, history in runs.items():
        last = history[-1]
        print(f"  {name:<22} 75 %: {first_reaching(history, 0.75):<22} 81 %: {first_reaching(history, 0.81):<22} "
              f"final {100 * last['test_accuracy']:.2f} % at {last['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
