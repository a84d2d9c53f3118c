"""The one typed definition of every option: the CLI, the server and the GIMP plug-in follow it.

`AnalogyParams` is what a user chooses (mode, preset, size, device, seed, …); each field carries
an `Option` (its kind, choices or range, help) from which `validate()`, `schema()`,
`json_schema()` (the server's form schema) and the CLI's flags (cli.py) are derived. `Preset`
holds the algorithm's knobs; `PRESETS["faithful"]` reproduces the reference parameters of the
original implementation (see docs/architecture.md). `resolve()` turns the user's choice into
the concrete `Settings` the pipeline runs with, so mode defaults (weight, ratio, refinement)
live in exactly one place. Names and limits shared with the plug-in live in contract.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .contract import (
    DEFAULT_DEVICE,
    DEFAULT_MODE,
    DEFAULT_PRESET,
    DEVICES,
    MAX_INPUT_PIXELS,
    MAX_INPUT_SIDE,
    MAX_SIZE,
    MIN_INPUT_SIDE,
    MIN_SIZE,
    MODES,
    PRESET_NAMES,
    DeviceName,
    Mode,
    PresetName,
)

__all__ = [
    "ALPHAS", "DEVICES", "MASK_THRESHOLD", "MAX_INPUT_PIXELS", "MAX_INPUT_SIDE", "MAX_SIZE", "MIN_INPUT_SIDE",
    "MIN_SIZE", "MODES", "MODE_DEFAULTS", "PRESETS", "PRESET_NAMES", "AnalogyParams", "Option",
    "OptionParams", "ParamsError", "mix_weights", "option_field",
    "Preset", "Settings", "effective_size", "resolve", "validate", "working_size",
]

# Blend weights α for levels 4..1 (relu4_1 .. relu1_1), keyed by the original's "weight" switch.
ALPHAS: dict[int, tuple[float, float, float, float]] = {
    1: (0.7, 0.6, 0.5, 0.0),
    2: (0.8, 0.7, 0.6, 0.1),
    3: (0.9, 0.8, 0.7, 0.2),
}
# B′ → A matches B's features blended with B′'s own at this share of α. B′ is the reference (a
# painting, a sketch): its own features are strokes and paper, and kept at full α they make the
# match compare them with A's photo features directly, so that a painted face finds an orange
# suit and pale pencil skin a white backdrop (flat blotches of the wrong region in B). At half α
# the features carried from the coarser, semantic match (A's own, in B′'s layout) hold the
# region, and B′'s strong edges still place it. A → B′ (and what each match sees of the other
# image's unknown) keeps the full α: lowered there, A′ follows B′ → A's matches into regions
# without a counterpart (a flower crown takes A's hair).
B_ALPHA_SCALE = 0.5
MAX_SEED = 2**31 - 1
# --mix: non-negative decimal weights separated by commas (or nothing).
MIX_PATTERN = r"(?:\d{1,6}(?:\.\d{1,6})?(?:,\d{1,6}(?:\.\d{1,6})?)*)?"


def mix_weights(mix: str) -> tuple[float, ...]:
    """The weights of an `AnalogyParams.mix` string (already validated); () when empty."""
    return tuple(float(w) for w in mix.split(",")) if mix else ()


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
    # B′ → A's coarsest match only: the bonus for a match at the same relative place in A,
    # falling linearly to 0 at half the map's longer side (match.patchmatch's `prior`, `reach`).
    # A region of B′ with no counterpart in A otherwise lands on its best-scoring look-alike
    # wherever it is — B′'s pale haze between buildings on A's sky, B′'s neck on A's background —
    # and B shows it as a blotch; among look-alikes, the one in the same place wins.
    layout_b: float = 0.15
    # B′ → A's coarsest match only: its patch size (the others use patch_sizes). A reference's
    # blank paper inside an outline (an ink horse's body) is, cell by cell, most like A's white
    # clouds; a wider patch at relu5_1 also sees the outline around it and finds A's horse.
    # Only for B′ → A: in A → B′ it let B′'s flower crown into A′'s hair (issue 8's sheets).
    # Used where both coarsest grids are at least twice as wide (plan.py), else patch_sizes[0].
    coarsest_patch_b: int = 5
    # Look-invariant Lucas–Kanade iterations on the working-size field (subpixel.py); 0: none.
    subpixel_iterations: int = 3


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
        subpixel_iterations=1,
    ),
}

# The paper's τ: a cell keeps its own features in the blend (weight α) only where their squared
# magnitude, min–max normalised over the map, reaches it; elsewhere the unknown image's features
# are R, the other image's content carried through the coarser field.
MASK_THRESHOLD = 0.05

# What each application mode means, as defaults over the same algorithm (docs/architecture.md).
# The original halves the working size (ratio 0.5) for faces and simple structures; the
# half-scale semantic pyramid (Preset.semantic_levels) now gives every mode that robustness
# with the full size's detail, so no mode needs a smaller ratio.
# `mask`: τ for the blend. A reference that is a style has its own strokes to give where A is
# weak (a flat sky takes B′'s brushwork), so weak cells take R (the original's τ). Between two
# photos a weak texture — a floor, a wall, a sky — is content both images hold, and with R there
# the match only follows the coarser field (a slanted floor stays matched as a flat one): τ = 0
# keeps every cell's own features at α (measured: stereo within 3 px 0.857 → 0.900).
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "photo-to-style": {"weight": 3, "ratio": 1.0, "refine": False, "mask": MASK_THRESHOLD},
    "style-to-style": {"weight": 3, "ratio": 1.0, "refine": False, "mask": MASK_THRESHOLD},
    "style-to-photo": {"weight": 2, "ratio": 1.0, "refine": False, "mask": MASK_THRESHOLD},
    "photo-to-photo": {"weight": 3, "ratio": 1.0, "refine": True, "mask": 0.0},
}


@dataclass(frozen=True)
class Option:
    """How one AnalogyParams field is checked and offered: its kind, choices or range, and help."""

    kind: type  # str, int, float or bool
    help: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    nullable: bool = False  # None means "the mode's default" (or the original's size rule)
    metavar: str | None = None
    pattern: str | None = None  # a str option without choices: the whole value must match it

    def describe(self) -> str:
        """What a valid value is, in the words of the error messages."""
        if self.kind is bool:
            text = "true, false" if self.nullable else "true or false"
        elif self.choices and self.kind is str:
            text = "one of " + ", ".join(self.choices)
        elif self.kind is str:
            text = f"of the form {self.metavar} (non-negative numbers separated by commas)"
        elif self.choices:
            names = [str(c) for c in self.choices]
            text = ", ".join(names[:-1]) + " or " + names[-1]
        else:
            noun = "an integer" if self.kind is int else "a number"
            text = f"{noun} from {self.low} to {self.high}"
        return text + " or null" if self.nullable else text

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str and self.pattern is not None:
            return isinstance(value, str) and len(value) <= 200 and bool(re.fullmatch(self.pattern, value))
        if self.kind is str:
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if self.choices:
            return value in self.choices
        # Compare before math.isfinite: a 400-digit integer overflows a float (OverflowError).
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high and math.isfinite(value)

    def schema(self, default: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind.__name__, "default": default, "help": self.help}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.low is not None:
            out["min"], out["max"] = self.low, self.high
        if self.nullable:
            out["nullable"] = True
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out

    def json_schema(self) -> dict[str, Any]:
        kind = {str: "string", int: "integer", float: "number", bool: "boolean"}[self.kind]
        out: dict[str, Any] = {"type": [kind, "null"] if self.nullable else kind, "description": self.help}
        if self.choices:
            out["enum"] = [*self.choices, None] if self.nullable else list(self.choices)
        if self.low is not None:
            out["minimum"], out["maximum"] = self.low, self.high
        if self.pattern is not None:
            out["pattern"], out["maxLength"] = f"^(?:{self.pattern})$", 200
        return out


def option_field(default: Any, **kwargs: Any) -> Any:
    return field(default=default, metadata={"option": Option(**kwargs)})


class OptionParams:
    """What every options dataclass shares (AnalogyParams here, PaintParams in paint/): fields
    carrying an `Option`, checked on construction, built from untrusted JSON, described as a
    schema for clients and as a JSON Schema for the server's form."""

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Build from untrusted JSON-like data; unknown keys and wrong types are errors."""
        if not isinstance(data, dict):
            raise ParamsError("params must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            known = ", ".join(sorted(names))
            raise ParamsError(f"unknown parameter(s): {', '.join(unknown)}; known: {known}")
        return cls(**data)

    @classmethod
    def options(cls) -> dict[str, tuple[Option, Any]]:
        """Each field's Option and default, in declaration order."""
        return {f.name: (f.metadata["option"], f.default) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """Choices, defaults and ranges, for clients that build their own option widgets."""
        return {name: option.schema(default) for name, (option, default) in cls.options().items()}

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of the `params` object (the server's OpenAPI form schema uses it)."""
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: option.json_schema() for name, (option, _) in cls.options().items()},
        }


@dataclass(frozen=True)
class AnalogyParams(OptionParams):
    """What the user chooses. `None` means "the mode's default" (see MODE_DEFAULTS)."""

    mode: Mode = option_field(DEFAULT_MODE, kind=str, choices=MODES,
                              help="which kind of images A and B′ are")
    preset: PresetName = option_field(DEFAULT_PRESET, kind=str, choices=PRESET_NAMES,
                                      help="speed/quality; 'faithful' reproduces the original's parameters")
    size: int | None = option_field(None, kind=int, low=MIN_SIZE, high=MAX_SIZE, nullable=True, metavar="N",
                                    help=f"longest side of the working resolution ({MIN_SIZE}–{MAX_SIZE}); "
                                    "default: the original's rule (≤ 700 px, ≤ 0.35 MP)")
    device: DeviceName = option_field(DEFAULT_DEVICE, kind=str, choices=DEVICES,
                                      help="where to compute; auto: the GPU when there is one")
    seed: int = option_field(0, kind=int, low=0, high=MAX_SEED, metavar="N",
                             help="random seed of PatchMatch (same seed, same device: same result)")
    weight: int | None = option_field(None, kind=int, choices=tuple(ALPHAS), nullable=True,
                                      help="blend weights: higher keeps more of the source's structure "
                                      "(default: by mode)")
    ratio: float | None = option_field(None, kind=float, low=0.1, high=1.0, nullable=True, metavar="R",
                                       help="extra scale of the working size, 0.1–1 (default: by mode)")
    refine: bool | None = option_field(None, kind=bool, nullable=True,
                                       help="edge-aware refinement guided by the source "
                                       "(default: on for photo-to-photo)")
    mix: str = option_field("", kind=str, pattern=MIX_PATTERN, metavar="W1,W2,…",
                            help="with more references and no region maps: fuse their looks by these "
                            "weights, one per reference, B′ first (empty: each part of A takes the "
                            "reference that matches it best)")
    fallback: bool = option_field(True, kind=bool,
                                  help="where a region has no true counterpart (low match confidence), "
                                  "recolour its own structure with the confident matches' colours instead "
                                  "of copying mismatched patches")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalogyParams:
        return super().from_dict(data)  # type: ignore[no-any-return]


def validate(p: OptionParams) -> None:
    for name, (option, _) in p.options().items():
        value = getattr(p, name)
        if not option.accepts(value):
            raise ParamsError(f"{name} must be {option.describe()} (got {value!r})")


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs, with the mode's defaults filled in."""

    params: AnalogyParams
    preset: Preset
    alphas: tuple[float, float, float, float]
    ratio: float
    refine: bool
    fallback: bool = True
    # The α of B's features in B′ → A's own match, levels 4..1 (see B_ALPHA_SCALE).
    alphas_b: tuple[float, float, float, float] | None = None
    # τ of the blend (MODE_DEFAULTS' "mask").
    mask_threshold: float = MASK_THRESHOLD

    @property
    def b_alphas(self) -> tuple[float, float, float, float]:
        return self.alphas_b if self.alphas_b is not None else self.alphas


def resolve(params: AnalogyParams, preset: Preset | None = None) -> Settings:
    defaults = MODE_DEFAULTS[params.mode]
    weight = params.weight if params.weight is not None else defaults["weight"]
    return Settings(
        params=params,
        preset=preset if preset is not None else PRESETS[params.preset],
        alphas=ALPHAS[weight],
        alphas_b=_scaled(ALPHAS[weight], B_ALPHA_SCALE),
        ratio=float(params.ratio if params.ratio is not None else defaults["ratio"]),
        refine=bool(params.refine if params.refine is not None else defaults["refine"]),
        fallback=params.fallback,
        mask_threshold=float(defaults["mask"]),
    )


def _scaled(alphas: tuple[float, float, float, float], scale: float) -> tuple[float, float, float, float]:
    return (alphas[0] * scale, alphas[1] * scale, alphas[2] * scale, alphas[3] * scale)


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


def effective_size(params: AnalogyParams, shapes: list[tuple[int, int]]) -> int:
    """The `size` (longest working side, before `ratio`) the engine works at for inputs of these
    (height, width) shapes: `params.size`, or what the original's rule gives the larger input."""
    if params.size is not None:
        return params.size
    return max(max(working_size(h, w, None, 1.0)) for h, w in shapes)
