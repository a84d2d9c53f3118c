"""Field geometry: where each cell of one grid lands in another, and how fields change grids.

A field is a (H, W, 2) long tensor: for each source cell (y, x) the matched target cell (y, x).
A flow is the same in float target pixels. These functions know nothing about features or
similarity; `match` scores and improves fields, `reconstruct` and `upscale` read through them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def identity_field(src_hw: tuple[int, int], tgt_hw: tuple[int, int], device: torch.device) -> Tensor:
    """Each source cell mapped to the cell at the same relative position in the target."""
    (h, w), (th, tw) = src_hw, tgt_hw
    ys = ((torch.arange(h, device=device) + 0.5) * th / h).long().clamp_(0, th - 1)
    xs = ((torch.arange(w, device=device) + 0.5) * tw / w).long().clamp_(0, tw - 1)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def clamp_field(field: Tensor, tgt_hw: tuple[int, int]) -> Tensor:
    return torch.stack(
        (field[..., 0].clamp(0, tgt_hw[0] - 1), field[..., 1].clamp(0, tgt_hw[1] - 1)), dim=-1
    )


def shift(field: Tensor, dy: int, dx: int) -> Tensor:
    """field(p + (dy, dx)) for every p, with the border cell repeated outside the map.

    Works on any (H, W, …) tensor. Built from slices and the repeated edge (copies of whole
    rows), which is tens of times faster than gathering rows and columns by index.
    """
    h, w = field.shape[:2]
    dy, dx = max(-(h - 1), min(dy, h - 1)), max(-(w - 1), min(dx, w - 1))  # further is the edge
    if dy > 0:
        field = torch.cat((field[dy:], field[-1:].expand(dy, *field.shape[1:])), 0)
    elif dy < 0:
        field = torch.cat((field[:1].expand(-dy, *field.shape[1:]), field[:dy]), 0)
    if dx > 0:
        field = torch.cat((field[:, dx:], field[:, -1:].expand(h, dx, *field.shape[2:])), 1)
    elif dx < 0:
        field = torch.cat((field[:, :1].expand(h, -dx, *field.shape[2:]), field[:, :dx]), 1)
    return field.clone() if dy == dx == 0 else field


def pad_edges(source: Tensor, radius: int) -> Tensor:
    """(H, W, …) → (H + 2r, W + 2r, …), contiguous, with the border repeated."""
    h, w = source.shape[:2]
    ys = torch.arange(-radius, h + radius, device=source.device).clamp_(0, h - 1)
    xs = torch.arange(-radius, w + radius, device=source.device).clamp_(0, w - 1)
    return source[ys][:, xs].contiguous()


def upsample_field(
    field: Tensor, out_hw: tuple[int, int], tgt_hw: tuple[int, int], prev_tgt_hw: tuple[int, int]
) -> Tensor:
    """Carry a field to a finer grid: each fine cell keeps its offset inside the coarse cell.

    `field` maps a (h, w) grid into a `prev_tgt_hw` grid; the result maps an `out_hw` grid into a
    `tgt_hw` grid (both scaled versions of the old ones).
    """
    return clamp_field(resample_flow(field, out_hw, tgt_hw, prev_tgt_hw).round().long(), tgt_hw)


def cell_positions(n_out: int, n_cells: int, device: torch.device) -> Tensor:
    """Centre of each of `n_out` output rows (or columns) in the units of `n_cells` coarse cells."""
    return (torch.arange(n_out, device=device, dtype=torch.float32) + 0.5) * (n_cells / n_out) - 0.5


def through_cells(
    field: Tensor, cells_y: Tensor, cells_x: Tensor, pos_y: Tensor, pos_x: Tensor, scale: tuple[float, float]
) -> Tensor:
    """Where each output pixel lands in the target when seen through the given coarse cells.

    The cell's match moved by the pixel's offset from that cell, then scaled from the coarse
    target's grid to the new one: (y, x) float, unclamped. `cells_*` are float cell indices
    inside the field, `pos_*` the pixels' positions from `cell_positions`.
    """
    coarse = field[cells_y.long()][:, cells_x.long()].float()
    y = (coarse[..., 0] + (pos_y - cells_y)[:, None] + 0.5) * scale[0] - 0.5
    x = (coarse[..., 1] + (pos_x - cells_x)[None, :] + 0.5) * scale[1] - 0.5
    return torch.stack((y, x), dim=-1)


def resample_flow(
    field: Tensor, out_hw: tuple[int, int], tgt_hw: tuple[int, int], prev_tgt_hw: tuple[int, int]
) -> Tensor:
    """Float version of `upsample_field` (y, x) in the new target's pixel units, unclamped.

    Uses the nearest coarse cell's match plus the sub-cell position, so within a coarse cell the
    fine field is a pure translation of the target (texture is copied, not stretched).
    """
    h, w = field.shape[:2]
    py = cell_positions(out_hw[0], h, field.device)
    px = cell_positions(out_hw[1], w, field.device)
    scale = (tgt_hw[0] / prev_tgt_hw[0], tgt_hw[1] / prev_tgt_hw[1])
    return through_cells(field, py.round().clamp(0, h - 1), px.round().clamp(0, w - 1), py, px, scale)


def rows(values: Tensor) -> Tensor:
    """(C, H, W) → (H·W, C): one contiguous row of C values per cell, for row gathers."""
    c = values.shape[0]
    return values.reshape(c, -1).t().contiguous()


def corners(low: Tensor, frac: Tensor | None, tgt_hw: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
    """Flat indices (H, W, 4) of the four cells around positions `low` + `frac` and their
    bilinear weights (H, W, 4); with `frac` None, the cell `low` itself: (H, W, 1) and None.

    `low` (H, W, 2) long is the cell at or above-left of each position (its floor), `frac`
    (H, W, 2) float the rest, in [0, 1). Each corner is clamped to the map on its own, which
    for bilinear weights is the same as clamping the position first (a corner outside the map
    lands on the border cell that the other corner on that axis already is, or carries no
    weight), so positions need no clamping.
    """
    th, tw = tgt_hw
    y0, x0 = low[..., 0], low[..., 1]
    if frac is None:
        return (y0.clamp(0, th - 1) * tw + x0.clamp(0, tw - 1)).unsqueeze(-1), None
    top, bottom = y0.clamp(0, th - 1) * tw, (y0 + 1).clamp(0, th - 1) * tw
    left, right = x0.clamp(0, tw - 1), (x0 + 1).clamp(0, tw - 1)
    index = torch.stack((top + left, top + right, bottom + left, bottom + right), dim=-1)
    wy, wx = frac[..., 0], frac[..., 1]
    weight = torch.stack(((1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx), dim=-1)
    return index, weight


def split(flow: Tensor) -> tuple[Tensor, Tensor]:
    """A float flow as (floor (long), fraction) for `corners`."""
    low = flow.floor()
    return low.long(), flow - low


def sample(values: Tensor, flow: Tensor) -> Tensor:
    """values at float positions, bilinearly: (C, Ht, Wt) × (H, W, 2) (y, x) → (C, H, W).

    Positions are clamped to the map; unlike `warp` through a rounded field, a position between
    cells mixes its neighbours, so a sub-cell estimate survives into the features built from it.

    Each output cell is one weighted sum of four gathered rows of C values (`embedding_bag`),
    read channels last: several times faster than `grid_sample` over many channels, which
    reads each channel's plane apart. The result is a channels-last view of (C, H, W).
    """
    c, th, tw = values.shape
    h, w = flow.shape[:2]
    index, weight = corners(*split(flow), (th, tw))
    assert weight is not None
    weight = weight.reshape(-1, 4).to(values.dtype)
    out = F.embedding_bag(index.reshape(-1, 4), rows(values), per_sample_weights=weight, mode="sum")
    return out.view(h, w, c).permute(2, 0, 1)
