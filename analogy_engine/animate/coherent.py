"""Temporally coherent Deep Image Analogy over a sequence of frames, one B′ for all.

The first frame (and every frame with `independent=True`) runs the whole coarse-to-fine plan.
Every later frame starts where the previous one ended: its motion from the previous frame
(`motion.lucas_kanade`) carries the previous frame's working-size fields forward, they vote B′'s
features into the frame's A′ features (the previous result's features, moved along the motion),
and only the finest level is matched again, pulled towards the carried fields where the motion
is tracked (forward–backward check) and free where it is not (occlusions, content coming into
view), so there the frame finds its own analogy from its tracked neighbours. A′ is then rebuilt
from B′'s own pixels through the field, as `analogy()` does, so carried results stay sharp
instead of blurring with every warp.

Frames are processed one at a time (`animate_frames` is a generator); memory holds B′'s features
and about two frames.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import fields
from ..params import AnalogyParams, ParamsError, Settings, resolve, working_size
from ..pipeline import (
    Direction,
    Engine,
    Pyramid,
    Timer,
    Work,
    check_image,
    extract_features,
    match_pyramids,
    reconstruct_direction,
    to_numpy,
    to_tensor,
)
from ..plan import Plan, Step
from ..plan import plan as make_plan
from ..types import CancelFn, Cancelled, InputError, ProgressFn
from .motion import base_grid, lucas_kanade, occlusion, resize_flow, warping_error

# Motion and the warping error are measured on frames no longer than this (longest side): the
# motion only has to place working-size cells, and the metric compares outputs at this size.
MOTION_SIDE = 512
WORKING_PYRAMID = 1  # plan.pyramid_hw index of the working-size pyramid
WorkFactory = Callable[[float], Work]  # a progress/cancel tracker over that many units


@dataclass(frozen=True)
class Coherence:
    """How strongly later frames hold on to the previous frame's result (measured defaults)."""

    # Similarity bonus of a match at the carried position (PatchMatch scores are mean cosines,
    # −1..1; `Preset.coherence` is the same size): near-ties keep the carried match, a clearly
    # better one wins. Measured on a 5-frame pan at 128: 0.05 held on to the first frame's
    # errors (−1.7 dB against independent frames), 0.02 stays within 0.25 dB.
    pull: float = 0.02
    # PatchMatch iterations at the finest level for a carried frame (None: the preset's).
    iterations: int | None = None
    # Where the match kept the carried cell, keep the carried sub-cell position as well (1.0)
    # rather than re-estimating it from this frame's similarities (0.0), which jitters.
    keep_subcell: float = 1.0


@dataclass
class FrameResult:
    index: int  # 0-based
    image: np.ndarray  # A′ of the frame, (H, W, 3) uint8, the frame's size
    seconds: float  # this frame's own cost (metric excluded)
    warping_error: float | None  # against the previous output; None for the first frame
    input_warping_error: float | None  # the same measure on the input frames (its floor)
    tracked: float | None  # share of the frame's pixels tracked from the previous one


@dataclass
class AnimationResult:
    frames: list[np.ndarray]
    report: dict = field(default_factory=dict)


@dataclass
class _Previous:
    """What a frame leaves to the next: its frame and output at motion size, its fields."""

    frame: Tensor  # (3, h, w) at motion size
    output: Tensor  # (3, h, w) at motion size
    ab: Tensor  # (Ha, Wa, 2) float A→B′ positions on the working grid of A
    ba: Tensor  # (Hb, Wb, 2) float B′→A positions on the working grid of B′


class _Reference:
    """B′ at full size and its VGG pyramids, each computed once for the whole sequence."""

    def __init__(self, b_prime: np.ndarray, engine: Engine, settings: Settings) -> None:
        self.full = to_tensor(b_prime, engine.device)
        self.hw = working_size(*b_prime.shape[:2], settings.params.size, settings.ratio)
        self.engine = engine
        self._pyramids: dict[tuple[int, int], Pyramid] = {}

    def pyramid(self, hw: tuple[int, int], work: Work) -> Pyramid:
        if hw not in self._pyramids:
            self._pyramids[hw] = extract_features(self.engine.vgg, [self.full], (hw,), work)[0]
        return self._pyramids[hw]


def _motion_hw(hw: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, MOTION_SIDE / max(hw))
    return (max(8, round(hw[0] * scale)), max(8, round(hw[1] * scale)))


def _small(image: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(image.shape[1:]) == hw:
        return image
    return F.interpolate(image[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]


def _warm_plan(full: Plan, settings: Settings, engine: Engine, a_hw: tuple[int, int],
               coherence: Coherence) -> Plan:
    """The full plan's last step alone, entered by carrying fields instead of inverting."""
    last = full.steps[-1]
    iterations = coherence.iterations if coherence.iterations is not None else last.iterations
    scale = iterations / max(last.iterations, 1)
    step = dataclasses.replace(
        last, entry="carry", lbfgs_iterations=0, invert_depth=0, iterations=iterations,
        entry_units=((0, 0.0), (0, 0.0)),
        match_units=tuple((max(1, round(n * scale)), per) for n, per in last.match_units),  # type: ignore[arg-type]
    )
    features = float(engine.vgg.flops(0, 5, *a_hw))
    steps = (step,)
    matching = sum(n * per for n, per in step.match_units)
    return Plan(steps, full.pyramid_hw, features, 0.05 * (features + matching))


def _read_translated(positions: Tensor, at: Tensor) -> Tensor:
    """positions (H, W, 2) read at float cells `at` (h, w, 2): the nearest cell's position plus
    the offset from that cell, so a carried field is moved, never averaged across its seams."""
    h, w = positions.shape[:2]
    near = at.round()
    near = torch.stack((near[..., 0].clamp(0, h - 1), near[..., 1].clamp(0, w - 1)), -1)
    return positions[near[..., 0].long(), near[..., 1].long()] + (at - near)


def _cells(hw: tuple[int, int], device: torch.device) -> Tensor:
    return base_grid(hw, device).permute(1, 2, 0)


def _on_grid(flow: Tensor, hw: tuple[int, int]) -> Tensor:
    """A motion-size flow (2, h, w) as (H, W, 2) cells of a working grid."""
    return resize_flow(flow, hw).permute(1, 2, 0)


def _tracked_on(mask: Tensor, hw: tuple[int, int]) -> Tensor:
    """Share of tracked motion-size pixels under each working cell, (H, W)."""
    return F.interpolate((~mask).float()[None, None], size=hw, mode="area")[0, 0]


def _carry_fields(
    previous: _Previous, backward: Tensor, forward: Tensor, occluded: Tensor, occluded_fwd: Tensor,
    a_hw: tuple[int, int], b_hw: tuple[int, int], pull: float,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(start A→B′, start B′→A), (weight A→B′, weight B′→A): the previous fields moved along the
    motion, and how strongly each cell is pulled to them (0 where the motion is not tracked)."""
    device = previous.ab.device
    back = _on_grid(backward, a_hw)
    start_ab = _read_translated(previous.ab, _cells(a_hw, device) + back)
    # B′→A: each B′ cell pointed into the previous frame; follow that point forward.
    fwd = _on_grid(forward, a_hw).permute(2, 0, 1)
    start_ba = previous.ba + fields.sample(fwd, previous.ba).permute(1, 2, 0)
    tracked_ab = _tracked_on(occluded, a_hw)
    tracked_prev = _tracked_on(occluded_fwd, a_hw)[None]
    tracked_ba = fields.sample(tracked_prev, previous.ba)[0]
    weights = (pull * (tracked_ab > 0.999).float(), pull * (tracked_ba > 0.999).float())
    return (start_ab, start_ba), weights


def _match_full(
    a_full: Tensor, a_hw: tuple[int, int], reference: _Reference, settings: Settings,
    engine: Engine, work_for: WorkFactory, timer: Timer,
) -> tuple[Direction, Direction]:
    schedule = make_plan(settings, engine.vgg, a_hw, reference.hw)
    work = work_for(schedule.total_units)
    work.begin("features")
    t = time.perf_counter()
    pyramids: list[list[Pyramid]] = [[], []]
    for p in sorted({step.pyramid for step in schedule.steps}):
        a_size, b_size = schedule.pyramid_hw[p]
        pyramids[p] = [
            extract_features(engine.vgg, [a_full], (a_size,), work)[0], reference.pyramid(b_size, work),
        ]
    work.add(schedule.feature_units)
    timer.add("features", t)
    generator = torch.Generator(device=engine.device).manual_seed(settings.params.seed)
    return match_pyramids(schedule, pyramids, settings, engine.vgg, work, timer, generator)



def animate_frames(
    frames: Iterable[np.ndarray],
    b_prime: np.ndarray,
    params: AnalogyParams | None = None,
    engine: Engine | None = None,
    independent: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    count: int | None = None,
    coherence: Coherence | None = None,
) -> Iterator[FrameResult]:
    """A′ of each frame (all (H, W, 3) uint8 RGB of one size) with B′'s look, one at a time.

    `count` is the number of frames, for progress, when `frames` has no len(). Raises
    InputError for unusable frames (a size that differs from the first frame's is found when
    that frame arrives), Cancelled when `cancel()` returns True (polled between and inside
    frames). Progress runs 0..1 over the whole sequence.
    """
    params = params if params is not None else AnalogyParams()
    coherence = coherence if coherence is not None else Coherence()
    settings = resolve(params)
    check_image(b_prime, "B′")
    if engine is None:
        raise ParamsError("animate() needs a loaded engine: engine=Engine.load(device)")
    if not engine.serves(params.device):
        raise ParamsError(f"this engine runs on {engine.device.type}, the params ask for {params.device}")
    total = count if count is not None else (len(frames) if hasattr(frames, "__len__") else None)  # type: ignore[arg-type]
    reference = _Reference(b_prime, engine, settings)
    previous: _Previous | None = None
    shape: tuple[int, ...] | None = None
    for index, frame in enumerate(frames):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        name = f"frame {index + 1}"
        check_image(frame, name)
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise InputError(
                f"{name} is {frame.shape[1]}×{frame.shape[0]}, the first frame {shape[1]}×{shape[0]}: "
                "all frames must have one size"
            )
        result, previous = _one_frame(
            index, frame, total, previous, reference, settings, engine, independent, progress, cancel,
            coherence,
        )
        yield result
    if progress is not None:
        progress(1.0, "done")


def _one_frame(
    index: int, frame: np.ndarray, total: int | None, previous: _Previous | None, reference: _Reference,
    settings: Settings, engine: Engine, independent: bool, progress: ProgressFn | None,
    cancel: CancelFn | None, coherence: Coherence,
) -> tuple[FrameResult, _Previous]:
    started = time.perf_counter()
    device = engine.device
    timer = Timer(device)
    label = f"frame {index + 1}" + (f"/{total}" if total else "")

    def work_for(units: float) -> Work:
        def frame_progress(fraction: float, stage: str) -> None:
            if progress is not None:
                overall = (index + fraction) / total if total else 0.0
                progress(min(1.0, overall), f"{label}: {stage}")

        return Work(units, frame_progress, cancel)

    a_full = to_tensor(frame, device)
    a_hw = working_size(*frame.shape[:2], settings.params.size, settings.ratio)
    motion_hw = _motion_hw((frame.shape[0], frame.shape[1]))
    small = _small(a_full, motion_hw)
    with torch.no_grad():
        motion = None
        if previous is not None:
            t = time.perf_counter()
            backward = lucas_kanade(small, previous.frame)
            forward = lucas_kanade(previous.frame, small)
            motion = (backward, forward, occlusion(backward, forward), occlusion(forward, backward))
            timer.add("motion", t)
        if previous is None or independent:
            ab, ba = _match_full(a_full, a_hw, reference, settings, engine, work_for, timer)
        else:
            assert motion is not None
            ab, ba = _match_carried(
                a_full, a_hw, previous, motion, reference, settings, engine, work_for, timer, coherence
            )
        t = time.perf_counter()
        work = work_for(1.0)
        work.begin("reconstructing")
        image, _flow, _confidence = reconstruct_direction(
            ab, a_full, reference.full, reference.hw, settings, work
        )
        timer.add("reconstruction", t)
        seconds = time.perf_counter() - started
        output = _small(image.clamp(0, 1), motion_hw)
        error = input_error = tracked = None
        if previous is not None:
            if motion is None:  # independent: motion only for the measurement
                backward = lucas_kanade(small, previous.frame)
                forward = lucas_kanade(previous.frame, small)
                motion = (backward, forward, occlusion(backward, forward), occlusion(forward, backward))
            backward, _, occluded, _ = motion
            error = warping_error(output, previous.output, backward, occluded)
            input_error = warping_error(small, previous.frame, backward, occluded)
            tracked = float((~occluded).float().mean())
    assert ab.position is not None and ba.position is not None
    result = FrameResult(index, to_numpy(image), round(seconds, 4), error, input_error, tracked)
    return result, _Previous(small, output, ab.position, ba.position)


def _match_carried(
    a_full: Tensor, a_hw: tuple[int, int], previous: _Previous, motion: tuple[Tensor, Tensor, Tensor, Tensor],
    reference: _Reference, settings: Settings, engine: Engine, work_for: WorkFactory, timer: Timer,
    coherence: Coherence,
) -> tuple[Direction, Direction]:
    """The finest level only, started from (and pulled towards) the previous frame's fields."""
    full = make_plan(settings, engine.vgg, a_hw, reference.hw)
    schedule = _warm_plan(full, settings, engine, a_hw, coherence)
    step = schedule.steps[0]
    work = work_for(schedule.total_units)
    work.begin("features")
    t = time.perf_counter()
    a_size, b_size = schedule.pyramid_hw[WORKING_PYRAMID]
    pyramids: list[list[Pyramid]] = [[], []]
    pyramids[step.pyramid] = [
        extract_features(engine.vgg, [a_full], (a_size,), work)[0], reference.pyramid(b_size, work),
    ]
    work.add(schedule.feature_units)
    timer.add("features", t)
    backward, forward, occluded, occluded_fwd = motion
    starts, weights = _carry_fields(
        previous, backward, forward, occluded, occluded_fwd, step.a_hw, step.b_hw, coherence.pull
    )
    priors = {"ab": (starts[0], weights[0]), "ba": (starts[1], weights[1])}

    def pull(_step: Step, name: str) -> tuple[Tensor, Tensor]:
        return priors[name]

    generator = torch.Generator(device=engine.device).manual_seed(settings.params.seed)
    ab, ba = match_pyramids(
        schedule, pyramids, settings, engine.vgg, work, timer, generator, start=starts, pull=pull
    )
    if coherence.keep_subcell > 0:
        for d, start, weight in ((ab, starts[0], weights[0]), (ba, starts[1], weights[1])):
            assert d.position is not None and d.field is not None
            kept = (d.field == start.round().long()).all(-1) & (weight > 0)
            mixed = d.position + coherence.keep_subcell * (start - d.position)
            d.position = torch.where(kept[..., None], mixed, d.position)
    return ab, ba


def animate(
    frames: list[np.ndarray],
    b_prime: np.ndarray,
    params: AnalogyParams | None = None,
    engine: Engine | None = None,
    independent: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    coherence: Coherence | None = None,
) -> AnimationResult:
    """A′ of every frame with B′'s look, temporally coherent unless `independent`; see
    `animate_frames` (the same, one frame at a time) for errors and progress."""
    if len(frames) < 2:
        raise InputError(f"an animation needs at least 2 frames, got {len(frames)}")
    for i, frame in enumerate(frames, start=1):  # all of them, before minutes of work
        check_image(frame, f"frame {i}")
        if frame.shape != frames[0].shape:
            raise InputError(f"frame {i} is {frame.shape[1]}×{frame.shape[0]}, frame 1 is "
                             f"{frames[0].shape[1]}×{frames[0].shape[0]}: all frames must have one size")
    started = time.perf_counter()
    results = list(
        animate_frames(frames, b_prime, params, engine, independent, progress, cancel, coherence=coherence)
    )
    assert engine is not None
    report = build_report(results, params or AnalogyParams(), engine, independent, b_prime,
                          frames[0].shape[:2], time.perf_counter() - started)
    return AnimationResult([r.image for r in results], report)


def build_report(results: list[FrameResult], params: AnalogyParams, engine: Engine, independent: bool,
                 b_prime: np.ndarray, frame_hw: tuple[int, int], total_seconds: float) -> dict:
    """report.json: per-frame seconds and warping errors, their means, and the run's settings."""
    errors = [r.warping_error for r in results if r.warping_error is not None]
    floor = [r.input_warping_error for r in results if r.input_warping_error is not None]
    settings = resolve(params)
    h, w = frame_hw
    a_hw = working_size(h, w, params.size, settings.ratio)
    b_hw = working_size(*b_prime.shape[:2], params.size, settings.ratio)
    return {
        "mode": "independent" if independent else "coherent",
        "params": params.to_dict(),
        "device": str(engine.device),
        "frames": len(results),
        "frame_size": [w, h],
        "working_size": {"frames": [a_hw[1], a_hw[0]], "b_prime": [b_hw[1], b_hw[0]]},
        "per_frame": [
            {
                "frame": r.index + 1,
                "seconds": r.seconds,
                "warping_error": _round(r.warping_error),
                "input_warping_error": _round(r.input_warping_error),
                "tracked": _round(r.tracked),
            }
            for r in results
        ],
        "warping_error": {
            "mean": round(float(np.mean(errors)), 4) if errors else None,
            "input_mean": round(float(np.mean(floor)), 4) if floor else None,
            "units": "mean |Δ| over RGB, 0..255, tracked pixels, motion estimated on the input frames",
        },
        "seconds": {
            "first_frame": results[0].seconds if results else None,
            "later_frames_mean": round(float(np.mean([r.seconds for r in results[1:]])), 4)
            if len(results) > 1 else None,
            "total": round(total_seconds, 3),
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
