"""CIFAR-specific severity parameters of the 19 corruptions (Hendrycks & Dietterich, ICLR 2019).

The values are those of the public CIFAR-10-C generation script (`ImageNet-C/create_c/make_cifar_c.py`
in github.com/hendrycks/robustness); they differ from the ImageNet-C values because the images are 32x32.
Index k of each list is severity k + 1. Only plain numbers live here so the table can be written into the
manifest of a generated set as it is (JSON keeps every float exactly).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# zoom_blur: the reference's factors are np.arange(1, stop, 0.01), unrounded: floating-point rounding makes the
# ranges hold 7, 12, 16, 21 and 26 factors (the first two include their nominal end point), and the values
# are not the decimals they look like (the last one is 1.2500000000000002, which makes scipy zoom a 26-px
# crop to 33 px, not 32). Rounding them changes up to 29 % of the values at severity 5, so we keep them.
_ZOOM_STOPS = (1.06, 1.11, 1.16, 1.21, 1.26)

SEVERITY_PARAMS: dict[str, list[Any]] = {
    # noise ------------------------------------------------------------------------------------------
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],  # std of additive noise on [0, 1] pixels
    "shot_noise": [500, 250, 100, 75, 50],  # photons per unit intensity (Poisson rate scale)
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],  # fraction of values set to 0 or 1 (salt & pepper)
    # blur -------------------------------------------------------------------------------------------
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],  # (disk radius, alias blur)
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],  # (sigma, delta, iters)
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],  # (kernel radius, sigma); angle in [-45, 45]
    "zoom_blur": [[float(f) for f in np.arange(1, stop, 0.01)] for stop in _ZOOM_STOPS],  # zoom factors
    # weather ----------------------------------------------------------------------------------------
    # (loc, scale, zoom, threshold, blur radius, blur sigma, blend)
    "snow": [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],  # (image weight, frost weight)
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],  # (fog strength, plasma wibble decay)
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],  # added to HSV value
    # digital ----------------------------------------------------------------------------------------
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],  # factor towards the per-channel mean
    # (displacement scale, displacement smoothing sigma, affine jitter), in pixels (32 * fraction)
    "elastic_transform": [
        (32 * 0, 32 * 0, 32 * 0.08),
        (32 * 0.05, 32 * 0.2, 32 * 0.07),
        (32 * 0.08, 32 * 0.06, 32 * 0.06),
        (32 * 0.1, 32 * 0.04, 32 * 0.05),
        (32 * 0.1, 32 * 0.03, 32 * 0.03),
    ],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],  # downscale factor (BOX down, BOX up)
    "jpeg_compression": [80, 65, 58, 50, 40],  # JPEG quality
    # extra ------------------------------------------------------------------------------------------
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],  # std of multiplicative noise
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1],  # sigma in pixels
    # (loc, scale, smoothing sigma, threshold, intensity / mud sigma, 0 = water, 1 = mud)
    "spatter": [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ],
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],  # (HSV saturation factor, offset)
}
