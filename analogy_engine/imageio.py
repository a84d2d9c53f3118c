"""Reading user images into (H, W, 3) uint8 RGB and writing results, with clear errors."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .contract import MAX_INPUT_PIXELS, InputSizeError, check_input_size
from .types import InputError


def check_size(width: int, height: int, name: str) -> None:
    """Refuse sizes the engine cannot use, before any pixel is decoded (contract.py's rule)."""
    try:
        check_input_size(width, height, name)
    except InputSizeError as error:
        raise InputError(str(error)) from None


# Rows converted at a time in to_rgb8's grey paths: the temporaries stay a few MB whatever the
# image size (converting a whole 60 MP 16-bit image through float64 peaked at 1.4 GB).
GREY_BAND_ROWS = 256


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → (H, W, 3) uint8 RGB. Alpha is dropped (the colour under it is kept);
    16-bit and float grey are scaled to 8 bits rather than clipped."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _grey_to_rgb8(image, lambda band: (band.astype(np.uint32) + 128) // 257)
    if mode == "I":
        high = image.getextrema()[1]
        if high > 255:  # 16-bit data held as 32-bit; exact integer form of rint(v * 255 / 65535)
            return _grey_to_rgb8(
                image, lambda band: (np.clip(band.astype(np.int64), 0, 65535) + 128) // 257
            )
        return _grey_to_rgb8(image, lambda band: np.clip(band, 0, 255))
    if mode == "F":
        scale = 255.0 if image.getextrema()[1] <= 1.0 else 1.0
        return _grey_to_rgb8(image, lambda band: np.clip(np.rint(band.astype(np.float64) * scale), 0, 255))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, :3])


def _grey_to_rgb8(image: Image.Image, to_8bit: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A one-channel image → (H, W, 3) uint8, band by band so no full-size temporary exists."""
    width, height = image.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, GREY_BAND_ROWS):
        bottom = min(height, top + GREY_BAND_ROWS)
        band = np.asarray(image.crop((0, top, width, bottom)))
        out[top:bottom] = to_8bit(band).astype(np.uint8)[:, :, None]
    return out


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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refuses before its size is known to us: it is beyond its pixel limit, which is
        # ours once server.images has set Image.MAX_IMAGE_PIXELS (in the same process).
        raise InputError(
            f"{name} is larger than the limit of {MAX_INPUT_PIXELS // 1_000_000} megapixels"
        ) from None
    except UnidentifiedImageError as error:
        raise InputError(f"{name}: not an image that can be read ({error.__class__.__name__})") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(f"{name}: the image file is damaged or unsupported ({error})") from None


def save_png(path: str | Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, format="PNG", compress_level=4)
