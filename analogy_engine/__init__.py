"""Deep Image Analogy (Liao et al., SIGGRAPH 2017) as a typed PyTorch library.

The names below load on first use (PEP 562), so that `analogy_engine.contract` — the standard
library module the server's launcher and the plug-in share — imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "PRESETS": "params",
    "AnalogyParams": "params",
    "ParamsError": "params",
    "Preset": "params",
    "working_size": "params",
    "Engine": "pipeline",
    "analogy": "pipeline",
    "check_guidance": "pipeline",
    "Guidance": "guidance",
    "AnalogyResult": "types",
    "Cancelled": "types",
    "InputError": "types",
    "to_rgb8": "imageio",
}

__all__ = [
    "PRESETS",
    "AnalogyParams",
    "AnalogyResult",
    "Cancelled",
    "Engine",
    "Guidance",
    "InputError",
    "ParamsError",
    "Preset",
    "analogy",
    "check_guidance",
    "to_rgb8",
    "working_size",
]

if TYPE_CHECKING:
    from .guidance import Guidance
    from .imageio import to_rgb8
    from .params import PRESETS, AnalogyParams, ParamsError, Preset, working_size
    from .pipeline import Engine, analogy, check_guidance
    from .types import AnalogyResult, Cancelled, InputError


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'analogy_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
