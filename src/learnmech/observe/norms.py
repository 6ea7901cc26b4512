"""Per-layer weight norms and update sizes: the quantities muP keeps width-independent (Yang et al. 2022,
"Tensor Programs V", sec. 4: updates of each layer should change its output by Theta(1))."""

from __future__ import annotations

import torch

from ._torch import trainable_parameters

__all__ = ["snapshot", "weight_norms", "update_norms"]


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters, by name, to diff against later with :func:`update_norms`."""
    trainable_parameters(model)
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def weight_norms(model: torch.nn.Module) -> dict[str, float]:
    """Frobenius norm of every trainable parameter, by name (in parameter units)."""
    trainable_parameters(model)
    params = model.named_parameters()
    return {name: float(torch.linalg.vector_norm(p.detach())) for name, p in params if p.requires_grad}


def update_norms(
    model: torch.nn.Module, previous: dict[str, torch.Tensor], *, relative: bool = True
) -> dict[str, float]:
    """||theta_now - theta_prev||_F per parameter (divided by ||theta_prev||_F when ``relative``), for the
    names in ``previous`` (a :func:`snapshot`). Relative sizes are dimensionless; a zero previous norm gives inf."""
    if not isinstance(previous, dict):
        raise ValueError(f"previous must be a dict from snapshot(model), got {type(previous).__name__}")
    current = dict(model.named_parameters())
    missing = set(previous) - set(current)
    if missing:
        raise ValueError(f"previous has parameters the model lacks: {sorted(missing)}")
    out = {}
    for name, before in previous.items():
        change = float(torch.linalg.vector_norm(current[name].detach() - before))
        if relative:
            base = float(torch.linalg.vector_norm(before))
            change = change / base if base > 0 else float("inf")
        out[name] = change
    return out
