"""The plug-in's options without GIMP (importable by tests on the host): the dialog's choices
and labels, the procedure's arguments in one table, and the checked `Options` a run uses.

The nicks that travel to the engine (modes, presets, devices) and the size limits come from
dia_contract (the engine's analogy_engine/contract.py, which install.sh puts beside the
plug-in); only the labels the dialog shows are written here.
"""

from __future__ import annotations

import re
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

# Where the structure mask comes from (white keeps A's structure, black takes B′'s content).
STRUCTURE_CHOICES: tuple[Choice, ...] = (
    ("none", "None (A's structure everywhere)", "No structure mask: A′ keeps A's structure everywhere"),
    ("channel", "Structure channel (white keeps A)", "The channel or layer mask chosen as Structure "
     "channel: white keeps A's structure, black takes B′'s content (a collage)"),
    ("layer-mask", "A's layer mask (white keeps A)", "Layer A's own layer mask: white keeps A's "
     "structure, black takes B′'s content"),
    ("selection", "Selection takes B′'s content", "The selected part of A takes B′'s content (a "
     "collage); the rest keeps A's structure. The selection then does not limit A′'s mask"),
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
# More references: Reference 2 … Reference MAX_REFERENCES (B′ is reference 1).
MAX_EXTRA_REFERENCES = contract.MAX_REFERENCES - 1
EXTRA_REFERENCES = tuple(range(2, contract.MAX_REFERENCES + 1))
# The preview in the dialog: the fast preset at a small working size, on inputs scaled down to
# PREVIEW_INPUT pixels on their longest side (uploads and results stay small), shown
# PREVIEW_SHOW pixels wide or high; PREVIEW_TIMEOUT_S ends a preview that takes too long (the
# first one may have to start the engine).
PREVIEW_PRESET = "fast"
PREVIEW_SIZE = 128
PREVIEW_INPUT = 256
PREVIEW_SHOW = 200
PREVIEW_TIMEOUT_S = 300.0
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
    regions: bool = False
    structure: str = "none"
    extra_references: int = 0
    mix: str = ""
    fallback: bool = True

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
        params: dict[str, Any] = {"mode": self.mode, "preset": self.preset, "size": size,
                                  "device": self.device}
        if self.extra_references and self.mix.strip():  # the mix only weighs more references
            params["mix"] = parse_mix(self.mix, 1 + self.extra_references)
        if not self.fallback:  # sent only when off (the engine's default is on)
            params["fallback"] = False
        return params

    def preview_params(self) -> dict[str, Any]:
        """The dialog's preview: these options at the fast preset and a small working size."""
        return {**self.engine_params(), "preset": PREVIEW_PRESET, "size": PREVIEW_SIZE}

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


class MixError(ValueError):
    """The mix weights are unusable; the message says why."""


MIX_WEIGHT = re.compile(r"\d{1,6}(?:\.\d*)?|\.\d+")


def parse_mix(text: str, references: int) -> str:
    """The mix weights as the engine takes them ("1,0.5"): one non-negative number per reference,
    B′ first, separated by commas; spaces are allowed. MixError says what is wrong."""
    items = [item.strip() for item in text.split(",")]
    if not all(MIX_WEIGHT.fullmatch(item) for item in items):
        raise MixError(f"Mix '{text}' is not a list of weights: write one number per reference, B′ "
                       "first, separated by commas, e.g. 1,0.5")
    weights = [float(item) for item in items]
    if len(weights) != references:
        raise MixError(f"Mix '{text}' has {len(weights)} weight{'s' * (len(weights) != 1)} for "
                       f"{references} references (B′ and {references - 1} more): give one weight "
                       "per reference, B′ first")
    if sum(weights) <= 0:
        raise MixError(f"Mix '{text}' gives every reference the weight 0: give at least one a weight")
    return ",".join(f"{w:.6f}".rstrip("0").rstrip(".") for w in weights)


@dataclass(frozen=True)
class Argument:
    """One argument of the procedure; `kind` picks Gimp.Procedure.add_<kind>_argument."""

    name: str
    label: str  # with one mnemonic; none of the dialog buttons' (Reset, Cancel, OK, Help)
    blurb: str
    kind: str  # "choice", "int", "boolean", "string", "layer" or "channel" (may be None)
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
    Argument("fallback", "Minimi_ze blotches", "Where a region has no counterpart in the other image "
             "(low match confidence), recolour its own structure with the colours of the confident "
             "matches instead of copying mismatched patches; off = the raw matched patches",
             "boolean", Options.fallback),
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
    # Guidance (docs/guidance.md). A switch, a choice and a count say which layer choosers are
    # used, rather than relying on the dialog's choosers being emptied.
    Argument("regions", "Guide b_y region maps", "Pair regions: equal colours in Regions of A and "
             "Regions of B′ (and of each extra reference) must correspond", "boolean", Options.regions),
    Argument("regions-a", "Re_gions of A", "A layer of A's size (or covering A in its image) "
             "painted in flat colours, one per region", "layer"),
    Argument("regions-b", "Reg_ions of B′", "A layer of B′'s size (or covering B′ in its image) "
             "painted in the same colours as Regions of A", "layer"),
    Argument("structure", "S_tructure mask", "Where A′ keeps A's structure (white) or takes B′'s "
             "content (black: a collage)", "choice", Options.structure, STRUCTURE_CHOICES),
    Argument("structure-channel", "Str_ucture channel", "The channel or layer mask used when "
             "Structure mask is 'Structure channel' (white keeps A's structure)", "channel"),
    Argument("extra-references", "Extra references (_0 = B′ only)", "How many references besides "
             "B′ A′ may draw from: Reference 2 … (0 = B′ only)", "int", Options.extra_references,
             low=0, high=MAX_EXTRA_REFERENCES),
    *(Argument(f"reference-{n}", f"Reference _{n}", f"Reference {n} (used when Extra references "
               f"≥ {n - 1}; any open image)", "layer") for n in EXTRA_REFERENCES),
    # Digit mnemonics after the references' own: every letter of these words is taken.
    *(Argument(f"regions-ref-{n}", f"Regions of reference {n} (_{n + MAX_EXTRA_REFERENCES})",
               f"Region map of Reference {n} (with region maps, every reference needs one)", "layer")
      for n in EXTRA_REFERENCES),
    Argument("mix", "Mi_x weights", "With extra references: their looks' weights, B′ first, e.g. "
             "1,0.5; empty: each part of A takes the reference that matches it best", "string", ""),
)}

# Each procedure's arguments in the dialog's order; deep_image_analogy.py declares them from here.
ARGUMENTS: tuple[Argument, ...] = tuple(_ALL[name] for name in (
    "a-layer", "reference", "mode", "preset", "size", "results", "mask", "fallback", "paint-strokes",
    "paint-brush", "device", "engine", "regions", "regions-a", "regions-b", "structure",
    "structure-channel", "extra-references", *(f"reference-{n}" for n in EXTRA_REFERENCES),
    *(f"regions-ref-{n}" for n in EXTRA_REFERENCES), "mix"))
ANIMATION_ARGUMENTS: tuple[Argument, ...] = tuple(_ALL[name] for name in (
    "reference", "mode", "preset", "size", "independent", "device", "engine"))


def option_arguments(arguments: tuple[Argument, ...]) -> tuple[str, ...]:
    """The arguments that make up Options (layers and channels are read from the config on their own)."""
    return tuple(arg.name for arg in arguments if arg.kind not in ("layer", "channel"))


OPTION_ARGUMENTS = option_arguments(ARGUMENTS)


def options_from(config: Any, arguments: tuple[Argument, ...] = ARGUMENTS) -> Options:
    """The procedure's own options from its Gimp.ProcedureConfig; the other procedure's keep
    their defaults. (Any object with get_property will do: no GIMP import here.)"""
    values = {name.replace("-", "_"): config.get_property(name) for name in option_arguments(arguments)}
    for name in ("engine", "mix"):  # an empty string argument arrives as None
        if name in values:
            values[name] = values[name] or ""
    return Options(**values)
