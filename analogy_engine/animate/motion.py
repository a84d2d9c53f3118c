"""Dense motion between consecutive frames: pyramidal iterative Lucas–Kanade, and occlusions.

A flow here is a (2, H, W) float tensor (dy, dx) in pixels: for each pixel p of the frame it is
computed for, p + flow(p) is where that pixel's content lies in the other frame. Pixel centres
are at integer index coordinates.

Lucas–Kanade was chosen over the engine's own PatchMatch for frame → frame motion because the
frames differ by small, smooth motions that a gradient method resolves to a fraction of a pixel
in a few warps; docs/animation.md has the measured accuracy and time against scikit-image's
iterative LK and TV-L1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..reconstruct import box_filter
from ..subpixel import gradients

# Forward–backward consistency (Sundaram et al. 2010, as used by Ruder et al. 2016 for video
# style transfer): a pixel is occluded when going there and back misses by more than this.
FB_RELATIVE = 0.01
FB_ABSOLUTE = 0.5  # px²


def grey(image: Tensor) -> Tensor:
    """(3, H, W) RGB in 0..1 → (1, H, W) luma (motion needs one channel)."""
    weights = torch.tensor((0.299, 0.587, 0.114), device=image.device, dtype=image.dtype)
    return (image * weights[:, None, None]).sum(0, keepdim=True)


def base_grid(hw: tuple[int, int], device: torch.device) -> Tensor:
    """(2, H, W) (y, x) index coordinates of every pixel."""
    ys = torch.arange(hw[0], device=device, dtype=torch.float32)
    xs = torch.arange(hw[1], device=device, dtype=torch.float32)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))


def warp_by_flow(values: Tensor, flow: Tensor) -> Tensor:
    """values(p + flow(p)) bilinearly, border repeated: (C, Hv, Wv) × (2, H, W) → (C, H, W)."""
    h, w = values.shape[1:]
    pos = base_grid((flow.shape[1], flow.shape[2]), flow.device) + flow
    y = pos[0].clamp(0, h - 1) * (2 / max(h - 1, 1)) - 1
    x = pos[1].clamp(0, w - 1) * (2 / max(w - 1, 1)) - 1
    grid = torch.stack((x, y), -1)[None].to(values.dtype)
    return F.grid_sample(values[None], grid, mode="bilinear", align_corners=True)[0]


def _resize(image: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(image.shape[1:]) == hw:
        return image
    return F.interpolate(image[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]


def resize_flow(flow: Tensor, hw: tuple[int, int]) -> Tensor:
    """A flow on another grid: resampled, and its vectors scaled to the new grid's pixels."""
    if tuple(flow.shape[1:]) == hw:
        return flow
    scale = torch.tensor((hw[0] / flow.shape[1], hw[1] / flow.shape[2]), device=flow.device)
    out = F.interpolate(flow[None], size=hw, mode="bilinear", align_corners=False)[0]
    return out * scale[:, None, None]


def lucas_kanade(
    reference: Tensor, moving: Tensor, radius: int = 3, warps: int = 3, levels: int | None = None,
    regularise: float = 1e-4, fill_radius: int = 4,
) -> Tensor:
    """Flow (2, H, W) from `reference` to `moving` (both (C, H, W) in 0..1): moving(p + flow) ≈
    reference(p).

    Coarse to fine over a pyramid of halvings (down to about 16 px), each level `warps` times:
    warp `moving` by the current flow, solve the 2×2 Lucas–Kanade system over a (2r+1)² window
    for the increment. `regularise` (in mean squared grey gradient units) keeps the system
    solvable where there is little texture, where the increment then stays near zero instead of
    exploding (the aperture problem); after each warp the flow is replaced by its average
    weighted by the structure tensor's smaller eigenvalue (normalised convolution over a
    (2·fill_radius+1)² window), so textured neighbours fill in flat regions and edges.
    """
    ref, mov = grey(reference), grey(moving)
    hw = (ref.shape[1], ref.shape[2])
    if levels is None:
        levels = 1
        while min(hw) >> levels >= 16:
            levels += 1
    sizes = [(max(1, hw[0] >> k), max(1, hw[1] >> k)) for k in range(levels)]
    flow = torch.zeros(2, *sizes[-1], device=ref.device, dtype=ref.dtype)
    for size in reversed(sizes):
        flow = resize_flow(flow, size)
        r0, m0 = _resize(ref, size), _resize(mov, size)
        for _ in range(warps):
            warped = warp_by_flow(m0, flow)
            gy, gx = gradients((warped + r0) / 2)  # symmetric gradient: less bias on big steps
            diff = warped - r0
            a = box_filter(torch.cat((gy * gy, gy * gx, gx * gx, gy * diff, gx * diff)), radius)
            syy, syx, sxx, by, bx = a[0] + regularise, a[1], a[2] + regularise, a[3], a[4]
            det = syy * sxx - syx * syx
            dy = -(sxx * by - syx * bx) / det
            dx = -(syy * bx - syx * by) / det
            flow = flow + torch.stack((dy, dx)).clamp(-1.0, 1.0)
            # Smaller eigenvalue of the structure tensor: how well both components are known.
            half_trace = (syy + sxx) / 2
            confidence = (half_trace - (half_trace.pow(2) - det).clamp_min(0).sqrt())[None]
            flow = box_filter(flow * confidence, fill_radius) / box_filter(confidence, fill_radius)
    return flow


def occlusion(backward: Tensor, forward: Tensor) -> Tensor:
    """Bool (H, W): pixels of the current frame not tracked into the previous one.

    `backward` goes current → previous, `forward` previous → current. A tracked pixel comes back
    to itself: backward(p) + forward(p + backward(p)) ≈ 0. Pixels whose motion leaves the
    previous frame are untracked too (content that just came into view).
    """
    h, w = backward.shape[1:]
    there = forward.shape[1:]
    back_again = warp_by_flow(forward, backward)
    miss = (backward + back_again).pow(2).sum(0)
    tolerance = FB_RELATIVE * (backward.pow(2).sum(0) + back_again.pow(2).sum(0)) + FB_ABSOLUTE
    pos = base_grid((h, w), backward.device) + backward
    outside = (pos[0] < -0.5) | (pos[0] > there[0] - 0.5) | (pos[1] < -0.5) | (pos[1] > there[1] - 0.5)
    return (miss > tolerance) | outside


def warping_error(current: Tensor, previous: Tensor, backward: Tensor, occluded: Tensor) -> float:
    """Mean absolute difference (0..255 units, over RGB) between `current` and `previous` warped
    by `backward`, over the tracked pixels (Lai et al. 2018's warping error, with |·| in place of
    their squared norm). Images (3, H, W) in 0..1 on the flow's grid."""
    tracked = ~occluded
    if not bool(tracked.any()):
        return 0.0
    diff = (current - warp_by_flow(previous, backward)).abs().mean(0)
    return float(diff[tracked].mean() * 255.0)
