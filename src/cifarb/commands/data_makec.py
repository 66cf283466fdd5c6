"""`cifarb data make-c`: generate CIFAR-C-style corruptions of the local test set in the official layout."""

from __future__ import annotations

import argparse
import sys

from cifarb.commands._common import add_root_args, non_negative_int, positive_int

# Kept here (stdlib only) so that parsing stays cheap; a test checks they equal the package's lists.
STANDARD = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
GROUPS = {"all": STANDARD + EXTRA, "standard": STANDARD, "extra": EXTRA}

DESCRIPTION = """\
Corrupt the CIFAR test images found under --root (the full official set or a prefix such as a real
slice) with the CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019) and their CIFAR-specific
severity parameters, and write OUT/CIFAR-10-C/ (or OUT/CIFAR-100-C/) in the official layout:
<corruption>.npy, uint8 (S*N, 32, 32, 3), severities stacked in ascending order (row k*N + i = image i at
the k-th severity given), and labels.npy, the N labels repeated S times.

The folder also gets a marker, .cifarb-local.json, with the manifest (generator version, seed,
parameters, input sha256s, official image indices). It names the set as LOCAL and NON-OFFICIAL:
`cifarb eval --dataset cifar10-c --root OUT` reads it and reports it as cifar10-c-local.

CIFAR-100 uses the same parameters: the reference publishes one CIFAR parameter set (make_cifar_c.py).
Frost blends crops of the reference's frost photographs, read from the installed `imagecorruptions`
package (pip install --no-deps imagecorruptions==1.1.2) and checked by sha256; without them frost falls
back to a procedural substitute, with a warning, and the marker records frost_substitute: true.

The output is deterministic: each image's randomness depends only on (seed, corruption, severity,
official index), so a prefix gets the same pixels as inside the full set.
"""

EPILOG = f"""\
corruptions (standard 15, then extra 4):
  {", ".join(STANDARD)}
  {", ".join(EXTRA)}
examples:
  cifarb data make-c --dataset cifar10 --root ../shared/data --trust-local --out gen
  cifarb data make-c --dataset cifar10 --out gen --corruptions fog,snow --severities 1,3,5 --seed 1
"""


def parse_severities(text: str) -> list[int]:
    """'1-5', '1,3,5', '2' or '1-3,5' -> sorted distinct severities in 1..5."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected severities like 1-5, 1,3,5 or 2 (integers 1 to 5), got {text!r}"
            ) from None
        if not (1 <= a <= 5 and 1 <= b <= 5) or a > b:
            raise argparse.ArgumentTypeError(f"severities are integers from 1 to 5 (ranges low-high), got {part!r}")
        out.update(range(a, b + 1))
    return sorted(out)


def parse_corruptions(text: str) -> list[str]:
    """Comma-separated corruption names, or the groups all / standard / extra; order kept, repeats dropped."""
    names: list[str] = []
    for item in (t.strip().lower() for t in text.split(",")):
        if not item:
            continue
        group = GROUPS.get(item, (item,))
        if any(g not in GROUPS["all"] for g in group):
            from cifarb.data.corruption_names import unknown_corruptions

            raise argparse.ArgumentTypeError(unknown_corruptions([item], GROUPS["all"], groups=tuple(GROUPS)))
        names.extend(g for g in group if g not in names)
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of corruption names")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-c",
        help="generate CIFAR-C-style corruptions of the local test set (local, non-official)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, choices=("cifar10", "cifar100"), help="which test set to corrupt")
    add_root_args(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder; CIFAR-10-C/ (or CIFAR-100-C/) is created inside it")
    parser.add_argument("--corruptions", type=parse_corruptions, metavar="A,B,...", default=None,
                        help="comma-separated names, or all / standard / extra (default: all 19)")
    parser.add_argument("--severities", type=parse_severities, default=[1, 2, 3, 4, 5], metavar="LIST",
                        help="severities to make, e.g. 1-5 (default), 1,3,5 or 2; stored in ascending order")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=500, metavar="N",
                        help="images per vectorised batch (default 500); the output does not depend on it")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a set previously generated in the same folder (never official files)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    from cifarb.commands._common import add_threads_arg

    add_threads_arg(parser, "generation (OpenCV and BLAS threads)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # heavy imports only here: numpy, scipy, OpenCV, Pillow, scikit-image (never torch)
    from pathlib import Path

    from cifarb._threads import apply_threads

    apply_threads(args.threads, torch_too=False)

    from cifarb.data.corruptions import _makec
    from cifarb.data.readers import load_cifar

    folder = _makec.folder_name(args.dataset)
    out = Path(args.out)
    _makec.check_out(out / folder, overwrite=args.overwrite)  # before reading anything
    image_set = load_cifar(args.dataset, "test", root=args.root, trust_local=args.trust_local)
    names = args.corruptions or list(GROUPS["all"])
    target = _makec.make_c(
        image_set, out, dataset=args.dataset, corruptions=names, severities=args.severities,
        seed=args.seed, batch_size=args.batch_size, overwrite=args.overwrite, progress=args.progress,
    )
    n = image_set.images.shape[0]
    sevs = ",".join(map(str, args.severities))
    print(f"wrote {target}: {len(names)} corruption(s) x severities {sevs} x {n} image(s) "
          f"(of {image_set.n_official}), seed {args.seed}")
    print(f"this is a LOCAL, NON-OFFICIAL set (marker {target / _makec.MARKER_NAME}); "
          f"source images verified: {'yes' if image_set.verified else 'no'}")
    print(f"evaluate it with: cifarb eval --model resnet20 --dataset {args.dataset}-c --root {out}")
    sys.stdout.flush()
    return 0
