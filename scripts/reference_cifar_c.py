"""Run the reference CIFAR-10-C generator on real images, fed cifarb's random numbers, to check cifarb against it.

The reference is `ImageNet-C/create_c/make_cifar_c.py` of github.com/hendrycks/robustness (Apache-2.0). This
script does not copy it: it reads the file you point it at, executes its helper and distortion functions
(everything above its driver loop) unmodified, and then swaps a few module-level names for shims so that the
code runs on today's libraries. Those API patches are the only changes, all listed in `API_PATCHES`:

- numpy 2 removed `np.float_` and the binary mode of `np.fromstring`: a numpy proxy supplies `float_`
  (= float64) and `fromstring(b, dtype)` (= frombuffer);
- scikit-image removed `gaussian(..., multichannel=True)`: a wrapper passes `channel_axis=-1` instead;
- `scipy.ndimage.interpolation` is aliased to `scipy.ndimage` if a future scipy drops it.

Replay harness: the reference draws from numpy's legacy global generator (and scikit-image's own one for
impulse noise). In `fixtures` and `compare`, the numpy proxy's `random` attribute is a `Replay` that
answers each of the reference's calls (`normal`, `uniform`, `poisson`, `randint`, and the `rng.random` of
`skimage.util.random_noise`) with the numbers cifarb draws for that image from its own per-image stream
(seed, corruption, severity, official index), in the reference's call order. The
reference's arithmetic is untouched, so any difference that remains is cifarb's. `frost` runs the
reference with its own global draws (seeded 0..draws-1) and memoises its cv2.imread of the photographs
(same pixels, less decoding).

Requirements (scripts/requirements-reference.txt): ImageMagick 6.9.11 Q16 (Debian 12:
`apt-get install libmagickwand-dev`, i.e. libmagickwand-6.q16-dev; IM7 and HDRI builds round differently),
`Wand`, the frost photographs (the `imagecorruptions` package, or the reference's create_c/ folder),
torch + torchvision (the reference imports them), and cifarb on PYTHONPATH.

    git clone https://github.com/hendrycks/robustness /tmp/robustness
    REF=/tmp/robustness/ImageNet-C/create_c/make_cifar_c.py
    # the committed conformance fixture (tests/data/corruptions_reference.npz):
    PYTHONPATH=src python scripts/reference_cifar_c.py fixtures --reference $REF --root ../shared/data
    # agreement of cifarb with the replayed reference on every image of the slice (all 19 x 5):
    PYTHONPATH=src python scripts/reference_cifar_c.py compare --reference $REF --root ../shared/data
    # ResNet20 on the reference's own frost (its own random draws, 8 seeds) and on cifarb's (seeds 0-7):
    PYTHONPATH=src python scripts/reference_cifar_c.py frost --reference $REF --root ../shared/data --evaluate resnet20
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "corruptions_reference.npz"
# a few real test images: 0, and 4 and 16, which get a wrapped spatter at severity 3 (seed 0)
FIXTURE_INDICES = (0, 4, 16)

API_PATCHES = (
    "numpy: np.float_ -> np.float64 (removed in numpy 2)",
    "numpy: np.fromstring(bytes, dtype) -> np.frombuffer (binary mode removed in numpy 2)",
    "scikit-image: gaussian(..., multichannel=True) -> gaussian(..., channel_axis=-1) (removed in 0.19)",
    "scipy: scipy.ndimage.interpolation -> scipy.ndimage, only if the alias is missing",
)
# the reference's driver loop starts here; everything above it is helpers and distortions
_DRIVER = "\nimport collections\n"


class Replay:
    """Stands in for `np.random` inside the reference: answers each call with cifarb's numbers for one image."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}

    def set(self, **handlers: Callable[..., Any]) -> None:
        self.handlers = handlers

    def __getattr__(self, name: str) -> Any:
        if name in ("normal", "uniform", "poisson", "randint"):
            def call(*args: Any, **kwargs: Any) -> Any:
                if name not in self.handlers:
                    raise RuntimeError(f"the reference called np.random.{name}, which this corruption's replay does not expect")
                return self.handlers[name](*args, **kwargs)
            return call
        return getattr(np.random, name)


class _SkimageRng(np.random.Generator):
    """A Generator whose `random(shape)` returns queued arrays (skimage's random_noise only calls that)."""

    queue: list[np.ndarray]

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:  # noqa: ARG002
        value = self.queue.pop(0)
        assert value.shape == tuple(np.atleast_1d(size)), (value.shape, size)
        return value


def load_reference(path: Path, replay: Replay | None) -> dict[str, Any]:
    """Execute the reference's helpers and distortions (unmodified) and apply API_PATCHES; return its namespace."""
    source = path.read_text()
    cut = source.find(_DRIVER)
    if cut < 0 or "def frost(" not in source:
        raise SystemExit(f"{path} does not look like make_cifar_c.py (no driver loop or no frost function)")
    try:
        import scipy.ndimage.interpolation  # noqa: F401
    except ImportError:
        import scipy.ndimage

        sys.modules["scipy.ndimage.interpolation"] = scipy.ndimage
    namespace: dict[str, Any] = {"__name__": "make_cifar_c_reference", "__file__": str(path)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(source[:cut], str(path), "exec"), namespace)  # noqa: S102 - the point of this script

    proxy = types.ModuleType("numpy_proxy")
    proxy.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    proxy.float_ = np.float64
    proxy.fromstring = lambda data, dtype=float, *a, **k: np.frombuffer(data, dtype)
    if replay is not None:
        proxy.random = replay
    namespace["np"] = proxy

    sk_gaussian = namespace["gaussian"]

    def gaussian(image: Any, *args: Any, multichannel: bool | None = None, **kwargs: Any) -> Any:
        if multichannel:
            kwargs["channel_axis"] = -1
        return sk_gaussian(image, *args, **kwargs)

    namespace["gaussian"] = gaussian
    return namespace


def frost_photo_dir(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    spec = importlib.util.find_spec("imagecorruptions")  # located, not imported (it needs pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the frost photographs were not found: pip install --no-deps imagecorruptions, or pass --photos")
    return Path(spec.submodule_search_locations[0]) / "frost"


@contextlib.contextmanager
def cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)  # the reference opens './frost1.png' ...
    try:
        yield
    finally:
        os.chdir(old)


def replay_handlers(name: str, g: np.random.Generator, severity: int, sk_rng: _SkimageRng) -> dict[str, Callable]:
    """How the reference's random calls map onto the draws cifarb makes from the image's generator `g`."""
    from cifarb.data.corruptions import SEVERITY_PARAMS, _ops

    p = SEVERITY_PARAMS[name][severity - 1]
    if name in ("gaussian_noise", "speckle_noise"):
        # cifarb: float32 standard normals times the scale
        return {"normal": lambda size, scale: g.standard_normal(size, dtype=np.float32).astype(np.float64) * scale}
    if name == "shot_noise":
        return {"poisson": lambda lam: g.poisson(lam)}
    if name == "impulse_noise":
        u = g.random((2, 32, 32, 3), dtype=np.float32).astype(np.float64)
        sk_rng.queue = [u[0], u[1]]  # hit?, then salt?
        return {}
    if name == "glass_blur":
        sigma, delta, iterations = p
        rows = iter(g.integers(-delta, delta, size=(iterations, 30 * 30, 2)).reshape(-1, 2))
        return {"randint": lambda lo, hi, size: next(rows)}
    if name in ("motion_blur", "elastic_transform"):
        return {"uniform": lambda low, high, size=None: g.uniform(low, high, size)}
    if name in ("snow", "spatter"):
        def normal(size: tuple, loc: float, scale: float) -> np.ndarray:
            return g.normal(loc, scale, size=int(np.prod(size))).reshape(size)
        return {"normal": normal, "uniform": lambda low, high, size=None: g.uniform(low, high, size)}
    if name == "frost":
        return {"randint": lambda lo, hi=None, size=None: g.integers(lo, hi)}
    if name == "fog":
        u = g.uniform(-1, 1, size=_ops.plasma_count(32))
        pos = [0]

        def uniform(low: float, high: float, size: tuple) -> np.ndarray:
            k = int(np.prod(size))
            chunk = u[pos[0]:pos[0] + k].reshape(size)
            pos[0] += k
            return high * chunk  # cifarb's offsets are U(-1, 1) scaled by wibble; the reference's U(-wibble, wibble)
        return {"uniform": uniform}
    return {}


def reference_images(ns: dict[str, Any], images: np.ndarray, indices: np.ndarray, name: str, severity: int,
                     seed: int, replay: Replay | None, photos: Path) -> np.ndarray:
    """The reference's output (its driver's np.uint8 cast included) for every image, one at a time."""
    from PIL import Image

    from cifarb.data.corruptions import REGISTRY, image_rngs

    fn = ns[name]
    sk = ns["sk"]
    sk_rng = _SkimageRng(np.random.PCG64(0))
    random_noise = sk.util.random_noise
    out = np.empty_like(images)
    rngs = image_rngs(seed, name, severity, indices) if replay is not None and REGISTRY[name].random else None
    try:
        if replay is not None:  # skimage's random_noise draws from its own generator: hand it ours
            sk.util.random_noise = lambda *a, **k: random_noise(*a, rng=sk_rng, **k)
        with cwd(photos), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, img in enumerate(images):
                if replay is not None:
                    replay.set(**(replay_handlers(name, rngs[i], severity, sk_rng) if rngs else {}))
                # the reference's driver: trn.ToPILImage(trn.ToTensor(img)) is Image.fromarray(img) for uint8
                out[i] = np.uint8(fn(Image.fromarray(img), severity))
    finally:
        sk.util.random_noise = random_noise
    return out


def load_slice(root: Path, dataset: str = "cifar10") -> Any:
    from cifarb.data.readers import load_cifar

    return load_cifar(dataset, "test", root=root, trust_local=True)


def cmd_fixtures(args: argparse.Namespace) -> int:
    from cifarb.data.corruptions import CORRUPTIONS

    replay = Replay()
    ns = load_reference(args.reference, replay)
    data = load_slice(args.root)
    idx = np.array(FIXTURE_INDICES)
    images = data.images[idx]
    arrays: dict[str, np.ndarray] = {"indices": idx}
    for name in CORRUPTIONS:
        arrays[name] = np.stack([reference_images(ns, images, idx, name, s, args.seed, replay, frost_photo_dir(args.photos))
                                 for s in range(1, 6)])  # (5 severities, images, 32, 32, 3)
        print(name, file=sys.stderr)
    meta = {
        "reference": "hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py",
        "reference_sha256": hashlib.sha256(args.reference.read_bytes()).hexdigest(),
        "seed": args.seed, "api_patches": list(API_PATCHES), "imagemagick": _magick_version(),
        "images_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
    }
    arrays["meta"] = np.array(json.dumps(meta))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


def _magick_version() -> str:
    import wand.version

    return f"{wand.version.MAGICK_VERSION} (Wand {wand.__version__})" if hasattr(wand, "__version__") else wand.version.MAGICK_VERSION


def cmd_compare(args: argparse.Namespace) -> int:
    """Every image of the slice through cifarb and the replayed reference: count differing values per pair."""
    from cifarb.data.corruptions import CORRUPTIONS, corrupt

    replay = Replay()
    ns = load_reference(args.reference, replay)
    data = load_slice(args.root, args.dataset)
    n = args.n or len(data.images)
    images, idx = data.images[:n], np.asarray(data.indices[:n])
    names = args.corruptions.split(",") if args.corruptions else list(CORRUPTIONS)
    print("| corruption | severity | values differing | max abs diff | images differing |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        for s in range(1, 6):
            ref = reference_images(ns, images, idx, name, s, args.seed, replay, frost_photo_dir(args.photos))
            ours = corrupt(images, name, s, seed=args.seed, indices=idx)
            d = np.abs(ours.astype(int) - ref)
            print(f"| {name} | {s} | {int((d > 0).sum())} of {d.size} | {int(d.max())} | "
                  f"{int((d.reshape(n, -1).max(1) > 0).sum())} of {n} |", flush=True)
    return 0


def _cached_imread(ns: dict[str, Any]) -> None:
    """Memoise the reference's cv2.imread of its frost photographs (same file, same array, every call).

    Not an API patch: the pixels are identical; it only saves decoding a 900x600 PNG for every image.
    """
    import functools

    real_cv2 = ns["cv2"]
    imread = functools.lru_cache(maxsize=8)(lambda path, *flags: real_cv2.imread(path, *flags))
    proxy = types.ModuleType("cv2_proxy")
    proxy.__dict__.update({k: getattr(real_cv2, k) for k in dir(real_cv2) if not k.startswith("__")})
    proxy.imread = lambda path, *flags: imread(os.path.abspath(path), *flags).copy()
    ns["cv2"] = proxy


def cmd_frost(args: argparse.Namespace) -> int:
    """The reference's own frost (its legacy global numpy generator, seeded 0..draws-1) on the slice.

    With --out: OUT/drawK/CIFAR-10-C/{frost,labels}.npy per draw, rows severity-major as the official files.
    With --evaluate MODEL: the model's accuracy on every draw and severity, and on cifarb's frost of the same
    images with seeds 0..draws-1, printed and written to --json.
    """
    ns = load_reference(args.reference, None)
    _cached_imread(ns)
    data = load_slice(args.root)
    idx = np.asarray(data.indices)
    sevs = [int(s) for s in args.severities.split(",")]
    labels = np.asarray(data.labels)
    model = None
    if args.evaluate:
        from cifarb.eval.evaluate import predict
        from cifarb.models.zoo import resolve_model

        model = resolve_model(args.evaluate, num_classes=10)

    def accuracy(images: np.ndarray) -> float:
        pred, _ = predict(model.module, images, model.mean, model.std, batch_size=256, device="cpu", return_logits=False)
        return float((pred == labels).mean())

    from cifarb.data.corruptions import corrupt

    results: dict[str, Any] = {"model": args.evaluate, "n_images": len(labels), "severities": sevs,
                               "reference": {}, "cifarb": {}}
    for draw in range(args.draws):
        np.random.seed(draw)
        blocks = [reference_images(ns, data.images, idx, "frost", s, 0, None, frost_photo_dir(args.photos)) for s in sevs]
        if args.out:
            folder = args.out / f"draw{draw}" / "CIFAR-10-C"
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / "frost.npy", np.concatenate(blocks))
            np.save(folder / "labels.npy", np.tile(labels.astype(np.uint8), len(sevs)))
        if model is not None:
            results["reference"][draw] = {s: accuracy(b) for s, b in zip(sevs, blocks)}
            results["cifarb"][draw] = {s: accuracy(corrupt(data.images, "frost", s, seed=draw, indices=idx)) for s in sevs}
            print(f"draw {draw}: reference {results['reference'][draw]}, cifarb seed {draw} {results['cifarb'][draw]}",
                  file=sys.stderr, flush=True)
    if model is not None:
        for who in ("reference", "cifarb"):
            for s in sevs:
                vals = [r[s] for r in results[who].values()]
                print(f"{who} frost severity {s}: mean {100 * np.mean(vals):.2f} %, "
                      f"range {100 * min(vals):.2f}-{100 * max(vals):.2f} over {len(vals)} draws")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("fixtures", "compare", "frost"):
        p = sub.add_parser(cmd)
        p.add_argument("--reference", type=Path, required=True, help="path to make_cifar_c.py")
        p.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data", help="folder with cifar-10-batches-py")
        p.add_argument("--photos", type=Path, help="folder with frost1.png ... (default: imagecorruptions' frost/)")
        p.add_argument("--seed", type=int, default=0, help="cifarb seed whose draws are replayed (default 0)")
    sub.choices["fixtures"].add_argument("--out", type=Path, default=FIXTURE)
    sub.choices["compare"].add_argument("--n", type=int, default=0, help="first N images (default all)")
    sub.choices["compare"].add_argument("--corruptions", default="", help="comma-separated (default all 19)")
    sub.choices["compare"].add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100"))
    sub.choices["frost"].add_argument("--out", type=Path, help="write each draw as OUT/drawK/CIFAR-10-C/")
    sub.choices["frost"].add_argument("--draws", type=int, default=8)
    sub.choices["frost"].add_argument("--severities", default="3,5")
    sub.choices["frost"].add_argument("--evaluate", metavar="MODEL", help="a cifarb model spec, e.g. resnet20")
    sub.choices["frost"].add_argument("--json", type=Path, help="with --evaluate: write the accuracies here")
    args = ap.parse_args(argv)
    return {"fixtures": cmd_fixtures, "compare": cmd_compare, "frost": cmd_frost}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
