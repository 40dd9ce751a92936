"""Validation of settings at the API edge, with messages that name the setting."""

from __future__ import annotations

import numpy as np


def require_int(name: str, value, low: int) -> int:
    """``value`` as an ``int``; ``ValueError`` naming ``name`` unless it is an integer
    (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
