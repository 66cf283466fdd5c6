"""Images per second of each corruption (cifarb's batched code) against two references, in the same run.

1. A per-image loop: the straightforward one-image-at-a-time way of computing the corruption with the same
   libraries (numpy/scipy/scikit-image/OpenCV, a Python pixel loop for glass blur). Corruptions that need
   ImageMagick (motion blur, snow) or the photographs (frost), or that are per-image library calls in both
   (pixelate, JPEG, spatter), have none.
2. The reference generator itself: make_cifar_c.py of hendrycks/robustness, run through
   scripts/reference_cifar_c.py (its functions unmodified, its own random draws, ImageMagick via Wand),
   one image at a time as its driver does. Needs Wand + ImageMagick, the frost photographs and the script
   (--reference PATH or $CIFARB_REFERENCE_SCRIPT); the column is skipped, with the reason, otherwise.

Run on the real slice when ../shared/data exists, else on synthetic images:

    python bench/bench_corruptions.py [--n 1000] [--ref-n 100] [--severities 1-5] [--reference make_cifar_c.py]
    python bench/bench_corruptions.py --grid docs/assets/corruptions-grid.png --grid-index 7   # the figure only
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
from cifarb.data.corruptions._frost import frost_photos
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


def load_generator(path: Path | None) -> tuple[dict | None, Path | None, str]:
    """The reference generator's functions (namespace, photo folder), or (None, None, why not)."""
    if path is None:
        return None, None, "no reference script given (--reference PATH to make_cifar_c.py, or $CIFARB_REFERENCE_SCRIPT)"
    if not path.is_file():
        return None, None, f"{path} not found"
    try:
        import wand.image  # noqa: F401
    except ImportError as exc:  # Wand missing, or ImageMagick's library missing under it
        return None, None, f"Wand / ImageMagick not available ({exc}); apt-get install libmagickwand-dev, pip install Wand"
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference_cifar_c", ROOT / "scripts" / "reference_cifar_c.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from cifarb.data.corruptions._frost import photo_folder

    photos = photo_folder()
    if photos is None:
        return None, None, "the frost photographs (imagecorruptions package) are not installed"
    return module.load_reference(path, None), photos, ""


def run_generator(ns: dict, photos: Path, name: str, images: np.ndarray, severity: int) -> None:
    """The reference's driver for one corruption and severity: one PIL image at a time, np.uint8 of the result."""
    import warnings

    from PIL import Image

    fn = ns[name]
    old = os.getcwd()
    os.chdir(photos)  # the reference opens './frost1.png'
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for img in images:
                np.uint8(fn(Image.fromarray(img), severity))
    finally:
        os.chdir(old)


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
    fig.suptitle("* frost: the reference's photographs" if frost_photos()[0] else "* frost: procedural substitute",
                 fontsize=7, y=0.999)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.992))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="images for cifarb's batched code (default 1000)")
    ap.add_argument("--ref-n", type=int, default=100, help="images for the per-image references (default 100)")
    ap.add_argument("--severities", default="1-5", help="severities timed and summed (default 1-5, the whole set)")
    ap.add_argument("--batch-size", type=int, default=500, help="cifarb batch size (make-c's default, 500)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per corruption, best kept (default 3)")
    ap.add_argument("--reference", type=Path, default=os.environ.get("CIFARB_REFERENCE_SCRIPT"),
                    help="make_cifar_c.py of hendrycks/robustness (for the reference-generator column)")
    ap.add_argument("--grid", type=Path, help="write the corruption grid PNG here and stop")
    ap.add_argument("--grid-index", type=int, default=0)
    args = ap.parse_args()

    from cifarb.commands.data_makec import parse_severities

    sevs = parse_severities(args.severities)
    x, source = load_images(args.n)
    if args.grid:
        write_grid(args.grid, x[args.grid_index])
        print(f"wrote {args.grid}", file=sys.stderr)
        return 0
    ns, photos, why_not = load_generator(Path(args.reference) if args.reference else None)
    print(f"# corruption throughput, severities {','.join(map(str, sevs))} (times summed over them): {source}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, numpy {np.__version__}, "
          f"cifarb batches of {args.batch_size}; references: one image at a time on {args.ref_n} images")
    if ns is None:
        print(f"# reference generator column skipped: {why_not}")
    else:
        import wand.version

        print(f"# reference generator: {args.reference} ({wand.version.MAGICK_VERSION})")
    print("\n| corruption | cifarb img/s | per-image loop img/s | vs loop | reference generator img/s | vs generator |")
    print("|---|---:|---:|---:|---:|---:|")
    total_ours = total_gen = 0.0
    for name in CORRUPTIONS:
        corrupt(x[:8], name, sevs[0])  # warm caches (frost photographs, zoom matrices)
        has_loop = name in HAS_REFERENCE
        t_ours = t_loop = t_gen = 0.0
        for sev in sevs:
            def ours(name: str = name, sev: int = sev) -> None:
                for s in range(0, len(x), args.batch_size):
                    corrupt(x[s:s + args.batch_size], name, sev, seed=0,
                            indices=np.arange(s, min(s + args.batch_size, len(x))))

            p = SEVERITY_PARAMS[name][sev - 1]
            # interleave ours and the references, best of `repeat`, so load from other processes hits all alike
            best = [float("inf")] * 3
            for _ in range(args.repeat):
                best[0] = min(best[0], timed(ours))
                if has_loop:
                    rng = np.random.default_rng(0)
                    best[1] = min(best[1], timed(lambda: [reference(name, img, p, rng) for img in x[:args.ref_n]]))  # noqa: B023
                if ns is not None:
                    np.random.seed(0)
                    best[2] = min(best[2], timed(lambda: run_generator(ns, photos, name, x[:args.ref_n], sev)))  # noqa: B023
            t_ours += best[0]
            t_loop += best[1] if has_loop else 0.0
            t_gen += best[2] if ns is not None else 0.0
        k = len(sevs)
        rate = k * len(x) / t_ours
        total_ours += t_ours / len(x)
        cells = [f"{rate:,.0f}"]
        if has_loop:
            loop = k * args.ref_n / t_loop
            cells += [f"{loop:,.0f}", f"{rate / loop:.1f}x"]
        else:
            cells += ["-", "-"]
        if ns is not None:
            gen = k * args.ref_n / t_gen
            total_gen += t_gen / args.ref_n
            cells += [f"{gen:,.0f}", f"{rate / gen:.1f}x"]
        else:
            cells += ["skipped", "-"]
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    n_pairs = len(CORRUPTIONS) * len(sevs)
    all_rate = n_pairs / total_ours
    print(f"\nwhole set ({len(CORRUPTIONS)} corruptions x {len(sevs)} severities): cifarb {all_rate:,.0f} img/s "
          f"(a 10,000-image test set ~ {10000 * n_pairs / all_rate / 60:.1f} min)")
    if ns is not None:
        gen_rate = n_pairs / total_gen
        print(f"reference generator {gen_rate:,.0f} img/s (~ {10000 * n_pairs / gen_rate / 60:.1f} min): "
              f"cifarb is {all_rate / gen_rate:.1f}x its throughput")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
