"""Painting with strokes: an image as editable quadratic Bézier brush strokes (issue 12).

    result = paint(image, strokes=1000, brush="oil")   # PaintResult(painting, strokes, report)
    svg = to_svg(result.strokes, width, height)

No trained weights: the renderer is a distance field (render.py), the strokes are fitted coarse to
fine by Adam (optimise.py), and the SVG keeps one path per stroke (svg.py).
"""

from .optimise import (
    DEFAULT_SIDE,
    MAX_STROKES,
    MAX_WORK_SIDE,
    MIN_SIDE,
    MIN_STROKES,
    PaintResult,
    paint,
    plan_stages,
    psnr,
)
from .output import OUTPUTS, painting_to_uint8, write_painting
from .params import BRUSH_NAMES, PaintParams, paint_image
from .render import BRUSHES, Brush, Strokes, render
from .svg import from_svg, to_svg

__all__ = [
    "BRUSHES", "BRUSH_NAMES", "DEFAULT_SIDE", "MAX_STROKES", "MAX_WORK_SIDE", "MIN_SIDE", "MIN_STROKES",
    "OUTPUTS", "Brush", "PaintParams", "PaintResult", "Strokes", "from_svg", "paint", "paint_image",
    "painting_to_uint8", "plan_stages", "psnr", "render", "to_svg", "write_painting",
]
