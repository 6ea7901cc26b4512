"""The one training loop the hyper strand's experiments share: a stock torch optimizer on MSE regression.

It exists so the claims and :func:`~learnmech.hyper.coord_check` train exactly the same way; it is not needed
to *use* a parametrization (``parametrize`` returns param groups that any training loop can use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._aliases import renamed, renamed_attribute
from .._checks import positive_float, positive_int
from .._threads import single_threaded  # noqa: F401  (re-exported by learnmech.hyper)
from ..seeding import torch_generator


def half_mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``L = mean((f - y)^2) / 2``: with this convention the Gauss-Newton Hessian is ``J^T J / n`` and gradient
    descent on a quadratic is stable iff ``lr < 2 / lambda_max`` (the classical bound, e.g. Cohen et al. 2021)."""
    return 0.5 * torch.mean((outputs - targets) ** 2)


@dataclass
class TrainRun:
    """Losses of one run. losses: ``(steps + 1,)`` full-batch training loss (1/2 MSE) before each step and
    after the last; ``inf`` from the step where it blew up onwards. diverged_step: that step, or None."""

    losses: np.ndarray
    diverged_step: int | None

    diverged_at = renamed_attribute("diverged_step", warn=False)

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])


def freeze(model: nn.Module, names: Sequence[str]) -> dict[str, float]:
    """Freeze the named parameters of ``model`` (``requires_grad = False``) and return ``{name: 0.0}`` for them.

    The returned dict is the ``lr_multipliers`` that :func:`~learnmech.hyper.gd_lr_grid` and
    :func:`~learnmech.hyper.lr_boundary` need (they update every parameter unless told otherwise), while
    ``requires_grad = False`` keeps the frozen parameters out of :func:`learnmech.observe.sharpness` and
    :func:`learnmech.kernels.empirical_ntk`, so the curvature measured is that of the parameters GD moves.
    names: parameter names as in ``model.named_parameters()``; an unknown name is a ValueError.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = dict(model.named_parameters())
    unknown = sorted(set(names) - set(params))
    if unknown:
        raise ValueError(f"names must be parameters of model, unknown: {unknown}; known: {sorted(params)}")
    for name in names:
        params[name].requires_grad_(False)
    return {name: 0.0 for name in names}


@renamed(n="n_samples")
def synthetic_regression(
    n_samples: int, in_dim: int, seed: int = 0, teacher_width: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed nonlinear regression task: ``x ~ N(0, I_d)`` rows and ``y = tanh-teacher(x)`` of unit variance.

    Returns ``x`` of shape ``(n_samples, in_dim)`` and ``y`` of shape ``(n_samples, 1)``, float32. The teacher is a
    random one-hidden-layer tanh net (width ``teacher_width``), so the target is learnable but not linear.
    ``n`` is a deprecated keyword alias of ``n_samples``.
    """
    n, in_dim = positive_int(n_samples, "n_samples"), positive_int(in_dim, "in_dim")
    teacher_width = positive_int(teacher_width, "teacher_width")
    gen = torch_generator(seed)
    x = torch.randn(n, in_dim, generator=gen)
    hidden = torch.tanh(x @ torch.randn(in_dim, teacher_width, generator=gen) / in_dim**0.5)
    y = hidden @ torch.randn(teacher_width, 1, generator=gen)
    y = (y - y.mean()) / y.std()
    return x, y


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    blowup: float = 1e6,
) -> TrainRun:
    """Train ``model`` with ``optimizer`` on half-MSE for ``steps`` steps and record the full-batch loss.

    x: ``(n, ...)`` inputs; y: ``(n, out)`` targets; batch_size: None for full-batch GD, else minibatches drawn
    with ``seed``. The run stops (``diverged_step`` set) once the loss is non-finite or exceeds ``blowup`` times its
    initial value: such a run is unstable, and continuing would only overflow.
    """
    steps = positive_int(steps, "steps")
    blowup = positive_float(blowup, "blowup")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"y must have one row per row of x ({n}), got shape {tuple(y.shape)}")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    gen = torch_generator(seed)
    losses = np.full(steps + 1, np.inf)
    for step in range(steps + 1):
        if batch_size is None:
            loss = half_mse(model(x), y)
            current = float(loss.detach())
        else:
            with torch.no_grad():
                current = float(half_mse(model(x), y))
        if not np.isfinite(current) or (step > 0 and current > blowup * max(losses[0], 1e-12)):
            return TrainRun(losses, step)
        losses[step] = current
        if step == steps:
            break
        if batch_size is not None:
            index = torch.randint(0, n, (batch_size,), generator=gen)
            loss = half_mse(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return TrainRun(losses, None)
