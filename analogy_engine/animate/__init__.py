"""Temporally coherent Deep Image Analogy for animations: one B′, many frames.

`animate(frames, b_prime, params, engine)` returns every frame's A′ and a report with the
per-frame seconds and the warping error between consecutive outputs; `animate_frames` yields
the frames one at a time (memory bounded by a few frames). `python -m analogy_engine.animate`
is the command line (docs/animation.md).
"""

from .coherent import AnimationResult, Coherence, FrameResult, animate, animate_frames, build_report
from .motion import lucas_kanade, occlusion, warping_error

__all__ = [
    "AnimationResult",
    "Coherence",
    "FrameResult",
    "animate",
    "animate_frames",
    "build_report",
    "lucas_kanade",
    "occlusion",
    "warping_error",
]
