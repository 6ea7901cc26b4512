"""Empirical NTK (placeholder: being written)."""

from typing import Any


def empirical_ntk(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - placeholder
    raise NotImplementedError
