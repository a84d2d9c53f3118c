"""Optional: the original implementation's example pairs, where a local copy exists.

The pairs live outside the project (/work/shared/examples, or $DIA_PAPER_EXAMPLES) and are never
copied into it; without them these tests skip. Each pair runs small (size 64, preset "fast") and
checks that the look moves across: A′'s colours are B′'s colours (each A′ pixel has a close
colour in B′'s palette) and B's are A's. Palette distance = mean distance, in 0–255 RGB, from a
pixel sample of one image to its nearest colour in a sample of the other. Measured on this
commit (mean colour statistics, the previous metric, no longer moved for A13: its A′ takes B′'s
colours in A's proportions of sky and water):

| pair             | A to B′ | A′ to B′ | B′ to A | B to A |
|------------------|---------|----------|---------|--------|
| 1photo2style A10 | 37.3    | 0.4      | 5.7     | 2.7    |
| 2style2style A1  | 79.5    | 2.2      | 18.1    | 2.4    |
| 3style2photo A13 | 9.1     | 2.0      | 23.6    | 1.1    |
| 4photo2photo A4  | 2.0     | 2.3      | 8.2     | 3.0    |

A photo → photo pair has nearly one palette already, so there the check only bounds the result.

Since the confidence fallback (fallback_colour.py, on by default), B's low-confidence regions take
colours from fitted local colour models rather than copied pixels: colours between A's palette
entries, so B's distance to A's palette grows a little where the old metric counted only copies.
Measured on A10: B to A 2.74 without the fallback, 3.97 with it (B′ to A: 5.74). Later changes
moved it within seeds: before the reflection-padded fine levels (vgg.FINE_LEVELS) B to A was
4.34 / 4.40 / 4.41 / 4.63 for seeds 0–3, with them 4.55 / 4.63 / 4.43 / 4.81 (this 64-pixel
working size is mostly border). The bound for B is 5.0: above that spread, still under the 5.74 of
B′ itself, so a B that kept B′'s look would fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from analogy_engine import AnalogyParams, Engine, analogy
from analogy_engine.imageio import load_image

FOLDER = Path(os.environ.get("DIA_PAPER_EXAMPLES", "/work/shared/examples"))
PAIRS = [
    ("1photo2style", "10", "photo-to-style"),  # A and B′ of different sizes
    ("2style2style", "1", "style-to-style"),
    ("3style2photo", "13", "style-to-photo"),
    ("4photo2photo", "4", "photo-to-photo"),
]

pytestmark = [
    pytest.mark.slow,  # a balanced analogy of each paper pair
    pytest.mark.skipif(not FOLDER.is_dir(), reason=f"no paper examples at {FOLDER}"),
]


def palette_distance(x: np.ndarray, y: np.ndarray, n: int = 3000) -> float:
    rng = np.random.default_rng(0)
    px = x.reshape(-1, 3)[rng.integers(0, x.shape[0] * x.shape[1], n)].astype(np.float32)
    py = y.reshape(-1, 3)[rng.integers(0, y.shape[0] * y.shape[1], n)].astype(np.float32)
    return float(torch.cdist(torch.from_numpy(px), torch.from_numpy(py)).min(1).values.mean())


@pytest.mark.parametrize("folder, number, mode", PAIRS)
def test_look_moves_across(folder: str, number: str, mode: str, engine: Engine) -> None:
    a_path, b_path = FOLDER / folder / f"A{number}.png", FOLDER / folder / f"BP{number}.png"
    if not (a_path.is_file() and b_path.is_file()):
        pytest.skip(f"{folder}/A{number}.png or BP{number}.png missing")
    a, b_prime = load_image(a_path, "A"), load_image(b_path, "B′")
    result = analogy(a, b_prime, AnalogyParams(mode=mode, preset="fast", size=64), engine=engine)  # type: ignore[arg-type]
    assert result.a_prime.shape == a.shape and result.b.shape == b_prime.shape
    assert palette_distance(result.a_prime, b_prime) <= max(3.0, 0.3 * palette_distance(a, b_prime))
    assert palette_distance(result.b, a) <= max(5.0, 0.3 * palette_distance(b_prime, a))
