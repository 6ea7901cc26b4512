"""Many small full-batch GD runs at once: one model architecture, several initialisations x several learning
rates, trained in lock-step with ``torch.func.vmap``.

Learning-rate sweeps and stability bisections are hundreds of tiny runs whose cost on CPU is per-step overhead,
not arithmetic; stacking them along a batch axis makes a whole sweep cost about as much as one run. The update is
plain (full-batch) gradient descent ``w <- w - lr * lr_multipliers[w] * dL/dw``, identical to
``torch.optim.SGD`` with the param groups of :meth:`~learnmech.hyper.Parametrization.param_groups`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from .._aliases import renamed
from .._checks import as_array, positive_float, positive_int
from .training import half_mse


@renamed(lr_mult="lr_multipliers")
def gd_lr_grid(
    models: Sequence[nn.Module],
    lrs: Sequence[float],
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    *,
    lr_multipliers: Mapping[str, float] | None = None,
    blowup: float = 1e6,
) -> np.ndarray:
    """Full-batch GD on half-MSE for every (model, lr) pair; returns losses of shape ``(M, L, steps + 1)``.

    models: M modules of identical architecture (e.g. the same width, different seeds), already initialised /
        parametrized; they are not modified. lrs: L base learning rates (> 0) shared by all models, or an
        ``(M, L)`` array with each model's own. x: ``(n, ...)``, y: ``(n, out)``.
    lr_multipliers: per-parameter multipliers by ``named_parameters()`` name
        (``Parametrization.lr_multipliers("sgd")``); default 1 for all (``lr_mult`` is a deprecated keyword alias).
        losses[m, l, t] is the full-batch loss before step t (t = steps: after the last); ``inf`` once a run is
        non-finite or above ``blowup`` x its initial loss (that run is then frozen).
    """
    if not models:
        raise ValueError("models must hold at least one module")
    lr_values = as_array(lrs, "lrs", ndim=(1, 2))
    if np.any(lr_values <= 0):
        raise ValueError(f"lrs must all be > 0, got {lr_values.tolist()}")
    if lr_values.ndim == 2 and lr_values.shape[0] != len(models):
        raise ValueError(f"lrs of shape (M, L) needs one row per model ({len(models)}), got {lr_values.shape}")
    steps = positive_int(steps, "steps")
    blowup = positive_float(blowup, "blowup")
    base = models[0]
    names = [name for name, _ in base.named_parameters()]
    lr_multipliers = dict(lr_multipliers or {})
    unknown = set(lr_multipliers) - set(names)
    if unknown:
        raise ValueError(f"lr_multipliers names parameters the model does not have: {sorted(unknown)}")
    n_models, n_lrs = len(models), lr_values.shape[-1]
    # Row b = model (b // L) with learning rate (b % L).
    params = {
        name: torch.stack([dict(m.named_parameters())[name].detach() for m in models]).repeat_interleave(n_lrs, 0)
        for name in names
    }
    initial = {name: value.clone() for name, value in params.items()}
    lr_rows = torch.tensor(np.broadcast_to(lr_values, (n_models, n_lrs)).reshape(-1), dtype=x.dtype)

    def loss_of(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return half_mse(functional_call(base, p, (x,)), y)

    step_fn = vmap(grad_and_value(loss_of))
    losses = np.full((n_models * n_lrs, steps + 1), np.inf)
    alive = torch.ones(n_models * n_lrs, dtype=torch.bool)
    for t in range(steps + 1):
        grads, values = step_fn(params)
        values = values.detach()
        if t == 0:
            start = values.clone()
        bad = ~torch.isfinite(values) | (values > blowup * start.clamp_min(1e-12))
        newly_dead = alive & bad
        if newly_dead.any():
            # Freeze blown-up runs at their init (zero lr) so their numbers stay finite and cheap.
            for name in names:
                params[name][newly_dead] = initial[name][newly_dead]
            alive &= ~bad
        losses[alive.numpy(), t] = values[alive].numpy()
        if t == steps:
            break
        scale = lr_rows * alive
        with torch.no_grad():
            for name in names:
                step = scale.view(-1, *([1] * (grads[name].dim() - 1))) * lr_multipliers.get(name, 1.0)
                params[name] = params[name] - step * grads[name]
    return losses.reshape(n_models, n_lrs, steps + 1)
