"""The one typed definition of every option: the CLI, the server and the GIMP plug-in follow it.

`AnalogyParams` is what a user chooses (mode, preset, size, device, seed). `Preset` holds the
algorithm's knobs; `PRESETS["faithful"]` reproduces the reference parameters of the original
implementation (see docs/architecture.md). `resolve()` turns the user's choice into the concrete `Settings`
the pipeline runs with, so mode defaults (weight, ratio, refinement) live in exactly one place.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

Mode = Literal["photo-to-style", "style-to-style", "style-to-photo", "photo-to-photo"]
PresetName = Literal["faithful", "balanced", "fast"]
DeviceName = Literal["auto", "cpu", "cuda"]

MODES: tuple[str, ...] = get_args(Mode)
PRESET_NAMES: tuple[str, ...] = get_args(PresetName)
DEVICES: tuple[str, ...] = get_args(DeviceName)

# Blend weights α for levels 4..1 (relu4_1 .. relu1_1), keyed by the original's "weight" switch.
ALPHAS: dict[int, tuple[float, float, float, float]] = {
    1: (0.7, 0.6, 0.5, 0.0),
    2: (0.8, 0.7, 0.6, 0.1),
    3: (0.9, 0.8, 0.7, 0.2),
}

MIN_SIZE = 32  # working side in pixels: two cells of the 16× coarser relu5_1 map
MAX_SIZE = 2048  # working side; beyond this VGG matching costs grow with no visible gain
MAX_INPUT_SIDE = 30_000
MAX_INPUT_PIXELS = 60_000_000  # 60 MP: well above a 12 MP photo, well below a decompression bomb
MIN_INPUT_SIDE = 8


class ParamsError(ValueError):
    """A parameter is out of range or of the wrong kind; the message says which and why."""


@dataclass(frozen=True)
class Preset:
    """Algorithm knobs for one speed/quality trade-off. Tuples run coarse → fine (levels 5..1)."""

    name: str
    patch_sizes: tuple[int, int, int, int, int] = (3, 3, 3, 5, 5)
    # Random-search radius per level in cells of that level; 0 means "the whole map".
    search_radii: tuple[int, int, int, int, int] = (0, 6, 6, 4, 4)
    pm_iterations: tuple[int, int, int, int, int] = (10, 10, 10, 10, 10)
    # Propagation distances per level: each pixel tries its neighbours' matches at these jumps.
    propagation_jumps: tuple[tuple[int, ...], ...] = ((8, 4, 2, 1),) * 5
    # Match on the top principal components of the stacked features (None: all channels).
    # Dot products are kept where the variance is, at a fraction of the gather traffic.
    match_dims: tuple[int | None, ...] = (None,) * 5
    # L-BFGS iterations of the feature inversion that makes R^{L-1}, for levels 5..2.
    lbfgs_iterations: tuple[int, int, int, int] = (100, 100, 100, 100)
    lbfgs_history: int = 4
    # How many layers below the target the inversion optimises (the original: 2), per level 5..2.
    invert_depth: tuple[int, int, int, int] = (2, 2, 2, 2)
    # Patch size of the final vote when the input is about the working size (the original: 3).
    full_res_patch: int = 3
    # How many levels (from relu5_1 down) match on a pyramid at half the working size before the
    # field moves to the working-size pyramid (see plan.py); 0: one pyramid, as the original.
    # Used only where the working size's shorter side reaches plan.SEMANTIC_FROM.
    semantic_levels: int = 5
    # PatchMatch's bonus for a match whose offset its neighbours share (see match.patchmatch).
    coherence: float = 0.02


PRESETS: dict[str, Preset] = {
    "faithful": Preset(name="faithful"),
    "balanced": Preset(
        name="balanced",
        patch_sizes=(3, 3, 3, 5, 5),
        pm_iterations=(10, 6, 4, 2, 2),
        propagation_jumps=((8, 4, 2, 1),) + ((4, 2, 1),) * 4,
        match_dims=(64, 64, 48, 24, 16),
        # Measured on the known-answer cases: the coarse inversions barely change the result,
        # while inverting level 2 down to the pixels (as the original does) is worth 0.5 dB.
        lbfgs_iterations=(0, 0, 0, 8),
        invert_depth=(1, 1, 1, 2),
    ),
    "fast": Preset(
        name="fast",
        patch_sizes=(3, 3, 3, 3, 3),
        pm_iterations=(6, 3, 2, 1, 1),
        propagation_jumps=((8, 4, 2, 1), (4, 2, 1), (2, 1), (2, 1), (1,)),
        match_dims=(32, 32, 32, 16, 16),
        lbfgs_iterations=(4, 0, 0, 0),
        invert_depth=(1, 1, 1, 1),
    ),
}

# What each application mode means, as defaults over the same algorithm (docs/architecture.md).
# The original halves the working size (ratio 0.5) for faces and simple structures; the
# half-scale semantic pyramid (Preset.semantic_levels) now gives every mode that robustness
# with the full size's detail, so no mode needs a smaller ratio.
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "photo-to-style": {"weight": 3, "ratio": 1.0, "refine": False},
    "style-to-style": {"weight": 3, "ratio": 1.0, "refine": False},
    "style-to-photo": {"weight": 2, "ratio": 1.0, "refine": False},
    "photo-to-photo": {"weight": 3, "ratio": 1.0, "refine": True},
}


@dataclass(frozen=True)
class AnalogyParams:
    """What the user chooses. `None` means "the mode's default" (see MODE_DEFAULTS)."""

    mode: Mode = "photo-to-style"
    preset: PresetName = "balanced"
    size: int | None = None  # longest side of the working resolution; None: the original's rule
    device: DeviceName = "auto"
    seed: int = 0
    weight: int | None = None  # 1, 2 or 3: the α set of the blend
    ratio: float | None = None  # extra scale on the working size (0.5 suits faces)
    refine: bool | None = None  # edge-aware refinement guided by the source (photo → photo)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalogyParams:
        """Build from untrusted JSON-like data; unknown keys and wrong types are errors."""
        if not isinstance(data, dict):
            raise ParamsError("params must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            known = ", ".join(sorted(names))
            raise ParamsError(f"unknown parameter(s): {', '.join(unknown)}; known: {known}")
        return cls(**data)

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """Choices, defaults and ranges, for clients that build their own option widgets."""
        return {
            "mode": {"choices": list(MODES), "default": "photo-to-style"},
            "preset": {"choices": list(PRESET_NAMES), "default": "balanced"},
            "size": {"min": MIN_SIZE, "max": MAX_SIZE, "default": None},
            "device": {"choices": list(DEVICES), "default": "auto"},
            "seed": {"min": 0, "max": 2**31 - 1, "default": 0},
            "weight": {"choices": [1, 2, 3], "default": None},
            "ratio": {"min": 0.1, "max": 1.0, "default": None},
            "refine": {"type": "bool", "default": None},
        }


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ParamsError(f"{name} must be one of {', '.join(choices)} (got {value!r})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(p: AnalogyParams) -> None:
    _check_choice("mode", p.mode, MODES)
    _check_choice("preset", p.preset, PRESET_NAMES)
    _check_choice("device", p.device, DEVICES)
    if p.size is not None and (not _is_int(p.size) or not MIN_SIZE <= p.size <= MAX_SIZE):
        raise ParamsError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} or null (got {p.size!r})")
    if not _is_int(p.seed) or not 0 <= p.seed <= 2**31 - 1:
        raise ParamsError(f"seed must be an integer from 0 to {2**31 - 1} (got {p.seed!r})")
    if p.weight is not None and (not _is_int(p.weight) or p.weight not in ALPHAS):
        raise ParamsError(f"weight must be 1, 2 or 3 or null (got {p.weight!r})")
    if p.ratio is not None:
        ok = isinstance(p.ratio, (int, float)) and not isinstance(p.ratio, bool)
        # Compare before math.isfinite: a 400-digit integer overflows a float (OverflowError).
        if not ok or not 0.1 <= p.ratio <= 1.0 or not math.isfinite(p.ratio):
            raise ParamsError(f"ratio must be a number from 0.1 to 1.0 or null (got {p.ratio!r})")
    if p.refine is not None and not isinstance(p.refine, bool):
        raise ParamsError(f"refine must be true, false or null (got {p.refine!r})")


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs, with the mode's defaults filled in."""

    params: AnalogyParams
    preset: Preset
    alphas: tuple[float, float, float, float]
    ratio: float
    refine: bool


def resolve(params: AnalogyParams, preset: Preset | None = None) -> Settings:
    defaults = MODE_DEFAULTS[params.mode]
    weight = params.weight if params.weight is not None else defaults["weight"]
    return Settings(
        params=params,
        preset=preset if preset is not None else PRESETS[params.preset],
        alphas=ALPHAS[weight],
        ratio=float(params.ratio if params.ratio is not None else defaults["ratio"]),
        refine=bool(params.refine if params.refine is not None else defaults["refine"]),
    )


def working_size(height: int, width: int, size: int | None, ratio: float = 1.0) -> tuple[int, int]:
    """The (height, width) VGG works at: the original's rule or `size` for the longest side.

    The original scales the longest side to ≤ 700, the shortest to ≥ 200 and the area to
    ≤ 350 000, then by `ratio`. Sides are rounded to multiples of 16 so that every pooling level
    halves exactly and fields move between levels without rounding.
    """
    if size is not None:
        scale = size / max(height, width)
    else:
        scale = 1.0
        if max(height, width) * scale > 700:
            scale = 700 / max(height, width)
        if min(height, width) * scale < 200:
            scale = 200 / min(height, width)
        if height * width * scale * scale > 350_000:
            scale = math.sqrt(350_000 / (height * width))
    scale *= ratio

    def side(n: int) -> int:
        return int(min(MAX_SIZE, max(MIN_SIZE, round(n * scale / 16) * 16)))

    return side(height), side(width)
