"""Carry a working-resolution field to the inputs' full resolution."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .match import clamp_field, resample_flow
from .params import Preset


def full_resolution_field(
    field: Tensor,
    tgt_working_hw: tuple[int, int],
    src_full: Tensor,
    tgt_full: Tensor,
    preset: Preset,
    generator: torch.Generator | None = None,
    step: Callable[[], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """(flow, field) at the source's full size into the target's full-size pixels.

    `flow` is float (H, W, 2) (y, x); `field` is the same rounded and clamped, for voting.
    Each full-resolution pixel keeps its position inside its working cell, so the target's
    texture is copied at its own resolution rather than stretched from the working size.
    """
    src_hw = (src_full.shape[1], src_full.shape[2])
    tgt_hw = (tgt_full.shape[1], tgt_full.shape[2])
    flow = resample_flow(field, src_hw, tgt_hw, tgt_working_hw)
    if step is not None:
        step()
    return flow, clamp_field(flow.round().long(), tgt_hw)
