"""Stability forecasts: the largest stable learning rate at initialization and the edge-of-stability expectation.

On the local quadratic model L(x) ~ L0 + g.x + x.Hx/2, a step along the top Hessian eigenvector (eigenvalue lambda)
multiplies the error by a factor whose modulus is < 1 iff

- gradient descent: lr * lambda < 2 (the classical bound; Cohen et al. 2021, sec. 2);
- heavy-ball momentum beta (torch SGD with ``momentum=beta``, dampening 0): lr * lambda < 2 + 2 beta
  (the roots of z^2 - (1 + beta - lr lambda) z + beta lie in the unit disk iff 0 < lr lambda < 2 + 2 beta;
  Goh 2017, "Why momentum really works", sec. 2; Cohen et al. 2021, app. B);
- Adam with frozen preconditioner P = diag(sqrt(v_hat) + eps): lr * a < (2 + 2 beta1) / (1 - beta1), with ``a``
  the top eigenvalue of P^-1/2 H P^-1/2 (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability",
  eq. 2; derived in :func:`learnmech.observe.preconditioned_sharpness`): 38 / lr at beta1 = 0.9.

The edge of stability (Cohen et al. 2021, 2022): full-batch training at a fixed lr below the threshold at init
typically *sharpens* progressively until sharpness reaches the threshold, then hovers at it (non-monotone but
still decreasing loss) instead of exceeding it. Above the threshold at init, the top direction grows: the loss rises
within a few steps and either the net catapults to a flatter region with sharpness below the threshold (Lewkowycz
et al. 2020) or it diverges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .._checks import one_of, positive_float
from ..observe import hessian_eigenvalues, preconditioned_sharpness
from ..observe._torch import LossFn, batch_loss, trainable_parameters

__all__ = ["OPTIMIZERS", "Stability", "EdgeOfStability", "stability", "threshold"]

OPTIMIZERS = ("gd", "momentum", "adam")

#: Within this factor of the threshold (lr / lr_stable in [1/MARGIN, MARGIN]) the quadratic model does not decide
#: the first steps: the top direction's per-step factor |1 - lr lambda| is within 0.1 of 1, so over the ~20 steps
#: the stability score looks at, higher-order terms, progressive sharpening (Cohen et al. 2021) or
#: self-stabilization (Damian et al. 2023) can win. Forecasts inside the margin are scored "inconclusive".
MARGIN = 1.05


def _betas(betas: Any) -> tuple[float, float]:
    try:
        b1, b2 = (float(b) for b in betas)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}") from None
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}")
    return b1, b2


def threshold(lr: float, optimizer: str = "gd", momentum: float = 0.9, betas: Any = (0.9, 0.999)) -> float:
    """The sharpness threshold for learning rate ``lr`` (module docstring): 2/lr (gd), (2 + 2 momentum)/lr
    (momentum), (2 + 2 beta1)/((1 - beta1) lr) for Adam's preconditioned sharpness. In 1/lr units."""
    lr = positive_float(lr, "lr")
    optimizer = one_of(optimizer, "optimizer", OPTIMIZERS)
    if optimizer == "gd":
        return 2.0 / lr
    if optimizer == "momentum":
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        return (2.0 + 2.0 * momentum) / lr
    beta1, _ = _betas(betas)
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)


@dataclass
class EdgeOfStability:
    """The expectation for one learning rate.

    lr; threshold: the sharpness threshold at that lr (1/lr units); ratio: lr / lr_stable (= sharpness at init /
    threshold); regime: ``"stable"`` (ratio < 1/MARGIN), ``"unstable"`` (ratio > MARGIN) or ``"marginal"``;
    expectation: the forecast in words.
    """

    lr: float
    threshold: float
    ratio: float
    regime: str
    expectation: str


@dataclass
class Stability:
    """Result of :func:`stability`.

    optimizer: "gd" | "momentum" | "adam"; sharpness: top eigenvalue of H at init (for Adam: of P^-1/2 H P^-1/2
    with Adam's first-step preconditioner); lr_stable: the largest stable learning rate of the quadratic model;
    momentum, betas, eps: the settings used; n_hvp: Hessian-vector products spent (0 for Adam: not counted).
    """

    optimizer: str
    sharpness: float
    lr_stable: float
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    n_hvp: int = 0

    def threshold(self, lr: float) -> float:
        """The sharpness threshold at ``lr`` for this optimizer (1/lr units)."""
        return threshold(lr, self.optimizer, self.momentum, self.betas)

    def at(self, lr: float) -> EdgeOfStability:
        """The stability regime and edge-of-stability expectation for learning rate ``lr``."""
        lr = positive_float(lr, "lr")
        ratio = lr / self.lr_stable
        limit = self.threshold(lr)
        what = "preconditioned sharpness" if self.optimizer == "adam" else "sharpness"
        if ratio > MARGIN:
            regime = "unstable"
            text = (f"unstable at init: {what} {self.sharpness:.4g} > threshold {limit:.4g}; the loss rises within "
                    "a few steps, then either diverges or catapults to a region where the "
                    f"{what} is below {limit:.4g}")
        elif ratio < 1.0 / MARGIN:
            regime = "stable"
            text = (f"stable at init ({what} {self.sharpness:.4g} < threshold {limit:.4g}); if progressive "
                    f"sharpening brings it to {limit:.4g}, it hovers there (edge of stability) and does not exceed it")
        else:
            regime = "marginal"
            text = (f"within a factor {MARGIN} of the threshold ({what} {self.sharpness:.4g} vs {limit:.4g}): the "
                    "quadratic model does not decide the first steps")
        return EdgeOfStability(lr=lr, threshold=limit, ratio=ratio, regime=regime, expectation=text)


def _first_step_preconditioner(model: torch.nn.Module, loss_fn: LossFn, batch: Any, eps: float) -> list[torch.Tensor]:
    """Adam's P after its first step on ``batch``: v_hat_1 = g^2 exactly (bias-corrected), so P = |g| + eps."""
    params = trainable_parameters(model)
    grads = torch.autograd.grad(batch_loss(model, loss_fn, batch), params, allow_unused=True)
    return [(torch.zeros_like(p) if g is None else g.detach().abs()) + eps for g, p in zip(grads, params, strict=True)]


def stability(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    optimizer: str = "gd",
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> Stability:
    """Forecast the largest stable learning rate of ``model`` at its current (initial) parameters.

    model: any torch module; loss_fn: ``(outputs, targets) -> scalar``; batch: ``(inputs, targets)`` (the full
    training set for full-batch training, else a large batch: the sharpness of a minibatch loss is larger).
    optimizer: ``"gd"``, ``"momentum"`` (heavy ball with ``momentum``) or ``"adam"`` (``betas``, ``eps``).
    Returns :class:`Stability` with ``sharpness`` (top Hessian eigenvalue, certified to 1e-3 relative; for Adam the
    preconditioned sharpness with the preconditioner of Adam's first step, P = |g| + eps, since v_hat_1 = g^2) and
    ``lr_stable`` = 2/lambda, (2 + 2 momentum)/lambda or (2 + 2 beta1)/((1 - beta1) a); ``.at(lr)`` gives the
    edge-of-stability expectation for a chosen lr. Raises ValueError naming a bad argument.
    """
    optimizer = one_of(optimizer, "optimizer", OPTIMIZERS)
    momentum = float(momentum)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    betas = _betas(betas)
    eps = positive_float(eps, "eps")
    if optimizer == "adam":
        preconditioner = _first_step_preconditioner(model, loss_fn, batch, eps)
        value = preconditioned_sharpness(model, loss_fn, batch, preconditioner)
        n_hvp = 0
    else:
        result = hessian_eigenvalues(model, loss_fn, batch, k=1, rtol=1e-3)
        value, n_hvp = float(result.eigenvalues[0]), result.n_hvp
    if not value > 0:
        raise ValueError(f"the sharpness at these parameters is {value:.3g} <= 0: no curvature-limited lr to forecast")
    lr_stable = 1.0 / value * (threshold(1.0, optimizer, momentum, betas))
    return Stability(optimizer=optimizer, sharpness=value, lr_stable=lr_stable, momentum=momentum, betas=betas,
                     eps=eps, n_hvp=n_hvp)
