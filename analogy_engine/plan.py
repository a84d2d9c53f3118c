"""The coarse-to-fine schedule, computed once: which features each step matches, with what knobs.

The original runs one VGG pyramid from relu5_1 down to relu1_1. Its working scale decides what
the coarse levels can see: relu5_1's receptive field is a fixed number of pixels, so at the
full working size a face is too big for it to be seen whole and matches become local (blotches,
broken faces), while at half the size — the original's `ratio 0.5`, which it recommends for
faces — the coarse matches are semantic but the fine detail is lost. The plan therefore runs the
coarse levels on a *semantic* pyramid at half the working size and then carries its field to the
working-size pyramid at the level whose grid is the same size (half-scale level k has the grid of
full-scale level k + 1), where the fine levels add the detail. `Preset.semantic_levels` says how
many levels run at half scale (0: one pyramid, as the original).

`plan()` feeds both the loop in `pipeline` and the progress accounting, so the two cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import match
from .params import Settings
from .vgg import CHANNELS, VGG19

Entry = Literal["top", "invert", "carry"]
HW = tuple[int, int]

# The shorter working side from which the coarse levels run at half scale. Below it the working
# size is itself small enough for relu5_1 to see a face whole (the original's ratio-0.5 faces
# work at about 200-350 px), and a half-size pyramid would be too small to hold the layout.
SEMANTIC_FROM = 256

# Gathers run at about 1/40 of a convolution's multiply-add rate, and each of the k² gathers of a
# scored candidate has a fixed cost of some tens of microseconds (measured on CPU).
GATHER_COST = 40
GATHER_OVERHEAD = 2e6


@dataclass(frozen=True)
class Step:
    """One level of the coarse-to-fine loop: how its A′/B features are made, then how it matches.

    `entry` says where this step's A′ and B features come from: "top" (copies of A and B′, the
    coarsest step), "invert" (the previous step's field votes the other image's features one level
    up, inverted down to this level: the paper's deconvolution), or "carry" (the previous step ran
    on the semantic pyramid at this grid size: its field votes the other image's own features at
    this level, nothing to invert).
    """

    pyramid: int  # 0: the semantic pyramid (half the working size), 1: the working size
    level: int  # VGG level 5..1 (relu5_1 .. relu1_1)
    entry: Entry
    alpha: float  # how much of the image's own features A′ (and B) keep where they are strong
    alpha_b: float  # the same for B in B′ → A's own match (params.B_ALPHA_SCALE)
    patch: int
    patch_b: int  # B′ → A's patch (Preset.coarsest_patch_b at the top, else `patch`)
    iterations: int
    radius_cells: int  # random-search radius in target cells; 0: the whole map
    jumps: tuple[int, ...]
    dims: int | None
    lbfgs_iterations: int  # entry "invert" only
    invert_depth: int  # entry "invert" only: how many levels below the previous one it optimises
    a_hw: HW  # feature grid of A at this step
    b_hw: HW  # feature grid of B′ at this step
    match_units: tuple[tuple[int, float], tuple[int, float]]  # (candidates, units each) ab, ba
    entry_units: tuple[tuple[int, float], tuple[int, float]]  # (evaluations, units each) ab, ba

    @property
    def label(self) -> str:
        return f"level {self.level}" + (" (semantic)" if self.pyramid == 0 else "")


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    pyramid_hw: tuple[tuple[HW, HW], ...]  # (A, B′) image sizes of each pyramid, index = pyramid
    feature_units: float
    reconstruct_units: float

    @property
    def total_units(self) -> float:
        total = self.feature_units + self.reconstruct_units
        for step in self.steps:
            total += sum(n * per for n, per in step.match_units + step.entry_units)
        return total


def grid(image_hw: HW, level: int) -> HW:
    """The feature grid of VGG level 1..5 for an image (sides are multiples of 16, see params)."""
    scale = 2 ** (level - 1)
    return (image_hw[0] // scale, image_hw[1] // scale)


def semantic_size(image_hw: HW) -> HW:
    """Half the working size, each side a multiple of 16 (so that its relu5_1 grid is exact)."""
    return (max(16, (image_hw[0] // 32) * 16), max(16, (image_hw[1] // 32) * 16))


def plan(settings: Settings, vgg: VGG19, a_hw: HW, b_hw: HW) -> Plan:
    """The steps for working sizes `a_hw` and `b_hw` (multiples of 16)."""
    preset = settings.preset
    semantic = preset.semantic_levels if min(*a_hw, *b_hw) >= SEMANTIC_FROM else 0
    sizes = ((semantic_size(a_hw), semantic_size(b_hw)), (a_hw, b_hw))
    # (pyramid, level) in the order they run.
    order = [(0, level) for level in range(5, 5 - semantic, -1)]
    order += [(1, level) for level in range(min(5, 7 - semantic), 0, -1)]
    steps = []
    for index, (pyramid, level) in enumerate(order):
        i = 5 - level  # index into the presets' per-level tuples (coarse → fine)
        src_a, src_b = sizes[pyramid]
        ga, gb = grid(src_a, level), grid(src_b, level)
        if index == 0:
            entry: Entry = "top"
        elif order[index - 1][0] != pyramid:
            entry = "carry"
        else:
            entry = "invert"
        previous = order[index - 1][1] if index else 6
        inverting = entry == "invert"
        depth = min(preset.invert_depth[5 - previous], previous) if inverting else 0
        lbfgs = preset.lbfgs_iterations[5 - previous] if inverting else 0
        match_units = []
        entry_units = []
        patch = patch_b = preset.patch_sizes[i]
        # A patch wider than half the map would mostly read its repeated border (tiny inputs).
        if entry == "top" and min(*ga, *gb) >= 2 * preset.coarsest_patch_b:
            patch_b = preset.coarsest_patch_b
        for src, tgt, image, k in ((ga, gb, src_a, patch), (gb, ga, src_b, patch_b)):
            radius = preset.search_radii[i] or max(tgt)
            n = match.count_candidates(src, preset.pm_iterations[i], radius, preset.propagation_jumps[i])
            dims = min(preset.match_dims[i] or 2 * CHANNELS[level], 2 * CHANNELS[level])
            per = k**2 * (src[0] * src[1] * dims * GATHER_COST + GATHER_OVERHEAD)
            match_units.append((n + 1, per))
            if inverting:
                low = previous - depth
                low_hw = grid(image, low) if low > 0 else image
                entry_units.append((max(1, lbfgs * 5 // 4), 3 * vgg.flops(low, previous, *low_hw)))
            else:
                entry_units.append((0, 0.0))
        alpha = 1.0 if entry == "top" else settings.alphas[i - 1]
        alpha_b = 1.0 if entry == "top" else settings.b_alphas[i - 1]
        steps.append(
            Step(
                pyramid=pyramid, level=level, entry=entry, alpha=alpha, alpha_b=alpha_b,
                patch=patch, patch_b=patch_b, iterations=preset.pm_iterations[i],
                radius_cells=preset.search_radii[i], jumps=preset.propagation_jumps[i],
                dims=preset.match_dims[i], lbfgs_iterations=lbfgs, invert_depth=depth,
                a_hw=ga, b_hw=gb, match_units=(match_units[0], match_units[1]),
                entry_units=(entry_units[0], entry_units[1]),
            )
        )
    used = {pyramid for pyramid, _ in order}
    feature_units = sum(
        2 * vgg.flops(0, 5, *sizes[p][0]) + vgg.flops(0, 5, *sizes[p][1]) for p in used
    )
    plan_ = Plan(tuple(steps), sizes, feature_units, 0.0)
    return Plan(plan_.steps, sizes, feature_units, 0.05 * plan_.total_units)
