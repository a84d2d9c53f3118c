"""Feature inversion ("deconvolution"): features at a lower level whose forward pass hits a target.

The original optimises the features `depth` levels below the target with L-BFGS (history 4,
≤ 100 iterations), starting from the other image's features warped by the field, and then runs
the result forward to the level just below the target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .vgg import VGG19


def invert(
    vgg: VGG19,
    target: Tensor,
    start: Tensor,
    level: int,
    depth: int,
    iterations: int,
    history: int = 4,
    step: Callable[[int], None] | None = None,
) -> Tensor:
    """Return R at level `level − 1` such that VGG(R) ≈ `target` at `level`.

    `target` is (C_L, h, w); `start` is (C, H, W) at level `level − depth`, the initial guess.
    `step(evaluations_done)` is called after each forward/backward pass, the unit of work
    that progress and cancellation can act on.
    """
    low = level - depth
    # A plain contiguous copy: L-BFGS flattens its leaf with view(-1), and `start` may come laid
    # out channels last (fields.sample) and must not be changed.
    x = start.detach().clone(memory_format=torch.contiguous_format).unsqueeze(0).requires_grad_(True)
    goal = target.detach().contiguous().unsqueeze(0)
    evaluations = 0
    if iterations > 0:
        optimizer = torch.optim.LBFGS(
            [x],
            lr=1.0,
            max_iter=iterations,
            max_eval=iterations * 5 // 4,
            history_size=history,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )

        def closure() -> Tensor:
            nonlocal evaluations
            optimizer.zero_grad()
            loss = 0.5 * (vgg.run(x, low, level) - goal).pow(2).sum()
            loss.backward()
            evaluations += 1
            if step is not None:
                step(evaluations)
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
    with torch.no_grad():
        result = vgg.run(x.detach(), low, level - 1)
    if level - 1 > 0:
        result = result.clamp_min(0.0)  # relu outputs; a depth-1 optimum may stray below zero
    return result[0].contiguous()
