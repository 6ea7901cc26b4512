"""Analytic NNGP/NTK of MLPs (placeholder: being written)."""

from typing import Any


class Kernel:  # pragma: no cover - placeholder
    pass


def mlp(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - placeholder
    raise NotImplementedError
