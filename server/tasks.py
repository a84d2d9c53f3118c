"""The kinds of job beside the analogy (POST /v1/jobs): painting (POST /v1/paint) and animation
(POST /v1/animate), and what every finished job hands to the result route.

A job's outcome is an `Output`: by result name (the job's `result_names`), an image (uint8
(H, W, 3) or (H, W)), a flow (float32 (H, W, 2)) or a text (the strokes' SVG). The analogy's own runner is in
worker.py (it has the out-of-memory fallback); the other kinds are a `Task`, a function of the
running job's `Context`, made by the route once the upload is checked.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from analogy_engine import AnalogyParams, AnalogyResult, InputError
from analogy_engine.contract import MASK_PREFIX, REF_AB, b_name

from .errors import ApiError
from .images import confidence_to_mask


class Output(Protocol):
    """A finished job's results; which names it has is the job's `result_names`."""

    report: dict[str, Any]

    def part(self, name: str) -> np.ndarray | str: ...


@dataclass
class AnalogyOutput:
    result: AnalogyResult

    @property
    def report(self) -> dict[str, Any]:
        return self.result.report

    def part(self, name: str) -> np.ndarray | str:
        result = self.result
        if name == REF_AB and result.ref_ab is not None:
            return result.ref_ab
        # Each image with its confidence: B of every reference (b, b_2, …) and A′.
        bs, confidences = [result.b, *result.b_more], [result.confidence_b, *result.confidence_b_more]
        images = {b_name(n): pair for n, pair in enumerate(zip(bs, confidences, strict=True), 1)}
        images["a_prime"] = (result.a_prime, result.confidence_a_prime)
        if name.startswith(MASK_PREFIX):
            return confidence_to_mask(images[name.removeprefix(MASK_PREFIX)][1])
        if name in images:
            return images[name][0]
        return {"flow_ab": result.flow_ab, "flow_ba": result.flow_ba}[name]


@dataclass
class PaintOutput:
    painting: np.ndarray  # uint8 (H, W, 3)
    svg: str
    report: dict[str, Any]

    def part(self, name: str) -> np.ndarray | str:
        return self.painting if name == "painting" else self.svg


@dataclass
class AnimationOutput:
    frames: list[np.ndarray]
    report: dict[str, Any]

    def part(self, name: str) -> np.ndarray | str:
        return self.frames[int(name.removeprefix("frame_")) - 1]  # frame_0001 is the first


@dataclass(frozen=True)
class Context:
    """What a task gets from the worker: the model for a device, progress and cancellation."""

    device: str  # "cpu" or "cuda"
    engine: Callable[[str], Any]  # device → analogy_engine.Engine (loaded once per device)
    progress: Callable[[float, str], None]  # raises Cancelled once the job is cancelled
    cancel: Callable[[], bool]


Task = Callable[[Context], Output]


@dataclass(frozen=True)
class PendingImage:
    """An uploaded image whose size is checked but whose pixels are decoded only when needed:
    an animation's frames are decoded one at a time, so memory holds a few frames, not all."""

    label: str
    decode: Callable[[], np.ndarray]
    width: int
    height: int


def paint_task(image: np.ndarray, style: np.ndarray | None, params: Any) -> Task:
    from analogy_engine.paint import paint_image, painting_to_uint8, to_svg
    from analogy_engine.paint.optimise import check_inputs

    try:
        check_inputs(image, params.strokes, params.brush, params.size)  # a 422 now, not a failed job
    except InputError as error:
        raise ApiError(422, str(error)) from None

    def run(context: Context) -> Output:
        on_device = dataclasses.replace(params, device=context.device)
        result = paint_image(image, on_device, style=style, progress=context.progress, cancel=context.cancel)
        height, width = image.shape[:2]
        report = dict(result.report, params=params.to_dict())
        return PaintOutput(painting_to_uint8(result.painting), to_svg(result.strokes, width, height), report)

    return run


def animate_task(frames: list[PendingImage], b_prime: np.ndarray, params: AnalogyParams,
                 independent: bool) -> Task:
    from analogy_engine.animate import animate_frames, build_report

    def run(context: Context) -> Output:
        engine = context.engine(context.device)
        job_params = dataclasses.replace(params, device=context.device)
        started = time.perf_counter()

        def decoded() -> Iterator[np.ndarray]:
            for frame in frames:
                try:
                    yield frame.decode()
                except ApiError as error:  # a frame that passed the header check but not decoding
                    raise InputError(error.detail) from None

        results = list(animate_frames(decoded(), b_prime, job_params, engine, independent,
                                      progress=context.progress, cancel=context.cancel, count=len(frames)))
        report = build_report(results, job_params, engine, independent, b_prime,
                              (frames[0].height, frames[0].width), time.perf_counter() - started)
        return AnimationOutput([r.image for r in results], report)

    return run
