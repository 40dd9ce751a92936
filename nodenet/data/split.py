"""Splitting a data set into training and validation rows."""

from __future__ import annotations

import numpy as np


def train_validation_split(
    n: int, fraction: float, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and return ``(train_idx, valid_idx)`` with
    ``round(n * fraction)`` validation samples."""
    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction must lie in [0, 1), got {fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    n_valid = round(n * fraction)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])
