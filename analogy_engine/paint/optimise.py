"""Coarse-to-fine stroke optimisation (after Zou et al., "Stylized Neural Painting", 2021).

Stages go from a 1×1 grid of large strokes to a fine grid of small ones. In each stage, strokes are
added in rounds where the painting's error is largest (colour and direction taken from the image
there), then Adam fits the round's new strokes over the frozen painting so far, on pixel loss plus
an optional VGG-19 Gram (style) loss against a reference image.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..types import CancelFn, Cancelled, InputError, ProgressFn
from .render import BRUSHES, Brush, Strokes, render

MIN_STROKES = 1
MAX_STROKES = 20_000  # 5 000 take minutes at 512² on 2 CPU cores; beyond 20 000 hours
MIN_SIDE = 16  # the finest stage still needs cells of a few pixels
MAX_WORK_SIDE = 2048
DEFAULT_SIDE = 512
STYLE_SIDE = 256  # the Gram loss sees the painting downscaled to this side (VGG is the costly part)
STYLE_LEVELS = (1, 2, 3)  # relu1_1 … relu3_1: colour and brushwork, not layout
BACKGROUND = (1.0, 1.0, 1.0)  # white canvas (the SVG's page colour too)
STAGE_CELL = 64  # a stage's canvas is at most this many pixels a cell (coarse stages are cheap)


@dataclass
class PaintResult:
    """painting: (H, W, 3) float32 0..1 at the image's size; strokes: in the image's pixels, in
    painting order (CPU float32); report: counts, seconds, PSNR (JSON-ready)."""

    painting: np.ndarray
    strokes: Strokes
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    grid: int  # cells a side: nominal stroke length is side / grid
    count: int  # strokes placed in this stage
    rounds: int  # placement rounds (each round is fitted on top of the previous ones)
    iterations: int  # Adam steps per round


def plan_stages(strokes: int, iterations: int = 40) -> list[Stage]:
    """Grids 1, 2, 4, … up to the finest with at least two strokes a cell; counts grow with the
    grid (∝ grid side) so that detail gets most strokes while coarse layers still cover."""
    finest = 1
    while (finest * 2) ** 2 * 2 <= strokes:
        finest *= 2
    grids = [2**i for i in range(int(math.log2(finest)) + 1)]
    while len(grids) > strokes:  # fewer strokes than stages: keep the finest
        grids.pop(0)
    weights = np.array(grids, dtype=np.float64)
    share = weights / weights.sum() * strokes
    counts = np.maximum(1, np.floor(share)).astype(int)
    for i in np.argsort(-(share - np.floor(share)))[: max(0, strokes - counts.sum())]:
        counts[i] += 1
    while counts.sum() > strokes:  # the max(1, …) above may overshoot on tiny counts
        counts[int(np.argmax(counts))] -= 1
    return [
        Stage(grid=g, count=int(c), rounds=1 if c < 16 else 2, iterations=iterations)
        for g, c in zip(grids, counts, strict=True)
    ]


def check_inputs(image: np.ndarray, strokes: int, brush: str, size: int | None) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise InputError("image must be an (H, W, 3) RGB array")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InputError(f"image is {width}×{height} pixels; each side must be at least {MIN_SIDE} to paint")
    if isinstance(strokes, bool) or not isinstance(strokes, (int, np.integer)):
        raise InputError(f"strokes must be an integer (got {strokes!r})")
    if not MIN_STROKES <= strokes <= MAX_STROKES:
        raise InputError(f"strokes must be from {MIN_STROKES} to {MAX_STROKES} (got {strokes})")
    if brush not in BRUSHES:
        raise InputError(f"brush must be one of {', '.join(BRUSHES)} (got {brush!r})")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                             or not MIN_SIDE <= size <= MAX_WORK_SIDE):
        raise InputError(f"size must be an integer from {MIN_SIDE} to {MAX_WORK_SIDE} (got {size!r})")


def as_float_image(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def psnr(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """PSNR in dB of two images in 0..1 (peak 1)."""
    diff = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    mse = float((diff**2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def working_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """The painting is optimised with its longer side `size` (never above the image's own)."""
    side = min(size or DEFAULT_SIDE, max(height, width))
    scale = side / max(height, width)
    return max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))


def _to_tensor(image: np.ndarray, shape: tuple[int, int], device: torch.device) -> Tensor:
    """(H, W, 3) → (3, h, w) on `device`, area-averaged when it shrinks."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
    if tuple(t.shape[2:]) != shape:
        t = F.interpolate(t, size=shape, mode="area" if shape[0] <= t.shape[2] else "bilinear")
    return t[0].clamp(0, 1)


def _resize(image: Tensor, shape: tuple[int, int]) -> Tensor:
    return F.interpolate(image[None], size=shape, mode="area")[0]


def _orientation(grey: Tensor, radius: int) -> Tensor:
    """Angle (radians) along the image's edges: the structure tensor's weaker eigenvector."""
    gx = F.pad(grey[:, 1:] - grey[:, :-1], (0, 1, 0, 0))
    gy = F.pad(grey[1:] - grey[:-1], (0, 0, 0, 1))
    j = torch.stack([gx * gx, gx * gy, gy * gy])[None]
    j = F.avg_pool2d(j, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)[0]
    return 0.5 * torch.atan2(2 * j[1], j[0] - j[2]) + math.pi / 2


def place(
    target: Tensor, canvas: Tensor, count: int, grid: int, stage: int, generator: torch.Generator
) -> Strokes:
    """`count` new straight strokes where |canvas − target| is largest (drawn ∝ error², without
    replacement, on a grid of about a quarter stroke), coloured and oriented from the target."""
    _, height, width = target.shape
    cell = max(height, width) / grid
    pool = max(1, int(cell / 4))
    error = F.avg_pool2d(((canvas - target) ** 2).sum(0)[None, None], pool, ceil_mode=True)[0, 0]
    colour = F.avg_pool2d(target[None], pool, ceil_mode=True)[0]
    grey = colour.mean(0)
    angle = _orientation(grey, max(1, round(cell / pool / 2)))
    weights = error.flatten() ** 2 + 1e-12
    index = torch.multinomial(weights, count, replacement=count > weights.numel(), generator=generator)
    row, col = index // error.shape[1], index % error.shape[1]
    jitter = torch.rand(count, 2, generator=generator, device=target.device)
    centre = torch.stack([col, row], -1).to(target.dtype) * pool + jitter * pool
    centre = torch.minimum(centre, torch.tensor([width, height], device=target.device, dtype=target.dtype))
    theta = angle[row, col]
    half = torch.stack([theta.cos(), theta.sin()], -1) * (cell / 2)
    points = torch.stack([centre - half, centre, centre + half], 1)
    return Strokes(
        points=points,
        width=torch.full((count,), max(1.0, cell * 0.35), device=target.device, dtype=target.dtype),
        colour=colour[:, row, col].T.contiguous(),
        opacity=torch.full((count,), 0.95, device=target.device, dtype=target.dtype),
        stage=torch.full((count,), stage, device=target.device, dtype=torch.long),
    )


class StyleLoss:
    """Gram-matrix loss (Gatys et al.) on relu1_1…relu3_1 of the engine's VGG-19, each level
    normalised by the reference's Gram norm so the weight means the same at any image size."""

    def __init__(self, style: Tensor, device: torch.device) -> None:
        from ..vgg import VGG19

        self.vgg = VGG19.pretrained(device)
        with torch.no_grad():
            self.targets = [g.detach() for g in self._grams(style)]
        self.norms = [float((g * g).sum()) + 1e-12 for g in self.targets]

    def _grams(self, image: Tensor) -> list[Tensor]:
        from ..vgg import preprocess

        scale = STYLE_SIDE / max(image.shape[1:])
        if scale < 1:
            image = F.interpolate(image[None], scale_factor=scale, mode="area")[0]
        x = preprocess(image[None])
        grams = []
        for level in range(1, max(STYLE_LEVELS) + 1):
            x = self.vgg.run(x, level - 1, level)
            if level in STYLE_LEVELS:
                f = x[0].flatten(1)
                grams.append(f @ f.T / f.shape[1])
        return grams

    def __call__(self, image: Tensor) -> Tensor:
        levels = zip(self._grams(image), self.targets, self.norms, strict=True)
        return sum(((g - t) ** 2).sum() / n for g, t, n in levels) / len(STYLE_LEVELS)


def _fit(
    new: Strokes, canvas: Tensor, target: Tensor, brush: Brush, iterations: int, cell: float,
    style: StyleLoss | None, style_weight: float, step: Any,
) -> Strokes:
    """Adam on the new strokes over the frozen canvas; parameters projected back into range."""
    _, height, width = target.shape
    fields = (new.points, new.width, new.colour, new.opacity)
    leaves = [t.detach().clone().requires_grad_(True) for t in fields]
    points, widths, colour, opacity = leaves
    move = max(0.5, 0.03 * cell)
    optimiser = torch.optim.Adam([
        {"params": [points], "lr": move},
        {"params": [widths], "lr": move * 0.5},
        {"params": [colour], "lr": 0.02},
        {"params": [opacity], "lr": 0.02},
    ])
    soft_start = min(4.0, max(1.0, 0.1 * cell))
    bounds = torch.tensor([width, height], dtype=target.dtype, device=target.device)
    for i in range(iterations):
        step()
        # Softer edges early let strokes feel pixels beyond their edge; the last 40 % use the
        # 1 px edge that painting.png and an SVG renderer show.
        softness = 1.0 + (soft_start - 1.0) * max(0.0, 1.0 - i / (0.6 * iterations))
        strokes = Strokes(points, widths, colour, opacity, new.stage)
        out = render(strokes, height, width, background=canvas, brush=brush, softness=softness)
        loss = F.mse_loss(out, target)
        if style is not None and style_weight > 0:
            loss = loss + style_weight * style(out)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            points.copy_(torch.minimum(points.clamp_min(0.0), bounds))
            widths.clamp_(max(1.0, 0.05 * cell), max(2.0, 1.5 * cell))
            colour.clamp_(0.0, 1.0)
            opacity.clamp_(0.3, 1.0)
    return Strokes(points, widths, colour, opacity, new.stage).detach()


def paint(
    image: np.ndarray,
    strokes: int = 1000,
    brush: str = "oil",
    size: int | None = None,
    seed: int = 0,
    style: np.ndarray | None = None,
    style_weight: float = 0.02,
    iterations: int = 40,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    device: torch.device | str = "cpu",
) -> PaintResult:
    """Paint `image` ((H, W, 3) float 0..1 or uint8) with `strokes` brush strokes.

    `size` is the longer side the strokes are optimised at (default min(512, image side)); the
    painting is rendered at the image's own size. `style` (any size, RGB) adds a VGG-19 Gram loss
    weighted by `style_weight`. progress(fraction, text) is called every Adam step; cancel() is
    polled as often and raises Cancelled. The same seed gives the same strokes on the same device.
    """
    check_inputs(image, strokes, brush, size)
    started = time.perf_counter()
    device = torch.device(device)
    pen = BRUSHES[brush]
    image = as_float_image(image)
    height, width = image.shape[:2]
    shape = working_shape(height, width, size)
    target = _to_tensor(image, shape, device)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    stages = plan_stages(int(strokes), iterations)
    total = sum(s.rounds * s.iterations for s in stages)
    done = 0
    style_loss = None
    if style is not None:
        style_loss = StyleLoss(_to_tensor(as_float_image(style), working_shape(*style.shape[:2], STYLE_SIDE),
                                          device), device)

    def step(text: str) -> None:
        nonlocal done
        if cancel is not None and cancel():
            raise Cancelled("painting cancelled")
        if progress is not None:
            progress(done / total, text)
        done += 1

    canvas = torch.tensor(BACKGROUND, device=device).view(3, 1, 1).expand(3, *shape).clone()
    placed: list[Strokes] = []
    stage_seconds = []
    for index, stage in enumerate(stages):
        stage_started = time.perf_counter()
        # Coarse stages are fitted on a smaller canvas (cells of STAGE_CELL px): large strokes need
        # no fine pixels, and their cost grows with the pixels they cover.
        factor = min(1.0, STAGE_CELL * stage.grid / max(shape))
        small = (max(MIN_SIDE // 2, round(shape[0] * factor)), max(MIN_SIDE // 2, round(shape[1] * factor)))
        stage_target = target if small == shape else _resize(target, small)
        cell = max(small) / stage.grid
        per_round = [len(a) for a in np.array_split(np.arange(stage.count), stage.rounds)]
        text = f"stage {index + 1}/{len(stages)}: {stage.count} strokes of ~{max(shape) / stage.grid:.0f} px"
        for count in per_round:
            stage_canvas = canvas if small == shape else _resize(canvas, small)
            new = place(stage_target, stage_canvas, count, stage.grid, index, generator)
            new = _fit(new, stage_canvas, stage_target, pen, stage.iterations, cell, style_loss, style_weight,
                       lambda t=text: step(t))
            new = new.scaled(shape[1] / small[1], shape[0] / small[0])
            with torch.no_grad():
                canvas = render(new, *shape, background=canvas, brush=pen)
            placed.append(new)
        stage_seconds.append(round(time.perf_counter() - stage_started, 3))

    result = Strokes.cat(placed).to("cpu", torch.float32).scaled(width / shape[1], height / shape[0])
    with torch.no_grad():
        painting = render(result.to(device), height, width, brush=pen)
    painting_np = painting.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    if progress is not None:
        progress(1.0, "done")
    report = {
        "strokes": len(result),
        "brush": brush,
        "seed": int(seed),
        "width": width,
        "height": height,
        "working_size": [shape[1], shape[0]],
        "stages": [
            {"grid": s.grid, "strokes": s.count, "seconds": sec}
            for s, sec in zip(stages, stage_seconds, strict=True)
        ],
        "style": style is not None,
        "psnr": round(psnr(painting_np, image), 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return PaintResult(painting_np, result, report)
