"""Time-to-accuracy on the real slice: fastnet + standard on 5,085 training images, tested on 1,017 images.

    python bench/time_to_accuracy.py [--epochs 3,10,16] [--root ../shared/data] [--reference]
    python bench/time_to_accuracy.py --seeds 0,1,2 --epochs 25 --hparam tta=flip+translate \
        --hparam tta_each_epoch=false [--hparam ema_decay=0.95 ...]

With --seeds, each seed is one complete `cifarb train` run with the final evaluation on CIFAR10-B, and
the table has one row per seed, `| seed N | acc % | s |`, and `| mean of 3 seeds | NN.N % | SSS s |`:
accuracy is the final eval exactly as `cifarb train` reports it (eval/cifar10-b.json, with the recipe's
test-time augmentation), and the seconds are the run's epochs (training + per-epoch test pass,
`elapsed_s`) plus the final evaluation, TTA included; not process start-up or data loading. The same
run's saved weights (raw, and averaged when the recipe has an EMA) are also scored at every TTA level,
so each lever's share is visible without more training. The recipe line lists every lever's value and
the run's cost in image passes (a backward pass counted as two forwards), so two recipes' per-epoch
cost can be compared without timing them on the same idle machine.

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
import json
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


def ours(epochs: int, root: Path, tmp: Path, aug: str, arch: str, hparams: dict | None = None) -> list[dict]:
    cfg = TrainConfig(dataset="cifar10", arch=arch, aug=aug, epochs=epochs, root=str(root), trust_local=True,
                      out=str(tmp / f"{arch}-{aug}-{epochs}"), eval=False, progress=False, hparams=dict(hparams or {}))
    return run(cfg).history


def seeded_run(seed: int, epochs: int, root: Path, tmp: Path, aug: str, arch: str, hparams: dict,
               amp: bool | None = None) -> dict:
    """One full run with its final evaluation; the seconds include that evaluation (TTA and all)."""
    from cifarb.train import engine

    timed: dict[str, float] = {}
    real_final_eval = engine.final_eval

    def final_eval(p, trainer):
        t0 = time.perf_counter()
        try:
            return real_final_eval(p, trainer)
        finally:
            timed["eval_s"] = time.perf_counter() - t0

    out = tmp / f"{arch}-{aug}-{epochs}-s{seed}"
    cfg = TrainConfig(dataset="cifar10", arch=arch, aug=aug, epochs=epochs, seed=seed, root=str(root),
                      trust_local=True, out=str(out), progress=False, hparams=dict(hparams), amp=amp)
    engine.final_eval = final_eval
    try:
        result = run(cfg)
    finally:
        engine.final_eval = real_final_eval
    assert result.eval_result is not None
    train_s = result.history[-1]["elapsed_s"]
    manifest = json.loads((out / "manifest.json").read_text())
    return {"seed": seed, "accuracy": result.eval_result["accuracy"], "train_s": train_s, "manifest": manifest,
            "eval_s": timed["eval_s"], "seconds": train_s + timed["eval_s"], "history": result.history,
            "ablation": ablation(out, root)}


def ablation(out: Path, root: Path) -> dict[str, float]:
    """Accuracy of the run's saved weights (raw, and the EMA when there is one) at every TTA level."""
    from cifarb.data.readers import load_cifar
    from cifarb.eval import predict
    from cifarb.eval.tta import TTA_MODES, with_tta
    from cifarb.models import build_model

    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    test = load_cifar("cifar10", "test", root=root, trust_local=True)
    weights = {"raw": ckpt.get("train_model", ckpt["model"])}
    if "train_model" in ckpt:
        weights["ema"] = ckpt["model"]
    scores = {}
    for name, state in weights.items():
        net = build_model(ckpt["arch"], num_classes=ckpt["num_classes"], **ckpt.get("arch_options", {}))
        net.load_state_dict(state)
        for tta in TTA_MODES:
            pred, _ = predict(with_tta(net, tta), test.images, ckpt["mean"], ckpt["std"], batch_size=500,
                              device="cpu", return_logits=False)
            scores[f"{name}, tta {tta}"] = float((pred == test.labels).mean())
    return scores


TTA_VIEWS = {"none": 1, "flip": 2, "flip+translate": 6}
LEVERS = ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "data_init", "tta", "tta_each_epoch",
          "ema_decay", "ema_start")


def image_passes(hparams: dict, steps_per_epoch: int, n_test: int) -> tuple[int, int]:
    """(per epoch, final evaluation) cost in image forward passes, a training image counting 3 (forward + backward)."""
    views = TTA_VIEWS[hparams["tta"]]
    per_epoch = 3 * steps_per_epoch * hparams["batch_size"] + n_test * (views if hparams["tta_each_epoch"] else 1)
    return per_epoch, n_test * views


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
    parser.add_argument("--seeds", help="comma-separated seeds: one full run (with final eval) each, at the "
                        "single --epochs value; prints the per-seed table")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="as `cifarb train --amp`: bf16 autocast (on CPU only when asked)")
    parser.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override, as `cifarb train --hparam` (e.g. tta=flip, ema_decay=0.95)")
    args = parser.parse_args()
    if not (args.root / "cifar-10-batches-py" / "test_batch").exists():
        raise SystemExit(f"the real data slice is not at {args.root}; pass --root")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.arch} + {args.aug}; data {args.root}")
    if args.seeds:
        return seeds_table(args)
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


def _hparams(items: list[str]) -> dict:
    from cifarb.commands.train import _hparam

    return dict(_hparam(item) for item in items)


def seeds_table(args: argparse.Namespace) -> None:
    import os
    import shlex
    import sys

    hparams = _hparams(args.hparam)
    if not args.epochs.isdigit():
        raise SystemExit(f"--seeds needs one --epochs value, got {args.epochs!r}")
    epochs = int(args.epochs)
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    print("rerun: python " + " ".join(shlex.quote(a) for a in sys.argv), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(v) for v in args.seeds.split(",")):
            r = seeded_run(seed, epochs, args.root, Path(tmp), args.aug, args.arch, hparams, amp=args.amp)
            rows.append(r)
            print(f"seed {seed}: {100 * r['accuracy']:.2f} % in {r['seconds']:.0f} s (epochs {r['train_s']:.0f} s + "
                  f"final eval {r['eval_s']:.1f} s); same weights: "
                  + ", ".join(f"{k} {100 * v:.2f} %" for k, v in r["ablation"].items()), flush=True)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    overrides = ", ".join(f"{k}={v}" for k, v in hparams.items()) or "none"
    recipe = rows[0]["manifest"]["hparams"]
    steps = rows[0]["manifest"]["runtime"]["steps_per_epoch"]
    n_test = rows[0]["manifest"]["data"]["test"]["n_images"]
    per_epoch, final = image_passes(recipe, steps, n_test)
    print(f"\n{args.arch} + {args.aug}, {epochs} epochs, recipe overrides: {overrides}")
    runtime = rows[0]["manifest"]["runtime"]
    print("recipe: " + ", ".join(f"{k}={recipe[k]}" for k in LEVERS)
          + f"; runtime: amp={runtime['amp']} ({runtime.get('amp_dtype')}), {runtime['torch_threads']} threads")
    print(f"cost in image passes (backward = 2 forwards): {steps} steps x {recipe['batch_size']} + {n_test} test "
          f"images -> {per_epoch} an epoch, {final} for the final evaluation, {epochs * per_epoch + final} in all\n")
    print("| run | accuracy | wall time |\n|---|---|---|")
    for r in rows:
        print(f"| seed {r['seed']} | {100 * r['accuracy']:.1f} % | {r['seconds']:.0f} s |")
    mean_acc = sum(r["accuracy"] for r in rows) / len(rows)
    mean_s = sum(r["seconds"] for r in rows) / len(rows)
    print(f"| mean of {len(rows)} seeds | {100 * mean_acc:.1f} % | {mean_s:.0f} s |")


if __name__ == "__main__":
    main()
