"""Where a region has no true counterpart: a measured match confidence and a clean fallback.

PatchMatch always finds *some* match. Where the other image has nothing like a region (hair
without hair, a sky without sky), the match lands on whatever scores least badly, often a flat
area, and the rebuilt image copies it as a flat patch of a wrong colour (a blotch). This module

1. measures, per cell of the working grid, how far the match can be trusted (`confidence`):
   the round trip source → target → source along the two fields must come back to a place that
   *looks the same* as where it started (cosine of the source's own deep features there), and
2. builds a clean replacement (`colour_transfer`): a local affine colour model
   result ≈ M(p)·source + b(p), fitted by confidence-weighted least squares over windows of
   several sizes (the guided filter of He et al. with weights; coarser windows fill in where a
   finer one holds too few confident pixels, down to one global model), then applied to the
   source image at full resolution. The structure (edges, eyes, folds) is the source's own; the
   colour and tone are those the confident matches around it gave.

`fill` adds the matched result's own fine detail to the colour transfer (brush strokes and grain
are the look's, wherever they were copied from; a flat blotch has none) and `blend`s the two with
a smooth weight from the confidence: where it is high the matched result is kept unchanged; where
it is low the colour transfer takes over, with no seam.

All functions take and return torch tensors: images (3, H, W) in 0..1, fields (H, W, 2) (y, x)
in the other grid's cells, maps (H, W).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .fields import corners, sample, split
from .reconstruct import box_filter

# Confidence (cosine of the source's features at the start and the end of the round trip) at and
# below which the fallback replaces the match entirely, and at and above which the match is kept.
LOW, HIGH = 0.2, 0.6
# Feature cells (relu4_1: 8192 is a 724² working size, more than the original's size rule gives)
# up to which `confidence` reads the round trip's cosines off the cells' Gram matrix (256 MB at
# most) instead of sampling every channel; beyond, it samples SAMPLED_FLOATS values per block.
GRAM_CELLS = 8192
SAMPLED_FLOATS = 1 << 24
# Regularisation of the local colour models (0..1 colour units squared): larger keeps less of
# the source's own contrast and more of the neighbours' mean colour.
EPS = 0.01
# Radius, as a share of the shorter side, of the box whose residue is the result's fine detail.
DETAIL = 1 / 250
# Shorter side of the grid the colour models are fitted on, at most: they are smooth over windows
# of at least 1/32 of it, so a finer grid adds cost (0.8 s per direction at 448² on two CPU
# cores, 0.2 s at 224²) and no colour (as in He and Sun's fast guided filter).
FIT_SIDE = 224
# Mean weight a window needs before its own model is trusted over the next coarser one.
SUPPORT = 0.25


def round_trip(forward: Tensor, backward: Tensor) -> Tensor:
    """Where each source cell lands after going to the target and back: (H, W, 2) float.

    `forward` (H, W, 2) gives each source cell's position in the target grid, `backward`
    (Ht, Wt, 2) each target cell's position in the source grid (whole or sub-cell).
    """
    th, tw = backward.shape[:2]
    cell = forward.round().long()
    y, x = cell[..., 0].clamp(0, th - 1), cell[..., 1].clamp(0, tw - 1)
    return backward[y, x].float()


def _grid_positions(hw: tuple[int, int], to_hw: tuple[int, int], device: torch.device) -> Tensor:
    """Centres of an `hw` grid's cells in the cells of a `to_hw` grid of the same image."""
    ys = (torch.arange(hw[0], device=device, dtype=torch.float32) + 0.5) * (to_hw[0] / hw[0]) - 0.5
    xs = (torch.arange(hw[1], device=device, dtype=torch.float32) + 0.5) * (to_hw[1] / hw[1]) - 0.5
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def _rescale(positions: Tensor, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> Tensor:
    """Positions in the cells of one grid → in the cells of another grid of the same image."""
    y = (positions[..., 0] + 0.5) * (to_hw[0] / from_hw[0]) - 0.5
    x = (positions[..., 1] + 0.5) * (to_hw[1] / from_hw[1]) - 0.5
    return torch.stack((y, x), dim=-1)


def confidence(features: Tensor, forward: Tensor, backward: Tensor, gram_cells: int = GRAM_CELLS) -> Tensor:
    """How far each source cell's match can be trusted: (H, W) in −1..1 on `forward`'s grid.

    The cosine similarity of the source's own `features` (C, h, w) — a deep level, where a
    region's kind matters more than its exact pixels — at each cell and at where the round trip
    along `forward` then `backward` brings it back. A true counterpart comes back to the same
    kind of place (in texture, not necessarily the same pixel); a region with none was matched to
    something unlike it, whose own match points elsewhere.

    Both ends are bilinear mixes of four feature cells, so their inner products are mixes of the
    feature cells' own (their Gram matrix): with up to `gram_cells` cells
    that is read instead of sampling C channels at every working cell twice (2.4 → 0.1 s per
    analogy at 448², 512 channels); beyond, the features are sampled a block of rows at a time
    (memory bounded, not only time). Both give the same values.
    """
    hw = (forward.shape[0], forward.shape[1])
    feature_hw = (features.shape[1], features.shape[2])
    # Centred: ReLU features are all positive, so even unrelated cells have a high raw cosine.
    features = (features - features.mean((1, 2), keepdim=True)).float()
    start = _grid_positions(hw, feature_hw, features.device)
    end = _rescale(round_trip(forward, backward), hw, feature_hw)
    if feature_hw[0] * feature_hw[1] <= gram_cells:
        return _cosines_by_gram(features, start, end)
    rows = max(1, SAMPLED_FLOATS // (features.shape[0] * hw[1]))
    return torch.cat([
        _cosines_sampled(features, start[top : top + rows], end[top : top + rows])
        for top in range(0, hw[0], rows)
    ])


def _cosines_by_gram(features: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Cosines of `features` (C, h, w) sampled at `start` and at `end` (H, W, 2), from the
    feature cells' Gram matrix and each end's four bilinear corners."""
    feature_hw = (features.shape[1], features.shape[2])
    flat = features.reshape(features.shape[0], -1)
    gram = (flat.t() @ flat).reshape(-1)
    ends = [corners(*split(at), feature_hw) for at in (start, end)]

    def inner(one: tuple[Tensor, Tensor | None], other: tuple[Tensor, Tensor | None]) -> Tensor:
        (i, wi), (j, wj) = one, other
        assert wi is not None and wj is not None
        pairs = gram[i[..., :, None] * flat.shape[1] + j[..., None, :]]
        return torch.einsum("hwa,hwb,hwab->hw", wi, wj, pairs)

    norms = inner(ends[0], ends[0]).clamp_min(0).sqrt() * inner(ends[1], ends[1]).clamp_min(0).sqrt()
    return inner(ends[0], ends[1]) / norms.clamp_min(1e-16)


def _cosines_sampled(features: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """The same cosines with `features` sampled at both ends (C values per cell each)."""
    start_f, end_f = sample(features, start), sample(features, end)
    start_f = start_f / start_f.norm(dim=0, keepdim=True).clamp_min(1e-8)
    end_f = end_f / end_f.norm(dim=0, keepdim=True).clamp_min(1e-8)
    return (start_f * end_f).sum(0)


def weight(conf: Tensor, low: float = LOW, high: float = HIGH) -> Tensor:
    """Share of the matched result to keep: 0 at and below `low`, 1 at and above `high`,
    smooth (smoothstep) between."""
    t = ((conf - low) / (high - low)).clamp(0.0, 1.0)
    return t * t * (3 - 2 * t)


def resize_map(values: Tensor, hw: tuple[int, int]) -> Tensor:
    """(C, h, w) or (h, w) → the same at `hw`, bilinearly (antialiased when shrinking)."""
    flat = values.ndim == 2
    x = values[None, None] if flat else values[None]
    if (x.shape[-2], x.shape[-1]) != tuple(hw):
        shrink = hw[0] < x.shape[-2] or hw[1] < x.shape[-1]
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=shrink)
    return x[0, 0] if flat else x[0]


def _moments(guide: Tensor, target: Tensor, w: Tensor, mean: Callable[[Tensor], Tensor]) -> Tensor:
    """Weighted window moments, channels: Σw, Σw·g (3), Σw·t (3), Σw·g gᵀ (9), Σw·g tᵀ (9)."""
    outer_gg = (guide[:, None] * guide[None, :]).reshape(9, *guide.shape[1:])
    outer_gt = (guide[:, None] * target[None, :]).reshape(9, *guide.shape[1:])
    stacked = torch.cat([w, w * guide, w * target, w * outer_gg, w * outer_gt])
    return mean(stacked)


def _solve(moments: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per window: the 3×3 M and b of t ≈ Mᵀ g + b minimising Σw (Mᵀg + b − t)² + eps·‖M‖².

    Returns M (H, W, 3, 3) (row: guide channel, column: target channel), b (H, W, 3) and the
    window's mean weight (H, W).
    """
    w = moments[0].clamp_min(1e-8)
    mean_g = (moments[1:4] / w).permute(1, 2, 0)
    mean_t = (moments[4:7] / w).permute(1, 2, 0)
    gg = (moments[7:16] / w).permute(1, 2, 0).reshape(*w.shape, 3, 3)
    gt = (moments[16:25] / w).permute(1, 2, 0).reshape(*w.shape, 3, 3)
    cov_gg = gg - mean_g[..., :, None] * mean_g[..., None, :]
    cov_gt = gt - mean_g[..., :, None] * mean_t[..., None, :]
    eye = torch.eye(3, device=moments.device, dtype=moments.dtype)
    m = torch.linalg.solve(cov_gg + eps * eye, cov_gt)
    b = mean_t - (mean_g[..., None, :] @ m)[..., 0, :]
    return m, b


def fit(guide: Tensor, target: Tensor, conf: Tensor, eps: float = EPS, support: float = SUPPORT) -> Tensor:
    """Local affine colour models target ≈ Mᵀ·guide + b, fitted where `conf` (H, W) in 0..1 is
    high: (12, H, W) coefficients (M's 9 then b's 3) per pixel, smooth across the image.

    Windows of radius r, 2r, 4r, … and finally the whole image, from coarse to fine: each finer
    model replaces the coarser one in proportion to the mean weight its window holds (full from
    `support` up), so a region without confident pixels takes its colours from the nearest
    places that have them, with the guide's own structure. Each scale's coefficients are
    averaged over the windows that cover a pixel, weighted by their support (as the guided
    filter averages them), so the models change smoothly.
    """
    h, w = conf.shape
    weights = conf.clamp(0.0, 1.0)[None]
    g, t = guide.float(), target.float()
    total = _moments(g, t, weights, lambda x: x.mean((1, 2), keepdim=True))
    m, b = _solve(total, eps)
    coeffs = torch.cat([m.reshape(1, 1, 9), b.reshape(1, 1, 3)], -1).permute(2, 0, 1).expand(12, h, w)
    radius = max(2, round(min(h, w) / 32))
    radii = []
    while radius < max(h, w) / 2:
        radii.append(radius)
        radius *= 2
    for r in reversed(radii):
        moments = _moments(g, t, weights, lambda x, r=r: box_filter(x, r))
        m, b = _solve(moments, eps)
        local = torch.cat([m.reshape(h, w, 9), b], -1).permute(2, 0, 1)
        held = moments[:1]
        smooth = box_filter(torch.cat([local * held, held]), r)
        local = smooth[:12] / smooth[12:].clamp_min(1e-8)
        share = (smooth[12:] / support).clamp(0.0, 1.0)
        coeffs = coeffs + share * (local - coeffs)
    return coeffs


def apply(coeffs: Tensor, guide: Tensor, step: Callable[[], None] | None = None) -> Tensor:
    """The colour models (12, h, w) on a guide (3, H, W) of any size (coefficients resized
    bilinearly, as the fast guided filter does): (3, H, W), clamped to 0..1. One coefficient is
    resized at a time, so a 12-megapixel guide needs a few full-size planes, not twelve.
    `step()` is called between planes (cancellation at full resolution)."""
    hw = (guide.shape[1], guide.shape[2])
    out = torch.empty_like(guide)
    for j in range(3):
        plane = resize_map(coeffs[9 + j], hw).clone()
        for i in range(3):
            plane += resize_map(coeffs[3 * i + j], hw) * guide[i]
            if step is not None:
                step()
        out[j] = plane
    return out.clamp(0.0, 1.0)


def colour_transfer(
    guide: Tensor, result: Tensor, conf: Tensor, fit_hw: tuple[int, int], eps: float = EPS,
    step: Callable[[], None] | None = None,
) -> Tensor:
    """The source `guide` (3, H, W) recoloured by the result's confident colours: (3, H, W).

    The models are fitted at `fit_hw` (the working size or less: cheap, and as fine as the
    matches are) and applied to the full-resolution guide.
    """
    small_guide = resize_map(guide, fit_hw)
    small_result = resize_map(result, fit_hw)
    coeffs = fit(small_guide, small_result, resize_map(conf, fit_hw), eps)
    return apply(coeffs, guide, step)


def blend(result: Tensor, fallback: Tensor, keep: Tensor) -> Tensor:
    """keep·result + (1 − keep)·fallback, `keep` (h, w) in 0..1 resized to the images' size."""
    k = resize_map(keep, (result.shape[1], result.shape[2]))[None]
    return fallback + k * (result - fallback)


def fill(
    guide: Tensor, result: Tensor, conf: Tensor, low: float = LOW, high: float = HIGH,
    step: Callable[[], None] | None = None, collage: Tensor | None = None,
) -> Tensor:
    """The matched `result` (3, H, W) with its low-confidence regions replaced by the colour
    transfer onto `guide` (the source, same size). `conf` (h, w) is `confidence` on the working
    grid; the models are fitted there (or on a grid of FIT_SIDE on the shorter side if it is
    finer), weighted by the share kept, and the blend weight is softened over a few cells so
    that no seam shows where the two meet. `step()` is called
    between the full-resolution passes (cancellation).

    The replacement keeps the result's own fine detail (what a box of `DETAIL` of the shorter
    side takes away: brush strokes, hatching, grain): a blotch is a wrong colour over a region,
    and the look's texture is still the look's. A flat blotch has no detail to give back.

    `collage` (h, w) in 0..1 marks where the result is meant to show the other image's content
    (the structure mask's black): kept as it is there, and left out of the colour models, whose
    pairs of source and result colours it would falsify.
    """
    tick = step if step is not None else (lambda: None)
    keep = weight(conf, low, high)
    fitted = keep if collage is None else keep * (1 - collage)
    scale = min(1.0, FIT_SIDE / min(conf.shape))
    fit_hw = (max(1, round(conf.shape[0] * scale)), max(1, round(conf.shape[1] * scale)))
    fallback = colour_transfer(guide, result, fitted, fit_hw, step=tick)
    radius = max(1, round(min(result.shape[1], result.shape[2]) * DETAIL))
    fallback = (fallback + result - box_filter(result, radius)).clamp(0.0, 1.0)
    tick()
    soft = box_filter(keep[None], max(1, round(min(conf.shape) / 100)))[0]
    if collage is not None:
        soft = torch.maximum(soft, collage)
    return blend(result, fallback, soft)
