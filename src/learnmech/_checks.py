"""Validation at the public boundary: every error names the argument and what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def as_array(
    value: Any,
    name: str,
    *,
    ndim: int | Iterable[int] | None = None,
    finite: bool = True,
    dtype: Any = np.float64,
    min_size: int = 1,
) -> np.ndarray:
    """``value`` as a numpy array of ``dtype``; ValueError naming ``name`` if it is not numeric, has the wrong
    ndim, fewer than ``min_size`` elements along any axis, or (with ``finite``) contains NaN/inf."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}: {exc}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have ndim {want}, got shape {arr.shape}")
    if arr.size < min_size or (arr.ndim > 0 and min(arr.shape) < min_size):
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ValueError naming ``name`` otherwise (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (or >= 0 with ``allow_zero``); ValueError naming ``name`` otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = np.isfinite(number) and (number >= 0 if allow_zero else number > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return number


def one_of(value: Any, name: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; ValueError listing them otherwise."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
