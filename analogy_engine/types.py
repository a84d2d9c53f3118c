"""Types shared by the pipeline and its callers (CLI, server)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# progress(fraction in 0..1, stage text); called often enough for a smooth progress bar.
ProgressFn = Callable[[float, str], None]
# cancel() -> True when the caller wants the work to stop; polled at least every second or so.
CancelFn = Callable[[], bool]
# observe(plan step, field A→B′, field B′→A) after each step of the coarse-to-fine loop.
ObserveFn = Callable[[Any, Any, Any], None]


class Cancelled(Exception):
    """Raised inside `analogy` when `cancel()` returned True."""


class InputError(ValueError):
    """An input image cannot be used (too small, too large, unreadable); the message says why."""


@dataclass
class AnalogyResult:
    """Results at the inputs' full resolution.

    Images are (H, W, 3) uint8 RGB. Flows are float32 (H, W, 2) holding, for each pixel of the
    source, the (x, y) position in the other image's full-resolution pixel coordinates.
    Confidences are float32 (H, W) in 0..1, suitable as layer masks: how far each pixel's match
    can be trusted (the round trip through both fields comes back to the same kind of place,
    `fallback_colour.confidence`); where it is low the fallback recoloured the source instead.
    """

    a_prime: np.ndarray  # A's structure, B′'s look; shape of A
    b: np.ndarray  # B′'s structure, A's look; shape of B′
    flow_ab: np.ndarray  # A → B′
    flow_ba: np.ndarray  # B′ → A
    confidence_a_prime: np.ndarray
    confidence_b: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)
    # With more references (guidance): B of each after B′ (its shape), with its confidence, and
    # which reference each A pixel's flow points into (uint8 (H_A, W_A), 0 = B′; None with one).
    b_more: list[np.ndarray] = field(default_factory=list)
    confidence_b_more: list[np.ndarray] = field(default_factory=list)
    ref_ab: np.ndarray | None = None
