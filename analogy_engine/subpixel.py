"""Pixel-level refinement of a match field: a Lucas–Kanade step that ignores the change of look.

PatchMatch on deep features places each cell to within about a pixel: its positions are whole
cells, refined between cells by a parabola through patch distances of features that were
themselves built through the coarser field. A′ copies B′'s texture (hatching, strokes, grain)
through that field, and a texture whose period is a few pixels is only reproduced where the
position is right to a fraction of a pixel (measured on the known-answer cases: median error
0.9 px, A′ 22.5 dB for a rotation, where the true field gives 29.9 dB).

The source S and the target T have different looks, so T(P(p)) cannot be compared with S(p)
directly. Within a window around p, though, the look changes smoothly: T(P(q)) ≈ M·g(S(q)) + b
for q in the window, with g(S) = (S, S²) (a colour transform with a tone curve, per window). The
refinement finds the small move d of the field that makes T(P + d) best explained by such a
model: Gauss–Newton on ‖Π⊥(T(P) + ∇T(P)·d)‖², where Π⊥ removes, window by window, what the
source's colours explain (T is taken in grey: what the colours explain of each channel they
explain of their mean, and the moments cost a third). Both the model and the sums are window
moments, so nothing loops over pixels.

Windows are a box filtered twice (a tent): the update of each cell is a window average of its
neighbours' errors, and a plain box, whose frequency response has negative lobes, grows some
patterns of error by up to 20 % per iteration instead of shrinking them. Even so the windows of
neighbouring cells are coupled (each reads the target through its own cells' positions), and
the estimate drifts again after a few iterations (from 0.16 px after 3 to 0.36 after 10 on a
sub-pixel shift): the presets run 3 (1 for `fast`), the best on every known-answer case.

Functions take and return tensors: images (C, H, W) in 0..1, positions (H, W, 2) (y, x) in the
target's cells, float.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .fields import clamp_field, sample

# Half-width of the box that, applied twice, makes the window (a tent 4·RADIUS + 1 wide).
RADIUS = 4
# Ridge on the source's window covariance (0..1 colour units squared): a flat window explains
# nothing rather than everything.
EPS = 1e-4
# Ridge on the move's normal equations: where the target has no gradient, the cell stays.
DAMPING = 1e-3
# Largest move per iteration and in all (cells): the refinement corrects a match, it does not
# make a new one.
STEP = 0.5
MAX_MOVE = 2.0


def gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences along y and x of a (C, H, W) map, (C, H, W) each; at the border the
    edge is repeated (half the one-sided difference), so border cells still see their slope."""
    padded = F.pad(image[None], (1, 1, 1, 1), mode="replicate")[0]
    gy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) / 2
    gx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) / 2
    return gy, gx


def _window(x: Tensor, radius: int) -> Tensor:
    """Tent-weighted window mean, the border repeated: a box filter applied twice, (C, H, W) →
    (C, H, W). Direct sums in float32, as depthwise convolutions (the windows are small): the
    running sums of `reconstruct.box_filter` need float64 and cost about twice as much here."""
    k = 2 * radius + 1
    c = x.shape[0]
    column = torch.full((c, 1, k, 1), 1.0 / k, device=x.device, dtype=x.dtype)
    row = column.transpose(2, 3)
    y = x[None]
    for _ in range(2):
        y = F.pad(y, (radius, radius, radius, radius), mode="replicate")
        y = F.conv2d(F.conv2d(y, column, groups=c), row, groups=c)
    return y[0]


def _explained(
    guide: Tensor, radius: int, eps: float
) -> tuple[Tensor, Callable[[Tensor], tuple[Tensor, Tensor]]]:
    """Per window: the inverse of the guide's (ridged) covariance (H, W, k, k), and the function
    X → (cov(guide, X) (H, W, k, C), window mean of X (C, H, W)) for any channels X (C, H, W)."""
    k = guide.shape[0]
    mean_g = _window(guide, radius)
    outer = (guide[:, None] * guide[None, :]).reshape(k * k, *guide.shape[1:])
    cov = (_window(outer, radius).reshape(k, k, *guide.shape[1:])
           - mean_g[:, None] * mean_g[None, :]).permute(2, 3, 0, 1)
    inverse = torch.linalg.inv(cov + eps * torch.eye(k, device=guide.device, dtype=guide.dtype))

    def cov_with(x: Tensor) -> tuple[Tensor, Tensor]:
        c = x.shape[0]
        products = (guide[:, None] * x[None, :]).reshape(k * c, *x.shape[1:])
        raw = _window(products, radius).reshape(k, c, *x.shape[1:])
        mean_x = _window(x, radius)
        return (raw - mean_g[:, None] * mean_x[None]).permute(2, 3, 0, 1), mean_x

    return inverse, cov_with


def refine(
    source: Tensor,
    target: Tensor,
    positions: Tensor,
    iterations: int,
    radius: int = RADIUS,
    step: Callable[[], None] | None = None,
) -> Tensor:
    """`positions` (H, W, 2) of `source` (C, H, W) cells in `target` (C, Ht, Wt), moved to where
    the target's local structure lines up with the source's, whatever the change of look:
    (H, W, 2) float, within MAX_MOVE cells of where they started and inside the target.

    `step()` is called after each iteration (cancellation).
    """
    if iterations <= 0:
        return positions
    source, target = source.float(), target.float()
    # The target's grey: a mean of channels that the source's colours explain is explained too,
    # and the moments cost a third (measured: within 0.4 dB of all three channels).
    target = target.mean(0, keepdim=True)
    start = positions.float()
    pos = start.clone()
    tgt_hw = (target.shape[1], target.shape[2])
    inverse, cov_with = _explained(torch.cat([source, source * source]), radius, EPS)
    gy, gx = gradients(target)
    # The pairs of (W, Gy, Gx) the normal equations need: Gy·Gy, Gx·Gx, Gy·Gx, Gy·W, Gx·W.
    first, second = [1, 2, 1, 1, 2], [1, 2, 2, 0, 0]
    for _ in range(iterations):
        x = torch.cat([sample(target, pos), sample(gy, pos), sample(gx, pos)])  # W, Gy, Gx
        cov, mean_x = cov_with(x)  # (H, W, k, 3), (3, H, W)
        fitted = inverse @ cov
        # Partial covariances: what the source's colours in the window do not explain.
        raw = _window(x[first] * x[second], radius) - mean_x[first] * mean_x[second]
        explained = (cov[..., first] * fitted[..., second]).sum(-2).permute(2, 0, 1)
        a_yy, a_xx, a_yx, b_y, b_x = raw - explained
        a_yy, a_xx = a_yy + DAMPING, a_xx + DAMPING
        det = a_yy * a_xx - a_yx * a_yx
        move = torch.stack(((a_yx * b_x - a_xx * b_y) / det, (a_yx * b_y - a_yy * b_x) / det), -1)
        move = move * (STEP / move.norm(dim=-1, keepdim=True).clamp_min(STEP))
        offset = pos + move - start
        pos = start + offset * (MAX_MOVE / offset.norm(dim=-1, keepdim=True).clamp_min(MAX_MOVE))
        pos = clamp_field(pos, tgt_hw)
        if step is not None:
            step()
    return pos.to(positions.dtype)

