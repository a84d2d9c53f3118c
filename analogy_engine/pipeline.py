"""Deep Image Analogy end to end: features → match → invert → reconstruct.

`analogy(a, b_prime, params)` returns A′ (A's structure, B′'s look) and B (B′'s structure, A's
look) at the inputs' full resolution, with both fields and per-pixel match confidences.
The loop's parts (`match_pyramids`, `reconstruct_direction`, `Direction`, `Work`, `Timer`) are
public because `analogy_engine.animate` runs each frame through the same ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

from . import fallback_colour, fields, match, subpixel
from .devices import resolve_device
from .guidance import Guidance, PairGuide, Prepared, pair_guide, prepare
from .imageio import check_size
from .invert import invert
from .params import (
    AnalogyParams,
    ParamsError,
    Settings,
    mix_weights,
    resolve,
    working_size,
)
from .plan import Plan, Step
from .plan import plan as make_plan
from .reconstruct import refine, vote, warp
from .types import AnalogyResult, CancelFn, Cancelled, InputError, ObserveFn, ProgressFn
from .upscale import upscale
from .vgg import FINE_LEVELS, VGG19, deprocess, preprocess

CONFIDENCE_LEVEL = 4  # relu4_1: the round trip must come back to the same kind of place


@dataclass
class Engine:
    """The loaded network on one device; load once, run many analogies."""

    vgg: VGG19
    device: torch.device

    @classmethod
    def load(cls, device: str = "auto") -> Engine:
        dev = resolve_device(device)
        if dev.type == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        engine = cls(vgg=VGG19.pretrained(dev), device=dev)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """One tiny forward and backward pass, so that the first real job does not pay the
        one-time set-up of the convolution kernels (seconds on a CPU) while the user waits."""
        # Channels last, as the pyramid and the inversion run the network.
        x = torch.zeros(1, 3, 32, 32, device=self.device).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        with torch.enable_grad():
            self.vgg.run(x, 0, 5).sum().backward()

    def serves(self, device: str) -> bool:
        return device == "auto" or self.device.type == device


def check_image(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(f"{name} must be a uint8 numpy array")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{name} must have shape (height, width, 3), got {image.shape}")
    check_size(image.shape[1], image.shape[0], name)


class Work:
    """Progress over weighted units of work; also the place where cancellation is polled."""

    def __init__(self, total: float, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
        self.total = max(total, 1e-9)
        self.done = 0.0
        self.stage = "starting"
        self.prefix = ""  # says which reference the stages are about, when there are several
        self.progress = progress
        self.cancel = cancel
        self.last_report = 0.0

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled")

    def begin(self, stage: str) -> None:
        self.stage = self.prefix + stage
        self._report(force=True)

    def add(self, units: float) -> None:
        self.done = min(self.total, self.done + units)
        self._report()

    def _report(self, force: bool = False) -> None:
        self.check()
        now = time.monotonic()
        if self.progress is not None and (force or now - self.last_report > 0.05):
            self.last_report = now
            self.progress(min(1.0, self.done / self.total), self.stage)


@dataclass
class Timer:
    """Seconds per stage (the report's "seconds"); on CUDA each reading waits for the device."""

    device: torch.device
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, since: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now


def to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """(H, W, 3) uint8 → (3, H, W) float in 0..1 on `device` (a copy)."""
    return torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1).float().div_(255.0)


def to_numpy(image: Tensor) -> np.ndarray:
    """(3, H, W) in 0..1 → (H, W, 3) uint8, clamped and rounded."""
    return image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def _resize(image: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(image.shape[1:]) == hw:
        return image
    return F.interpolate(image[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]


def _blend_weight(features: Tensor, alpha: float, threshold: float) -> Tensor:
    """W = α·M with M = 1 where the min–max-normalised squared magnitude reaches `threshold`
    (the paper's τ, `Settings.mask_threshold`)."""
    magnitude = features.pow(2).sum(0, keepdim=True)
    low, high = magnitude.min(), magnitude.max()
    normalised = (magnitude - low) / (high - low).clamp_min(1e-12)
    return alpha * (normalised >= threshold).to(features.dtype)


def _blend(own: Tensor, r: Tensor, alpha: float, threshold: float, keep: Tensor | None = None) -> Tensor:
    """The unknown image's features: its own where they are strong (weight α), R elsewhere.
    `keep` (1, h, w) scales the weight per cell (the structure mask: 0 takes R alone)."""
    weight = _blend_weight(own, alpha, threshold)
    if keep is not None:
        weight = weight * keep
    return own * weight + r * (1 - weight)


def _stacks(
    pair: list[Pyramid], step: Step, unknowns: tuple[Tensor, Tensor], keep: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """A with A′ against B with B′ at the step's level (one dot product is the paper's two-pair
    similarity), projected onto the step's principal components; `unknowns` is (A′, B). `keep`
    (the structure mask on A's grid) also weighs A's own half: where A′ is to take B′'s content,
    A's structure must not pull the match back to it either."""
    a, b_prime = pair[0][step.level], pair[1][step.level]
    stack_a = match.stack_pairs(a, unknowns[0])
    stack_b = match.stack_pairs(unknowns[1], b_prime)
    if keep is None:
        return match.project(stack_a, stack_b, step.dims)
    weighed = match.stack_pairs(a, unknowns[0], keep)
    return match.project(weighed, stack_b, step.dims, basis_of=(stack_a, stack_b))


def _hw(t: Tensor) -> tuple[int, int]:
    return (t.shape[-2], t.shape[-1])


Pyramid = list[Tensor]  # [preprocessed image, relu1_1, …, relu5_1], each (C, H, W)
# pull(step, "ab" or "ba") → (positions (H, W, 2) float, weight (H, W)) or None (no pull).
PullFn = Callable[[Step, str], "tuple[Tensor, Tensor] | None"]


@dataclass
class Direction:
    """One direction of the analogy (A → B′ or B′ → A) as the loop carries it between steps."""

    name: str  # "ab" or "ba"
    own: int  # index of the source image in a pyramid pair (0: A, 1: B′)
    field: Tensor | None = None
    similarity: Tensor | None = None
    unknown: Tensor | None = None  # A′ (or B) features at the current step, as the other match sees them
    matched: Tensor | None = None  # the same as this direction's own match uses them (B: Step.alpha_b)
    position: Tensor | None = None  # the field with sub-cell offsets (float), for finer grids

    @property
    def carried(self) -> Tensor | None:
        """What a finer grid starts from: the sub-cell position where there is one."""
        return self.position if self.position is not None else self.field


def extract_features(
    vgg: VGG19, images: list[Tensor], sizes: tuple[tuple[int, int], ...], work: Work,
    deep_matched: bool = True,
) -> list[Pyramid]:
    """VGG pyramids of each image at each size (sizes[i] for images[i]); cancel between layers.
    `deep_matched`: whether any level above vgg.FINE_LEVELS is matched on them (VGG19.pyramid)."""
    out = []
    for image, hw in zip(images, sizes, strict=True):
        levels = vgg.pyramid(preprocess(_resize(image, hw)[None]), step=work.check, deep_matched=deep_matched)
        out.append([x[0] for x in levels])
    return out


def _entry_features(
    step: Step, previous: Step | None, direction: Direction, own: Pyramid, other: Pyramid,
    settings: Settings, vgg: VGG19, work: Work,
) -> Tensor:
    """R at this step: the other image's look in the source's layout, before the blend."""
    if step.entry == "top":
        return own[step.level]
    assert direction.field is not None
    if step.entry == "carry":
        # The field, carried from the semantic pyramid to this grid, votes the other image's own
        # features: they exist at this level, so nothing needs inverting.
        return vote(other[step.level], direction.field, step.patch)
    assert previous is not None
    # The paper's deconvolution: vote at the previous level, invert down to this one.
    # Averaged over the patches that cover each cell, as the original does (a smooth target keeps
    # the inverted features free of blotches), each patch read at its sub-cell position.
    target = vote(other[previous.level], direction.carried, previous.patch)
    low = previous.level - step.invert_depth
    # Start from the other image's lower features read along the carried field, between cells
    # where it has sub-cell positions (rounding here would pull every match to even shifts).
    start_flow = fields.resample_flow(
        direction.carried, _hw(own[low]), _hw(other[low]), _hw(other[previous.level])
    )
    start = fields.sample(other[low], start_flow)
    _, per = step.entry_units[0 if direction.name == "ab" else 1]
    return invert(
        vgg, target, start, previous.level, step.invert_depth, step.lbfgs_iterations,
        settings.preset.lbfgs_history, step=lambda _evals, per=per: work.add(per),
    )


def _carry(field: Tensor | None, previous: Step | None, step: Step, own: int) -> Tensor:
    """The previous step's field on this step's grids (source `own`: 0 for A, 1 for B′)."""
    assert field is not None and previous is not None
    grids, before = (step.a_hw, step.b_hw), (previous.a_hw, previous.b_hw)
    return fields.upsample_field(field, grids[own], grids[1 - own], before[1 - own])


def _direction_stacks(
    pair: list[Pyramid], step: Step, ab: Direction, ba: Direction, keep: Tensor | None
) -> dict[str, tuple[Tensor, Tensor]]:
    """Each direction's (A-side, B-side) stacks: A → B′ sees B as the blend at α, B′ → A its own
    B at `Step.alpha_b` (one pair of stacks when the two are the same)."""
    assert ab.unknown is not None and ba.unknown is not None and ba.matched is not None
    stacks = _stacks(pair, step, (ab.unknown, ba.unknown), keep)
    own = stacks if ba.matched is ba.unknown else _stacks(pair, step, (ab.unknown, ba.matched), keep)
    return {"ab": stacks, "ba": own}


def _locate_between_cells(
    step: Step, pair: list[Pyramid], directions: tuple[Direction, Direction],
    stacks: dict[str, tuple[Tensor, Tensor]], last: bool, guide: PairGuide, threshold: float,
) -> None:
    """Sub-cell positions of both fields (`Direction.position`), for the next grid and the output.

    Between levels the similarities of the features just matched are used. At the last step A′
    and B are first rebuilt through the fields just found: there the features were built mostly
    (1 − α = 0.8) through the coarser field's positions and would pull the estimate back to them.
    """
    if last:
        ab, ba = directions
        keep = guide.keep(step.a_hw)
        a_warped = warp(pair[1][step.level], ab.field)
        ab.unknown = _blend(pair[0][step.level], a_warped, step.alpha, threshold, keep)
        b_warped = warp(pair[0][step.level], ba.field)
        ba.unknown = _blend(pair[1][step.level], b_warped, step.alpha, threshold)
        ba.matched = ba.unknown
        if step.alpha_b != step.alpha:
            ba.matched = _blend(pair[1][step.level], b_warped, step.alpha_b, threshold)
        stacks = _direction_stacks(pair, step, ab, ba, keep)
    for d in directions:
        own = stacks[d.name]
        d.position = match.subcell(own[d.own], own[1 - d.own], d.field, step.patch)


def _layout(
    src_hw: tuple[int, int], tgt_hw: tuple[int, int], weight: float, device: torch.device,
) -> tuple[tuple[Tensor, Tensor], float]:
    """The layout prior of a coarsest match (Preset.layout_b): each cell's own relative place in
    the target, with `weight`, reaching half the target's longer side."""
    place = fields.identity_field(src_hw, tgt_hw, device).float()
    return (place, torch.full(src_hw, weight, device=device)), max(tgt_hw) / 2


def match_pyramids(
    plan: Plan, pyramids: list[list[Pyramid]], settings: Settings, vgg: VGG19, work: Work,
    timer: Timer, generator: torch.Generator, observe: ObserveFn | None = None,
    start: tuple[Tensor, Tensor] | None = None, pull: PullFn | None = None,
    guide: PairGuide | None = None,
) -> tuple[Direction, Direction]:
    """The coarse-to-fine loop of `plan`: both fields at the working size, with similarities.

    `guide` holds the pair's region labels (every match stays in its region) and structure
    mask (scales A′'s blend weight), on each step's grids.

    Animation frames (analogy_engine.animate) start later in the pyramid: `start` = (A→B′, B′→A)
    float positions on the first step's grids, whose entry must then be "carry" (they vote the
    other image's features as a carried field does), and `pull(step, direction)` → (positions,
    weight) or None is the prior that step's PatchMatch is pulled towards (`match.patchmatch`).
    """
    directions = (Direction("ab", 0), Direction("ba", 1))
    guide = guide if guide is not None else PairGuide()
    previous: Step | None = None
    for step in plan.steps:
        work.check()
        pair = pyramids[step.pyramid]
        grids = (step.a_hw, step.b_hw)
        for d in directions:
            own, other = pair[d.own], pair[1 - d.own]
            src_hw, tgt_hw = grids[d.own], grids[1 - d.own]
            what = "A′" if d.name == "ab" else "B"
            if step.entry == "invert":
                work.begin(f"inverting level {previous.level} → {step.level} ({what})")  # type: ignore[union-attr]
            elif step.entry == "carry":
                work.begin(f"carrying the semantic field to level {step.level} ({what})")
            t = time.perf_counter()
            if step.entry == "carry" and previous is None:
                assert start is not None, "a plan that starts with a carry needs start fields"
                d.field = fields.clamp_field(start[d.own].round().long(), tgt_hw)
            elif step.entry == "carry":
                d.field = _carry(d.carried, previous, step, d.own)
            r = _entry_features(step, previous, d, own, other, settings, vgg, work)
            work.check()
            if step.entry == "top":
                d.field = fields.identity_field(src_hw, tgt_hw, own[step.level].device)
            elif step.entry == "invert":
                d.field = _carry(d.carried, previous, step, d.own)
            d.position = None
            keep = guide.keep(step.a_hw) if d.name == "ab" else None
            d.unknown = _blend(own[step.level], r, step.alpha, settings.mask_threshold, keep)
            d.matched = d.unknown
            if d.name == "ba" and step.alpha_b != step.alpha:
                d.matched = _blend(own[step.level], r, step.alpha_b, settings.mask_threshold)
            timer.add("inversion", t)
        t = time.perf_counter()
        stacks = _direction_stacks(pair, step, *directions, guide.keep(step.a_hw))
        for d in directions:
            src, tgt = stacks[d.name][d.own], stacks[d.name][1 - d.own]
            n, per = step.match_units[0 if d.name == "ab" else 1]
            work.begin(f"matching {step.label} ({'A→B′' if d.name == 'ab' else 'B′→A'})")
            radius = step.radius_cells or max(tgt.shape[0], tgt.shape[1])
            prior, reach = pull(step, d.name) if pull is not None else None, 1.0
            if step.entry == "top" and d.name == "ba" and settings.preset.layout_b > 0:
                prior, reach = _layout(src.shape[:2], tgt.shape[:2], settings.preset.layout_b, src.device)
            d.field, d.similarity = match.patchmatch(
                src, tgt, d.field, step.patch_b if d.name == "ba" else step.patch, step.iterations, radius,
                step.jumps, generator,
                step=lambda per=per: work.add(per), coherence=settings.preset.coherence,
                prior=prior, reach=reach, regions=guide.regions(step.a_hw, step.b_hw, d.name),
            )
        _locate_between_cells(
            step, pair, directions, stacks, step is plan.steps[-1], guide, settings.mask_threshold
        )
        timer.add("matching", t)
        if observe is not None:
            observe(step, directions[0].field, directions[1].field)
        previous = step
    t = time.perf_counter()
    _refine_positions(pyramids[plan.steps[-1].pyramid], directions, settings, work)
    timer.add("matching", t)
    return directions


def _refine_positions(pair: list[Pyramid], directions: tuple[Direction, Direction], settings: Settings,
                      work: Work) -> None:
    """The last step's positions moved to where the images' structures line up, to a fraction of
    a pixel (subpixel.refine: PatchMatch's cells and their parabola fits are off by ~1 px)."""
    iterations = settings.preset.subpixel_iterations
    if iterations <= 0:
        return
    work.begin("refining the matches to a fraction of a pixel")
    images = [deprocess(p[0][None])[0] for p in pair]
    for d in directions:
        assert d.carried is not None
        d.position = subpixel.refine(
            images[d.own], images[1 - d.own], d.carried.float(), iterations, step=work.check
        )


def analogy(
    a: np.ndarray,
    b_prime: np.ndarray,
    params: AnalogyParams | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    engine: Engine | None = None,
    observe: ObserveFn | None = None,
    guidance: Guidance | None = None,
) -> AnalogyResult:
    """Deep Image Analogy of A (content) and B′ (reference), both (H, W, 3) uint8 RGB.

    `engine` is the loaded network (`Engine.load`); it must serve `params.device`. `guidance`
    adds region maps, a structure mask and more references (analogy_engine.guidance). Raises
    InputError/ParamsError for unusable input (nothing is computed), Cancelled when `cancel()`
    returns True (polled between network layers and PatchMatch candidates). `observe(step,
    field_ab, field_ba)` sees the fields after each step of the plan (diagnostics).

    With more references each is matched with A on its own (its own working size and plan) and
    A′ takes, pixel by pixel, from the references its region allows: by the `params.mix` weights,
    or else from the one whose match is the most confident around it.
    """
    params = params if params is not None else AnalogyParams()
    settings = resolve(params)
    guidance = guidance if guidance is not None else Guidance()
    references = [b_prime, *guidance.references]
    check_image(a, "A")
    for i, ref in enumerate(references):
        check_image(ref, "B′" if i == 0 else f"reference {i + 1}")
    mix = mix_weights(params.mix)
    _check_mix(mix, len(references))
    if engine is None:
        raise ParamsError("analogy() needs a loaded engine: engine=Engine.load(device)")
    if not engine.serves(params.device):
        raise ParamsError(f"this engine runs on {engine.device.type}, the params ask for {params.device}")
    device = engine.device
    a_hw = working_size(*a.shape[:2], params.size, settings.ratio)
    refs_hw = [working_size(*ref.shape[:2], params.size, settings.ratio) for ref in references]
    prepared = guidance_prepare(guidance, a, references, a_hw, refs_hw, device)
    timer = Timer(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(params.seed)
    a_full = to_tensor(a, device)
    schedules = [make_plan(settings, engine.vgg, a_hw, hw) for hw in refs_hw]
    work = Work(sum(s.total_units for s in schedules), progress, cancel)
    pairs = []
    with torch.no_grad():
        for i, (ref, schedule) in enumerate(zip(references, schedules, strict=True)):
            guide = pair_guide(prepared, i)
            if len(references) > 1:
                work.prefix = f"{'B′' if i == 0 else f'reference {i + 1}'}: "
            pairs.append(_analogy_pair(
                engine.vgg, a_full, to_tensor(ref, device), schedule, settings, work, timer, generator,
                observe, guide,
            ))
        (a_prime, flow_ab, conf_a), ref_ab = _combine(pairs, prepared, mix, device)

    seconds = time.perf_counter() - started
    report = _report(params, settings, device, a, b_prime, a_hw, refs_hw[0], timer, seconds)
    if len(references) > 1:
        report["references"] = [
            {"input_size": [r.shape[1], r.shape[0]], "working_size": [hw[1], hw[0]],
             "share_of_a": round(float((ref_ab == i).float().mean()), 4)}
            for i, (r, hw) in enumerate(zip(references, refs_hw, strict=True))
        ]
    if prepared.guided:
        report["regions"] = prepared.colours
    if progress is not None:
        progress(1.0, "done")
    (b_img, flow_ba, conf_b) = pairs[0].b
    max_hw = (max(p.b_hw[0] for p in pairs), max(p.b_hw[1] for p in pairs))  # flows are clamped per pair
    return AnalogyResult(
        a_prime=to_numpy(a_prime),
        b=to_numpy(b_img),
        flow_ab=_flow_xy(flow_ab, max_hw),
        flow_ba=_flow_xy(flow_ba, _hw(a_full)),
        confidence_a_prime=conf_a.float().cpu().numpy(),
        confidence_b=conf_b.float().cpu().numpy(),
        report=report,
        b_more=[to_numpy(p.b[0]) for p in pairs[1:]],
        confidence_b_more=[p.b[2].float().cpu().numpy() for p in pairs[1:]],
        ref_ab=ref_ab.byte().cpu().numpy() if len(references) > 1 else None,
    )


def guidance_prepare(
    g: Guidance, a: np.ndarray, references: list[np.ndarray], a_hw: tuple[int, int],
    refs_hw: list[tuple[int, int]], device: torch.device,
) -> Prepared:
    """The checked guidance (labels and mask as tensors): raises InputError before any work."""
    return prepare(
        g, a.shape[:2], [r.shape[:2] for r in references], [(a_hw, hw) for hw in refs_hw], device
    )


def check_guidance(a: np.ndarray, b_prime: np.ndarray, params: AnalogyParams, g: Guidance) -> None:
    """Everything `analogy()` would refuse about `g` (sizes, one-sided or vanishing regions, too
    many references, a mix of the wrong length), without loading a network or matching: the
    server calls it when a job arrives, so a bad job is refused before it is queued."""
    settings = resolve(params)
    references = [b_prime, *g.references]
    for i, ref in enumerate(references):
        check_image(ref, "B′" if i == 0 else f"reference {i + 1}")
    _check_mix(mix_weights(params.mix), len(references))
    a_hw = working_size(*a.shape[:2], params.size, settings.ratio)
    refs_hw = [working_size(*ref.shape[:2], params.size, settings.ratio) for ref in references]
    guidance_prepare(g, a, references, a_hw, refs_hw, torch.device("cpu"))


def _check_mix(mix: tuple[float, ...], references: int) -> None:
    if mix and len(mix) != references:
        raise ParamsError(
            f"mix has {len(mix)} weight(s) for {references} reference(s): give one per reference"
        )
    if mix and sum(mix) <= 0:
        raise ParamsError("mix needs at least one weight above 0")


@dataclass
class _Pair:
    """One reference's analogy with A at full size: (image, flow (y, x), confidence) each way."""

    a_prime: tuple[Tensor, Tensor, Tensor]
    b: tuple[Tensor, Tensor, Tensor]
    b_hw: tuple[int, int]  # the reference's full size


def _analogy_pair(
    vgg: VGG19, a_full: Tensor, b_full: Tensor, schedule: Plan, settings: Settings, work: Work,
    timer: Timer, generator: torch.Generator, observe: ObserveFn | None, guide: PairGuide,
) -> _Pair:
    """Features → both fields → both images at full size, for A and one reference."""
    work.begin("features")
    t = time.perf_counter()
    used = sorted({step.pyramid for step in schedule.steps})
    pyramids: list[list[Pyramid]] = [[], []]
    for p in used:
        deep = any(step.level > FINE_LEVELS for step in schedule.steps if step.pyramid == p)
        pyramids[p] = extract_features(vgg, [a_full, b_full], schedule.pyramid_hw[p], work, deep)
    work.add(schedule.feature_units)
    timer.add("features", t)
    ab, ba = match_pyramids(schedule, pyramids, settings, vgg, work, timer, generator, observe, guide=guide)
    t = time.perf_counter()
    work.begin("reconstructing at full resolution")
    pair = pyramids[schedule.steps[-1].pyramid]
    a_hw, b_hw = schedule.steps[-1].a_hw, schedule.steps[-1].b_hw
    outputs = {}
    for d, src_full, tgt_full, tgt_hw in ((ab, a_full, b_full, b_hw), (ba, b_full, a_full, a_hw)):
        back = ba if d is ab else ab
        assert d.carried is not None and back.carried is not None
        conf = fallback_colour.confidence(pair[d.own][CONFIDENCE_LEVEL], d.carried, back.carried)
        keep = guide.keep(_hw(conf)) if d is ab else None
        # Where the structure mask asks for B′'s content, a match that does not come back to A
        # is the point, not a failure: the fallback must not restore A's structure there.
        collage = 1 - keep[0] if keep is not None else None
        outputs[d.name] = reconstruct_direction(d, src_full, tgt_full, tgt_hw, settings, work, conf, collage)
        work.add(schedule.reconstruct_units / 2)
    timer.add("reconstruction", t)
    return _Pair(outputs["ab"], outputs["ba"], _hw(b_full))


# How far around a pixel the confidence of each reference is pooled before A′ chooses between
# them (a share of A's shorter side), and how sharply: choices follow whole regions, not pixels,
# and switch with a short cross-fade where two references are about as good.
CHOICE_RADIUS = 0.03
CHOICE_SOFTNESS = 0.03


def _combine(
    pairs: list[_Pair], prepared: Prepared, mix: tuple[float, ...], device: torch.device
) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
    """A′ (image, flow, confidence) from every reference's A′, and which reference each pixel's
    flow points into: the mix weights, or a soft choice of the most confident reference, within
    the references each pixel's region allows."""
    if len(pairs) == 1:
        image, flow, conf = pairs[0].a_prime
        return (image, flow, conf), torch.zeros(conf.shape, dtype=torch.long, device=device)
    confs = torch.stack([p.a_prime[2] for p in pairs])  # (N, H, W)
    allowed = torch.ones_like(confs, dtype=torch.bool)
    for i in range(len(pairs)):
        mask = prepared.allowed(i)
        if mask is not None:
            allowed[i] = mask
    if mix:
        weights = torch.tensor(mix, device=device, dtype=confs.dtype)[:, None, None].expand_as(confs).clone()
    else:
        h, w = confs.shape[1:]
        radius = max(1, round(CHOICE_RADIUS * min(h, w)))
        pooled = F.avg_pool2d(confs[None], 2 * radius + 1, stride=1, padding=radius,
                              count_include_pad=False)[0]
        pooled = pooled.masked_fill(~allowed, -1.0)
        weights = torch.exp((pooled - pooled.amax(0, keepdim=True)) / CHOICE_SOFTNESS)
    weights = weights * allowed
    # A region that the mix gives only zero weights still takes its allowed references, evenly.
    total = weights.sum(0, keepdim=True)
    weights = torch.where(total > 0, weights, allowed.to(weights.dtype))
    weights = weights / weights.sum(0, keepdim=True).clamp_min(1e-12)
    image = sum(w[None] * p.a_prime[0] for w, p in zip(weights, pairs, strict=True))
    conf = (weights * confs).sum(0)
    choice = weights.argmax(0)
    flow = torch.zeros_like(pairs[0].a_prime[1])
    for i, p in enumerate(pairs):
        inside = torch.stack((p.a_prime[1][..., 0].clamp(0, p.b_hw[0] - 1),
                              p.a_prime[1][..., 1].clamp(0, p.b_hw[1] - 1)), -1)
        flow = torch.where((choice == i)[..., None], inside, flow)
    return (image, flow, conf), choice


def reconstruct_direction(
    d: Direction, src_full: Tensor, tgt_full: Tensor, tgt_hw: tuple[int, int], settings: Settings,
    work: Work, conf: Tensor | None = None, collage: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(image, flow, confidence) at the source's full size from the working-size field.

    `conf` is the measured confidence on the working grid (`fallback_colour.confidence`): where
    it is low, and `settings.fallback` is on, the source recoloured by the confident matches'
    colours replaces the copied patches; it is also the confidence returned. Without it (the
    animation's frames) the level-1 patch similarity is returned and nothing is replaced.
    `collage` (working grid, 0..1): where the structure mask took B′'s content; nothing is
    replaced there, and the confidence returned is at least `collage`, so that a confidence
    mask shows it.
    """
    assert d.field is not None and d.similarity is not None
    patch = settings.preset.full_res_patch
    flow, image = upscale(d.carried, tgt_hw, _hw(src_full), tgt_full, patch, work.check)
    if conf is not None and settings.fallback:
        image = fallback_colour.fill(src_full, image, conf, step=work.check, collage=collage)
    if conf is not None and collage is not None:
        conf = torch.maximum(conf, collage)
    if settings.refine:
        image = refine(src_full, image, step=work.check)
    measured = conf if conf is not None else d.similarity
    confidence = F.interpolate(
        measured[None, None].float(), size=_hw(src_full), mode="bilinear", align_corners=False
    )[0, 0].clamp(0, 1)
    return image, flow, confidence


def _report(
    params: AnalogyParams, settings: Settings, device: torch.device, a: np.ndarray, b_prime: np.ndarray,
    a_hw: tuple[int, int], b_hw: tuple[int, int], timer: Timer, total_seconds: float,
) -> dict:
    return {
        "params": params.to_dict(),
        "preset": settings.preset.name,
        "alphas": list(settings.alphas),
        "alphas_b": [round(a, 4) for a in settings.b_alphas],
        "mask_threshold": settings.mask_threshold,
        "ratio": settings.ratio,
        "refine": settings.refine,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "input_size": {"a": [a.shape[1], a.shape[0]], "b_prime": [b_prime.shape[1], b_prime.shape[0]]},
        "working_size": {"a": [a_hw[1], a_hw[0]], "b_prime": [b_hw[1], b_hw[0]]},
        "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        "total_seconds": round(total_seconds, 3),
        "peak_memory_mb": _peak_memory_mb(device),
        "torch": torch.__version__,
    }


def _flow_xy(flow_yx: Tensor, tgt_hw: tuple[int, int]) -> np.ndarray:
    """(y, x) → (x, y), kept inside the target's pixel centres [0, W−1] × [0, H−1]."""
    y = flow_yx[..., 0].clamp(0, tgt_hw[0] - 1)
    x = flow_yx[..., 1].clamp(0, tgt_hw[1] - 1)
    return np.ascontiguousarray(torch.stack((x, y), -1).float().cpu().numpy(), dtype=np.float32)


def _peak_memory_mb(device: torch.device) -> dict[str, float]:
    peak: dict[str, float] = {}
    if resource is not None:  # Unix only
        peak["process_rss"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if device.type == "cuda":
        peak["cuda_allocated"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak

