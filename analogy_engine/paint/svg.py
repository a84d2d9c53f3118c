"""Strokes ⇄ SVG: one `<path d="M … Q …">` per stroke, in painting order, grouped per stage.

The SVG draws what the renderer draws with the "marker" brush: constant width, round caps, flat
colour with opacity, over a white page (the `<rect id="background">`). Brush texture is not kept;
users re-stroke the paths with their own brushes. viewBox is the image's pixels, pixel k spanning
[k, k + 1], as in the renderer.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import torch

from .render import Strokes

SVG_NS = "http://www.w3.org/2000/svg"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATH = re.compile(
    rf"^\s*M\s*({_NUMBER})[\s,]+({_NUMBER})\s*Q\s*" + r"[\s,]+".join([f"({_NUMBER})"] * 4) + r"\s*$"
)


def _hex(rgb: list[float]) -> str:
    return "#" + "".join(f"{round(min(1.0, max(0.0, c)) * 255):02x}" for c in rgb)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value == value else "0"


def to_svg(strokes: Strokes, width: int, height: int, background: str = "#ffffff") -> str:
    """SVG text for `strokes` (in the image's pixels) on a width × height page."""
    points = strokes.points.detach().cpu().double().tolist()
    widths = strokes.width.detach().cpu().double().tolist()
    colours = strokes.colour.detach().cpu().double().tolist()
    opacities = strokes.opacity.detach().cpu().double().tolist()
    stages = strokes.stage.detach().cpu().tolist()
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="{SVG_NS}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<rect id="background" x="0" y="0" width="{width}" height="{height}" fill="{background}"/>',
    ]
    current = None
    for p, w, c, o, s in zip(points, widths, colours, opacities, stages, strict=True):
        if s != current:
            if current is not None:
                lines.append("</g>")
            lines.append(f'<g id="stage-{s + 1}" data-stage="{s}">')
            current = s
        (x0, y0), (x1, y1), (x2, y2) = p
        d = f"M {_num(x0)} {_num(y0)} Q {_num(x1)} {_num(y1)} {_num(x2)} {_num(y2)}"
        lines.append(
            f'<path d="{d}" fill="none" stroke="{_hex(c)}" stroke-width="{_num(w)}" '
            f'stroke-opacity="{o:.3f}" stroke-linecap="round"/>'
        )
    if current is not None:
        lines.append("</g>")
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def from_svg(text: str) -> tuple[Strokes, int, int]:
    """Parse SVG written by `to_svg` back into (strokes, width, height). Raises ValueError on
    anything else (other path shapes, missing attributes)."""
    root = ET.fromstring(text)
    view = [float(v) for v in root.get("viewBox", "").replace(",", " ").split()]
    if len(view) != 4:
        raise ValueError("SVG has no viewBox")
    width, height = round(view[2]), round(view[3])
    points, widths, colours, opacities, stages = [], [], [], [], []
    for group in root.iter(f"{{{SVG_NS}}}g"):
        stage = int(group.get("data-stage", "0"))
        for path in group.iter(f"{{{SVG_NS}}}path"):
            match = _PATH.match(path.get("d", ""))
            if match is None:
                raise ValueError(f"not a single quadratic stroke: {path.get('d')!r}")
            v = [float(x) for x in match.groups()]
            points.append([[v[0], v[1]], [v[2], v[3]], [v[4], v[5]]])
            colour = path.get("stroke", "#000000").lstrip("#")
            colours.append([int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4)])
            widths.append(float(path.get("stroke-width", "1")))
            opacities.append(float(path.get("stroke-opacity", "1")))
            stages.append(stage)
    if not points:
        return Strokes.empty(), width, height
    return (
        Strokes(
            torch.tensor(points, dtype=torch.float32), torch.tensor(widths, dtype=torch.float32),
            torch.tensor(colours, dtype=torch.float32), torch.tensor(opacities, dtype=torch.float32),
            torch.tensor(stages, dtype=torch.long),
        ),
        width,
        height,
    )
