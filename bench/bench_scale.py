"""Cost growth to full size: wall time and peak resident memory of eval on -C, a training epoch, -C metrics
and `report`, at fractions of the full size, each in its own process (peak RSS = that process's ru_maxrss).

    python bench/bench_scale.py [--fractions 0.1,0.3,1] [--parts eval,train,metrics,report]
                                [--eval-model tiny|resnet20] [--train-arch fastnet] [--json FILE]

Full size: a 50,000-image CIFAR-10 training set (+ the 10,000-image test split, official pickle format),
a CIFAR-10-C folder of 19 corruptions x 5 severities x 10,000 images (950,000 images, 2.9 GB of
memory-mappable .npy), CIFAR100-C-shaped results (95 corruption x severity pairs x 722 CIFAR100-B
cells, 1,000 bootstrap resamples), and 100 run directories for `cifarb report --html`. A fraction f
uses f of the images (a prefix of the test set, f x 50,000 training images), f x 95 pairs, f x 100 run
directories. All data is synthetic, generated into a temp dir before each measurement and removed
after it. Growth is reported per unit of work (image, pair, run directory) relative to the smallest
fraction: flat time per unit and flat peak memory are the targets (TARGETS.md).

`--eval-model tiny` (the default) evaluates a 490-parameter classifier (8x8 average pool + linear) so that
the 950,000-image pass measures cifarb's data path, joins and metrics rather than a network; `resnet20`
uses the bundled ResNet20.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_TEST, N_TRAIN, N_PAIRS, N_RUNS = 10_000, 50_000, 95, 100
MEAN, STD = "0.4914,0.4822,0.4465", "0.2470,0.2435,0.2616"


def tiny_classifier() -> Any:
    """The cheap model for the -C eval: 8x8 average pooling of the normalised image, then a linear layer."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.AvgPool2d(8), nn.Flatten(), nn.Linear(48, 10))


# --- data generators -------------------------------------------------------------------------------


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """The official CIFAR-10 pickle layout: 5 training batches and a test batch with the official labels."""
    from cifarb.data.cifar_b import official_test_labels

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name: str, labels: np.ndarray) -> None:
        shift = ((labels[:, None] * np.array([9, 17, 25])) % 96).astype(np.uint8)
        data = rng.integers(0, 160, (len(labels), 3, 1024), dtype=np.uint8) + shift[:, :, None]
        with open(folder / name, "wb") as fh:
            pickle.dump({"batch_label": name, "labels": [int(v) for v in labels],
                         "data": data.reshape(len(labels), 3072)}, fh, protocol=4)

    for k, labels in enumerate(np.array_split(rng.integers(0, 10, n_train), 5), start=1):
        dump(f"data_batch_{k}", labels)
    dump("test_batch", np.asarray(official_test_labels("cifar10")[:n_test]))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072}, fh)


def write_cifar10_c(root: Path, n: int, seed: int = 0) -> int:
    """19 corruption files of 5 x n images each plus labels.npy (official labels of the first n test images)."""
    from cifarb.data.cifar_b import official_test_labels
    from cifarb.data.readers import CIFAR_C_CORRUPTIONS

    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    np.save(folder / "labels.npy", np.tile(np.asarray(official_test_labels("cifar10")[:n], dtype=np.uint8), 5))
    block = rng.integers(0, 256, (min(5 * n, 10_000), 32, 32, 3), dtype=np.uint8)  # reused: cheap to write
    for name in CIFAR_C_CORRUPTIONS:
        arr = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.uint8, shape=(5 * n, 32, 32, 3))
        for s in range(0, 5 * n, len(block)):
            arr[s : s + len(block)] = block[: 5 * n - s]
        arr.flush()
        del arr
    return 5 * n * len(CIFAR_C_CORRUPTIONS)


def write_runs(root: Path, n_runs: int) -> list[Path]:
    """n_runs copies of the committed fixture runs (3 methods), as seeds 0.. of each method."""
    fixtures = sorted((REPO / "tests" / "fixtures_runs").glob("cifar10-fastnet-*-s0"))
    out = []
    for k in range(n_runs):
        src = fixtures[k % len(fixtures)]
        seed = k // len(fixtures)
        dst = root / src.name.replace("-s0", f"-s{seed}")
        shutil.copytree(src, dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        manifest["seed"] = manifest["config"]["seed"] = seed
        (dst / "manifest.json").write_text(json.dumps(manifest))
        out.append(dst)
    return out


# --- children: one measured piece of work per process --------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _vm_hwm_mb() -> float | None:
    """This address space's own peak RSS (Linux). ru_maxrss also counts the parent's RSS at fork time,
    which Linux carries across exec, so it is only a ceiling set by whichever is larger."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # `bench_scale:tiny_classifier`
    from cifarb.cli import main

    d = Path(args.dir)
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if args.child == "baseline":
        import torch  # noqa: F401  (the floor every torch-using command pays)

        import cifarb.eval  # noqa: F401
    elif args.child == "eval":
        model = ["--model", "bench_scale:tiny_classifier", "--mean", MEAN, "--std", STD] if args.eval_model == "tiny" \
            else ["--model", args.eval_model]
        rc = main(["eval", *model, "--dataset", "cifar10-c", "--root", str(d), "--trust-local", "--json",
                   str(d / "result.json"), "--no-progress", "--batch-size", "500"])
        assert rc == 0, rc
        result = json.loads((d / "result.json").read_text())
        info["pairs"] = sum(len(v) for v in result["corruptions"].values())
    elif args.child == "train":
        rc = main(["train", "--dataset", "cifar10", "--arch", args.train_arch, "--aug", "standard", "--epochs", "1",
                   "--root", str(d), "--trust-local", "--out", str(d / "run"), "--no-eval", "--no-progress"])
        assert rc == 0, rc
        line = json.loads((d / "run" / "metrics.jsonl").read_text().splitlines()[0])
        info["epoch_s"] = line["elapsed_s"]
    elif args.child == "metrics":
        from cifarb.data.cifar_b import load_cifar_b
        from cifarb.data.readers import CIFAR_C_CORRUPTIONS
        from cifarb.metrics.corruptions import corruption_metrics

        cb = load_cifar_b("cifar100")
        labels, subgroups = np.asarray(cb.labels), cb.subgroups_for(np.arange(N_TEST))
        rng = np.random.default_rng(0)
        preds: dict[str, dict[int, np.ndarray]] = {}
        for k in range(args.pairs):
            flip = rng.random(N_TEST) < 0.3 + 0.1 * (k % 5)
            preds.setdefault(CIFAR_C_CORRUPTIONS[k // 5], {})[k % 5 + 1] = np.where(
                flip, (labels + 1 + rng.integers(0, 99, N_TEST)) % 100, labels)
        t0 = time.perf_counter()  # the metrics alone, not making the synthetic predictions
        res = corruption_metrics(labels, preds, subgroups, n_classes=100, bootstrap=1000, seed=0)
        info["cells"] = len(next(iter(res["corruptions"][CIFAR_C_CORRUPTIONS[0]].values()))["cells"])
    elif args.child == "report":
        runs = sorted(p for p in d.iterdir() if p.is_dir())
        rc = main(["report", *map(str, runs), "--html", str(d / "report.html"), "--out", str(d / "report.md"),
                   "--no-progress"])
        assert rc == 0, rc
        info["runs"] = len(runs)
    print(json.dumps({"wall_s": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(), "vm_hwm_mb": _vm_hwm_mb(),
                      **info}))


def run_child(part: str, d: Path, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part, "--dir", str(d),
           "--eval-model", args.eval_model, "--train-arch", args.train_arch]
    for k, v in extra.items():
        cmd += [f"--{k}", str(v)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{part} at {d} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    out["driver_rss_mb"] = _current_rss_mb()  # the floor ru_maxrss inherits from this process
    return out


def _current_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# --- the driver ---------------------------------------------------------------------------------------------


def measure(part: str, frac: float, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix=f"scale-{part}-", dir=tmp))
    try:
        t0 = time.perf_counter()
        if part == "eval":
            units, unit = write_cifar10_c(d, int(round(frac * N_TEST))), "image"
        elif part == "train":
            n_train = int(round(frac * N_TRAIN))
            write_cifar10(d, n_train, int(round(frac * N_TEST)))
            units, unit = n_train, "training image"
        elif part == "metrics":
            units, unit = max(1, int(round(frac * N_PAIRS))), "pair"
        else:
            units, unit = len(write_runs(d, max(1, int(round(frac * N_RUNS))))), "run directory"
        gen_s = time.perf_counter() - t0
        extra = {"pairs": units} if part == "metrics" else {}
        res = run_child(part, d, args, **extra)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"part": part, "fraction": frac, "units": units, "unit": unit, "generate_s": round(gen_s, 1), **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", default="0.1,0.3,1")
    ap.add_argument("--parts", default="eval,train,metrics,report")
    ap.add_argument("--eval-model", default="tiny", help="tiny (default), or a zoo name such as resnet20")
    ap.add_argument("--train-arch", default="fastnet")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--tmp", type=Path, help="where to generate the data (default: the system temp dir)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--pairs", type=int, default=N_PAIRS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    fractions = [float(f) for f in args.fractions.split(",")]
    load = os.getloadavg()
    print(f"bench_scale: python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; eval model {args.eval_model}, train arch {args.train_arch}",
          flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cifarb-scale-", dir=args.tmp) as tmp:
        base = run_child("baseline", Path(tmp), args)
        print(f"baseline (python + torch + cifarb.eval imported): peak RSS {base['peak_rss_mb']:.0f} MB", flush=True)
        rows.append({"part": "baseline", **base})
        for part in args.parts.split(","):
            first = None
            for frac in fractions:
                r = measure(part, frac, args, Path(tmp))
                work = r.get("epoch_s", r["wall_s"]) if part == "train" else r["wall_s"]
                r["ms_per_unit"] = 1000 * work / r["units"]
                first = first or r
                r["time_per_unit_ratio"] = r["ms_per_unit"] / first["ms_per_unit"]
                r["peak_rss_ratio"] = r["peak_rss_mb"] / first["peak_rss_mb"]
                rows.append(r)
                print(f"{part:<8} {100 * frac:5.0f} %  {r['units']:>8} {r['unit']}s  wall {r['wall_s']:7.1f} s"
                      + (f" (epoch {r['epoch_s']:.1f} s)" if part == "train" else "")
                      + f"  {r['ms_per_unit']:9.4f} ms/{r['unit']} (x{r['time_per_unit_ratio']:.2f})"
                      f"  peak RSS {r['peak_rss_mb']:7.0f} MB (x{r['peak_rss_ratio']:.2f}; own VmHWM "
                      f"{r.get('vm_hwm_mb') or 0:.0f} MB, driver {r.get('driver_rss_mb') or 0:.0f} MB)"
                      f"  [data generated in {r['generate_s']} s]", flush=True)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
