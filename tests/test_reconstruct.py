"""From fields back to pixels: warp, vote, guided filter and the photo → photo refinement."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from analogy_engine import fields
from analogy_engine.reconstruct import box_filter, guided_filter, refine, vote, warp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CPU = torch.device("cpu")


@lru_cache(maxsize=2)
def photo(side: int = 64) -> torch.Tensor:
    """examples/a.jpg as a (3, side, side) float tensor in 0..1."""
    with Image.open(EXAMPLES / "a.jpg") as image:
        rgb = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0


def shifted_field(hw: tuple[int, int], tgt_hw: tuple[int, int], dy: int, dx: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(hw[0]), torch.arange(hw[1]), indexing="ij")
    return fields.clamp_field(torch.stack((ys + dy, xs + dx), -1), tgt_hw)


def high_pass(x: torch.Tensor) -> torch.Tensor:
    return x - box_filter(x, 2)


def test_identity_field_gives_the_input_back() -> None:
    image = photo()
    field = fields.identity_field((64, 64), (64, 64), CPU)
    assert torch.equal(warp(image, field), image)
    for patch in (1, 3, 5):
        assert torch.allclose(vote(image, field, patch), image, atol=1e-6), patch


def test_warp_follows_the_field() -> None:
    image = photo()
    field = shifted_field((40, 50), (64, 64), 7, -3)  # a smaller source, clamped at the border
    out = warp(image, field)
    assert out.shape == (3, 40, 50)
    assert torch.equal(out[:, :, 3:], image[:, 7:47, 0:47])
    assert torch.equal(out[:, :, :3], image[:, 7:47, :1].expand(3, 40, 3))  # clamped to column 0


@pytest.mark.parametrize("patch", [3, 5])
def test_vote_on_a_constant_shift_is_the_shifted_image(patch: int) -> None:
    image = photo()
    dy, dx = 5, -4
    field = shifted_field((64, 64), (64, 64), dy, dx)
    out = vote(image, field, patch)
    r = patch // 2
    # Inside: every patch covering p (and its match) lies where the shift is not clamped.
    y0, y1 = r, 64 - dy - r
    x0, x1 = -dx + r, 64 - r
    expected = image[:, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    assert torch.allclose(out[:, y0:y1, x0:x1], expected, atol=1e-6)
    # A broken vote (say, values(field(p − o)) without the + o) would blur instead.
    assert (out[:, y0:y1, x0:x1] - expected).abs().max() < 1e-5


def test_vote_averages_the_overlapping_patches() -> None:
    # Two halves matched with different shifts: next to the seam, p gets a mix of both.
    image = photo()
    left = shifted_field((64, 64), (64, 64), 0, 0)
    right = shifted_field((64, 64), (64, 64), 9, 0)
    field = torch.where((torch.arange(64) >= 32).view(1, 64, 1), right, left)
    out = vote(image, field, 3)
    assert torch.allclose(out[:, 20:40, 28:31], image[:, 20:40, 28:31], atol=1e-6)  # left, untouched
    assert torch.allclose(out[:, 20:40, 33:36], image[:, 29:49, 33:36], atol=1e-6)  # right, shifted
    # At the seam's columns 31 and 32 the 3 × 3 votes split 6 : 3 and 3 : 6.
    both = (image[:, 20:40, 31], image[:, 29:49, 31])
    assert torch.allclose(out[:, 20:40, 31], (2 * both[0] + both[1]) / 3, atol=1e-6)
    assert out.amin() >= image.amin() - 1e-6 and out.amax() <= image.amax() + 1e-6  # averages only


def vote_reference(values: torch.Tensor, field: torch.Tensor, patch: int) -> torch.Tensor:
    """The vote offset by offset: grid_sample (float fields) or clamped indexing (whole cells)."""
    c, th, tw = values.shape
    h, w = field.shape[:2]
    r = patch // 2
    total = torch.zeros(c, h, w, dtype=torch.float64)
    count = torch.zeros(1, h, w, dtype=torch.float64)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ys, xs = torch.arange(h) - dy, torch.arange(w) - dx
            valid = (((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]).double()
            source = field[ys.clamp(0, h - 1)][:, xs.clamp(0, w - 1)] + torch.tensor((dy, dx))
            if source.is_floating_point():
                y = source[..., 0].clamp(0, th - 1) * (2 / (th - 1)) - 1
                x = source[..., 1].clamp(0, tw - 1) * (2 / (tw - 1)) - 1
                grid = torch.stack((x, y), -1)[None].double()
                got = torch.nn.functional.grid_sample(values[None].double(), grid, align_corners=True)[0]
            else:
                got = values.double()[:, source[..., 0].clamp(0, th - 1), source[..., 1].clamp(0, tw - 1)]
            total += got * valid
            count += valid
    return (total / count).float()


@pytest.mark.parametrize("patch", [1, 3, 5])
def test_vote_equals_the_offset_by_offset_vote(patch: int) -> None:
    """The row-gather vote (one weighted sum per offset) gives the offset-by-offset average,
    for whole-cell and sub-cell fields reaching past every border, on maps of different sizes."""
    image = photo(32)[:, :20, :27]
    g = torch.Generator().manual_seed(3)
    ys, xs = torch.rand(15, 11, generator=g) * 24 - 2, torch.rand(15, 11, generator=g) * 31 - 2
    for field in (torch.stack((ys, xs), -1), torch.stack((ys, xs), -1).round().long()):
        expected = vote_reference(image, field, patch)
        torch.testing.assert_close(vote(image, field, patch), expected, rtol=0, atol=2e-6)


def step_image(h: int = 32, w: int = 32, edge: int = 16) -> torch.Tensor:
    image = torch.full((3, h, w), 0.2)
    image[:, :, edge:] = 0.8
    return image


def test_guided_filter_keeps_a_step_edge_of_the_guide() -> None:
    guide = step_image()
    noise = 0.05 * torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(0))
    src = guide + noise
    out = guided_filter(guide, src, radius=4, eps=1e-3)
    # The edge stays a step: the columns either side keep their levels …
    assert (out[:, :, 15] - 0.2).abs().mean() < 0.03 and (out[:, :, 16] - 0.8).abs().mean() < 0.03
    # … where a plain box filter of the same radius blurs it.
    box = box_filter(src, 4)
    assert (box[:, :, 15] - 0.2).abs().mean() > 0.15
    # Flat areas are smoothed: most of the noise is gone.
    assert (out - guide)[:, :, 2:12].std() < 0.4 * noise[:, :, 2:12].std()


def test_guided_filter_is_linear_and_keeps_constants() -> None:
    guide = photo(32)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(3, 32, 32, generator=g), torch.rand(3, 32, 32, generator=g)
    f = lambda s: guided_filter(guide, s, 3, 1e-3)  # noqa: E731
    assert torch.allclose(f(0.3 * x + 2.0 * y), 0.3 * f(x) + 2.0 * f(y), atol=1e-4)
    assert torch.allclose(f(torch.full((3, 32, 32), 0.7)), torch.full((3, 32, 32), 0.7), atol=1e-5)


def test_refine_takes_the_results_tone() -> None:
    source = photo() * 0.8 + 0.1  # so that the tinted copy needs no clipping
    assert torch.allclose(refine(source, source), source, atol=1e-6)
    tint = torch.tensor((0.1, -0.05, 0.08)).view(3, 1, 1)
    assert torch.allclose(refine(source, source + tint), source + tint, atol=1e-4)
    out = refine(photo(), 1.0 - photo())  # clamped to the valid range
    assert out.min() >= 0 and out.max() <= 1


def test_refine_keeps_detail_the_result_already_has() -> None:
    # A result with the source's detail and another tone (as from a well-aligned vote).
    source = photo(96)
    result = (source * torch.tensor((0.7, 1.0, 1.2)).view(3, 1, 1) + 0.05).clamp(0, 1)
    out = refine(source, result)
    corr = np.corrcoef(high_pass(out).flatten(), high_pass(source).flatten())[0, 1]
    assert corr > 0.95
    assert (box_filter(out, 4) - box_filter(result, 4)).abs().mean() < 0.02


def test_refine_restores_the_sources_detail_under_a_blurred_result() -> None:
    # The voted result lost A's fine detail (patch averaging) and has another tone.
    source = photo(96)
    tone = (source * torch.tensor((0.7, 1.0, 1.25)).view(3, 1, 1) + 0.05).clamp(0, 1)
    result = box_filter(tone, 3)
    out = refine(source, result)
    # The result's tone is taken: low frequencies follow the result (measured error 0.007) …
    assert (box_filter(out, 4) - box_filter(result, 4)).abs().mean() < 0.02
    # … and the source's detail comes back: output = A + S(result) − S(A) should carry A − S(A).
    # Measured with eps 1e-3: amplitude 0.34 of the source's, correlation 0.79 (eps 1e-2: 0.47 / 0.91;
    # eps 1e-1: 0.76 / 0.98). The blurred result alone has amplitude 0.20.
    amplitude = high_pass(out).abs().mean() / high_pass(source).abs().mean()
    corr = np.corrcoef(high_pass(out).flatten(), high_pass(source).flatten())[0, 1]
    assert high_pass(result).abs().mean() / high_pass(source).abs().mean() < 0.3
    assert corr >= 0.9 and amplitude >= 0.6, f"detail kept: amplitude {amplitude:.2f}, corr {corr:.2f}"


def box_reference(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Window means by summed-area table, border repeated (what box_filter promises)."""
    pad = (radius + 1, radius, radius + 1, radius)  # one extra row/column: the table's zero edge
    padded = torch.nn.functional.pad(x[None].double(), pad, mode="replicate")[0]
    padded[:, 0, :] = 0
    padded[:, :, 0] = 0
    table = padded.cumsum(1).cumsum(2)
    k = 2 * radius + 1
    h, w = x.shape[1:]
    total = table[:, k:, k:] - table[:, :h, k:] - table[:, k:, :w] + table[:, :h, :w]
    return (total / (k * k)).float()


@pytest.mark.parametrize("radius", [1, 3, 10])
def test_box_filter_is_a_window_mean(radius: int) -> None:
    x = photo(32)[:, :20, :27]
    assert torch.allclose(box_filter(x, radius), box_reference(x, radius), atol=1e-5)


def test_box_filter_cost_does_not_grow_with_radius() -> None:
    x = torch.rand(3, 300, 300, generator=torch.Generator().manual_seed(0))

    def best_of(radius: int) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            box_filter(x, radius)
            times.append(time.perf_counter() - started)
        return min(times)

    small, large = best_of(2), best_of(40)
    assert large < 5 * small + 0.01, f"r=2: {small * 1000:.1f} ms, r=40: {large * 1000:.1f} ms"
