"""The plug-in's option choices, without GIMP: importable by tests on the host.

Mode, preset and device nicks are exactly analogy_engine.params' MODES, PRESET_NAMES and DEVICES
(tests/test_gimp_options.py checks it); they cannot be imported from there because GIMP's Python
has no numpy and the plug-in may be installed far from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (nick, label, help): the nick travels to the engine, the label is what the dialog shows.
Choice = tuple[str, str, str]

MODE_CHOICES: tuple[Choice, ...] = (
    ("photo-to-style", "Photo → style", "A is a photo, B′ an artwork: A′ is the photo painted like B′"),
    ("style-to-style", "Style → style", "Both are artworks: swap their styles"),
    ("style-to-photo", "Style → photo", "A is a sketch or painting, B′ a photo: A′ looks photographic"),
    ("photo-to-photo", "Photo → photo", "Both are photos: transfer colour and tone, keep A's edges"),
)
PRESET_CHOICES: tuple[Choice, ...] = (
    ("faithful", "Faithful (slow)", "The original paper's parameters"),
    ("balanced", "Balanced", "Near the original's quality in a fraction of its time"),
    ("fast", "Fast (preview)", "Quick preview quality"),
)
DEVICE_CHOICES: tuple[Choice, ...] = (
    ("auto", "Automatic", "The GPU when the engine has one, else the CPU"),
    ("cpu", "CPU", "Always the CPU (slow, but never out of GPU memory)"),
    ("cuda", "GPU (CUDA)", "An NVIDIA GPU; fails when the engine has none"),
)
RESULT_CHOICES: tuple[Choice, ...] = (
    ("both", "A′ and B", "Both results: A′ (A's content, B′'s look) and B (B′'s content, A's look)"),
    ("a-prime", "A′ only", "A's content with B′'s look"),
    ("b", "B only", "B′'s content with A's look"),
)
MASK_CHOICES: tuple[Choice, ...] = (
    ("white", "White (all visible)", "A white layer mask (the source's transparency is kept)"),
    ("confidence", "Match confidence", "Bright where the match is good: paint on it to blend"),
)
# Two selected layers arrive top first (selection order is lost), so the user says which is A.
A_LAYER_CHOICES: tuple[Choice, ...] = (
    ("first", "Upper (or the selected) layer", "A is the upper selected layer, or the one selected"),
    ("second", "Lower (or the reference) layer", "A is the lower selected layer, or the reference"),
)

# The working size argument: 0 means the original's automatic rule. Engine limits, mirrored from
# analogy_engine/params.py (checked by the tests) so that bad input is refused before any upload.
AUTO_SIZE = 0
MIN_SIZE = 32
MAX_SIZE = 2048
MIN_INPUT_SIDE = 8
MAX_INPUT_PIXELS = 60_000_000

PROCEDURE_NAME = "plug-in-deep-image-analogy"
GROUP_NAME = "Deep Image Analogy"


def nicks(choices: tuple[Choice, ...]) -> tuple[str, ...]:
    return tuple(nick for nick, _label, _help in choices)


@dataclass(frozen=True)
class Options:
    """The dialog's values, already checked; `engine` is '' for the automatic engine."""

    mode: str = "photo-to-style"
    preset: str = "balanced"
    size: int = AUTO_SIZE
    device: str = "auto"
    results: str = "both"
    mask: str = "white"
    a_layer: str = "first"
    engine: str = ""

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
