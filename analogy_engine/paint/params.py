"""The one typed definition of the painting options: the paint CLI, the analogy CLI's --paint,
the server's POST /v1/paint and the plug-in follow it (same Option machinery as AnalogyParams)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract import DEFAULT_DEVICE, DEVICES, DeviceName
from ..devices import resolve_device
from ..params import MAX_SEED, OptionParams, option_field
from ..types import CancelFn, ProgressFn
from .optimise import DEFAULT_SIDE, MAX_STROKES, MAX_WORK_SIDE, MIN_SIDE, MIN_STROKES, PaintResult, paint
from .render import BRUSHES

BRUSH_NAMES: tuple[str, ...] = tuple(BRUSHES)


@dataclass(frozen=True)
class PaintParams(OptionParams):
    """How to paint an image with strokes (see paint.paint)."""

    strokes: int = option_field(1000, kind=int, low=MIN_STROKES, high=MAX_STROKES, metavar="N",
                                help=f"stroke count, {MIN_STROKES}–{MAX_STROKES}")
    brush: str = option_field("oil", kind=str, choices=BRUSH_NAMES,
                              help="oil: bristle streaks; marker: flat colour (exactly what the SVG draws)")
    size: int | None = option_field(None, kind=int, low=MIN_SIDE, high=MAX_WORK_SIDE, nullable=True,
                                    metavar="N",
                                    help="longest side the strokes are fitted at "
                                    f"({MIN_SIDE}–{MAX_WORK_SIDE}; "
                                    f"default min({DEFAULT_SIDE}, the image's)); the painting is always "
                                    "the image's size")
    seed: int = option_field(0, kind=int, low=0, high=MAX_SEED, metavar="N",
                             help="random seed of stroke placement (same seed, same device: same strokes)")
    style_weight: float = option_field(0.02, kind=float, low=0.0, high=10.0, metavar="W",
                                       help="weight of the VGG-19 style loss towards a reference's look "
                                       "(only with a reference)")
    device: DeviceName = option_field(DEFAULT_DEVICE, kind=str, choices=DEVICES,
                                      help="where to compute; auto: the GPU when there is one")

    @classmethod
    def from_dict(cls, data: dict) -> PaintParams:
        return super().from_dict(data)  # type: ignore[no-any-return]


def paint_image(
    image: np.ndarray,
    params: PaintParams,
    style: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> PaintResult:
    """`paint()` with the user's PaintParams (device resolved here, as everywhere else)."""
    return paint(image, params.strokes, brush=params.brush, size=params.size, seed=params.seed, style=style,
                 style_weight=params.style_weight, progress=progress, cancel=cancel,
                 device=resolve_device(params.device))

