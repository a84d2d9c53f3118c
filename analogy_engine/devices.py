"""Which torch device a user's choice means: the one place the engine and the server ask."""

from __future__ import annotations

import torch

from .params import DEVICES, ParamsError


def resolve_device(name: str) -> torch.device:
    """auto|cpu|cuda → a torch device; ParamsError when CUDA is asked for but absent."""
    if name not in DEVICES:
        raise ParamsError(f"device must be one of {', '.join(DEVICES)} (got {name!r})")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamsError("device 'cuda' was asked for but this PyTorch sees no CUDA GPU; use auto or cpu")
    return torch.device(name)
