"""Small synthetic test pictures: a 'photo' (smooth light, objects, sensor noise) and a
'painting' (flat colours, brush-stroke texture), so the tests need no image files."""

from __future__ import annotations

import numpy as np


def photo(width: int, height: int, seed: int = 1) -> np.ndarray:
    """RGBA uint8: sky, ground, a sun and a house, with mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * 0.6
    sky = np.stack([90 + 80 * y / horizon, 140 + 60 * y / horizon, 235 - 20 * y / horizon], -1)
    ground = np.stack([70 + 40 * (y - horizon) / height, 120 - 30 * (y - horizon) / height,
                       50 + 0 * y], -1)
    img = np.where((y < horizon)[..., None], sky, ground)
    sun = (x - width * 0.75) ** 2 + (y - height * 0.22) ** 2 < (min(width, height) * 0.12) ** 2
    img[sun] = (255, 230, 120)
    house = (x > width * 0.2) & (x < width * 0.45) & (y > horizon - height * 0.25) & (y < horizon + 2)
    img[house] = (180, 60, 50)
    window = (x > width * 0.27) & (x < width * 0.33) & (y > horizon - height * 0.17) \
        & (y < horizon - height * 0.09)
    img[window] = (250, 240, 200)
    img += rng.normal(0, 4, img.shape)
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = np.clip(img, 0, 255)
    rgba[..., 3] = 255
    return rgba


def painting(width: int, height: int, seed: int = 2) -> np.ndarray:
    """RGBA uint8: a few flat colour regions crossed by oriented brush strokes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    palette = np.array([(30, 40, 120), (240, 200, 60), (200, 70, 40), (40, 120, 80)], np.float32)
    region = ((x / width * 2).astype(int) + 2 * (y / height * 2).astype(int)) % 4
    img = palette[region]
    strokes = np.sin((x * 0.9 + y * 0.45) / 1.7 + rng.uniform(0, 6)) * 35
    img += strokes[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    img += rng.normal(0, 6, (height // 4 + 1, width // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:height, :width]
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = np.clip(img, 0, 255)
    rgba[..., 3] = 255
    return rgba


def with_alpha(rgba: np.ndarray) -> np.ndarray:
    """A copy with a transparent top-left corner and a half-transparent band."""
    out = rgba.copy()
    h, w = out.shape[:2]
    out[: h // 4, : w // 4, 3] = 0
    out[h // 2 : h // 2 + 4, :, 3] = 128
    return out
