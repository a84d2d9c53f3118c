"""The plug-in's byte-level pixel helpers (dia_pixels.py, standard library only), against numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gimp_plugin" / "deep_image_analogy"))
import dia_pixels as px  # noqa: E402


def test_opaque_grey_and_invert() -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    out = np.frombuffer(px.opaque(rgba.tobytes()), np.uint8).reshape(rgba.shape)
    np.testing.assert_array_equal(out[..., :3], rgba[..., :3])
    assert (out[..., 3] == 255).all()
    grey = rgba[..., 0]
    out = np.frombuffer(px.grey_rgba(grey.tobytes()), np.uint8).reshape(5, 7, 4)
    np.testing.assert_array_equal(out[..., :3], np.repeat(grey[..., None], 3, -1))
    assert (out[..., 3] == 255).all()
    np.testing.assert_array_equal(np.frombuffer(px.invert(grey.tobytes()), np.uint8), 255 - grey.ravel())


@pytest.mark.parametrize("size, to", [((10, 6), (5, 3)), ((7, 9), (3, 4)), ((4, 4), (4, 4)),
                                      ((3, 2), (6, 5))])
def test_nearest_keeps_only_existing_colours(size: tuple[int, int], to: tuple[int, int]) -> None:
    (w, h), (tw, th) = size, to
    image = np.arange(w * h * 4, dtype=np.uint32).reshape(h, w, 4).astype(np.uint8)
    out = np.frombuffer(px.nearest(image.tobytes(), w, h, 4, tw, th), np.uint8).reshape(th, tw, 4)
    ys, xs = np.arange(th) * h // th, np.arange(tw) * w // tw
    np.testing.assert_array_equal(out, image[ys][:, xs])


def test_preview_scale() -> None:
    assert px.preview_scale(100, 50, 256) == 1.0
    assert px.scaled_size(4000, 3000, px.preview_scale(4000, 3000, 256)) == (256, 192)
    # A thin layer keeps the engine's minimum side.
    scale = px.preview_scale(4000, 20, 256)
    assert min(px.scaled_size(4000, 20, scale)) >= 8
