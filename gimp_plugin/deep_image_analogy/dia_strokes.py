"""The painting's strokes (the engine's strokes.svg) made ready for GIMP's path import.

The engine writes a white `<rect id="background">`, then one `<g id="stage-K">` per
coarse-to-fine stage holding one `<path d="M … Q …">` per stroke, in painting order
(docs/painting.md). GIMP 3.0 and 3.2 have no path groups (`insert_path` under a path fails:
"not a group item"), and one path per stroke would bury the Paths dock under a thousand rows,
so each stage becomes one path whose strokes are that stage's strokes: `stage_svg` writes the SVG
that `Gimp.Image.import_paths_from_string(text, length, merge=True, scale=False)` turns into it.
Standard library only, no GIMP import: host tests check it against the engine's SVG.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

SVG_NS = "http://www.w3.org/2000/svg"
_G = f"{{{SVG_NS}}}g"
_PATH = f"{{{SVG_NS}}}path"


class StrokesError(ValueError):
    """strokes.svg is not what the engine writes."""


@dataclass(frozen=True)
class Stage:
    """One coarse-to-fine stage: its number (1 = coarsest) and its strokes' `d`, painting order."""

    number: int
    paths: tuple[str, ...]


def parse_strokes(svg: str) -> tuple[int, int, list[Stage]]:
    """(width, height, stages with at least one stroke) from the engine's strokes.svg."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as err:
        raise StrokesError(f"the strokes are not valid SVG ({err})") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise StrokesError(f"the strokes are not SVG (root element {root.tag!r})")
    try:
        _x, _y, width, height = (float(v) for v in root.get("viewBox", "").replace(",", " ").split())
    except ValueError:
        raise StrokesError("the strokes' SVG has no usable viewBox") from None
    stages: list[Stage] = []
    loose: list[str] = []  # paths outside any stage group: kept, as one more stage
    for child in root:
        if child.tag == _G:
            paths = tuple(p.get("d", "") for p in child.iter(_PATH) if p.get("d"))
            if paths:
                stages.append(Stage(len(stages) + 1, paths))
        elif child.tag == _PATH and child.get("d"):
            loose.append(child.get("d", ""))
    if loose:
        stages.append(Stage(len(stages) + 1, tuple(loose)))
    return round(width), round(height), stages


def stage_svg(stage: Stage, width: int, height: int, dx: int = 0, dy: int = 0) -> str:
    """SVG text of one stage's strokes, moved by (dx, dy), on a width × height page (the image).

    GIMP's importer lists a merged path's strokes in reverse document order (checked in 3.0.4
    and 3.2.6), so the strokes are written last first: the path then holds them in painting
    order, which is the order "Stroke Path" paints them in.
    """
    ET.register_namespace("", SVG_NS)
    root = ET.Element(f"{{{SVG_NS}}}svg", {
        "width": str(width), "height": str(height), "viewBox": f"0 0 {width} {height}"})
    group = ET.SubElement(root, _G, {"transform": f"translate({dx},{dy})"})
    for d in reversed(stage.paths):
        ET.SubElement(group, _PATH, {"d": d, "fill": "none", "stroke": "black"})
    return ET.tostring(root, encoding="unicode")


def path_name(stage: Stage, stages: int) -> str:
    """The path's name in the Paths dock: stage, how many stages, how many strokes."""
    return f"Painting strokes {stage.number}/{stages} ({len(stage.paths)})"
