"""Infinite-width dynamics (placeholder: being written)."""

from typing import Any


def gradient_flow(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - placeholder
    raise NotImplementedError


def nngp_posterior(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - placeholder
    raise NotImplementedError
