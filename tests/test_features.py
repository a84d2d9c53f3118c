"""Feature extraction runs level by level, so a cancel during it stops within about a second.

Issue 9: with one check between two whole VGG passes, a cancelled job once held the worker for
16 s on a loaded machine. The features stage now polls between layers.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from analogy_engine import AnalogyParams, Cancelled, Engine, analogy

SIZE = 1024  # one VGG pass to relu5_1 at 1024² takes several seconds on 2 CPU cores


def test_cancel_during_features_is_prompt(engine: Engine) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    b_prime = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    stages: list[str] = []
    asked: list[float] = []

    def cancel() -> bool:
        # Ask to stop 0.3 s into the features stage (well inside the first image's pass).
        if stages and stages[-1] == "features" and not asked:
            if time.monotonic() - started > 0.3:
                asked.append(time.monotonic())
        return bool(asked)

    started = time.monotonic()
    with pytest.raises(Cancelled):
        analogy(a, b_prime, AnalogyParams(size=SIZE, preset="fast"), progress=lambda f, s: stages.append(s),
                cancel=cancel, engine=engine)
    stopped = time.monotonic()
    assert asked, "the features stage ended before the cancel was asked"
    assert stages[-1] == "features"
    assert stopped - asked[0] < 1.5  # one layer of one image, not two whole passes


# ------------------------------------------------------------------ feature inversion


def test_invert_copies_its_start_and_returns_plain_maps(engine: Engine) -> None:
    """The inversion optimises a plain copy of its start: without iterations it is the start's
    forward pass, unchanged; with them it moves towards the target (6 L-BFGS steps: squared error
    240 against 388 for the start, measured); either way the result is a plain contiguous
    (C, H, W) map and the start is left as it was."""
    import torch

    from analogy_engine.invert import invert

    vgg = engine.vgg
    g = torch.Generator().manual_seed(0)
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 40, 40, generator=g) * 255 - 120, 9, 1)
    truth = vgg.run(image, 0, 1)[0]
    target = vgg.run(image, 0, 2)[0]
    start = image[0] + 30 * torch.randn(3, 32, 32, generator=g)
    kept = start.clone()
    with torch.no_grad():
        plain = vgg.run(start[None], 0, 1)[0]
    same = invert(vgg, target, start, 2, 2, iterations=0)
    assert same.is_contiguous() and same.shape == (64, 32, 32)
    torch.testing.assert_close(same, plain.clamp_min(0), rtol=0, atol=1e-3)
    moved = invert(vgg, target, start, 2, 2, iterations=6)
    assert moved.is_contiguous() and torch.equal(start, kept)
    assert (moved - truth).pow(2).mean() < 0.75 * (plain - truth).pow(2).mean()
    # A start already laid out channels last (fields.sample gives one) is not changed either.
    channels_last = start.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    again = invert(vgg, target, channels_last, 2, 2, iterations=6)
    assert torch.equal(channels_last, kept)
    torch.testing.assert_close(again, moved, rtol=0, atol=1e-3)
