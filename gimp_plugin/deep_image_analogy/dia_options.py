"""The plug-in's options without GIMP (importable by tests on the host): the dialog's choices
and labels, the procedure's arguments in one table, and the checked `Options` a run uses.

The nicks that travel to the engine (modes, presets, devices) and the size limits come from
dia_contract (the engine's analogy_engine/contract.py, which install.sh puts beside the
plug-in); only the labels the dialog shows are written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dia_contract as contract
from dia_contract import MAX_SIZE, MIN_SIZE

# (nick, label, help): the nick travels to the engine, the label is what the dialog shows.
Choice = tuple[str, str, str]



def _labelled(nicks: tuple[str, ...], labels: dict[str, tuple[str, str]]) -> tuple[Choice, ...]:
    """The contract's nicks in its order, each with its (label, help); a nick without a label
    fails at import, loudly, rather than showing a raw nick in the dialog."""
    return tuple((nick, *labels[nick]) for nick in nicks)


MODE_CHOICES = _labelled(contract.MODES, {
    "photo-to-style": ("Photo → style", "A is a photo, B′ an artwork: A′ is the photo painted like B′"),
    "style-to-style": ("Style → style", "Both are artworks: swap their styles"),
    "style-to-photo": ("Style → photo", "A is a sketch or painting, B′ a photo: A′ looks photographic"),
    "photo-to-photo": ("Photo → photo", "Both are photos: transfer colour and tone, keep A's edges"),
})
PRESET_CHOICES = _labelled(contract.PRESET_NAMES, {
    "faithful": ("Faithful (slow)", "The original paper's parameters"),
    "balanced": ("Balanced", "Near the original's quality in a fraction of its time"),
    "fast": ("Fast (preview)", "Quick preview quality"),
})
DEVICE_CHOICES = _labelled(contract.DEVICES, {
    "auto": ("Automatic", "The GPU when the engine has one, else the CPU"),
    "cpu": ("CPU", "Always the CPU (slow, but never out of GPU memory)"),
    "cuda": ("GPU (CUDA)", "An NVIDIA GPU; fails when the engine has none"),
})
RESULT_CHOICES: tuple[Choice, ...] = (
    ("both", "A′ and B", "Both results: A′ (A's content, B′'s look) and B (B′'s content, A's look)"),
    ("a-prime", "A′ only", "A's content with B′'s look"),
    ("b", "B only", "B′'s content with A's look"),
)
MASK_CHOICES: tuple[Choice, ...] = (
    ("white", "White (all visible)", "A white layer mask (the source's transparency is kept)"),
    ("confidence", "Match confidence", "Bright where the match is good: paint on it to blend"),
)
# The engine's brushes (analogy_engine.paint.BRUSHES; checked by tests/test_gimp_options.py).
BRUSH_CHOICES: tuple[Choice, ...] = (
    ("oil", "Oil", "Flat colour with bristle streaks along each stroke"),
    ("marker", "Marker", "Flat colour: exactly what the imported paths draw"),
)
# Two selected layers arrive top first (selection order is lost), so the user says which is A.
A_LAYER_CHOICES: tuple[Choice, ...] = (
    ("first", "Upper (or the selected) layer", "A is the upper selected layer, or the one selected"),
    ("second", "Lower (or the reference) layer", "A is the lower selected layer, or the reference"),
)

# The working size argument: 0 means the original's automatic rule.
AUTO_SIZE = 0
# Painting A′ with strokes: 0 = off. The engine takes up to 20 000; past 5 000 a CPU needs many
# minutes (docs/painting.md), so the dialog stops there.
MAX_PAINT_STROKES = 5000
# The analogy's share of the progress bar when A′ is also painted (the painting gets the rest).
ANALOGY_SHARE = 0.5
PAINT_MIN_SIDE = 16  # analogy_engine.paint.MIN_SIDE: the smallest image the painter takes
# POST /v1/animate: 2 … 200 frames of one size, at most MAX_ANIMATION_PIXELS in all (the contract).
MIN_FRAMES, MAX_FRAMES, MAX_ANIMATION_PIXELS = (
    contract.MIN_FRAMES, contract.MAX_FRAMES, contract.MAX_ANIMATION_PIXELS)

PROCEDURE_NAME = "plug-in-deep-image-analogy"
ANIMATION_PROCEDURE_NAME = "plug-in-deep-image-analogy-animation"
GROUP_NAME = "Deep Image Analogy"
PAINTING_NAME = "Painting"


def nicks(choices: tuple[Choice, ...]) -> tuple[str, ...]:
    return tuple(nick for nick, _label, _help in choices)


@dataclass(frozen=True)
class Options:
    """The dialog's values, already checked; `engine` is '' for the automatic engine."""

    mode: str = contract.DEFAULT_MODE
    preset: str = contract.DEFAULT_PRESET
    size: int = AUTO_SIZE
    device: str = contract.DEFAULT_DEVICE
    results: str = "both"
    mask: str = "white"
    a_layer: str = "first"
    engine: str = ""
    paint_strokes: int = 0
    paint_brush: str = "oil"
    independent: bool = False

    @property
    def want_a_prime(self) -> bool:
        return self.results in ("both", "a-prime")

    @property
    def want_b(self) -> bool:
        return self.results in ("both", "b")

    def engine_params(self) -> dict[str, Any]:
        """The AnalogyParams fields the engine gets (JSON)."""
        # Sizes below the engine's minimum would be refused after the upload; the spin button
        # allows them because 0 has to be reachable, so they count as the minimum.
        size = None if self.size == AUTO_SIZE else max(MIN_SIZE, min(MAX_SIZE, self.size))
        return {"mode": self.mode, "preset": self.preset, "size": size, "device": self.device}

    @property
    def want_painting(self) -> bool:
        """Paint A′ with strokes: asked for, and A′ is among the results (it is what is painted)."""
        return self.paint_strokes > 0 and self.want_a_prime

    def paint_params(self) -> dict[str, Any]:
        """POST /v1/paint's params: the engine picks the fitting size (≤ 512) and the seed."""
        return {"strokes": self.paint_strokes, "brush": self.paint_brush, "device": self.device}

    def animation_params(self) -> dict[str, Any]:
        """POST /v1/animate's params: the analogy's, plus whether frames ignore each other."""
        return {**self.engine_params(), "independent": self.independent}


@dataclass(frozen=True)
class Argument:
    """One argument of the procedure; `kind` picks Gimp.Procedure.add_<kind>_argument."""

    name: str
    label: str  # with one mnemonic; none of the dialog buttons' (Reset, Cancel, OK, Help)
    blurb: str
    kind: str  # "choice", "int", "boolean", "string" or "layer"
    default: Any = None
    choices: tuple[Choice, ...] = ()
    low: int = 0
    high: int = 0


_ALL: dict[str, Argument] = {arg.name: arg for arg in (
    Argument("a-layer", "Layer _A is", "Which layer is A (the content)", "choice",
             Options.a_layer, A_LAYER_CHOICES),
    Argument("reference", "Re_ference layer", "B′ when only one layer is selected (any open image)",
             "layer"),
    Argument("mode", "_Mode", "Which kind of images A and B′ are", "choice", Options.mode, MODE_CHOICES),
    Argument("preset", "_Quality", "Speed versus quality", "choice", Options.preset, PRESET_CHOICES),
    Argument("size", "_Working size", "Longest side the matching works at; 0 = automatic (results "
             "always come at the layers' full size)", "int", AUTO_SIZE, low=AUTO_SIZE, high=MAX_SIZE),
    Argument("results", "R_esults", "Which result layers to create", "choice", Options.results,
             RESULT_CHOICES),
    Argument("mask", "Mas_k", "The result layers' masks", "choice", Options.mask, MASK_CHOICES),
    Argument("paint-strokes", "_Painting strokes", "0 = off; else also paint A′ with this many "
             "brush strokes: a Painting layer plus the strokes as paths", "int", Options.paint_strokes,
             low=0, high=MAX_PAINT_STROKES),
    Argument("paint-brush", "_Brush", "How the Painting layer's strokes look (the paths are the "
             "same)", "choice", Options.paint_brush, BRUSH_CHOICES),
    Argument("independent", "Each frame _independently", "Stylise every frame on its own (faster "
             "to understand, but it flickers); off = temporally coherent", "boolean",
             Options.independent),
    Argument("device", "_Device", "Where the engine computes", "choice", Options.device, DEVICE_CHOICES),
    Argument("engine", "E_ngine address", "Empty: find or start the local engine; else "
             "http://127.0.0.1:PORT[#TOKEN] or a runtime file", "string", ""),
)}

# Each procedure's arguments in the dialog's order; deep_image_analogy.py declares them from here.
ARGUMENTS: tuple[Argument, ...] = tuple(_ALL[name] for name in (
    "a-layer", "reference", "mode", "preset", "size", "results", "mask", "paint-strokes",
    "paint-brush", "device", "engine"))
ANIMATION_ARGUMENTS: tuple[Argument, ...] = tuple(_ALL[name] for name in (
    "reference", "mode", "preset", "size", "independent", "device", "engine"))


def option_arguments(arguments: tuple[Argument, ...]) -> tuple[str, ...]:
    """The arguments that make up Options (the reference layer is read from the config on its own)."""
    return tuple(arg.name for arg in arguments if arg.kind != "layer")


OPTION_ARGUMENTS = option_arguments(ARGUMENTS)
