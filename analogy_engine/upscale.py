"""Carry a working-resolution field to the inputs' full resolution and rebuild the image there."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .fields import cell_positions, clamp_field, resample_flow, through_cells
from .reconstruct import vote

# Below this ratio of full to working size the classic patch vote is used as is.
BLEND_FROM_SCALE = 1.5


def blend_cells(
    field: Tensor,
    target: Tensor,
    out_hw: tuple[int, int],
    tgt_working_hw: tuple[int, int],
    step: Callable[[], None] | None = None,
) -> Tensor:
    """Full-resolution image from a coarse field, without blocks and without blur where it agrees.

    Each output pixel looks up the target through each of its four nearest working cells (each
    cell's match moved by the pixel's offset from that cell) and mixes the four samples with
    bilinear weights. Where neighbouring cells agree the four samples coincide and the target's
    texture comes through at full resolution; where they disagree, the seam becomes a cross-fade
    one cell wide instead of a step.
    """
    h, w = field.shape[:2]
    th, tw = target.shape[1:]
    scale = (th / tgt_working_hw[0], tw / tgt_working_hw[1])
    py = cell_positions(out_hw[0], h, field.device)
    px = cell_positions(out_hw[1], w, field.device)
    y0, x0 = py.floor(), px.floor()
    wy, wx = py - y0, px - x0  # weights of the upper neighbours
    flat = target.reshape(target.shape[0], -1)
    out = torch.zeros(target.shape[0], *out_hw, device=target.device, dtype=target.dtype)
    for cy, weight_y in ((y0, 1 - wy), (y0 + 1, wy)):
        cyc = cy.clamp(0, h - 1)
        for cx, weight_x in ((x0, 1 - wx), (x0 + 1, wx)):
            cxc = cx.clamp(0, w - 1)
            pos = clamp_field(through_cells(field, cyc, cxc, py, px, scale).round().long(), (th, tw))
            index = (pos[..., 0] * tw + pos[..., 1]).reshape(-1)
            sample = flat.index_select(1, index).view(target.shape[0], *out_hw)
            out += sample * (weight_y[:, None] * weight_x[None, :])
            if step is not None:
                step()
    return out


def upscale(
    field: Tensor,
    tgt_working_hw: tuple[int, int],
    src_hw: tuple[int, int],
    target: Tensor,
    patch: int,
    step: Callable[[], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """(flow, image) at the source's full size: flow (H, W, 2) float (y, x) in the target's
    full-size pixels; image (C, H, W) rebuilt from the full-size `target` (C, Ht, Wt)."""
    tgt_hw = (target.shape[1], target.shape[2])
    flow = resample_flow(field, src_hw, tgt_hw, tgt_working_hw)
    scale = max(src_hw[0] / field.shape[0], src_hw[1] / field.shape[1])
    if scale < BLEND_FROM_SCALE:
        image = vote(target, flow if field.is_floating_point() else flow.round().long(), patch)
    else:
        image = blend_cells(field, target, src_hw, tgt_working_hw, step)
    return flow, image
