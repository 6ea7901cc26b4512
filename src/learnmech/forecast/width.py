"""Width transfer: muP's forecast that the learning rate tuned on a narrow proxy is the one to use at any width.

Under the maximal update parametrization (Yang et al. 2022, "Tensor Programs V") every layer's coordinates and
their updates stay O(1) as width grows, so the optimal base learning rate is width-independent; what changes with
width are the per-layer multipliers of init, output and learning rate that :func:`learnmech.hyper.parametrize`
computes (relative to the proxy's "base" width). The forecast is scored by the coordinate check (Yang et al. 2022,
sec. 7): under muP the change of each layer's output coordinates after a few steps has log-log slope ~0 in width.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._checks import one_of, positive_float, positive_int

__all__ = ["WidthTransfer", "width_transfer", "parametrize_like"]


def parametrize_like(model: nn.Module, scheme: str, base_model: nn.Module, base_width: int, seed: int = 0) -> Any:
    """``hyper.parametrize`` with ``base=base_model`` where this learnmech has it (muP for any model built from
    Linear/Conv/Embedding/LayerNorm/attention), else with ``base_width`` (proportional MLP/transformer widths)."""
    from ..hyper import parametrize

    if "base" in inspect.signature(parametrize).parameters:
        return parametrize(model, scheme, base=base_model, seed=seed)
    return parametrize(model, scheme, base_width, seed=seed)


@dataclass
class WidthTransfer:
    """Result of :func:`width_transfer`.

    base_width / width: proxy and target widths; lr: the lr tuned on the proxy (also the target's base lr under
    muP); optimizer: "sgd" | "adam"; lr_per_parameter: {parameter name: lr to use at the target width};
    table: the target's per-parameter rules (init std, multiplier, lr multipliers); sp_lr: what standard
    parametrization would reuse (the same lr for every parameter, no multipliers).
    """

    base_width: int
    width: int
    lr: float
    optimizer: str
    lr_per_parameter: dict[str, float]
    table: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sp_lr(self) -> float:
        return self.lr


def width_transfer(
    model_at: Callable[[int], nn.Module],
    base_width: int,
    width: int,
    lr: float,
    *,
    optimizer: str = "sgd",
    seed: int = 0,
) -> WidthTransfer:
    """The muP-transferred per-parameter learning rates at ``width`` for an lr tuned at ``base_width``.

    model_at: width -> a fresh model (the same architecture at any width); base_width, width: the proxy's and the
    target's widths; lr: the proxy's tuned lr; optimizer: "sgd" (also SGD+momentum) or "adam".
    ValueError naming the argument if the model cannot be parametrized (hyper.parametrize's message).
    """
    if not callable(model_at):
        raise ValueError(f"model_at must be callable width -> torch.nn.Module, got {type(model_at).__name__}")
    base_width = positive_int(base_width, "base_width")
    width = positive_int(width, "width")
    lr = positive_float(lr, "lr")
    optimizer = one_of(optimizer, "optimizer", ("sgd", "adam"))
    torch.manual_seed(seed)
    target, base = model_at(width), model_at(base_width)
    params = parametrize_like(target, "mup", base, base_width, seed=seed)
    return WidthTransfer(base_width=base_width, width=width, lr=lr, optimizer=optimizer,
                         lr_per_parameter={k: lr * v for k, v in params.lr_multipliers(optimizer).items()},
                         table=params.table())


def coordinate_check(
    model_at: Callable[[int], nn.Module], widths: Sequence[int], data: tuple[torch.Tensor, torch.Tensor], *,
    loss_fn: Any = None, scheme: str = "mup", lr: float = 0.05, optimizer: str = "sgd", steps: int = 4,
    seed: int = 0,
) -> Any:
    """``hyper.coord_check`` of the user's architecture on the user's data (with the user's ``loss_fn`` where
    coord_check takes one, else half-MSE on ``data``'s targets)."""
    from ..hyper import coord_check

    kwargs: dict[str, Any] = {}
    if loss_fn is not None and "loss_fn" in inspect.signature(coord_check).parameters:
        kwargs["loss_fn"] = loss_fn
    return coord_check(model_at, widths, scheme=scheme, lr=lr, optimizer=optimizer, steps=steps, data=data,
                       seeds=(seed,), **kwargs)
