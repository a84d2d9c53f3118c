"""Reading user images into (H, W, 3) uint8 RGB and writing results, with clear errors."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .params import MAX_INPUT_PIXELS, MAX_INPUT_SIDE, MIN_INPUT_SIDE
from .types import InputError


def check_size(width: int, height: int, name: str) -> None:
    """Refuse sizes the engine cannot use, before any pixel is decoded."""
    if min(width, height) < MIN_INPUT_SIDE:
        raise InputError(f"{name} is {width}×{height} pixels; each side must be at least {MIN_INPUT_SIDE}")
    if max(width, height) > MAX_INPUT_SIDE or width * height > MAX_INPUT_PIXELS:
        raise InputError(
            f"{name} is {width}×{height} pixels; the limit is {MAX_INPUT_PIXELS // 1_000_000} "
            f"megapixels and {MAX_INPUT_SIDE} pixels a side"
        )


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → (H, W, 3) uint8 RGB. Alpha is dropped (the colour under it is kept);
    16-bit and float grey are scaled to 8 bits rather than clipped."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey = np.clip(np.rint(grey * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        scale = 255.0 if grey.max() <= 1.0 else 1.0
        grey = np.clip(np.rint(grey * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, :3])


def load_image(source: str | Path | bytes, name: str = "image") -> np.ndarray:
    """Read a file path or encoded bytes; raise InputError with a one-line reason."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{name}: no such file: {path}")
        if not path.is_file():
            raise InputError(f"{name}: not a file: {path}")
        opened = path
    else:
        opened = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened) as image:
                check_size(image.width, image.height, name)
                image.load()
                return to_rgb8(image)
    except InputError:
        raise
    except Image.DecompressionBombError:
        # Pillow refuses before its size is known to us: it is far beyond our own limit.
        raise InputError(
            f"{name} is larger than the limit of {MAX_INPUT_PIXELS // 1_000_000} megapixels"
        ) from None
    except (UnidentifiedImageError, Image.DecompressionBombWarning) as error:
        raise InputError(f"{name}: not an image that can be read ({error.__class__.__name__})") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(f"{name}: the image file is damaged or unsupported ({error})") from None


def save_png(path: str | Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, format="PNG", compress_level=4)
