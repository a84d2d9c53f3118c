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
    # Optimised channels last, (1, H, W, C): the convolutions' forward and backward passes run
    # about a third faster on the CPU in that layout (oneDNN's own), and L-BFGS needs a plain
    # contiguous leaf (it flattens it with view(-1)). `nchw` shows it to the network as NCHW.
    # Always a copy: a `start` already laid out channels last must not be changed by L-BFGS.
    x = start.detach().permute(1, 2, 0).unsqueeze(0).clone(memory_format=torch.contiguous_format)
    x.requires_grad_(True)
    goal = target.detach().unsqueeze(0).contiguous(memory_format=torch.channels_last)

    def nchw(t: Tensor) -> Tensor:
        return t.permute(0, 3, 1, 2)

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
            out = vgg.run(nchw(x), low, level)
            # The loss ½‖out − goal‖² has the gradient out − goal: handed to backward as it is
            # (the same values autograd's pow and mul would make, without their passes).
            residual = (out - goal).detach()
            loss = 0.5 * residual.pow(2).sum()
            out.backward(residual)
            evaluations += 1
            if step is not None:
                step(evaluations)
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
    with torch.no_grad():
        result = vgg.run(nchw(x.detach()), low, level - 1)
    if level - 1 > 0:
        result = result.clamp_min(0.0)  # relu outputs; a depth-1 optimum may stray below zero
    return result[0].contiguous()
