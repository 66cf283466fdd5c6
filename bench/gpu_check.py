"""One-shot device check of cifarb's GPU path: environment, training throughput against a bare loop, eval,
FlowAug online, DDP via torchrun, and the `paper` flow's step speed, on synthetic data, in <= 5 minutes.

    OUT=/some/dir bench/gpu_check.sh              # on a GPU machine (PYTHONPATH=src, nothing installed)
    bench/gpu_check.sh --cpu-smoke                # the same code on tiny sizes on a CPU (<= 60 s; tests)
    python bench/gpu_check.py --out DIR [--cpu-smoke] [--budget S] [--sections a,b]

The driver (this file, no torch) runs the sections one after another in a worker process and enforces a
time cap per section: a section past its cap is killed, recorded as `"status": "timeout"` with whatever
it had measured so far, and the remaining sections continue in a fresh worker. Results are written as
they arrive to `$OUT/gpu_check.json` (atomically, after every measurement) and `$OUT/gpu_check.md`.
Every speed is paired with a reference measured in the same process on the same device: cifarb's
`Trainer.train_epoch` against a bare PyTorch loop with the same model, batch, AMP and compile setting;
`cifarb.eval.evaluate` against a bare `model(x)` loop; FlowAug online against `standard`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "train_fastnet", "eval", "ddp", "flowaug", "flow_paper", "train_resnet56")
# per-section caps in seconds: (device run, --cpu-smoke); the whole check stops at --budget
CAPS = {
    "env": (15, 10), "train_fastnet": (60, 40), "eval": (30, 10), "ddp": (45, 25), "flowaug": (40, 15),
    "flow_paper": (25, 10), "train_resnet56": (75, 0),
}
SMOKE_SECTIONS = ("env", "train_fastnet", "eval", "ddp", "flowaug", "flow_paper")


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


# --- sizes ------------------------------------------------------------------------------------------


def sizes(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"n_train": 64, "n_test": 32, "batch": {"fastnet": 16}, "warmup_steps": 1,
                "variants": [("fp32", False, False), ("amp", True, False), ("compile", False, True)],
                "c_corruptions": 2, "c_images": 64, "flowaug_train": 32, "flowaug_batch": 16,
                "flow_config": "tiny", "flow_steps": 2, "ddp_procs": 1}
    return {"n_train": 50_000, "n_test": 10_000, "batch": {"fastnet": 256, "resnet56": 128}, "warmup_steps": 3,
            "variants": [("fp32", False, False), ("amp", True, False), ("compile", False, True),
                         ("amp+compile", True, True)],
            "c_corruptions": 5, "c_images": 10_000, "flowaug_train": 10_000, "flowaug_batch": 256,
            "flow_config": "paper", "flow_steps": 10, "ddp_procs": None}


# --- the worker: sections (torch is imported here only) ------------------------------------------------


class Recorder:
    """The results of one section, written to its file after every `add` (so a kill loses nothing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: dict[str, Any] = {}

    def add(self, key: str, value: Any) -> None:
        self.results[key] = value
        _atomic_json(self.path, self.results)


def synthetic_sets(n_train: int, n_test: int, seed: int = 0) -> tuple[Any, Any]:
    """CIFAR-10-shaped ImageSets: noise with a colour per class (learnable), official test labels."""
    import numpy as np

    from cifarb.data.cifar_b import class_names, official_test_labels
    from cifarb.data.readers import ImageSet

    rng = np.random.default_rng(seed)

    def images(labels: np.ndarray) -> np.ndarray:
        shift = ((labels[:, None] * np.array([9, 17, 25])) % 96).astype(np.uint8)
        return (rng.integers(0, 160, (len(labels), 32, 32, 3), dtype=np.uint8) + shift[:, None, None, :])

    train_labels = rng.integers(0, 10, n_train).astype(np.int64)
    test_labels = np.asarray(official_test_labels("cifar10")[:n_test], dtype=np.int64)
    names = class_names("cifar10")
    train = ImageSet(images(train_labels), train_labels, np.arange(n_train), names, 50_000, False, {})
    test = ImageSet(images(test_labels), test_labels, np.arange(n_test), names, 10_000, False, {})
    return train, test


def _bare_loop(trainer: Any, amp: bool, compile_: bool, steps: int) -> tuple[float, float]:
    """(img/s, first-call s) of forward / CE / backward / SGD on pre-made batches, nothing else."""
    import copy

    import torch
    import torch.nn.functional as F

    p = trainer.p
    path = trainer.path
    model = copy.deepcopy(trainer.model)
    fwd = torch.compile(model) if compile_ else model
    r = p.recipe
    opt = torch.optim.SGD(model.parameters(), lr=r.lr * 0.1, momentum=r.momentum, nesterov=r.nesterov,
                          weight_decay=r.weight_decay)
    mean = torch.tensor(p.model.mean, device=path.device).view(1, 3, 1, 1)
    std = torch.tensor(p.model.std, device=path.device).view(1, 3, 1, 1)
    images = p.data.train_images[: 8 * r.batch_size].to(path.device)
    batches = [(path.memory_format((images[i : i + r.batch_size].float() / 255 - mean) / std),
                p.data.train_labels[i : i + r.batch_size].to(path.device))
               for i in range(0, len(images) - r.batch_size + 1, r.batch_size)]

    def step(x: Any, y: Any) -> None:
        with path.autocast():
            out = fwd(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=r.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    t0 = time.perf_counter()
    step(*batches[0])
    path.synchronize()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(steps):
        step(*batches[k % len(batches)])
    path.synchronize()
    return steps * r.batch_size / (time.perf_counter() - t0), first


def section_env(rec: Recorder, sz: dict[str, Any], out: Path) -> None:
    import importlib.util

    import torch

    rec.add("python", platform.python_version())
    rec.add("platform", platform.platform())
    rec.add("cpu_count", os.cpu_count())
    rec.add("torch", torch.__version__)
    rec.add("cuda_build", torch.version.cuda)
    rec.add("cuda_available", torch.cuda.is_available())
    if torch.cuda.is_available():
        rec.add("cudnn", torch.backends.cudnn.version())
        rec.add("gpus", [{"name": torch.cuda.get_device_name(i),
                          "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
                          "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
                         for i in range(torch.cuda.device_count())])
        rec.add("bf16_supported", torch.cuda.is_bf16_supported())
        rec.add("nccl", ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None)
    rec.add("modules", {m: importlib.util.find_spec(m) is not None for m in (
        "numpy", "pandas", "pyarrow", "scipy", "torchvision", "triton", "tqdm", "platformdirs", "pooch", "PIL",
        "matplotlib", "jinja2")})
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    rec.add("git_commit", commit)
    rec.add("torch_threads", torch.get_num_threads())


def _train_section(arch: str, rec: Recorder, sz: dict[str, Any], out: Path, deadline: float) -> None:
    import torch

    from cifarb.train import TrainConfig
    from cifarb.train.engine import Trainer, plan

    data = synthetic_sets(sz["n_train"], sz["n_test"])
    batch = sz["batch"][arch]
    rec.add("images_per_epoch", sz["n_train"] // batch * batch)
    last_cost = 0.0
    for name, amp, compile_ in sz["variants"]:
        if time.time() + 1.5 * last_cost > deadline:
            rec.add(name, {"status": "skipped: not enough time left in the section"})
            continue
        t_start = time.time()
        cfg = TrainConfig(dataset="cifar10", arch=arch, aug="standard", epochs=4, batch_size=batch,
                          out=str(out / f"{arch}-{name}"), eval=False, progress=False, amp=amp, compile=compile_)
        trainer = Trainer(plan(cfg, data=data))
        warm = next(iter(trainer.batches.epoch(0)))
        t0 = time.perf_counter()
        for k in range(sz["warmup_steps"]):  # compile (when on) happens in the first step
            trainer.train_step(*warm, epoch=0, step=k)
        trainer.path.synchronize()
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        stats = trainer.train_epoch(1)
        trainer.path.synchronize()
        epoch_s = time.perf_counter() - t0
        ours = trainer.steps_per_epoch * batch / epoch_s
        bare, bare_first = _bare_loop(trainer, amp, compile_, trainer.steps_per_epoch)
        rec.add(name, {"status": "ok", "amp_dtype": str(trainer.amp_dtype).replace("torch.", "") if amp else None,
                       "compile": compile_, "img_per_s": round(ours, 1), "bare_img_per_s": round(bare, 1),
                       "ratio": round(ours / bare, 3), "epoch_s": round(epoch_s, 2),
                       "warmup_s": round(warm_s, 2), "bare_first_step_s": round(bare_first, 2),
                       "train_loss": round(stats["train_loss"], 4), "device": str(trainer.device)})
        del trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        last_cost = time.time() - t_start


def section_train_fastnet(rec: Recorder, sz: dict[str, Any], out: Path, deadline: float) -> None:
    _train_section("fastnet", rec, sz, out, deadline)


def section_train_resnet56(rec: Recorder, sz: dict[str, Any], out: Path, deadline: float) -> None:
    _train_section("resnet56", rec, sz, out, deadline)


def write_c_folder(root: Path, n: int, corruptions: int, seed: int = 0) -> Path:
    """A synthetic CIFAR-10-C folder: `corruptions` files of 5 x n images (.npy) and labels.npy."""
    import numpy as np

    from cifarb.data.cifar_b import official_test_labels
    from cifarb.data.readers import CIFAR_C_CORRUPTIONS

    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.asarray(official_test_labels("cifar10")[:n], dtype=np.uint8)
    np.save(folder / "labels.npy", np.tile(labels, 5))
    for name in CIFAR_C_CORRUPTIONS[:corruptions]:
        arr = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.uint8, shape=(5 * n, 32, 32, 3))
        for s in range(0, 5 * n, 10_000):
            arr[s : s + 10_000] = rng.integers(0, 256, arr[s : s + 10_000].shape, dtype=np.uint8)
        arr.flush()
        del arr
    return root


def section_eval(rec: Recorder, sz: dict[str, Any], out: Path, deadline: float) -> None:
    import torch

    from cifarb.eval import evaluate
    from cifarb.eval.evaluate import resolve_device
    from cifarb.models.zoo import resolve_model

    root = write_c_folder(out / "c-root", sz["c_images"], sz["c_corruptions"])
    model = resolve_model("resnet20")  # bundled in the package: no download
    dev = resolve_device("auto")
    n_images = sz["c_images"] * 5 * sz["c_corruptions"]
    rec.add("images", n_images)
    rec.add("model", "resnet20 (bundled)")
    t0 = time.perf_counter()
    result = evaluate(model, "cifar10-c", root=root, trust_local=True, batch_size=500, device=str(dev),
                      bootstrap=0, progress=False)
    total = time.perf_counter() - t0
    rec.add("evaluate_s", round(total, 2))
    rec.add("evaluate_img_per_s", round(n_images / total, 1))
    rec.add("accuracy", result["accuracy"])
    # the bare reference: model(x) over the same number of images already on the device
    net = model.module.to(dev, memory_format=torch.channels_last).eval()
    x = torch.randn(500, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        net(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n_images // 500):
            net(x).argmax(1)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    bare = (n_images // 500) * 500 / (time.perf_counter() - t0)
    rec.add("bare_img_per_s", round(bare, 1))
    rec.add("ratio", round(n_images / total / bare, 3))
    rec.add("note", "evaluate() includes reading and sha256-checking the .npy files, the joins and the metrics "
                    "(bootstrap 0); the bare loop is model(x) on one resident batch")


def section_flowaug(rec: Recorder, sz: dict[str, Any], out: Path, deadline: float) -> None:
    import torch

    from cifarb.train import TrainConfig
    from cifarb.train.engine import Trainer, plan

    flow = REPO / "docs" / "assets" / "flow_small.pt"
    data = synthetic_sets(sz["flowaug_train"], sz["n_test"])
    rec.add("flow", str(flow.relative_to(REPO)))
    rec.add("train_images", sz["flowaug_train"])
    for aug in ("standard", "standard+flowaug"):
        extra = {"flow": str(flow), "flowaug_mode": "online"} if "flowaug" in aug else {}
        cfg = TrainConfig(dataset="cifar10", arch="fastnet", aug=aug, epochs=2, batch_size=sz["flowaug_batch"],
                          out=str(out / f"flowaug-{aug.replace('+', '_')}"), eval=False, progress=False, **extra)
        t0 = time.perf_counter()
        trainer = Trainer(plan(cfg, data=data))
        setup = time.perf_counter() - t0
        times = []
        for epoch in range(2):
            t0 = time.perf_counter()
            stats = trainer.train_epoch(epoch)
            trainer.path.synchronize()
            times.append(time.perf_counter() - t0)
        n = trainer.steps_per_epoch * sz["flowaug_batch"]
        rec.add(aug, {"setup_s": round(setup, 2), "epoch_s": [round(t, 2) for t in times],
                      "img_per_s_epoch2": round(n / times[1], 1), "train_loss": round(stats["train_loss"], 4),
                      "device": str(trainer.device)})
        del trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    std, fa = rec.results["standard"], rec.results["standard+flowaug"]
    rec.add("flowaug_vs_standard_time", round(fa["epoch_s"][1] / std["epoch_s"][1], 3))


DDP_WORKER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import torch.distributed as dist
from gpu_check import synthetic_sets
from cifarb.train import TrainConfig, ddp
from cifarb.train.engine import Trainer, plan

n_train, batch, out, report = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
info = ddp.init(ddp.device_for("auto", ddp.launched_world()))
cfg = TrainConfig(dataset="cifar10", arch="fastnet", aug="standard", epochs=2, batch_size=batch, out=out,
                  eval=False, progress=False)
trainer = Trainer(plan(cfg, dist_info=info, data=synthetic_sets(n_train, 1000)))
warm = next(iter(trainer.batches.epoch(0)))
trainer.train_step(*warm, epoch=0, step=0)
trainer.path.synchronize()
t0 = time.perf_counter()
stats = trainer.train_epoch(1)
trainer.path.synchronize()
dt = time.perf_counter() - t0
flat = torch.cat([t.detach().float().flatten() for t in trainer.model.state_dict().values()])
sums = torch.stack([flat.sum(), (flat * flat).sum()]).to(torch.float64)
gathered = [torch.zeros_like(sums) for _ in range(info.world)]
dist.all_gather(gathered, sums)
same = all(torch.equal(g, gathered[0]) for g in gathered)
if info.is_main:
    with open(report, "w") as fh:
        json.dump({"world": info.world, "backend": dist.get_backend(), "device": str(trainer.device),
                   "epoch_s": dt, "img_per_s": trainer.steps_per_epoch * batch / dt,
                   "identical_weights": same, "train_loss": stats["train_loss"]}, fh)
ddp.shutdown(info)
"""


def section_ddp(rec: Recorder, sz: dict[str, Any], out: Path, deadline: float) -> None:
    import torch

    procs = sz["ddp_procs"] or max(1, torch.cuda.device_count())
    script = out / "ddp_worker.py"
    script.write_text(DDP_WORKER)
    report = out / "ddp_report.json"
    n_train = sz["n_train"]
    batch = sz["batch"]["fastnet"]
    rec.add("processes", procs)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", str(script),
           str(Path(__file__).resolve().parent), str(n_train), str(batch), str(out / "ddp-run"), str(report)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=max(5.0, deadline - time.time()))
    rec.add("wall_s", round(time.perf_counter() - t0, 2))
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")
    result = json.loads(report.read_text())
    rec.add("result", {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})
    if not result["identical_weights"]:
        raise RuntimeError("the DDP ranks ended with different weights")


def section_flow_paper(rec: Recorder, sz: dict[str, Any], out: Path, deadline: float) -> None:
    import torch

    from cifarb.flows.configs import preset
    from cifarb.flows.model import GlobalLocalFlow
    from cifarb.flows.train import make_optimizer

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = preset(sz["flow_config"])
    rec.add("config", {"name": cfg.name, "levels": cfg.levels, "steps": cfg.steps, "hidden": cfg.hidden,
                       "batch_size": cfg.batch_size})
    train, _ = synthetic_sets(cfg.batch_size * 4, 16)
    x_all = torch.from_numpy(train.images).permute(0, 3, 1, 2).contiguous().to(dev)
    torch.manual_seed(0)
    model = GlobalLocalFlow(cfg).to(dev)
    model.initialize(x_all[: cfg.batch_size])
    opt = make_optimizer(model, cfg)

    def step(x: torch.Tensor) -> float:
        loss = model.loss_terms(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        return float(loss)

    batches = [x_all[i : i + cfg.batch_size] for i in range(0, len(x_all), cfg.batch_size)]
    t0 = time.perf_counter()
    step(batches[0])
    rec.add("first_step_s", round(time.perf_counter() - t0, 3))
    t0 = time.perf_counter()
    losses = [step(batches[k % len(batches)]) for k in range(sz["flow_steps"])]
    dt = time.perf_counter() - t0
    rec.add("steps", sz["flow_steps"])
    rec.add("step_s", round(dt / sz["flow_steps"], 4))
    rec.add("img_per_s", round(sz["flow_steps"] * cfg.batch_size / dt, 1))
    rec.add("finite", all(map(lambda v: v == v and abs(v) != float("inf"), losses)))
    rec.add("device", str(dev))
    if cfg.epochs:  # what one epoch of full CIFAR-10 costs at this speed (the paper trains `epochs` of them)
        rec.add("est_epoch_50k_s", round(50_000 / (sz["flow_steps"] * cfg.batch_size / dt), 1))


def worker(args: argparse.Namespace) -> int:
    """Run the given sections in order; the driver watches `progress.json` and kills on a cap."""
    sys.path.insert(0, str(REPO / "src")) if str(REPO / "src") not in sys.path else None
    out = Path(args.out)
    sz = sizes(args.cpu_smoke)
    if args.cpu_smoke:
        import torch

        torch.set_num_threads(1)  # tiny tensors; and the smoke run shares the machine with the tests
    for name in args.worker.split(","):
        cap = float(args.caps[name]) if isinstance(args.caps, dict) else 0.0
        deadline = time.time() + cap
        _atomic_json(out / "progress.json", {"section": name, "started": time.time()})
        rec = Recorder(out / "sections" / f"{name}.json")
        scratch = Path(tempfile.mkdtemp(prefix=f"cifarb-gpu-check-{name}-"))
        try:
            fn = globals()[f"section_{name}"]
            if name == "env":
                fn(rec, sz, scratch)
            else:
                fn(rec, sz, scratch, deadline)
            rec.add("_status", "ok")
        except Exception as exc:  # recorded, and the next section runs
            rec.add("_status", "error")
            rec.add("_error", f"{type(exc).__name__}: {exc}"[-3000:])
        finally:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    _atomic_json(out / "progress.json", {"section": None, "started": time.time()})
    return 0


# --- the driver -----------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# cifarb device check ({report['mode']})", "",
             f"Started {report['started']}; budget {report['budget_s']} s; total {report.get('total_s', '-')} s.", "",
             "| section | item | value | ratio to the same-run reference | status |", "|---|---|---|---|---|"]
    for name, sec in report["sections"].items():
        status = sec["status"]
        res = sec.get("results", {})
        if name == "env":
            gpus = ", ".join(g["name"] for g in res.get("gpus", [])) or "none"
            lines.append(f"| env | torch {res.get('torch')}, CUDA {res.get('cuda_build')}, GPUs: {gpus} | "
                         f"python {res.get('python')} | | {status} |")
            continue
        rows = 0
        for key, val in res.items():
            if key.startswith("_"):
                continue
            if isinstance(val, dict) and "img_per_s" in val and name != "ddp":
                lines.append(f"| {name} | {key} | {val['img_per_s']} img/s (bare {val.get('bare_img_per_s', '-')}) | "
                             f"{val.get('ratio', '-')} | {val.get('status', status)} |")
                rows += 1
            elif isinstance(val, dict) and "img_per_s_epoch2" in val:
                lines.append(f"| {name} | {key} | {val['img_per_s_epoch2']} img/s (epoch 2), epochs {val['epoch_s']} s | "
                             f"| {status} |")
                rows += 1
            elif isinstance(val, dict) and "status" in val:
                lines.append(f"| {name} | {key} | | | {val['status']} |")
                rows += 1
            elif name == "ddp" and key == "result":
                lines.append(f"| ddp | {val['world']} x {val['device']}, {val['backend']} | {val['img_per_s']} img/s, "
                             f"identical weights: {val['identical_weights']} | | {status} |")
                rows += 1
            elif key in ("evaluate_img_per_s", "img_per_s", "flowaug_vs_standard_time", "step_s"):
                ratio = res.get("ratio", "") if key == "evaluate_img_per_s" else ""
                lines.append(f"| {name} | {key} | {json.dumps(val)} | {ratio} | {status} |")
                rows += 1
        if not rows:
            lines.append(f"| {name} | | | | {status}{': ' + sec['error'][:200] if sec.get('error') else ''} |")
    return "\n".join(lines) + "\n"


def drive(args: argparse.Namespace) -> int:
    out = Path(args.out or os.environ.get("OUT") or tempfile.mkdtemp(prefix="cifarb-gpu-check-"))
    (out / "sections").mkdir(parents=True, exist_ok=True)
    smoke = args.cpu_smoke
    names = [s for s in (args.sections.split(",") if args.sections else (SMOKE_SECTIONS if smoke else SECTIONS))]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    budget = args.budget if args.budget is not None else (60.0 if smoke else 290.0)
    caps = {s: CAPS[s][1 if smoke else 0] * args.cap_scale for s in names}
    for item in args.cap or []:
        key, _, value = item.partition("=")
        if key not in caps:
            print(f"--cap {item}: {key!r} is not a section of this run", file=sys.stderr)
            return 2
        caps[key] = float(value)
    t_start = time.time()
    report: dict[str, Any] = {
        "mode": "cpu-smoke" if smoke else "device", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "budget_s": budget, "caps_s": caps, "sections": {s: {"status": "pending"} for s in names},
    }
    json_path, md_path = out / "gpu_check.json", out / "gpu_check.md"

    def save() -> None:
        report["total_s"] = round(time.time() - t_start, 1)
        _atomic_json(json_path, report)
        md_path.write_text(markdown(report))

    save()
    pending = list(names)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    while pending:
        left = budget - (time.time() - t_start)
        if left <= 1:
            for s in pending:
                report["sections"][s] = {"status": "timeout", "note": "the check's budget was spent before it started"}
            break
        (out / "progress.json").unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", ",".join(pending), "--out", str(out),
               "--caps-json", json.dumps(caps)] + (["--cpu-smoke"] if smoke else [])
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        log: list[bytes] = []
        killed = None
        while proc.poll() is None:
            time.sleep(0.2)
            try:
                prog = json.loads((out / "progress.json").read_text())
            except (OSError, ValueError):
                prog = {"section": pending[0], "started": t_start}
            cur = prog.get("section")
            if cur is None:
                continue
            if cur in pending and report["sections"][cur]["status"] == "pending":
                report["sections"][cur]["status"] = "running"
            for done in pending[: pending.index(cur)] if cur in pending else []:
                _finish(report, out, done)
                pending.remove(done)
                save()
            if cur in pending:
                over_cap = time.time() - prog["started"] > caps[cur]
                over_budget = time.time() - t_start > budget
                if over_cap or over_budget:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = cur
                    break
        if proc.stdout is not None:
            log.append(proc.stdout.read() or b"")
        if killed:
            _finish(report, out, killed, timeout=True, cap=caps[killed])
            pending.remove(killed)
        else:
            for done in list(pending):
                _finish(report, out, done, tail=b"".join(log).decode(errors="replace")[-2000:] if proc.returncode else "")
                pending.remove(done)
        save()
    save()
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


def _finish(report: dict[str, Any], out: Path, name: str, timeout: bool = False, cap: float = 0.0,
            tail: str = "") -> None:
    path = out / "sections" / f"{name}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    started = report["sections"][name].get("started_at")
    sec: dict[str, Any] = {"results": results}
    if timeout:
        sec["status"] = "timeout"
        sec["note"] = f"killed at its {cap:.0f} s cap; results are what it measured before"
    elif "_status" in results:
        sec["status"] = results["_status"]
        if "_error" in results:
            sec["error"] = results["_error"]
    else:
        sec["status"] = "error"
        sec["error"] = "the worker exited before finishing this section" + (f": {tail}" if tail else "")
    if started:
        sec["started_at"] = started
    report["sections"][name] = sec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="output folder (default $OUT, else a new temp dir)")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, fastnet only, one compile")
    ap.add_argument("--budget", type=float, help="seconds for the whole check (default 290; --cpu-smoke 60)")
    ap.add_argument("--cap-scale", type=float, default=1.0, help="multiply every section's cap (a loaded machine)")
    ap.add_argument("--cap", action="append", metavar="SECTION=S", help="one section's cap in seconds")
    ap.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--caps-json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.caps = json.loads(args.caps_json or "{}")
        return worker(args)
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
