"""Which torch thread count trains fastest here: fastnet and the `small` flow, 1 vs N threads.

Each configuration runs in its own process (torch's thread pools are fixed once used), in alternating
rounds, and reports the median images/s and the ratio to 1 thread measured in the same run. This is
what `--threads`' default is chosen from (`cifarb._threads.default_threads`).
    python bench/bench_threads.py --threads 1,2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _child(kind: str, threads: int, steps: int) -> float:
    import torch

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    if kind == "fastnet":
        from cifarb.models import build_model

        model = build_model("fastnet", num_classes=10)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(256, 3, 32, 32, generator=g), torch.randint(0, 10, (256,), generator=g)

        def step() -> None:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        batch = 256
    else:
        from cifarb.flows.configs import preset
        from cifarb.flows.model import GlobalLocalFlow
        from cifarb.flows.train import make_optimizer

        cfg = preset("small")
        x = torch.randint(0, 256, (cfg.batch_size, 3, 32, 32), generator=g, dtype=torch.uint8)
        model = GlobalLocalFlow(cfg)
        model.initialize(x)
        opt = make_optimizer(model, cfg)

        def step() -> None:
            loss = model.loss_terms(x)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        batch = cfg.batch_size
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--kinds", default="fastnet,flow-small", help="what to time: fastnet, flow-small")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "THREADS", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return
    counts = [int(t) for t in args.threads.split(",")]
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"{os.cpu_count()} cores, load average {load} at start; steps per measurement {args.steps}")
    for kind in args.kinds.split(","):
        speeds: dict[int, list[float]] = {t: [] for t in counts}
        for _ in range(args.rounds):
            for t in counts:
                env = {**os.environ, "OMP_NUM_THREADS": str(t), "MKL_NUM_THREADS": str(t)}
                out = subprocess.run([sys.executable, __file__, "--child", kind, str(t), str(args.steps)], env=env,
                                     capture_output=True, text=True, check=True).stdout
                speeds[t].append(float(out.strip().splitlines()[-1]))
        ref = statistics.median(speeds[counts[0]])
        for t in counts:
            med = statistics.median(speeds[t])
            print(f"{kind:<11} threads {t}: {med:8.1f} img/s  ratio to {counts[0]} thread(s) {med / ref:.2f}  "
                  f"(rounds: {', '.join(f'{v:.0f}' for v in speeds[t])})")


if __name__ == "__main__":
    main()
