"""`cifarb flow train|sample|encode`: the generative flow behind FlowAug (global code z, local noise eps)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from cifarb.commands._common import add_root_args, positive_float, positive_int

DESCRIPTION = """\
The generative flow behind FlowAug: a multi-scale Glow conditioned on a low-dimensional global code z
from an encoder (colour, background, lighting); the flow's own noise eps is the local code (structure).

  train    train a flow into a run directory (resumable; test bits/dim and a PNG grid per epoch)
  sample   draw new images into a PNG grid
  encode   write the (z, eps) of a dataset split to an .npz file

FLOW (for sample/encode, and `cifarb train --flow`) is a flow checkpoint file or a flow run directory.
"""

TRAIN_DESCRIPTION = """\
Train the z-conditioned flow on a CIFAR training set; test bits/dim (an ELBO bound, one sample of
dequantisation noise and of z) is measured on the test set after every epoch.

The run directory (--out) receives manifest.json (the full config, data sha256s, versions),
metrics.jsonl (one line per epoch: epoch, train_bpd, test_bpd, lr, elapsed_s, plus test_kl_bpd and
epoch_s), checkpoints/last.pt (written atomically every epoch), checkpoints/best.pt (lowest test bpd)
and samples/epoch_NNNN.png (rows: samples, samples, test images, reconstructions, reconstructions with
the next image's z). An interrupted run continues with --resume.

Configs: tiny (tests, seconds), small (2 CPU cores, <= 45 min), paper (GPU), or a TOML file whose keys
are the config fields, optionally on top of a preset: base = "small", epochs = 40, hidden = 128.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flow",
        help="train, sample from, or encode with the generative flow used by FlowAug",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="flow_command", metavar="ACTION")

    p = sub.add_parser("train", help="train a flow into a run directory (resumable)",
                       description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="NAME|FILE.toml",
                   help="tiny, small, paper, or a TOML file (required unless --resume)")
    p.add_argument("--dataset", choices=("cifar10", "cifar100"),
                   help="training data (default cifar10; a resume uses the run's)")
    p.add_argument("--epochs", type=positive_int, metavar="N",
                   help="number of epochs (default: the config's, or the run's when resuming; a larger N "
                   "extends a resumed run); the LR schedule is rescaled to N")
    p.add_argument("--out", metavar="RUNDIR",
                   help="run directory (default runs/<timestamp>-flow-<config>-s<seed>); must be empty "
                   "or absent unless --resume")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_root_args(p)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if available)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars (they are also off when stderr is not a terminal)")
    from cifarb.commands._common import add_threads_arg, add_tracker_arg

    add_threads_arg(p, "flow training (torch intra-op threads)")
    add_tracker_arg(p, "the final bits/dim")
    p.set_defaults(func=run_train)

    p = sub.add_parser("sample", help="draw images from a flow into a PNG grid",
                       description="Draw N images (z from the learned prior, eps ~ N(0, I), both scaled by "
                       "the temperature) and write them as a PNG grid.")
    p.add_argument("flow", metavar="FLOW", help="flow checkpoint file or flow run directory")
    p.add_argument("--n", type=positive_int, required=True, metavar="N", help="number of images")
    p.add_argument("--temperature", type=positive_float, default=0.7, metavar="T",
                   help="sampling temperature (default 0.7; 1.0 is the model's own distribution)")
    p.add_argument("--out", required=True, metavar="GRID.png", help="output PNG file")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scale", type=positive_int, default=2, help="upscale factor of the PNG (default 2)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if available)")
    p.set_defaults(func=run_sample)

    p = sub.add_parser("encode", help="write the global and local latents of a dataset split to .npz",
                       description="Encode every image of a split: LATENTS.npz holds z (N, z_dim, the "
                       "posterior mean), eps (N, 3072, the flow's noise given z), labels, indices and the "
                       "flow checkpoint's sha256. decode(z, eps) gives the images back exactly.")
    p.add_argument("flow", metavar="FLOW", help="flow checkpoint file or flow run directory")
    p.add_argument("--dataset", choices=("cifar10", "cifar100"), required=True, help="dataset to encode")
    p.add_argument("--split", choices=("train", "test"), default="train", help="split (default train)")
    add_root_args(p)
    p.add_argument("--out", required=True, metavar="LATENTS.npz", help="output .npz file")
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N", help="batch size (default 256)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if available)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run_encode)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_train(args: argparse.Namespace) -> int:
    from cifarb._threads import apply_threads
    from cifarb.errors import UsageError

    apply_threads(args.threads)
    trackers = None
    if args.log:
        from cifarb.train.trackers import TrackerSpec, check_installed, parse_log

        trackers = TrackerSpec(parse_log(args.log))
        check_installed(trackers.names)  # unknown or missing trackers fail before anything is written
    from cifarb.flows.configs import load_config
    from cifarb.flows.train import prepare_run, train_flow
    from cifarb.runs import default_run_name

    cfg = load_config(args.config) if args.config else None
    if args.out is None:
        if args.resume:
            raise UsageError("--resume needs --out RUNDIR (the run to continue)")
        if cfg is None:
            raise UsageError("--config is required to start a new flow run (tiny, small, paper or FILE.toml)")
        args.out = str(Path("runs") / default_run_name("flow", cfg.name, cfg.seed))
    # validate before reading any data; a resume reuses the run's --root/--trust-local unless given
    prepare_run(cfg, Path(args.out), args.resume, args.epochs, dataset=args.dataset, root=args.root,
                trust_local=args.trust_local)
    out = train_flow(cfg, args.out, dataset=args.dataset, root=args.root, trust_local=args.trust_local,
                     epochs=args.epochs, resume=args.resume, device=args.device, progress=args.progress,
                     trackers=trackers)
    print(f"flow run: {out}")
    return 0


def _flow_for(args: argparse.Namespace, out_kind: str) -> tuple[str, Any]:
    """(device, LoadedFlow) for sample/encode, after checking that --out is no directory."""
    from cifarb._device import resolve_device
    from cifarb.errors import UsageError
    from cifarb.flows.checkpoint import load_flow

    if Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a directory; give {out_kind}")
    device = str(resolve_device(args.device))
    return device, load_flow(args.flow, device=device)


def run_sample(args: argparse.Namespace) -> int:
    import torch

    from cifarb.flows.grid import save_grid

    device, loaded = _flow_for(args, "a PNG file path")
    gen = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        images = loaded.model.sample(args.n, args.temperature, gen).cpu()
    ncol = math.ceil(math.sqrt(args.n))
    rows = [images[i : i + ncol] for i in range(0, args.n, ncol)]
    save_grid(args.out, rows, scale=args.scale)
    print(f"wrote {args.n} samples (temperature {args.temperature:g}) to {args.out}")
    return 0


def run_encode(args: argparse.Namespace) -> int:
    import io

    import numpy as np
    import torch

    from cifarb._atomic import atomic_write_bytes
    from cifarb._progress import progress_bar
    from cifarb.data.readers import load_cifar
    from cifarb.flows.train import nhwc_to_tensor

    device, loaded = _flow_for(args, "an .npz file path")
    data = load_cifar(args.dataset, args.split, args.root, args.trust_local)
    images = nhwc_to_tensor(data.images)
    zs, es = [], []
    bar = progress_bar(len(images), "encode", progress=args.progress)
    with torch.no_grad():
        for i in range(0, len(images), args.batch_size):
            z, eps = loaded.model.encode(images[i : i + args.batch_size].to(device))
            zs.append(z.cpu().numpy())
            es.append(eps.cpu().numpy())
            bar.update(min(args.batch_size, len(images) - i))
    bar.close()
    buf = io.BytesIO()
    np.savez(buf, z=np.concatenate(zs).astype(np.float32), eps=np.concatenate(es).astype(np.float32),
             labels=np.asarray(data.labels, dtype=np.int64), indices=np.asarray(data.indices, dtype=np.int64),
             flow_sha256=np.array(loaded.sha256), dataset=np.array(args.dataset), split=np.array(args.split))
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"encoded {len(images)} {args.dataset} {args.split} images: z {zs[0].shape[1]}-d, eps "
          f"{es[0].shape[1]}-d -> {args.out}")
    return 0
