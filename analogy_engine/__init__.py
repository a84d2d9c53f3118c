"""Deep Image Analogy (Liao et al., SIGGRAPH 2017) as a typed PyTorch library."""

from .params import PRESETS, AnalogyParams, ParamsError, Preset, working_size
from .pipeline import Engine, analogy
from .types import AnalogyResult, Cancelled, InputError

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AnalogyParams",
    "AnalogyResult",
    "Cancelled",
    "Engine",
    "InputError",
    "ParamsError",
    "Preset",
    "analogy",
    "working_size",
]
