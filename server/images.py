"""Image bytes in (PNG or raw RGBA) and result bytes out (PNG, .npy, raw), with size checks first.

Sizes are checked from the PNG header or the declared width/height before a single pixel is
decoded; Pillow's own bomb guard is set to the same limit and its warning made an error.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
import zlib

import numpy as np
from PIL import Image, ImageFile

from analogy_engine import to_rgb8
from analogy_engine.contract import MAX_INPUT_PIXELS, InputSizeError, check_input_size

from .errors import ApiError
from .uploads import Part

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TYPES = ("image/png",)
RAW_TYPES = ("application/octet-stream",)

Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Process-wide rather than warnings.catch_warnings(), which is not thread-safe and uploads are
# decoded on several threads at once.
warnings.simplefilter("error", Image.DecompressionBombWarning)
# One PNG decode at a time: a decode needs the decoded image plus its RGB copy (about 5 bytes a
# pixel, 300 MB at the pixel limit), and the queue lets several uploads arrive together.
DECODE_SLOTS = threading.BoundedSemaphore(1)
OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")


def clean_message(text: str) -> str:
    """A library's message without object reprs (`<_io.BytesIO object at 0x7f…>`)."""
    return OBJECT_REPR.sub("the data", text)


def check_dimensions(width: int, height: int, label: str) -> None:
    try:
        check_input_size(width, height, label)
    except InputSizeError as error:
        raise ApiError(413 if error.too_large else 400, str(error)) from None


def png_size(data: bytes | bytearray, label: str) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which PNG requires to come first."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ApiError(400, f"{label}: truncated or invalid PNG header")
    width, height = struct.unpack(">II", bytes(data[16:24]))
    return width, height


def decode_png(data: bytes | bytearray, width: int, height: int, label: str) -> np.ndarray:
    """A PNG whose header `part_size` has read and checked (width × height) → RGB uint8."""
    try:
        with DECODE_SLOTS, Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.size != (width, height):
                raise ApiError(400, f"{label}: inconsistent PNG header")
            image.load()
            return to_rgb8(image)
    except ApiError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ApiError(413, f"{label}: image is over the pixel limit") from None
    except MemoryError:
        raise ApiError(413, f"{label}: not enough memory to decode this image") from None
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        struct.error,
        zlib.error,
        IndexError,
        TypeError,
    ) as error:
        raise ApiError(400, f"{label}: the PNG could not be decoded ({clean_message(str(error))})") from None


def parse_dimension(value: bytes | bytearray | None, name: str) -> int:
    if value is None:
        raise ApiError(400, f"raw RGBA needs the form field {name!r}")
    text = bytes(value).strip()
    if not text.isdigit() or len(text) > 9:
        raise ApiError(400, f"{name} must be a positive whole number (got {text[:40]!r})")
    return int(text)


def decode_raw(data: bytes | bytearray, width: int, height: int) -> np.ndarray:
    """Raw RGBA whose size `part_size` has checked → RGB uint8."""
    rgba = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 4)
    return np.ascontiguousarray(rgba[:, :, :3])  # alpha dropped; the colour under it is kept


def part_size(
    data: bytes | bytearray,
    content_type: str,
    width: bytes | bytearray | None,
    height: bytes | bytearray | None,
    label: str,
) -> tuple[int, int]:
    """(width, height) of an uploaded image part from its PNG header or declared size, with the
    same checks as decode_part but no pixel decoded (an animation's frames wait undecoded)."""
    if len(data) == 0:
        raise ApiError(400, f"{label}: the image part is empty")
    if content_type in RAW_TYPES:
        w, h = parse_dimension(width, f"{label}_width"), parse_dimension(height, f"{label}_height")
        check_dimensions(w, h, label)
        if len(data) != w * h * 4:
            raise ApiError(
                400, f"{label}: raw RGBA of {w}×{h} must be exactly {w * h * 4} bytes, got {len(data)}"
            )
        return w, h
    if content_type in PNG_TYPES or content_type in ("", "text/plain"):
        if not bytes(data[:8]) == PNG_SIGNATURE:
            raise ApiError(415, f"{label}: not a PNG file (only PNG or raw RGBA are accepted)")
        w, h = png_size(data, label)
        check_dimensions(w, h, label)
        return w, h
    raise ApiError(
        415,
        f"{label}: content type {content_type!r} is not accepted; send image/png or application/octet-stream",
    )


def decode_part(
    data: bytes | bytearray,
    content_type: str,
    width: bytes | bytearray | None,
    height: bytes | bytearray | None,
    label: str,
) -> np.ndarray:
    """An uploaded image part → (H, W, 3) uint8 RGB, or ApiError with a 4xx status."""
    w, h = part_size(data, content_type, width, height, label)
    if content_type in RAW_TYPES:
        return decode_raw(data, w, h)
    return decode_png(data, w, h, label)


def image_part(
    parts: dict[str, Part], label: str
) -> tuple[bytearray, str, bytearray | None, bytearray | None]:
    """An image part's bytes, content type and declared width and height (raw RGBA only)."""
    part = parts.get(label)
    if part is None:
        raise ApiError(400, f"missing form part {label!r} (the image)")
    width, height = parts.get(f"{label}_width"), parts.get(f"{label}_height")
    return part.data, part.content_type, width.data if width else None, height.data if height else None


def decode_image(parts: dict[str, Part], label: str) -> np.ndarray:
    return decode_part(*image_part(parts, label), label)


def encode_png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # uint8 (H, W) becomes an "L" image, (H, W, 3) an "RGB" one. Level 1: these PNGs only cross
    # the loopback interface, so encoding speed matters more than size.
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    return buffer.getvalue()


def confidence_to_mask(confidence: np.ndarray) -> np.ndarray:
    clean = np.nan_to_num(confidence.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(clean, 0.0, 1.0) * 255.0).astype(np.uint8)
