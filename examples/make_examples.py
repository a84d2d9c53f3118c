#!/usr/bin/env python3
"""Rebuild the bundled example pair for Deep Image Analogy.

The pair is

* ``a.jpg``       -- A, the content photo: NASA's portrait of astronaut Eileen Collins
                     (``skimage/data/astronaut.png`` from the scikit-image wheel, public domain).
* ``b_prime.png`` -- B', the style reference: a synthetic oil painting made by this script from
                     the U.S. Navy portrait of Commodore Grace Hopper
                     (``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` from the matplotlib
                     wheel, public domain).

Both source photos are formal portraits (head and shoulders, U.S. flag on the left), so the
pair has the semantic correspondence Deep Image Analogy relies on, while B' has a very different
look: flattened paint patches, bold saturated colour, brush strokes that follow the forms, impasto
relief and a canvas weave.

Usage::

    python examples/make_examples.py [--astronaut PATH] [--hopper PATH] [--out DIR]

Without ``--astronaut``/``--hopper`` the script looks for the files inside an installed
scikit-image / matplotlib (neither is imported, only located).  To get them without installing
anything::

    pip download --no-deps scikit-image matplotlib -d /tmp/wheels
    cd /tmp/wheels && unzip -q 'scikit_image-*.whl' 'skimage/data/astronaut.png' \\
        && unzip -q 'matplotlib-*.whl' 'matplotlib/mpl-data/sample_data/grace_hopper.jpg'

Only numpy and Pillow are needed.  The painting procedure (see :func:`paint`) is deterministic
(fixed random seed); ``b_prime.png`` is stored with 7 bits per channel to stay small.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SIZE = 512  # longest side of both example images, in pixels
SEED = 2017  # seed for the stroke and canvas noise

ASTRONAUT_REL = Path("data") / "astronaut.png"
HOPPER_REL = Path("mpl-data") / "sample_data" / "grace_hopper.jpg"


# ----------------------------------------------------------------------------------------------
# Locating and loading the sources
# ----------------------------------------------------------------------------------------------
def _package_file(package: str, rel: Path) -> Path | None:
    """Return ``rel`` inside an installed ``package`` without importing it, or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        candidate = Path(base) / rel
        if candidate.is_file():
            return candidate
    return None


def load_rgb(path: Path) -> np.ndarray:
    """Load an image as float32 RGB in [0, 1], shape (H, W, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")


def fit_longest(img: Image.Image, size: int = SIZE) -> Image.Image:
    """Resize so that the longest side is ``size`` (Lanczos), keeping the aspect ratio."""
    scale = size / max(img.size)
    if scale == 1.0:
        return img
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(new, Image.Resampling.LANCZOS)


# ----------------------------------------------------------------------------------------------
# Small numpy image helpers
# ----------------------------------------------------------------------------------------------
def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D or (H, W, C) array with reflected borders."""
    if sigma <= 0:
        return x
    r = max(1, int(3 * sigma + 0.5))
    t = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    pad = [(r, r), (r, r)] + [(0, 0)] * (x.ndim - 2)
    p = np.pad(x, pad, mode="reflect")
    h, w = x.shape[:2]
    rows = sum(k[i] * p[i : i + h] for i in range(2 * r + 1))
    return sum(k[i] * rows[:, i : i + w] for i in range(2 * r + 1))


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives (d/dx, d/dy) of a 2-D array."""
    p = np.pad(x, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:] - p[:-2, :-2] - 2 * p[1:-1, :-2] - p[2:, :-2]) / 8
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:] - p[:-2, :-2] - 2 * p[:-2, 1:-1] - p[:-2, 2:]) / 8
    return gx, gy


def sample(field: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``field`` (2-D or (H, W, C)) at float coordinates, clamped to the edge."""
    h, w = field.shape[:2]
    y = np.clip(y, 0, h - 1.001)
    x = np.clip(x, 0, w - 1.001)
    y0 = y.astype(np.int32)
    x0 = x.astype(np.int32)
    fy = y - y0
    fx = x - x0
    if field.ndim == 3:
        fy = fy[..., None]
        fx = fx[..., None]
    top = field[y0, x0] * (1 - fx) + field[y0, x0 + 1] * fx
    bot = field[y0 + 1, x0] * (1 - fx) + field[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


# ----------------------------------------------------------------------------------------------
# Painting stages
# ----------------------------------------------------------------------------------------------
def kuwahara(rgb: np.ndarray, radius: int) -> np.ndarray:
    """Classic Kuwahara filter: each pixel takes the mean colour of the least varied of the four
    (radius+1)^2 quadrants around it.  Flattens texture into paint patches, keeps edges."""
    k = radius + 1
    h, w = rgb.shape[:2]
    lum = luminance(rgb)
    stack = np.concatenate([rgb, lum[..., None], (lum**2)[..., None]], axis=2)
    p = np.pad(stack, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    ii = np.zeros((p.shape[0] + 1, p.shape[1] + 1, p.shape[2]), dtype=np.float64)
    ii[1:, 1:] = p.cumsum(0).cumsum(1)
    # box[y, x] = mean of p[y:y+k, x:x+k]
    box = (ii[k:, k:] - ii[:-k, k:] - ii[k:, :-k] + ii[:-k, :-k]) / (k * k)
    quads = [box[dy : dy + h, dx : dx + w] for dy in (0, radius) for dx in (0, radius)]
    var = np.stack([q[..., 4] - q[..., 3] ** 2 for q in quads])
    best = var.argmin(0)
    means = np.stack([q[..., :3] for q in quads])
    return np.take_along_axis(means, best[None, ..., None], 0)[0].astype(np.float32)


def stroke_direction(rgb: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (ty, tx) along the local edge tangent, from the smoothed structure tensor."""
    gx, gy = sobel(gaussian_blur(luminance(rgb), 1.0))
    jxx = gaussian_blur(gx * gx, sigma)
    jxy = gaussian_blur(gx * gy, sigma)
    jyy = gaussian_blur(gy * gy, sigma)
    theta = 0.5 * np.arctan2(2 * jxy, jxx - jyy) + np.pi / 2  # gradient angle + 90 degrees
    # Where the image is flat, fall back to gently curving diagonal strokes.
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    weight = np.clip(coherence / (np.percentile(coherence, 60) + 1e-8), 0, 1)
    h, w = theta.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    default = np.deg2rad(55.0) + 0.35 * np.sin(yy / 47.0) * np.cos(xx / 61.0)
    ty = weight * np.sin(theta) + (1 - weight) * np.sin(default)
    tx = weight * np.cos(theta) + (1 - weight) * np.cos(default)
    norm = np.sqrt(ty**2 + tx**2) + 1e-8
    return (ty / norm).astype(np.float32), (tx / norm).astype(np.float32)


def brush_texture(ty: np.ndarray, tx: np.ndarray, rng: np.random.Generator, length: int) -> np.ndarray:
    """Line-integral convolution of bristle noise along the tangent field: streaks in [0, 1]
    that look like brush strokes following the forms."""
    h, w = ty.shape
    # Bristle noise: fine white noise plus sparse blobs (paint loads of individual strokes).
    noise = gaussian_blur(rng.random((h, w), dtype=np.float32), 0.8)
    noise = (noise - noise.mean()) / (noise.std() + 1e-8) * 0.29 + 0.5
    blobs = gaussian_blur((rng.random((h, w), dtype=np.float32) > 0.985).astype(np.float32), 1.5)
    noise = 0.6 * noise + 0.4 * blobs / (blobs.max() + 1e-8)
    y0, x0 = np.mgrid[0:h, 0:w].astype(np.float32)
    acc = noise.copy()
    total = np.ones_like(noise)
    for sign in (1.0, -1.0):
        y, x = y0.copy(), x0.copy()
        dy, dx = sign * ty, sign * tx
        for step in range(1, length + 1):
            ny = sample(ty, y, x)
            nx = sample(tx, y, x)
            flip = np.where(ny * dy + nx * dx < 0, -1.0, 1.0).astype(np.float32)
            dy, dx = ny * flip, nx * flip  # keep marching the same way along the line field
            y = y + dy
            x = x + dx
            wgt = 1.0 - step / (length + 1)  # triangular kernel: tapered stroke ends
            acc += wgt * sample(noise, y, x)
            total += wgt
    lic = acc / total
    lic = (lic - lic.mean()) / (lic.std() + 1e-8)
    return np.clip(0.5 + 0.18 * lic, 0, 1)


def canvas_weave(h: int, w: int, rng: np.random.Generator, period: float = 3.2) -> np.ndarray:
    """Height field of a plain-weave linen canvas, roughly in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    jitter = gaussian_blur(rng.standard_normal((h, w)).astype(np.float32), 6.0) * 8.0
    warp = np.sin(2 * np.pi * (xx + jitter) / period)
    weft = np.sin(2 * np.pi * (yy - jitter) / period)
    cell = np.sign(np.sin(np.pi * (xx + jitter) / period) * np.sin(np.pi * (yy - jitter) / period))
    weave = np.where(cell > 0, np.abs(warp), np.abs(weft))
    return 0.8 * weave + 0.2 * gaussian_blur(rng.random((h, w), dtype=np.float32), 0.7)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = rgb.max(-1)
    mn = rgb.min(-1)
    d = mx - mn + 1e-8
    h = np.where(mx == r, (g - b) / d, np.where(mx == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = (h / 6.0) % 1.0
    s = np.where(mx > 0, (mx - mn) / (mx + 1e-8), 0)
    return np.stack([h, s, mx], -1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6).astype(np.int32) % 6
    f = h * 6 - np.floor(h * 6)
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    choices = [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    out = np.zeros_like(hsv)
    for k, c in enumerate(choices):
        out = np.where((i == k)[..., None], c, out)
    return out


def bold_palette(rgb: np.ndarray, levels: int = 7) -> np.ndarray:
    """Expressionist colour: boosted saturation, value posterised into soft bands, shadows pushed
    to ultramarine/violet and lights to warm ochre/vermilion (split toning)."""
    hsv = rgb_to_hsv(rgb)
    hsv[..., 1] = np.clip(hsv[..., 1] ** 0.8 * 1.3, 0, 1)
    v = hsv[..., 2]
    stepped = np.round(v * levels) / levels
    hsv[..., 2] = 0.4 * stepped + 0.6 * v  # soft posterisation: visible colour bands
    out = hsv_to_rgb(hsv)
    lum = luminance(out)[..., None]
    shadow = np.array([0.16, 0.10, 0.45], dtype=np.float32)  # ultramarine violet
    light = np.array([1.00, 0.78, 0.38], dtype=np.float32)  # warm ochre
    lum = 0.1 + 0.9 * lum  # lift the deepest blacks before toning
    ws = np.clip(1 - lum / 0.45, 0, 1) ** 1.5
    wl = np.clip((lum - 0.55) / 0.45, 0, 1) ** 1.2
    out = out * (1 - 0.4 * ws) + shadow * 0.5 * ws
    out = out * (1 - 0.25 * wl) + light * 0.25 * wl
    # A little extra contrast around the mid-tones.
    out = 0.5 + (out - 0.5) * 1.12
    return np.clip(out, 0, 1).astype(np.float32)


def emboss_light(height: np.ndarray, strength: float) -> np.ndarray:
    """Lambert shading of a height field lit from the upper left, centred on 1.0."""
    gx, gy = sobel(height)
    nx, ny, nz = -strength * gx, -strength * gy, np.ones_like(height)
    n = np.sqrt(nx**2 + ny**2 + nz**2)
    light = np.array([-0.55, -0.6, 0.58], dtype=np.float32)
    light /= np.linalg.norm(light)
    shade = (nx * light[0] + ny * light[1] + nz * light[2]) / n
    return shade / light[2]


def paint(rgb: np.ndarray, seed: int = SEED) -> np.ndarray:
    """Turn a photo (float RGB in [0, 1]) into a synthetic oil painting.

    1. Kuwahara filter at two scales: texture flattens into paint patches, edges stay sharp.
    2. Bold palette: saturation boost, soft value posterisation, split toning.
    3. Brush strokes: line-integral convolution of bristle noise along the edge tangents of the
       structure tensor; modulates the colour and acts as the paint's height (impasto).
    4. Impasto and canvas: the stroke height (plus a faint linen weave where the paint is thin)
       is lit from the upper left; then a slight vignette and a warm varnish tint.
    """
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    base = kuwahara(rgb, 4)
    base = kuwahara(base, 2)
    base = 0.85 * base + 0.15 * gaussian_blur(base, 1.0)
    colour = bold_palette(base)

    ty, tx = stroke_direction(base, sigma=4.0)
    strokes = brush_texture(ty, tx, rng, length=15)
    # Streaky colour: each stroke carries slightly lighter/darker paint.
    colour = colour * (0.80 + 0.40 * strokes[..., None])

    canvas = canvas_weave(h, w, rng)
    # Paint is thick where strokes are loaded, thinner in flat darks, so the weave shows there.
    thickness = np.clip(0.55 + 0.6 * luminance(colour), 0, 1)
    height = 1.6 * strokes * thickness + 0.25 * canvas * (1.2 - thickness)
    shade = emboss_light(gaussian_blur(height, 0.6), strength=6.0)
    out = colour * (0.78 + 0.22 * shade[..., None])
    # Old-varnish warmth and a soft vignette, as in a museum photograph of a painting.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
    out = out * (1 - 0.18 * np.clip(r2 - 0.35, 0, 1))[..., None]
    out = out * np.array([1.03, 1.0, 0.93], dtype=np.float32)
    return np.clip(out, 0, 1)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------
def make_a(src: Path, out_dir: Path) -> Path:
    """A: the astronaut photo, longest side SIZE, saved as high-quality JPEG."""
    with Image.open(src) as im:
        img = fit_longest(im.convert("RGB"))
    dst = out_dir / "a.jpg"
    img.save(dst, quality=93, subsampling=0, optimize=True)
    return dst


def make_b_prime(src: Path, out_dir: Path) -> Path:
    """B': the Hopper portrait, cropped square around the head, painted, saved as PNG."""
    with Image.open(src) as im:
        img = im.convert("RGB")
    # 512 x 600 source: keep the full width, drop a little from the top and more from the bottom
    # so the head sits where the astronaut's does in A.
    side = min(img.size)
    top = min(max(0, round(0.03 * img.height)), img.height - side)
    left = (img.width - side) // 2
    img = fit_longest(img.crop((left, top, left + side, top + side)))
    painted = to_image(paint(np.asarray(img, dtype=np.float32) / 255.0))
    # 7 bits per channel (visually identical) keeps the noisy stroke texture well under 400 KB.
    painted = ImageOps.posterize(painted, 7)
    dst = out_dir / "b_prime.png"
    painted.save(dst, optimize=True)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--astronaut", type=Path, help="path to scikit-image's data/astronaut.png")
    parser.add_argument("--hopper", type=Path, help="path to matplotlib's sample_data/grace_hopper.jpg")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)

    astronaut = args.astronaut or _package_file("skimage", ASTRONAUT_REL)
    hopper = args.hopper or _package_file("matplotlib", HOPPER_REL)
    missing = [n for n, p in (("--astronaut", astronaut), ("--hopper", hopper)) if p is None]
    if missing:
        parser.error(f"source image(s) not found, pass {' and '.join(missing)} (see the docstring)")
    args.out.mkdir(parents=True, exist_ok=True)
    for dst in (make_a(astronaut, args.out), make_b_prime(hopper, args.out)):
        with Image.open(dst) as im:
            print(f"wrote {dst}  {im.width}x{im.height}  {dst.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
