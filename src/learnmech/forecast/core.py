"""``predict``: every forecast for one training run, before it starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import positive_float, positive_int
from ..observe._torch import LossFn, check_batch
from .batch import batch_size
from .card import Forecast
from .loss import loss_forecast
from .stability import OPTIMIZERS, stability
from .width import coordinate_check, width_transfer

__all__ = ["predict"]


def predict(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    lr: float,
    optimizer: str = "gd",
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    steps: int | None = None,
    runs: str | Path | Sequence[Mapping[str, Any]] | None = None,
    target: Mapping[str, float] | None = None,
    loss_metric: str = "test_loss",
    model_at: Callable[[int], nn.Module] | None = None,
    widths: Sequence[int] | None = None,
    width_batch: Any = None,
    pilot_steps: int = 10,
    seed: int = 0,
) -> Forecast:
    """All forecasts for a run of ``model`` trained on ``loss_fn`` at learning rate ``lr``.

    batch: ``(inputs, targets)``, the training set (or a large batch of it): the stability forecast's Hessian and
    the noise scale are measured on it. optimizer: "gd" | "momentum" | "adam" (with ``momentum``, ``betas``,
    ``eps`` as in torch). runs / target / loss_metric: a sweep of finished runs (CSV path or list of dicts) and the
    size(s) of this run, e.g. ``target={"D": 1400}``, for the loss forecast, scored against the Observer metric
    ``loss_metric``. model_at / widths: width -> model and at least two widths (the first is the proxy width the lr
    was tuned at, the last the target) for the width-transfer forecast and its coordinate check on
    ``width_batch`` (default ``batch``). pilot_steps: full-batch GD steps on a copy of the model before the
    noise scale is estimated (see :func:`.batch_size`; 0: at init). Forecasts that cannot be made (e.g. a layer
    type muP cannot handle) are listed in ``Forecast.notes`` instead of raising; bad arguments raise ValueError
    naming them.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable (outputs, targets) -> scalar, got {type(loss_fn).__name__}")
    batch = check_batch(batch, "batch")
    lr = positive_float(lr, "lr")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}; got {optimizer!r}")
    steps = None if steps is None else positive_int(steps, "steps")
    if (runs is None) != (target is None):
        raise ValueError("runs and target must be given together (the sweep and the size of this run)")
    if (model_at is None) != (widths is None):
        raise ValueError("model_at and widths must be given together (width -> model, and the widths to compare)")
    result = Forecast(lr=lr, optimizer=optimizer, steps=steps, loss_metric=str(loss_metric))
    result.stability = stability(model, loss_fn, batch, optimizer=optimizer, momentum=momentum, betas=betas, eps=eps)
    result.regime = result.stability.at(lr)
    try:
        result.batch = batch_size(model, loss_fn, batch, seed=seed, pilot_steps=pilot_steps, lr=lr)
    except ValueError as exc:
        result.notes["batch_size"] = str(exc)
    if runs is not None:
        result.loss = loss_forecast(runs, target, seed=seed)
    if model_at is not None:
        widths = [positive_int(w, "widths") for w in widths]
        if len(widths) < 2:
            raise ValueError(f"widths must hold at least two widths (proxy first, target last), got {widths}")
        kind = "adam" if optimizer == "adam" else "sgd"
        data = batch if width_batch is None else check_batch(width_batch, "width_batch")
        try:
            result.width = width_transfer(model_at, widths[0], widths[-1], lr, optimizer=kind, seed=seed)
            for scheme in ("mup", "sp"):
                # a few examples suffice for coordinate sizes; keeps the check to a second or two
                small = (data[0][:256], data[1][:256])
                result.coord[scheme] = coordinate_check(model_at, widths, small, loss_fn=loss_fn, scheme=scheme,
                                                        lr=lr, optimizer=kind, seed=seed)
        except (ValueError, TypeError, RuntimeError) as exc:
            result.notes["width_transfer"] = f"{type(exc).__name__}: {exc}"
    torch.manual_seed(seed)
    return result
