"""A small animation with known motion, made from examples/a.jpg: a camera pan, then a zoom.

    python examples/make_sequence.py [--out examples/sequence] [--frames 12] [--side 160]

writes frame_01.jpg … (JPEG, a few KB each). The same camera is used by tests/test_animate.py and
bench/animate.py, which also need the true motion and a known answer, so the camera is exact:
frame t shows the source photo through p ↦ C + s_t·(p − c) + o_t (c: the frame's centre, C: the
photo's), sampled bilinearly. Pixel centres are at integer index coordinates, (x, y) order.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent


def photo(side: int) -> np.ndarray:
    """examples/a.jpg resized to side × side (uint8 RGB): the world the camera looks at."""
    with Image.open(EXAMPLES / "a.jpg") as image:
        return np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)).copy()


def sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear read of (H, W, C) at float (x, y) positions (..., 2), border repeated → float."""
    h, w = image.shape[:2]
    x = np.clip(xy[..., 0], 0, w - 1)
    y = np.clip(xy[..., 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), w - 2)
    y0 = np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    im = image.astype(np.float64)
    top = im[y0, x0] * (1 - fx) + im[y0, x0 + 1] * fx
    bottom = im[y0 + 1, x0] * (1 - fx) + im[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _grid(side: int) -> np.ndarray:
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float64)
    return np.stack((xs, ys), axis=-1)


@dataclass(frozen=True)
class Camera:
    """Frame t sees the world at C + scales[t]·(p − c) + offsets[t] (world = `world_side`²)."""

    side: int
    world_side: int
    scales: tuple[float, ...]
    offsets: tuple[tuple[float, float], ...]

    def __len__(self) -> int:
        return len(self.scales)

    def to_world(self, t: int) -> np.ndarray:
        c, big_c = (self.side - 1) / 2, (self.world_side - 1) / 2
        return big_c + self.scales[t] * (_grid(self.side) - c) + np.array(self.offsets[t])

    def from_world(self, t: int, xy: np.ndarray) -> np.ndarray:
        c, big_c = (self.side - 1) / 2, (self.world_side - 1) / 2
        return c + (xy - big_c - np.array(self.offsets[t])) / self.scales[t]

    def backward(self, t: int) -> np.ndarray:
        """True motion of frame t (t ≥ 1) to frame t − 1: (side, side, 2) (dx, dy) per pixel."""
        return self.from_world(t - 1, self.to_world(t)) - _grid(self.side)

    def frames(self, world: np.ndarray) -> list[np.ndarray]:
        return [np.clip(np.rint(sample(world, self.to_world(t))), 0, 255).astype(np.uint8)
                for t in range(len(self))]


def pan(n: int = 12, side: int = 128, step: tuple[float, float] = (2.5, 1.0)) -> Camera:
    """The camera moves by `step` pixels a frame (the content moves the other way)."""
    mid = (n - 1) / 2
    offsets = tuple((step[0] * (t - mid), step[1] * (t - mid)) for t in range(n))
    return Camera(side, round(side * 1.5), (1.0,) * n, offsets)


def zoom(n: int = 12, side: int = 128, factor: float = 1.03) -> Camera:
    """The camera zooms in by `factor` a frame about the world's centre (content grows)."""
    scales = tuple(factor ** -(t - (n - 1) / 2) for t in range(n))
    return Camera(side, round(side * 1.5), scales, ((0.0, 0.0),) * n)


def pan_then_zoom(n: int = 12, side: int = 160) -> Camera:
    """The bundled example: the first half pans, the second half zooms in from where it stopped."""
    half = n // 2
    p = pan(half, side, (3.0, 1.0))
    scales = p.scales + tuple(1.04 ** -(t + 1) for t in range(n - half))
    offsets = p.offsets + (p.offsets[-1],) * (n - half)
    return Camera(side, p.world_side, scales, offsets)


@dataclass(frozen=True)
class KnownAnswer:
    """One B′ for the whole sequence: the world with a new look, seen rotated and scaled.

    Each frame's true A′ is that look at the frame's own view of the world; `valid[t]` marks
    the pixels of frame t whose true match lies inside B′ (with a margin)."""

    b_prime: np.ndarray
    truths: list[np.ndarray]
    valid: list[np.ndarray]


def known_answer(camera: Camera, world: np.ndarray, look: Callable[[np.ndarray], np.ndarray],
                 degrees: float = 5.0, scale: float = 1.06, margin: float = 4.0) -> KnownAnswer:
    side, big_c = camera.side, (camera.world_side - 1) / 2
    c = (side - 1) / 2
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    looked = look(world)
    b_to_world = big_c + (_grid(side) - c) @ rot.T / scale
    b_prime = np.clip(np.rint(sample(looked, b_to_world)), 0, 255).astype(np.uint8)
    truths, valid = [], []
    for i in range(len(camera)):
        xy = camera.to_world(i)
        truths.append(np.clip(np.rint(sample(looked, xy)), 0, 255).astype(np.uint8))
        in_b = c + (xy - big_c) @ rot * scale
        valid.append(((in_b >= margin) & (in_b <= side - 1 - margin)).all(-1))
    return KnownAnswer(b_prime, truths, valid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(EXAMPLES / "sequence"))
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--side", type=int, default=160)
    args = parser.parse_args()
    camera = pan_then_zoom(args.frames, args.side)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(camera.frames(photo(camera.world_side))):
        Image.fromarray(frame).save(out / f"frame_{i + 1:02d}.jpg", quality=90)
    print(f"wrote {len(camera)} frames to {out}")


if __name__ == "__main__":
    main()
