"""Shared plumbing for the observers: parameter lists, batch checks, the loss on a batch, flat vectors.

Convention used by every instrument: ``batch = (inputs, targets)`` and ``loss_fn(model(inputs), targets)``
returns a scalar tensor (any ``torch.nn`` criterion with its default ``reduction="mean"`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = Sequence[Any]


def trainable_parameters(model: torch.nn.Module, name: str = "model") -> list[torch.nn.Parameter]:
    """The parameters of ``model`` that require grad; ValueError if it is not a module or has none."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{name} must have at least one parameter with requires_grad=True, found none")
    return params


def check_batch(batch: Any, name: str = "batch") -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` as tensors with the same, non-zero number of examples; ValueError otherwise."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"{name} must be a pair (inputs, targets), got {type(batch).__name__}")
    inputs, targets = (b if isinstance(b, torch.Tensor) else torch.as_tensor(b) for b in batch)
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise ValueError(f"{name} must not be empty: inputs have shape {tuple(inputs.shape)}")
    if targets.ndim == 0 or targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"{name}: targets must have one row per input ({inputs.shape[0]}), got shape {tuple(targets.shape)}"
        )
    return inputs, targets


def batch_loss(model: torch.nn.Module, loss_fn: LossFn, batch: Any) -> torch.Tensor:
    """``loss_fn(model(inputs), targets)`` with the graph kept; ValueError unless it is a scalar tensor."""
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable (outputs, targets) -> scalar, got {type(loss_fn).__name__}")
    inputs, targets = check_batch(batch)
    loss = loss_fn(model(inputs), targets)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor (use reduction='mean'), got {shape}")
    return loss.reshape(())


def flat_to_params(vector: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a flat vector into tensors shaped (and typed, and placed) like ``params``."""
    out, start = [], 0
    for p in params:
        out.append(vector[start : start + p.numel()].view_as(p).to(device=p.device, dtype=p.dtype))
        start += p.numel()
    return out


def params_to_flat(tensors: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``tensors`` (``None`` = zeros like the matching parameter) into one float64 vector, on the
    parameters' device."""
    return torch.cat(
        [
            (torch.zeros_like(p) if t is None else t).reshape(-1).to(torch.float64)
            for t, p in zip(tensors, params, strict=True)
        ]
    )
