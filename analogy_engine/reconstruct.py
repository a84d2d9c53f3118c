"""From fields back to pixels (or features): patch voting, warping and edge-aware refinement."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .fields import corners, pad_edges, rows, split


def warp(values: Tensor, field: Tensor) -> Tensor:
    """values(field(p)) for every p: (C, Ht, Wt) → (C, H, W)."""
    c, th, tw = values.shape
    index = (field[..., 0] * tw + field[..., 1]).reshape(-1)
    flat = values.reshape(c, th * tw)
    return flat.index_select(1, index).view(c, *field.shape[:2])


def vote(values: Tensor, field: Tensor, patch: int) -> Tensor:
    """Average, for each p, what every k×k patch covering p says p should be.

    The patch centred at p−o is matched to field(p−o), so it puts values(field(p−o)+o) at p.
    Offsets that leave the map are skipped (the border patch counts fewer votes). A float
    field (sub-cell positions) reads `values` bilinearly between cells.

    Each offset's votes are one weighted sum of gathered rows of C values per cell
    (`embedding_bag`, channels last), already divided by the cell's count of votes.
    """
    c, th, tw = values.shape
    h, w = field.shape[:2]
    r = patch // 2
    table = rows(values)
    # A position's fraction does not change when an offset (a whole number of cells) is added,
    # so the floor and fraction are taken once; the field is padded by r with its border
    # repeated (as `shift` repeats it), so that field(p − o) for every p is a slice.
    if field.is_floating_point():
        low, frac = split(field)
        frac_padded: Tensor | None = pad_edges(frac.to(values.dtype), r)
    else:
        low, frac_padded = field, None
    low_padded = pad_edges(low, r)
    ys = torch.arange(h, device=field.device)
    xs = torch.arange(w, device=field.device)
    # Votes a cell receives: the patches centred on the map, (rows) × (columns) of them.
    span = torch.arange(-r, r + 1, device=field.device)
    per_row = ((ys[:, None] - span) >= 0) & ((ys[:, None] - span) < h)
    per_col = ((xs[:, None] - span) >= 0) & ((xs[:, None] - span) < w)
    count = per_row.sum(1).to(values.dtype)[:, None] * per_col.sum(1).to(values.dtype)[None, :]
    total = torch.zeros(h * w, c, device=values.device, dtype=values.dtype)
    for i, dy in enumerate(range(-r, r + 1)):
        for j, dx in enumerate(range(-r, r + 1)):
            share = (per_row[:, i, None] & per_col[None, :, j]).to(values.dtype) / count
            cells = (slice(r - dy, r - dy + h), slice(r - dx, r - dx + w))  # p − o, clamped
            moved = low_padded[cells] + torch.tensor((dy, dx), device=field.device)
            index, weight = corners(moved, None if frac_padded is None else frac_padded[cells], (th, tw))
            weight = share.unsqueeze(-1) if weight is None else weight * share.unsqueeze(-1)
            m = index.shape[-1]
            total += F.embedding_bag(
                index.reshape(-1, m), table, per_sample_weights=weight.reshape(-1, m), mode="sum"
            )
    return total.t().reshape(c, h, w)


def _box_1d(x: Tensor, radius: int, dim: int) -> Tensor:
    """Window mean along one axis from a running sum: the cost does not depend on the radius."""
    n = x.shape[dim]
    index = torch.arange(-radius - 1, n + radius, device=x.device).clamp_(0, n - 1)
    padded = x.index_select(dim, index)
    sums = padded.cumsum(dim, dtype=torch.float64)
    upper = sums.narrow(dim, 2 * radius + 1, n)
    lower = sums.narrow(dim, 0, n)
    # The first padded element only anchors the difference; it is not part of any window. The
    # difference needs the double precision (cancellation); the division does not.
    return (upper - lower).to(x.dtype).div_(2 * radius + 1)


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over a (2r+1)² window with the border repeated; (C, H, W) → (C, H, W)."""
    return _box_1d(_box_1d(x, radius, 1), radius, 2)


def guided_filter(
    guide: Tensor, src: Tensor, radius: int, eps: float, step: Callable[[], None] | None = None
) -> Tensor:
    """He et al.'s guided filter with a grey guide: smooths `src` while keeping `guide`'s edges.

    `step()` is called between the filter's passes (cancellation at full resolution).
    """
    tick = step if step is not None else (lambda: None)
    g = guide.mean(0, keepdim=True)
    mean_g = box_filter(g, radius)
    mean_s = box_filter(src, radius)
    tick()
    cov = box_filter(g * src, radius) - mean_g * mean_s
    var = box_filter(g * g, radius) - mean_g * mean_g
    tick()
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return box_filter(a, radius) * g + box_filter(b, radius)


def refine(
    source: Tensor,
    result: Tensor,
    radius: int | None = None,
    eps: float = 0.03,
    step: Callable[[], None] | None = None,
) -> Tensor:
    """Photo → photo: keep the source's detail and take only the result's smooth colour/tone.

    output = A + S(result) − S(A), with S a filter guided by A (linear in its input, so it is
    computed once on the difference). Images are (3, H, W) in 0..1.
    """
    if radius is None:
        radius = max(2, round(min(source.shape[1:]) / 60))
    return (source + guided_filter(source, result - source, radius, eps, step)).clamp(0.0, 1.0)
