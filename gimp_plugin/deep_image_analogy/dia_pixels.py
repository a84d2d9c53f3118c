"""Byte-level pixel helpers for guidance and the preview, standard library only (GIMP's Python
has no numpy): whole-image work is done with slices and bytes methods, never a loop over pixels,
except for the preview's small nearest-neighbour resampling."""

from __future__ import annotations

from dia_contract import MIN_INPUT_SIDE


def opaque(rgba: bytes) -> bytes:
    """RGBA rows with every alpha set to 255 (a region map's colours are its labels)."""
    out = bytearray(rgba)
    out[3::4] = b"\xff" * (len(rgba) // 4)
    return bytes(out)


def grey_rgba(grey: bytes) -> bytes:
    """One byte a pixel → opaque RGBA rows with R = G = B (how a structure mask travels)."""
    out = bytearray(len(grey) * 4)
    for channel in range(3):
        out[channel::4] = grey
    out[3::4] = b"\xff" * len(grey)
    return bytes(out)


INVERT = bytes(range(255, -1, -1))


def invert(grey: bytes) -> bytes:
    return grey.translate(INVERT)


def nearest(data: bytes, width: int, height: int, channels: int, to_width: int, to_height: int) -> bytes:
    """Nearest-neighbour resampling: a scaled region map keeps only its own colours (blending
    would invent colours that are in no region)."""
    if (to_width, to_height) == (width, height):
        return data
    columns = [(x * width // to_width) * channels for x in range(to_width)]
    rows = []
    for y in range(to_height):
        start = (y * height // to_height) * width * channels
        row = data[start:start + width * channels]
        rows.append(b"".join(row[c:c + channels] for c in columns))
    return b"".join(rows)


def preview_scale(width: int, height: int, longest: int) -> float:
    """The factor that brings the longest side to `longest` (never up), keeping the shortest side
    at the engine's minimum input side."""
    scale = min(1.0, longest / max(width, height))
    return min(1.0, max(scale, MIN_INPUT_SIDE / min(width, height)))


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size of an image scaled by `scale` (each side at least 1 pixel)."""
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))
