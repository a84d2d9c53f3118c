"""The coarse-to-fine schedule: which pyramid and level each step matches, and how it enters."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from analogy_engine import PRESETS, AnalogyParams, Engine
from analogy_engine.params import resolve
from analogy_engine.pipeline import _blend, _blend_weight
from analogy_engine.plan import SEMANTIC_FROM, grid, plan, semantic_size
from analogy_engine.vgg import VGG19


@pytest.fixture(scope="module")
def vgg(engine: Engine) -> VGG19:
    """The session's CPU model's network (conftest.py): the weights load once per run."""
    return engine.vgg


def test_semantic_pyramid_then_working_size(vgg: VGG19) -> None:
    """448² with the default: levels 5..1 at half scale (224²), then levels 2 and 1 at 448²,
    the first of them entered by carrying the field (same 224² grid), not by inversion."""
    settings = resolve(AnalogyParams())
    schedule = plan(settings, vgg, (448, 448), (448, 320))
    steps = [(s.pyramid, s.level, s.entry) for s in schedule.steps]
    assert steps == [
        (0, 5, "top"), (0, 4, "invert"), (0, 3, "invert"), (0, 2, "invert"), (0, 1, "invert"),
        (1, 2, "carry"), (1, 1, "invert"),
    ]
    assert schedule.pyramid_hw == (((224, 224), (224, 160)), ((448, 448), (448, 320)))
    carry = schedule.steps[5]
    assert (carry.a_hw, carry.b_hw) == (grid((448, 448), 2), grid((448, 320), 2))
    assert schedule.steps[4].a_hw == carry.a_hw  # half-scale level 1 = full-scale level 2
    # α: 1 at the top, then the weight-3 set by level (0.9 at relu4_1 … 0.2 at relu1_1).
    assert [s.alpha for s in schedule.steps] == [1.0, 0.9, 0.8, 0.7, 0.2, 0.7, 0.2]
    # B′ → A's coarsest match reads wider patches (Preset.coarsest_patch_b); the rest as A → B′.
    assert [s.patch for s in schedule.steps] == [3, 3, 3, 5, 5, 5, 5]
    assert [s.patch_b for s in schedule.steps] == [5, 3, 3, 5, 5, 5, 5]
    # B in B′ → A's own match: half of it (params.B_ALPHA_SCALE).
    assert [s.alpha_b for s in schedule.steps] == pytest.approx([1.0, 0.45, 0.4, 0.35, 0.1, 0.35, 0.1])


def test_wide_coarsest_patch_only_where_the_grid_holds_it(vgg: VGG19) -> None:
    """B′ → A's 5×5 coarsest patch needs grids at least 10 cells wide: a 128-px input's 8×8
    relu5_1 grid (or a GIMP test's thumbnail) keeps 3×3, which would otherwise read mostly the
    repeated border."""
    settings = resolve(AnalogyParams())
    assert plan(settings, vgg, (160, 176), (160, 160)).steps[0].patch_b == 5
    assert plan(settings, vgg, (128, 128), (128, 128)).steps[0].patch_b == 3
    assert plan(settings, vgg, (160, 176), (144, 160)).steps[0].patch_b == 3


def test_small_working_sizes_use_one_pyramid(vgg: VGG19) -> None:
    settings = resolve(AnalogyParams())
    schedule = plan(settings, vgg, (SEMANTIC_FROM - 16, 400), (400, 400))
    assert [(s.pyramid, s.level) for s in schedule.steps] == [(1, 5), (1, 4), (1, 3), (1, 2), (1, 1)]


def test_semantic_levels_zero_is_the_original_schedule(vgg: VGG19) -> None:
    preset = dataclasses.replace(PRESETS["balanced"], semantic_levels=0)
    schedule = plan(resolve(AnalogyParams(), preset), vgg, (448, 448), (448, 448))
    assert [(s.pyramid, s.level, s.entry) for s in schedule.steps] == [
        (1, 5, "top"), (1, 4, "invert"), (1, 3, "invert"), (1, 2, "invert"), (1, 1, "invert"),
    ]


def test_work_units_cover_every_step(vgg: VGG19) -> None:
    schedule = plan(resolve(AnalogyParams(preset="faithful")), vgg, (448, 448), (448, 448))
    parts = schedule.feature_units + schedule.reconstruct_units
    for step in schedule.steps:
        assert all(n > 0 and per > 0 for n, per in step.match_units)
        if step.entry == "invert":
            assert all(n > 0 and per > 0 for n, per in step.entry_units)
        parts += sum(n * per for n, per in step.match_units + step.entry_units)
    assert parts == pytest.approx(schedule.total_units)
    assert semantic_size((448, 608)) == (224, 304) and semantic_size((400, 304)) == (192, 144)


@pytest.mark.parametrize(
    ("mode", "tau"),
    [("photo-to-style", 0.05), ("style-to-style", 0.05), ("style-to-photo", 0.05), ("photo-to-photo", 0.0)],
)
def test_blend_threshold_follows_the_mode(mode: str, tau: float) -> None:
    """τ of the blend: the paper's 0.05 where B′ is a style (A's weak cells take B′'s content),
    0 between two photos (weak textures are matched as each photo's own)."""
    assert resolve(AnalogyParams(mode=mode)).mask_threshold == tau


def test_blend_keeps_weak_cells_only_at_tau_zero() -> None:
    """A map with one strong cell and weak texture elsewhere: at τ = 0.05 the weak cells take R
    alone (weight 0), at τ = 0 every cell keeps its own features at α."""
    features = torch.full((4, 3, 3), 0.1)
    features[:, 1, 1] = 3.0
    features[0, 0, 0] = 0.12  # weak, but not the weakest: normalised it is far below 0.05
    weight = _blend_weight(features, 0.7, 0.05)
    assert weight[0, 1, 1] == pytest.approx(0.7) and float(weight.sum()) == pytest.approx(0.7)
    assert torch.allclose(_blend_weight(features, 0.7, 0.0), torch.full((1, 3, 3), 0.7))
    own, r = torch.ones(4, 3, 3), torch.zeros(4, 3, 3)
    blended = _blend(own, r, 0.7, 0.0)
    assert torch.allclose(blended, torch.full_like(blended, 0.7))
