"""Make a report safe for strict JSON: numpy scalars to Python, NaN/inf to null, odd types to text."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, np.ndarray) and value.size <= 64:
        return jsonable(value.tolist(), depth + 1)
    return str(value)
