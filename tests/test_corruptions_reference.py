"""The vectorised building blocks against slow, independent per-image implementations and library calls."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import color

from cifarb.data.corruptions import SEVERITY_PARAMS, _ops, corrupt, image_rngs
from cifarb.data.corruptions._frost import PHOTO_STATS, frost_plates
from cifarb.data.corruptions._weather import frost_substitute

RNG = np.random.default_rng(11)
IMAGES = (RNG.random((6, 32, 32, 3)) * 255).astype(np.uint8)


def test_glass_blur_equals_the_sequential_pixel_walk_of_the_reference():
    # The reference walks h, w = 31..2 and runs `x[h, w], x[h2, w2] = x[h2, w2], x[h, w]` on numpy views,
    # with offsets from randint(-1, 1). Do exactly that, image by image, with the same draws.
    for severity in (1, 5):
        sigma, delta, iterations = SEVERITY_PARAMS["glass_blur"][severity - 1]
        expected = []
        for i, g in enumerate(image_rngs(5, "glass_blur", severity, range(len(IMAGES)))):
            offsets = g.integers(-delta, delta, size=(iterations, 30 * 30, 2))
            x = (ndimage.gaussian_filter(IMAGES[i] / 255.0, (sigma, sigma, 0), mode="nearest") * 255).astype(np.uint8)
            for it in range(iterations):
                k = 0
                for h in range(32 - delta, delta, -1):
                    for w in range(32 - delta, delta, -1):
                        dx, dy = offsets[it, k]
                        k += 1
                        h2, w2 = h + dy, w + dx
                        x[h, w], x[h2, w2] = x[h2, w2], x[h, w]
            y = ndimage.gaussian_filter(x / 255.0, (sigma, sigma, 0), mode="nearest")
            expected.append((np.clip(y, 0, 1) * 255).astype(np.uint8))
        assert np.array_equal(corrupt(IMAGES, "glass_blur", severity, seed=5), np.stack(expected))


def test_clipped_zoom_matches_scipy_zoom_of_the_centre():
    x = RNG.random((4, 32, 32, 3)).astype(np.float32)
    for factor in (1.0, 1.01, 1.07, 1.13, 1.25, 1.75, 2.25):
        ch = int(np.ceil(32 / factor))
        top = (32 - ch) // 2
        for i in range(len(x)):
            z = ndimage.zoom(x[i, top:top + ch, top:top + ch], (factor, factor, 1), order=1)
            t = (z.shape[0] - 32) // 2
            np.testing.assert_allclose(_ops.clipped_zoom(x, factor)[i], z[t:t + 32, t:t + 32], atol=1e-5)


@pytest.mark.parametrize("severity", [1, 5])
def test_zoom_blur_matches_per_image_scipy_zooms(severity):
    factors = SEVERITY_PARAMS["zoom_blur"][severity - 1]
    ours = corrupt(IMAGES, "zoom_blur", severity)
    for i in range(len(IMAGES)):
        x = (IMAGES[i] / 255.0).astype(np.float32)
        acc = x.copy()
        for factor in factors:
            ch = int(np.ceil(32 / factor))
            top = (32 - ch) // 2
            z = ndimage.zoom(x[top:top + ch, top:top + ch], (factor, factor, 1), order=1)
            t = (z.shape[0] - 32) // 2
            acc += z[t:t + 32, t:t + 32]
        ref = (np.clip(acc / (len(factors) + 1), 0, 1) * 255).astype(np.uint8)
        diff = np.abs(ours[i].astype(int) - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.002  # float32 summation order only


@pytest.mark.parametrize("params", SEVERITY_PARAMS["defocus_blur"])
def test_small_kernel_correlation_matches_cv2_filter2d(params):
    kernel = _ops.disk_kernel(*params)
    x = IMAGES / 255.0
    ours = _ops.correlate_small(x, kernel.astype(np.float64))
    for i in range(len(x)):
        ref = cv2.filter2D(x[i].astype(np.float32), -1, kernel)  # default border: REFLECT_101
        np.testing.assert_allclose(ours[i], ref, atol=1e-5)


def test_motion_blur_matches_a_per_pixel_loop_and_trails_against_the_angle():
    radius, sigma = 6, 2
    x = IMAGES[:2].astype(np.float64)
    angles = np.array([-37.0, 20.0])
    ours = _ops.motion_blur(x, radius, sigma, angles)
    for n, a in enumerate(angles):
        taps = np.arange(2 * radius + 1)
        w = np.exp(-taps**2 / (2 * sigma**2))
        w /= w.sum()
        ref = np.zeros((32, 32, 3))
        for yy in range(32):
            for xx in range(32):
                for t, wt in zip(taps, w):
                    sx = min(max(xx + int(np.floor(t * np.cos(np.radians(a)) + 0.5)), 0), 31)
                    sy = min(max(yy + int(np.floor(t * np.sin(np.radians(a)) + 0.5)), 0), 31)
                    ref[yy, xx] += wt * x[n, sy, sx]
        np.testing.assert_allclose(ours[n], ref, atol=1e-9)
    # a single bright dot becomes a streak from the dot towards the angle + 180 degrees, fading with distance
    dot = np.zeros((1, 32, 32))
    dot[0, 16, 16] = 1.0
    streak = _ops.motion_blur(dot, 6, 2, np.array([0.0]))[0]
    assert np.isclose(streak.sum(), 1.0) and np.count_nonzero(streak) == 13
    row = streak[16, 4:17]
    assert (np.diff(row) > 0).all()  # brightest at the dot, fading to the left


def _plasma_reference(u: np.ndarray, mapsize: int, decay: float) -> np.ndarray:
    """Diamond-square with explicit per-point loops (wrap-around), consuming draws in the same order."""
    m = np.zeros((mapsize, mapsize))
    pos, step, wibble = 0, mapsize, 100.0
    while step >= 2:
        half = step // 2
        cells = range(0, mapsize, step)
        for kind in ("square", "left", "top"):
            for a in cells:
                for b in cells:
                    if kind == "square":
                        total = m[a, b] + m[(a + step) % mapsize, b] + m[a, (b + step) % mapsize] + m[(a + step) % mapsize, (b + step) % mapsize]
                        target = (a + half, b + half)
                    elif kind == "left":  # point (a, b + half): corners left/right, centres above/below
                        total = m[a, b] + m[a, (b + step) % mapsize] + m[(a + half) % mapsize, b + half] + m[(a - half) % mapsize, b + half]
                        target = (a, b + half)
                    else:  # point (a + half, b): corners above/below, centres left/right
                        total = m[a, b] + m[(a + step) % mapsize, b] + m[a + half, (b + half) % mapsize] + m[a + half, (b - half) % mapsize]
                        target = (a + half, b)
                    m[target] = total / 4 + wibble * wibble * u[pos]
                    pos += 1
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def test_plasma_fractal_matches_explicit_diamond_square():
    u = RNG.uniform(-1, 1, size=(2, _ops.plasma_count(16)))
    ours = _ops.plasma_fractal(u, 16, 2.5)
    for i in range(2):
        # the vectorised version fills each level's grid row-major; the loop version walks it the same way
        np.testing.assert_allclose(ours[i], _plasma_reference(u[i], 16, 2.5), atol=1e-12)


def test_noise_statistics_match_the_parameters():
    grey = np.full((64, 32, 32, 3), 128, np.uint8)
    x = 128 / 255
    for s, c in enumerate(SEVERITY_PARAMS["gaussian_noise"], 1):
        d = corrupt(grey, "gaussian_noise", s).astype(np.float64) / 255 - x
        assert abs(d.std() - c) < 0.05 * c and abs(d.mean() + 0.5 / 255) < 0.002  # truncation: -0.5/255 bias
    for s, c in enumerate(SEVERITY_PARAMS["shot_noise"], 1):
        d = corrupt(grey, "shot_noise", s).astype(np.float64) / 255
        assert abs(d.var() - x / c) < 0.1 * x / c  # Poisson: var(k / c) = x / c
    for s, c in enumerate(SEVERITY_PARAMS["impulse_noise"], 1):
        out = corrupt(grey, "impulse_noise", s)
        salt, pepper = (out == 255).mean(), (out == 0).mean()
        assert abs(salt + pepper - c) < 0.15 * c and abs(salt - pepper) < 0.2 * c
        assert ((out == 255) | (out == 0) | (out == 127) | (out == 128)).all()
    for s, c in enumerate(SEVERITY_PARAMS["speckle_noise"], 1):
        d = corrupt(grey, "speckle_noise", s).astype(np.float64) / 255 - x
        assert abs(d.std() - c * x) < 0.05 * c * x


def test_hsv_corruptions_match_skimage_per_image():
    for name, s in (("brightness", 3), ("saturate", 5)):
        ours = corrupt(IMAGES, name, s)
        p = SEVERITY_PARAMS[name][s - 1]
        for i in range(len(IMAGES)):
            hsv = color.rgb2hsv(IMAGES[i] / 255.0)
            if name == "brightness":
                hsv[..., 2] = np.clip(hsv[..., 2] + p, 0, 1)
            else:
                hsv[..., 1] = np.clip(hsv[..., 1] * p[0] + p[1], 0, 1)
            ref = (np.clip(color.hsv2rgb(hsv), 0, 1) * 255).astype(np.uint8)
            assert np.array_equal(ours[i], ref)


def test_contrast_and_frost_blend_by_formula():
    for s, c in enumerate(SEVERITY_PARAMS["contrast"], 1):
        x = IMAGES / 255.0
        m = x.mean(axis=(1, 2), keepdims=True)
        ref = (np.clip((x - m) * c + m, 0, 1) * 255).astype(np.uint8)
        assert np.abs(corrupt(IMAGES, "contrast", s).astype(int) - ref).max() <= 1
    # the fallback frost with weights w1, w2: out - w1 * x must be a crop of a procedural plate, scaled by w2
    black = np.zeros((4, 32, 32, 3), np.uint8)
    w1, w2 = SEVERITY_PARAMS["frost"][4]
    out = frost_substitute(black, (w1, w2), image_rngs(2, "frost", 5, range(4)), 2).astype(np.float64)
    plates = frost_plates(np.random.SeedSequence(2, spawn_key=(__import__("zlib").crc32(b"frost-plates"),)))
    for o in out:
        found = any(
            np.array_equal(o, np.floor(w2 * p[r:r + 32, c:c + 32].astype(np.float64)))
            for p in plates for r in range(128 - 32) for c in range(0, 128 - 32)
        )
        assert found


def test_imagemagick_q16_quantisation_by_hand():
    # 16-bit quantum q = floor(257 v + 0.5), then the 8-bit PNG writer's q // 257; values are clipped first
    v = np.array([-3.0, 0.0, 0.4, 0.6, 100.5, 100.998, 100.9981, 101.0, 254.99, 255.0, 300.0])
    expected = [0, 0, 0, 0, 100, 100, 101, 101, 254, 255, 255]
    assert _ops.imagemagick_q16_to_uint8(v).tolist() == expected
    assert np.rint(v[4:7]).tolist() == [100, 101, 101]  # plain rounding differs on 100.5 and 100.998
    # across a fine grid: +-1 from np.rint on about half of the values
    grid = np.linspace(0, 255, 100001)
    q = _ops.imagemagick_q16_to_uint8(grid).astype(int)
    assert (np.abs(q - np.rint(grid)) <= 1).all() and 0.4 < (q != np.rint(grid)).mean() < 0.6


def test_uint8_wrap_is_numpy_bare_cast_on_x86():
    assert _ops.wrap_uint8(np.array([270.6, 255.9, 256.0, 511.2])).tolist() == [14, 255, 0, 255]
    import platform

    if platform.machine().lower() in ("x86_64", "amd64"):  # the reference's platform; undefined elsewhere
        v = np.linspace(0, 400, 4001)
        with np.errstate(invalid="ignore"):
            assert np.array_equal(_ops.wrap_uint8(v), v.astype(np.uint8))


def test_frost_plates_are_seeded_and_in_the_photographs_range():
    a = frost_plates(np.random.SeedSequence(0))
    assert np.array_equal(a, frost_plates(np.random.SeedSequence(0)))
    assert not np.array_equal(a, frost_plates(np.random.SeedSequence(1)))
    lo, hi = PHOTO_STATS["channel_mean_range"]
    for plate in a.astype(np.float64):
        grey = plate.mean(axis=2)
        highpass = grey - ndimage.gaussian_filter(grey, 2)
        assert (lo <= plate.mean(axis=(0, 1))).all() and (plate.mean(axis=(0, 1)) <= hi).all()
        assert PHOTO_STATS["std_range"][0] <= plate.std() <= PHOTO_STATS["std_range"][1]
        assert PHOTO_STATS["highpass_std_range"][0] <= highpass.std() <= PHOTO_STATS["highpass_std_range"][1]
        assert (plate[..., 2] >= plate[..., 0] - 1).mean() > 0.95  # bluish white, like frost on glass
