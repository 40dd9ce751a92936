"""Validation of settings at the API edge, with messages that name the setting.

Every public entry point (``fit``, ``Layer``, the optimizers, the backends, callbacks)
checks its settings with these two functions, so a bad value fails the same way
everywhere: ``ValueError("<name> must ..., got <value>")``.
"""

from __future__ import annotations

import math

import numpy as np


def require_int(name: str, value, low: int) -> int:
    """``value`` as an ``int``; ``ValueError`` naming ``name`` unless it is an integer
    (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def require_number(
    name: str,
    value,
    low: float,
    high: float = math.inf,
    *,
    open_low: bool = False,
    closed_high: bool = False,
) -> float:
    """``value`` as a ``float``; ``ValueError`` naming ``name`` unless it is a finite
    real number (not a bool) in ``[low, high)``; ``open_low`` excludes ``low``,
    ``closed_high`` includes ``high``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and (low < value if open_low else low <= value)
        and (value <= high if closed_high else value < high)
    )
    if not ok:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{']' if closed_high else ')'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)
