"""Is the global code global? Border-vs-centre colour change under z swaps, with a bootstrap CI, and FlowAug figures.

Run: python -m cifarb.flows.analysis --flow FLOW --root ../shared/data --trust-local [--figure GRID.png]
The measure is reported over the swaps FlowAug would keep (not blown up) and over all swaps.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

BORDER = 4  # the 4-pixel frame
CENTRE = 16  # the central 16x16 square


def region_masks(size: int = 32, border: int = BORDER, centre: int = CENTRE) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (size, size) masks of the outer `border`-pixel frame and the central `centre` square."""
    frame = np.ones((size, size), dtype=bool)
    frame[border : size - border, border : size - border] = False
    mid = np.zeros((size, size), dtype=bool)
    lo = (size - centre) // 2
    mid[lo : lo + centre, lo : lo + centre] = True
    return frame, mid


def mean_colours(images_nhwc: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean RGB (0..255) of each image over the pixels in `mask`: (N, 3)."""
    return images_nhwc[:, mask, :].astype(np.float64).mean(axis=1)


@dataclass
class GlobalityResult:
    """Mean-colour change of border and centre when an image is decoded with another image's z."""

    n_images: int
    border_change: float  # mean over images of ||mean border colour (swapped) - (original)||_2, in 0..255 units
    centre_change: float
    ratio: float  # border_change / centre_change
    ratio_ci95: tuple[float, float]
    frac_border_larger: float  # share of images whose border moved more than their centre
    frac_border_larger_ci95: tuple[float, float]
    border_transfer: float  # share of the donor's border colour difference that moved over (projection)
    centre_transfer: float
    bootstrap: int
    seed: int


def globality(original: np.ndarray, swapped: np.ndarray, donor: np.ndarray, *, bootstrap: int = 2000,
              seed: int = 0) -> GlobalityResult:
    """Compare border and centre mean-colour changes (uint8 NHWC arrays of equal shape).

    The CI is a percentile bootstrap over images (resampling images with replacement, recomputing the
    ratio of mean changes).
    """
    frame, mid = region_masks(original.shape[1])
    ob, oc = mean_colours(original, frame), mean_colours(original, mid)
    sb, sc = mean_colours(swapped, frame), mean_colours(swapped, mid)
    db, dc = mean_colours(donor, frame), mean_colours(donor, mid)
    cb = np.linalg.norm(sb - ob, axis=1)
    cc = np.linalg.norm(sc - oc, axis=1)
    n = len(cb)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(bootstrap, n))
    ratios = cb[idx].mean(1) / np.maximum(cc[idx].mean(1), 1e-12)
    larger = (cb > cc).astype(np.float64)
    fracs = larger[idx].mean(1)

    def transfer(new, own, don):  # least-squares share t of (donor - own) in (new - own)
        d = don - own
        return float((np.sum((new - own) * d)) / max(np.sum(d * d), 1e-12))

    return GlobalityResult(
        n_images=n,
        border_change=float(cb.mean()),
        centre_change=float(cc.mean()),
        ratio=float(cb.mean() / max(cc.mean(), 1e-12)),
        ratio_ci95=(float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))),
        frac_border_larger=float(larger.mean()),
        frac_border_larger_ci95=(float(np.percentile(fracs, 2.5)), float(np.percentile(fracs, 97.5))),
        border_transfer=transfer(sb, ob, db),
        centre_transfer=transfer(sc, oc, dc),
        bootstrap=bootstrap,
        seed=seed,
    )


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation without fixed points (every image gets another image's z)."""
    perm = torch.randperm(n, generator=generator)
    return perm.roll(1)[torch.argsort(perm)]


@torch.no_grad()
def swap_experiment(model: Any, images_nchw: torch.Tensor, *, seed: int = 0, batch_size: int = 256
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(original, swapped, donor) uint8 NHWC and the clipped fraction of each swapped decode: each image
    decoded with the z of a random other image."""
    g = torch.Generator().manual_seed(seed)
    partner = derangement(len(images_nchw), g)
    zs, es = [], []
    for i in range(0, len(images_nchw), batch_size):
        z, e = model.encode(images_nchw[i : i + batch_size])
        zs.append(z)
        es.append(e)
    z, eps = torch.cat(zs), torch.cat(es)
    outs, clips = [], []
    for i in range(0, len(z), batch_size):
        x, clip = model.decode_checked(z[partner][i : i + batch_size], eps[i : i + batch_size])
        outs.append(x)
        clips.append(clip)
    to_np = lambda t: t.permute(0, 2, 3, 1).numpy()  # noqa: E731
    return to_np(images_nchw), to_np(torch.cat(outs)), to_np(images_nchw[partner]), torch.cat(clips).numpy()


@torch.no_grad()
def flowaug_figure(model: Any, images_nchw: torch.Tensor, path: str, *, n: int = 10, seed: int = 0,
                   taus: tuple[float, ...] = (1.0, 0.5)) -> None:
    """Rows: originals, z donors, originals decoded with the donor's z, and with z resampled at each tau."""
    from cifarb.flows.grid import save_grid

    x = images_nchw[:n]
    z, eps = model.encode(x)
    donor = x.roll(1, 0)
    rows = [x, donor, model.decode(z.roll(1, 0), eps)]
    g = torch.Generator().manual_seed(seed)
    for tau in taus:
        rows.append(model.decode(model.sample_z(n, tau, g), eps))
    save_grid(path, rows, scale=3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flow", required=True)
    ap.add_argument("--root", default=None)
    ap.add_argument("--trust-local", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--max-clip", type=float, default=0.2,
                    help="swaps with more clipped values count as blown up (FlowAug keeps the original)")
    ap.add_argument("--figure", help="also write the original | donor | swapped | resampled grid here")
    ap.add_argument("--json", help="write the result as JSON here")
    args = ap.parse_args(argv)

    from cifarb.data.readers import load_cifar
    from cifarb.flows.checkpoint import load_flow

    loaded = load_flow(args.flow)
    test = load_cifar("cifar10", "test", args.root, args.trust_local)
    x = torch.from_numpy(np.ascontiguousarray(test.images.transpose(0, 3, 1, 2)))
    original, swapped, donor, clip = swap_experiment(loaded.model, x, seed=args.seed)
    ok = clip <= args.max_clip
    res = globality(original[ok], swapped[ok], donor[ok], bootstrap=args.bootstrap, seed=args.seed)
    res_all = globality(original, swapped, donor, bootstrap=args.bootstrap, seed=args.seed)
    out = {"flow": str(loaded.path), "flow_sha256": loaded.sha256, "images": len(clip),
           "blown_up_fraction": float((~ok).mean()), "max_clip": args.max_clip,
           "accepted_swaps": asdict(res), "all_swaps": asdict(res_all)}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        from cifarb._atomic import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    if args.figure:
        flowaug_figure(loaded.model, x, args.figure, seed=args.seed)
        print(f"figure: {args.figure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
