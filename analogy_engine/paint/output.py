"""A painting's files: painting.png and strokes.svg (the paint CLI and the analogy CLI's --paint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..imageio import save_png
from .optimise import PaintResult
from .svg import to_svg

FILES = ("painting.png", "strokes.svg")  # what write_painting writes
OUTPUTS = (*FILES, "report.json")


def painting_to_uint8(painting: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(painting * 255), 0, 255).astype(np.uint8)


def write_painting(out: Path, result: PaintResult, shape: tuple[int, int]) -> dict:
    """painting.png and strokes.svg (FILES) into `out`; returns the painting's report."""
    height, width = shape
    save_png(out / "painting.png", painting_to_uint8(result.painting))
    (out / "strokes.svg").write_text(to_svg(result.strokes, width, height))
    return dict(result.report)
