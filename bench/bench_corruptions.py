"""Images per second of each corruption (cifarb's batched code) against per-image reference loops, same run.

The reference for a corruption is the straightforward per-image way of computing it with the same libraries
(what the public CIFAR-10-C script does: one image at a time through numpy/scipy/scikit-image/OpenCV, and
a Python pixel loop for glass blur). Corruptions whose reference needs ImageMagick (motion blur, snow) or
the frost photographs, or that are per-image library calls in both (pixelate, JPEG, spatter), have no
reference column. Run on the real slice when ../shared/data exists, else on synthetic images:

    python bench/bench_corruptions.py [--n 1000] [--ref-n 100] [--severity 3] [--grid docs/assets/corruptions-grid.png]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import color, util

from cifarb.data.corruptions import CORRUPTIONS, SEVERITY_PARAMS, corrupt
from cifarb.data.corruptions._ops import disk_kernel

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load_images(n: int) -> tuple[np.ndarray, str]:
    if (SHARED / "cifar-10-batches-py" / "test_batch").exists():
        from cifarb.data.readers import load_cifar

        x = load_cifar("cifar10", "test", root=SHARED, trust_local=True).images
        reps = int(np.ceil(n / len(x)))
        return np.concatenate([x] * reps)[:n], f"real CIFAR-10 test slice ({len(x)} images, tiled to {n})"
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.random((n, 32, 32, 3)), (0, 2, 2, 0))
    x = (x - x.min()) / np.ptp(x)
    return (x * 255).astype(np.uint8), f"{n} synthetic smooth images (../shared/data not found)"


# ------------------------------------------------------------------ per-image references (one image at a time)


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _plasma(mapsize: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    m = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        acc = corners + np.roll(corners, -1, 0)
        acc = acc + np.roll(acc, -1, 1)
        m[half::step, half::step] = acc / 4 + wibble * rng.uniform(-wibble, wibble, acc.shape)
        c, k = m[half::step, half::step], m[0::step, 0::step]
        s = c + np.roll(c, 1, 0) + k + np.roll(k, -1, 1)
        m[0::step, half::step] = s / 4 + wibble * rng.uniform(-wibble, wibble, s.shape)
        s = c + np.roll(c, 1, 1) + k + np.roll(k, -1, 0)
        m[half::step, 0::step] = s / 4 + wibble * rng.uniform(-wibble, wibble, s.shape)
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def reference(name: str, img: np.ndarray, p, rng: np.random.Generator) -> np.ndarray:  # noqa: C901 - a table
    x = img / 255.0
    if name == "gaussian_noise":
        return _u8(x + rng.normal(size=x.shape, scale=p))
    if name == "shot_noise":
        return _u8(rng.poisson(x * p) / p)
    if name == "impulse_noise":
        return _u8(util.random_noise(x, mode="s&p", amount=p, rng=rng))
    if name == "speckle_noise":
        return _u8(x + x * rng.normal(size=x.shape, scale=p))
    if name == "gaussian_blur":
        return _u8(ndimage.gaussian_filter(x, (p, p, 0), mode="nearest"))
    if name == "defocus_blur":
        import cv2

        k = disk_kernel(*p)
        return _u8(np.stack([cv2.filter2D(x[..., c].astype(np.float32), -1, k) for c in range(3)], -1))
    if name == "glass_blur":
        sigma, d, iters = p
        y = (ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest") * 255).astype(np.uint8)
        for _ in range(iters):
            for h in range(32 - d, d, -1):
                for w in range(32 - d, d, -1):
                    dx, dy = rng.integers(-d, d, size=2)
                    y[h, w], y[h + dy, w + dx] = y[h + dy, w + dx], y[h, w]
        return _u8(ndimage.gaussian_filter(y / 255.0, (sigma, sigma, 0), mode="nearest"))
    if name == "zoom_blur":
        out = np.zeros_like(x)
        for z in p:
            ch = int(np.ceil(32 / z))
            top = (32 - ch) // 2
            zz = ndimage.zoom(x[top:top + ch, top:top + ch], (z, z, 1), order=1)
            t = (zz.shape[0] - 32) // 2
            out += zz[t:t + 32, t:t + 32]
        return _u8((x + out) / (len(p) + 1))
    if name == "fog":
        peak = x.max()
        y = x + p[0] * _plasma(32, p[1], rng)[..., None]
        return _u8(y * peak / (peak + p[0]))
    if name == "brightness":
        hsv = color.rgb2hsv(x)
        hsv[..., 2] = np.clip(hsv[..., 2] + p, 0, 1)
        return _u8(color.hsv2rgb(hsv))
    if name == "saturate":
        hsv = color.rgb2hsv(x)
        hsv[..., 1] = np.clip(hsv[..., 1] * p[0] + p[1], 0, 1)
        return _u8(color.hsv2rgb(hsv))
    if name == "contrast":
        m = x.mean(axis=(0, 1), keepdims=True)
        return _u8((x - m) * p + m)
    if name == "elastic_transform":
        import cv2

        alpha, sigma, jitter = p
        c, s = np.float32([16, 16]), 10
        pts1 = np.float32([c + s, [c[0] + s, c[1] - s], c - s])
        pts2 = pts1 + rng.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
        y = cv2.warpAffine(x.astype(np.float32), cv2.getAffineTransform(pts1, pts2), (32, 32),
                           borderMode=cv2.BORDER_REFLECT_101)
        dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (32, 32)), sigma, mode="reflect", truncate=3) * alpha
        dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (32, 32)), sigma, mode="reflect", truncate=3) * alpha
        xx, yy, zz = np.meshgrid(np.arange(32), np.arange(32), np.arange(3))
        idx = (yy + dy[..., None]).reshape(-1), (xx + dx[..., None]).reshape(-1), zz.reshape(-1)
        return _u8(ndimage.map_coordinates(y, idx, order=1, mode="reflect").reshape(x.shape))
    raise KeyError(name)


HAS_REFERENCE = (
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur", "defocus_blur",
    "glass_blur", "zoom_blur", "fog", "brightness", "saturate", "contrast", "elastic_transform",
)


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def write_grid(path: Path, image: np.ndarray, scale: int = 3) -> None:
    """One image under every corruption at severities 1, 3, 5 (columns: clean, 1, 3, 5), with names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(CORRUPTIONS), 4, figsize=(4 * 0.9 * scale / 3 + 1.6, len(CORRUPTIONS) * 0.9 * scale / 3))
    for r, name in enumerate(CORRUPTIONS):
        tiles = [image] + [corrupt(image[None], name, s, seed=0)[0] for s in (1, 3, 5)]
        for c, tile in enumerate(tiles):
            ax = axes[r, c]
            ax.imshow(tile, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(["clean", "severity 1", "severity 3", "severity 5"][c], fontsize=8)
            if c == 0:
                ax.set_ylabel(name + ("*" if name == "frost" else ""), rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("* frost: procedural substitute for the photographs", fontsize=7, y=0.999)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.992))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="images for cifarb's batched code (default 1000)")
    ap.add_argument("--ref-n", type=int, default=100, help="images for the per-image references (default 100)")
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=500, help="cifarb batch size (make-c's default, 500)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per corruption, best kept (default 3)")
    ap.add_argument("--grid", type=Path, help="also write the corruption grid PNG here (image 0 of the set)")
    ap.add_argument("--grid-index", type=int, default=0)
    args = ap.parse_args()

    x, source = load_images(args.n)
    if args.grid:
        write_grid(args.grid, x[args.grid_index])
        print(f"wrote {args.grid}", file=sys.stderr)
    print(f"# corruption throughput, severity {args.severity}: {source}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, numpy {np.__version__}, "
          f"cifarb batches of {args.batch_size}; reference: per-image loop on {args.ref_n} images\n")
    print("| corruption | cifarb img/s | per-image reference img/s | speed-up |")
    print("|---|---:|---:|---:|")
    totals = []
    for name in CORRUPTIONS:
        corrupt(x[:8], name, args.severity)  # warm caches (frost plates, zoom matrices)

        def ours(name: str = name) -> None:
            for s in range(0, len(x), args.batch_size):
                corrupt(x[s:s + args.batch_size], name, args.severity, seed=0, indices=np.arange(s, min(s + args.batch_size, len(x))))

        # interleave ours and the reference, best of `repeat`, so load from other processes hits both alike
        p = SEVERITY_PARAMS[name][args.severity - 1]
        has_ref = name in HAS_REFERENCE
        t_ours = t_ref = float("inf")
        for _ in range(args.repeat):
            t_ours = min(t_ours, timed(ours))
            if has_ref:
                rng = np.random.default_rng(0)
                t_ref = min(t_ref, timed(lambda: [reference(name, img, p, rng) for img in x[:args.ref_n]]))  # noqa: B023
        rate = len(x) / t_ours
        totals.append(t_ours)
        if has_ref:
            ref = args.ref_n / t_ref
            print(f"| {name} | {rate:,.0f} | {ref:,.0f} | {rate / ref:.1f}x |", flush=True)
        else:
            print(f"| {name} | {rate:,.0f} | - | - |", flush=True)
    all_rate = len(x) * len(CORRUPTIONS) / sum(totals)
    print(f"\nall 19 at severity {args.severity}: {all_rate:,.0f} img/s overall "
          f"(a 10,000-image set x 19 x 5 severities ~ {10000 * 19 * 5 / all_rate / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
