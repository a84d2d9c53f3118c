"""Known-answer cases for the whole engine: B′ is a recoloured, geometrically warped copy of A.

With B′ = warp(change(A)) the ideal analogy is known exactly:

* flow_ab(p) = warp⁻¹(p): where A's pixel p went in B′ (x, y in B′'s full-resolution pixels);
* flow_ba(q) = warp(q): where B′'s pixel q came from in A;
* A′ = change(A) (A's structure with B′'s look);
* B = A sampled through warp (B′'s structure with A's look).

`score(case, params)` runs `analogy()` on a case and returns
(psnr_a_prime, psnr_b, share_within_3px_ab, share_within_3px_ba), each measured only where the
true correspondence stays inside the other image (plus a small margin), so that later quality
tests can compare presets (or custom `Preset`s via `custom_preset`) on the same cases.

Pixel coordinates are index coordinates: the centre of pixel (x, y) is at (x, y).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from analogy_engine import AnalogyParams, AnalogyResult, Engine, Preset, analogy
from analogy_engine import params as params_module

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIDE = 128  # side of A and B′ in the known-answer cases
SIZE = 128  # working size the known-answer tests run at
MARGIN = 4  # pixels next to the region without a true correspondence that are not scored


@lru_cache(maxsize=4)
def photo(side: int = 192) -> np.ndarray:
    """examples/a.jpg, downscaled to side × side (uint8 RGB)."""
    with Image.open(EXAMPLES / "a.jpg") as image:
        return np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)).copy()


def change(image: np.ndarray) -> np.ndarray:
    """A visible colour/tone change: channels rotated (R, G, B → G, B, R) and gamma 0.6."""
    x = image[..., [1, 2, 0]].astype(np.float64) / 255.0
    return np.clip(np.rint(255.0 * x**0.6), 0, 255).astype(np.uint8)


def sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear sample of an (H, W, 3) uint8 image at float (x, y) positions (..., 2) → float 0..255."""
    h, w = image.shape[:2]
    src = torch.from_numpy(image).permute(2, 0, 1)[None].double()
    grid = torch.from_numpy(xy).double().clone()
    grid[..., 0] = grid[..., 0] * 2 / (w - 1) - 1
    grid[..., 1] = grid[..., 1] * 2 / (h - 1) - 1
    out = F.grid_sample(src, grid[None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[0].permute(1, 2, 0).numpy()


@dataclass(frozen=True)
class Case:
    """A known-answer case. Positions are (x, y) in index coordinates, arrays of shape (H, W, 2)."""

    name: str
    a: np.ndarray  # A, uint8 (H, W, 3)
    b_prime: np.ndarray  # B′ = warp(change(A)), uint8
    a_prime_truth: np.ndarray  # change(A), uint8
    b_truth: np.ndarray  # A through the warp, uint8, B′'s shape
    flow_ab: np.ndarray  # true position in B′ of each pixel of A
    flow_ba: np.ndarray  # true position in A of each pixel of B′
    valid_a: np.ndarray  # bool (H_A, W_A): pixels of A whose true match lies inside B′ (with margin)
    valid_b: np.ndarray  # bool (H_B′, W_B′)


def _grid(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack((xs, ys), axis=-1)


def _inside(xy: np.ndarray, h: int, w: int, margin: float) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    return (x >= margin) & (x <= w - 1 - margin) & (y >= margin) & (y <= h - 1 - margin)


def stylise(image: np.ndarray) -> np.ndarray:
    """A change of texture as well as colour: change() plus diagonal hatching, as a pencil or
    engraving adds, fixed to the image's own coordinates (so it moves with the warp)."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    hatching = 1.0 + 0.12 * np.sin(2 * math.pi * (xs + 2 * ys) / 12.0)
    return np.clip(np.rint(change(image).astype(np.float64) * hatching[..., None]), 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def face(side: int) -> np.ndarray:
    """The head and shoulders of examples/a.jpg (a portrait), side × side."""
    with Image.open(EXAMPLES / "a.jpg") as image:
        crop = image.convert("RGB").crop((96, 0, 352, 256))
        return np.asarray(crop.resize((side, side), Image.Resampling.LANCZOS)).copy()


def _make_case(
    name: str, to_a: np.ndarray, side: int, source: Callable[[int], np.ndarray] = photo,
    look: Callable[[np.ndarray], np.ndarray] = change,
) -> Case:
    """Build a case from `to_a`: for each B′ pixel q (in a big source frame), where it lies in A."""
    big = source(side + 48)
    offset = 24  # A is the centre crop of `big`; B′ samples `big` (so it has content beyond A)
    a = big[offset : offset + side, offset : offset + side].copy()
    changed_big = look(big)
    big_xy = to_a + offset
    b_prime = np.clip(np.rint(sample(changed_big, big_xy)), 0, 255).astype(np.uint8)
    b_truth = np.clip(np.rint(sample(big, big_xy)), 0, 255).astype(np.uint8)
    a_prime_truth = look(big)[offset : offset + side, offset : offset + side].copy()
    return Case(
        name=name,
        a=a,
        b_prime=b_prime,
        a_prime_truth=a_prime_truth,
        b_truth=b_truth,
        flow_ab=np.zeros(0),  # filled by the callers (they know the inverse map)
        flow_ba=to_a,
        valid_a=np.zeros(0, bool),
        valid_b=_inside(to_a, side, side, MARGIN),
    )


def shift_case(dx: int = 7, dy: int = -5, side: int = SIDE) -> Case:
    """B′(q) = change(A)(q + (dx, dy)): B′ shows change(A) moved by (−dx, −dy)."""
    grid = _grid(side, side)
    to_a = grid + np.array([dx, dy], dtype=np.float64)
    case = _make_case(f"shift({dx},{dy})", to_a, side)
    flow_ab = grid - np.array([dx, dy], dtype=np.float64)
    return _with_ab(case, flow_ab)


def rotation_case(
    degrees: float = 6.0, scale: float = 1.06, side: int = SIDE, textured: bool = False,
    portrait: bool = False,
) -> Case:
    """B′(q) = change(A)(c + R(θ)·(q − c)/s): B′ shows change(A) rotated by −θ and scaled by s.

    `textured` uses stylise() (colour and texture) instead of change(); `portrait` takes A from
    the face of examples/a.jpg instead of the whole picture.
    """
    grid = _grid(side, side)
    c = (side - 1) / 2.0
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    to_a = c + (grid - c) @ rot.T / scale
    look = stylise if textured else change
    source = face if portrait else photo
    name = f"{'face ' if portrait else ''}rotation({degrees}°, ×{scale}{', texture' if textured else ''})"
    case = _make_case(name, to_a, side, source, look)
    flow_ab = c + (grid - c) @ rot * scale  # the inverse map: R(θ)ᵀ = R(−θ)
    return _with_ab(case, flow_ab)


def _with_ab(case: Case, flow_ab: np.ndarray) -> Case:
    h, w = case.b_prime.shape[:2]
    valid_a = _inside(flow_ab, h, w, MARGIN)
    return Case(
        name=case.name, a=case.a, b_prime=case.b_prime, a_prime_truth=case.a_prime_truth,
        b_truth=case.b_truth, flow_ab=flow_ab.astype(np.float32), flow_ba=case.flow_ba.astype(np.float32),
        valid_a=valid_a, valid_b=case.valid_b,
    )


def psnr(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the pixels of `mask` (uint8-range images)."""
    diff = image.astype(np.float64)[mask] - truth.astype(np.float64)[mask]
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def share_within(flow: np.ndarray, truth: np.ndarray, mask: np.ndarray, pixels: float = 3.0) -> float:
    """Share of `mask`'s pixels whose flow lies within `pixels` (Euclidean) of the truth."""
    error = np.linalg.norm(flow.astype(np.float64) - truth.astype(np.float64), axis=-1)
    return float(np.mean(error[mask] <= pixels))


def identity_flow(src_hw: tuple[int, int], tgt_hw: tuple[int, int]) -> np.ndarray:
    """What an engine that matches nothing would answer: the same relative position."""
    (h, w), (th, tw) = src_hw, tgt_hw
    xy = _grid(h, w)
    xy[..., 0] = (xy[..., 0] + 0.5) * tw / w - 0.5
    xy[..., 1] = (xy[..., 1] + 0.5) * th / h - 0.5
    return xy.astype(np.float32)


class Scores(NamedTuple):
    psnr_a_prime: float  # A′ against change(A), dB
    psnr_b: float  # B against A through the warp, dB
    share_within_3px_ab: float  # flow_ab within 3 px of the truth
    share_within_3px_ba: float  # flow_ba within 3 px of the truth


def evaluate(case: Case, result: AnalogyResult) -> Scores:
    return Scores(
        psnr(result.a_prime, case.a_prime_truth, case.valid_a),
        psnr(result.b, case.b_truth, case.valid_b),
        share_within(result.flow_ab, case.flow_ab, case.valid_a),
        share_within(result.flow_ba, case.flow_ba, case.valid_b),
    )


@contextlib.contextmanager
def custom_preset(preset: Preset, slot: str = "fast") -> Iterator[AnalogyParams]:
    """Run `analogy` with an arbitrary `Preset`: it temporarily takes the place of PRESETS[slot].

    Yields default params naming that slot; use `dataclasses.replace` on them (or any params
    with preset=slot) inside the block. Not thread-safe (tests run one analogy at a time).
    """
    saved = params_module.PRESETS[slot]
    params_module.PRESETS[slot] = preset
    try:
        yield AnalogyParams(preset=slot)  # type: ignore[arg-type]
    finally:
        params_module.PRESETS[slot] = saved


def run(case: Case, params: AnalogyParams, engine: Engine | None = None) -> AnalogyResult:
    return analogy(case.a, case.b_prime, params, engine=engine)


def score(case: Case, params: AnalogyParams, engine: Engine | None = None) -> Scores:
    """(psnr_a_prime, psnr_b, share_within_3px_ab, share_within_3px_ba) of `analogy` on `case`."""
    return evaluate(case, run(case, params, engine))


# The canonical cases: a pure shift at the working size (no resampling: the flow must be exact up
# to the matching's own error), and a rotation + scale of a larger image (working size < input, so
# the flow also goes through the upscaling to full resolution).
CASES: dict[str, Callable[[], Case]] = {
    "shift": lambda: shift_case(7, -5, side=128),
    "rotation": lambda: rotation_case(6.0, 1.08, side=160, textured=True),
    "face": lambda: rotation_case(-4.0, 1.05, side=160, textured=True, portrait=True),
}



def field_error(
    field: torch.Tensor, tgt_grid: tuple[int, int], truth: np.ndarray, valid: np.ndarray,
    tgt_shape: tuple[int, int],
) -> tuple[float, float]:
    """(share of cells within 1 cell of the truth, median error in full-resolution pixels).

    `field` (h, w, 2) maps cells over the source image into the `tgt_grid` cells over the
    target image (full size `tgt_shape`); `truth` is the true flow, (x, y) in target pixels for
    each source pixel, scored where `valid`. The cell nearest each source pixel answers for it.
    """
    src_h, src_w = truth.shape[:2]
    h, w = field.shape[:2]
    th, tw = tgt_grid
    cy = np.clip(((np.arange(src_h) + 0.5) * h / src_h).astype(int), 0, h - 1)
    cx = np.clip(((np.arange(src_w) + 0.5) * w / src_w).astype(int), 0, w - 1)
    cells = field.cpu().numpy()[cy][:, cx].astype(np.float64)  # (y, x) target cells per pixel
    scale = np.array([tgt_shape[1] / tw, tgt_shape[0] / th])  # pixels per cell, (x, y)
    true_cells = (truth.astype(np.float64) + 0.5) / scale - 0.5
    error_cells = np.abs(cells[..., ::-1] - true_cells).max(-1)
    error_px = np.linalg.norm((cells[..., ::-1] + 0.5) * scale - 0.5 - truth, axis=-1)
    return float(np.mean(error_cells[valid] <= 1.0)), float(np.median(error_px[valid]))


class Stereo(NamedTuple):
    """A real stereo pair with measured disparity: A = left view, B′ = right view."""

    a: np.ndarray
    b_prime: np.ndarray
    flow_ab: np.ndarray  # true (x, y) in B′ of each A pixel
    valid_a: np.ndarray  # disparity known and the match inside B′


def stereo_case(width: int = 256) -> Stereo | None:
    """Middlebury 2014's "Motorcycle" (bundled with scikit-image) at `width`; None without it.

    The left view's disparity d puts pixel (x, y) of A at (x − d, y) in B′. Pixels without a
    measured disparity, or whose match leaves B′, are not scored.
    """
    try:
        from importlib.resources import files

        folder = files("skimage") / "data"
        left, right = folder / "motorcycle_left.png", folder / "motorcycle_right.png"
        with left.open("rb") as f_left, right.open("rb") as f_right:
            views = [Image.open(f).convert("RGB") for f in (f_left, f_right)]
            full_w, full_h = views[0].size
            height = round(full_h * width / full_w)
            small = [v.resize((width, height), Image.Resampling.LANCZOS) for v in views]
            a, b_prime = (np.asarray(v).copy() for v in small)
        with (folder / "motorcycle_disp.npz").open("rb") as f:
            disparity = np.load(f)["arr_0"].astype(np.float64)
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None
    # Nearest full-resolution disparity under each small pixel centre, scaled to the small image.
    ys = ((np.arange(height) + 0.5) * full_h / height).astype(int).clip(0, full_h - 1)
    xs = ((np.arange(width) + 0.5) * full_w / width).astype(int).clip(0, full_w - 1)
    d = disparity[ys][:, xs] * (width / full_w)
    grid = _grid(height, width)
    flow = np.stack((grid[..., 0] - np.where(np.isfinite(d), d, 0), grid[..., 1]), axis=-1)
    valid = np.isfinite(d) & _inside(flow, height, width, MARGIN)
    return Stereo(a, b_prime, flow.astype(np.float32), valid)
