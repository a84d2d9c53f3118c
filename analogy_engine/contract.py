"""What the engine, the server and the GIMP plug-in must agree on, in the standard library only.

GIMP's own Python has no numpy or torch, and the plug-in may be installed far from the engine, so
this one file is imported by the engine (`analogy_engine.contract`) and, as `dia_contract.py`
beside the plug-in (install.sh copies it there; in a source checkout it is a symbolic link), by
the plug-in. It must not import anything outside the standard library, nor anything relative.

It holds the names that travel over the API (modes, presets, devices, result parts), the input
and working-size limits with the one check of an input's size, and the runtime-file rules: where
the engine publishes its port and token and how a reader decides whether to trust that file.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Literal, get_args

Mode = Literal["photo-to-style", "style-to-style", "style-to-photo", "photo-to-photo"]
PresetName = Literal["faithful", "balanced", "fast"]
DeviceName = Literal["auto", "cpu", "cuda"]

MODES: tuple[str, ...] = get_args(Mode)
PRESET_NAMES: tuple[str, ...] = get_args(PresetName)
DEVICES: tuple[str, ...] = get_args(DeviceName)
DEFAULT_MODE: Mode = "photo-to-style"
DEFAULT_PRESET: PresetName = "balanced"
DEFAULT_DEVICE: DeviceName = "auto"

# What GET /v1/jobs/{id}/result/{name} serves (docs/http-api.md).
RESULT_PARTS: tuple[str, ...] = ("a_prime", "b", "mask_a_prime", "mask_b", "flow_ab", "flow_ba")
PAINT_RESULT_PARTS: tuple[str, ...] = ("painting", "strokes")  # POST /v1/paint: PNG and SVG text

# POST /v1/animate: frames of one size, 2..MAX_FRAMES of them; their pixels together at most
# MAX_ANIMATION_PIXELS, since every stylised frame is kept until the client has fetched it
# (256 MP: 0.75 GB of results, e.g. 120 frames of 1080p).
MIN_FRAMES = 2
MAX_FRAMES = 200
MAX_ANIMATION_PIXELS = 256 * 2**20


def frame_part(number: int) -> str:
    """The upload part of frame `number` (1 = the first shown): frame_1, frame_2, …"""
    return f"frame_{number}"


def frame_name(number: int) -> str:
    """The result of frame `number` (1 = the first shown): frame_0001, … (the animate CLI's files
    are these names plus .png)."""
    return f"frame_{number:04d}"

# Guidance (docs/guidance.md): region maps, a structure mask and more references are more image
# parts of an analogy job. References count B′ itself: B′ plus at most MAX_REFERENCES − 1 more.
MAX_REFERENCES = 4
MAX_REGIONS = 32  # distinct colours in a region map (each is one region, paired by colour)
GUIDE_PARTS: tuple[str, ...] = ("regions_a", "regions_b", "structure")


def reference_part(number: int) -> str:
    """The upload part of reference `number` (2 = the first after B′): reference_2, …"""
    return f"reference_{number}"


def regions_ref_part(number: int) -> str:
    """The upload part of the region map of reference `number` (≥ 2): regions_ref_2, …"""
    return f"regions_ref_{number}"


def b_name(number: int) -> str:
    """B of reference `number`: "b" for B′ itself (1), b_2, b_3, … (the CLI's files add .png)."""
    return "b" if number == 1 else f"b_{number}"


REF_AB = "ref_ab"  # which reference each A pixel's flow points into (0 = B′), uint8 (H_A, W_A)


MASK_PREFIX = "mask_"


def mask_name(result: str) -> str:
    """The layer-mask result of an image result: mask_a_prime, mask_b, mask_b_2, …"""
    return MASK_PREFIX + result


MIN_SIZE = 32  # working side in pixels: two cells of the 16× coarser relu5_1 map
MAX_SIZE = 2048  # working side; beyond this VGG matching costs grow with no visible gain
MIN_INPUT_SIDE = 8
MAX_INPUT_SIDE = 30_000
MAX_INPUT_PIXELS = 60_000_000  # 60 MP: well above a 12 MP photo, well below a decompression bomb


class InputSizeError(ValueError):
    """An input image is too small or too large; `too_large` tells the two apart (413 vs 400)."""

    def __init__(self, message: str, too_large: bool) -> None:
        super().__init__(message)
        self.too_large = too_large


def check_input_size(width: int, height: int, label: str) -> None:
    """Raise InputSizeError unless a `label` image of width × height is within the limits."""
    if width <= 0 or height <= 0:
        raise InputSizeError(f"{label}: the image is empty ({width}×{height} pixels)", False)
    if min(width, height) < MIN_INPUT_SIDE:
        raise InputSizeError(
            f"{label} is {width}×{height} pixels; each side must be at least {MIN_INPUT_SIDE}", False
        )
    if max(width, height) > MAX_INPUT_SIDE or width * height > MAX_INPUT_PIXELS:
        raise InputSizeError(
            f"{label} is {width}×{height} pixels; the limit is {MAX_INPUT_PIXELS // 1_000_000} "
            f"megapixels and {MAX_INPUT_SIDE} pixels a side",
            True,
        )


# --- The runtime file: where the engine publishes its port and token -------------------------

APP_DIR = "deep-image-analogy"
RUNTIME_FILE_NAME = "engine.json"
RUNTIME_FILE_MAX = 4096  # a real runtime file is about 150 bytes
FLATPAK_GIMP = "org.gimp.GIMP"


def in_flatpak(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    return bool(env.get("FLATPAK_ID")) or os.path.exists("/.flatpak-info")


def flatpak_runtime_file(env: dict[str, str] | None = None) -> Path:
    """A path that is the same inside GIMP's Flatpak sandbox and outside it, on the host."""
    env = dict(os.environ) if env is None else env
    app = env.get("FLATPAK_ID") or FLATPAK_GIMP
    return Path.home() / ".var" / "app" / app / "cache" / APP_DIR / RUNTIME_FILE_NAME


def runtime_file_path(env: dict[str, str] | None = None) -> Path:
    """$DIA_RUNTIME_FILE, the Flatpak path inside a Flatpak, $XDG_RUNTIME_DIR, a per-user cache."""
    env = dict(os.environ) if env is None else env
    if env.get("DIA_RUNTIME_FILE"):
        return Path(env["DIA_RUNTIME_FILE"]).expanduser()
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_DIR / RUNTIME_FILE_NAME
    if in_flatpak(env):
        # The sandbox has its own private XDG_RUNTIME_DIR and ~/.cache.
        return flatpak_runtime_file(env)
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / APP_DIR / RUNTIME_FILE_NAME
    return Path.home() / ".cache" / APP_DIR / RUNTIME_FILE_NAME


def trusted(info: os.stat_result) -> bool:
    """A regular file owned by this user with no permissions for group or others."""
    if not stat.S_ISREG(info.st_mode):
        return False
    if not hasattr(os, "geteuid"):  # Windows: no owner or mode bits; the folder is per-user
        return True
    return info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077 == 0


def read_trusted(path: Path, max_size: int = RUNTIME_FILE_MAX) -> bytes | None:
    """The bytes of `path` if it is trusted (see `trusted`), not a link and small, else None.

    Opened without following a symbolic link and without blocking, so that a FIFO planted there
    cannot hang the reader and /dev/zero cannot exhaust its memory.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # missing, a symlink (ELOOP), no permission
        return None
    try:
        if not trusted(os.fstat(fd)):
            return None
        data = os.read(fd, max_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= max_size else None


def read_runtime_file(path: Path) -> dict[str, Any] | None:
    """The runtime file's JSON object, or None when it is missing, untrusted or malformed."""
    data = read_trusted(path)
    if data is None:
        return None
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) else None
