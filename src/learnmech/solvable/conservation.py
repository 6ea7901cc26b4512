"""Symmetry-induced conservation laws of gradient flow and their drift under gradient descent.

Du, Hu & Lee (2018, "Algorithmic regularization in learning deep homogeneous models", sec. 2) and
Kunin et al. (2021, "Neural mechanics", sec. 4-5): a continuous symmetry of the loss gives a conserved quantity of
gradient flow (Noether). Three symmetries and their quantities, all *quadratic forms* ``Q`` of the parameters:

* rescaling between consecutive linear layers, ``W_l -> A W_l``, ``W_{l+1} -> W_{l+1} A^{-1}`` (deep linear net,
  Arora et al. 2018): the layer imbalance ``D_l = W_{l+1}^T W_{l+1} - W_l W_l^T`` (:func:`layer_imbalance`);
* per-neuron rescaling of a positively homogeneous activation (ReLU), ``(w_in_j, b_j) -> c (w_in_j, b_j)``,
  ``w_out_j -> w_out_j / c``: the neuron balance ``||w_in_j||^2 + b_j^2 - ||w_out_j||^2``
  (:func:`neuron_balance`; Du et al. 2018, Thm. 2.1);
* scale invariance ``L(c w) = L(w)`` (a weight followed by a normalisation): ``||w||^2`` (Kunin et al. 2021,
  sec. 4, scale symmetry).

In each case the symmetry makes the bilinear cross term vanish, ``B(w, grad L(w)) = 0`` (for the rescaling
symmetries, ``W_{l+1}^T G_{l+1} = G_l W_l^T``; for scale invariance ``w . grad L = 0``), so ``dQ/dt = -2 B(w, grad
L) = 0`` under gradient flow, while one gradient-descent step ``w' = w - lr G`` changes the quadratic form by
*exactly*

    Q(w') - Q(w) = lr^2 Q(G)                  (expanding the quadratic form; cf. Kunin et al. 2021, sec. 5)

(:func:`gd_step_drift`). Over a fixed training time ``t = k lr`` the steps add up to the leading-order drift
``lr * int_0^t Q(G(s)) ds`` along the gradient-flow trajectory (:func:`predicted_gd_drift`): O(lr^2) per step,
O(lr) at fixed time. With weight decay ``lambda`` (loss ``L + lambda/2 ||w||^2``) the cross term no longer
vanishes: ``dQ/dt = -2 lambda Q`` so ``Q(t) = exp(-2 lambda t) Q(0)`` under gradient flow (Kunin et al. 2021,
sec. 5; :func:`weight_decay_decay`).

Everything takes torch tensors and follows their device; shapes use torch's ``Linear`` convention
(``weight`` is ``(out_features, in_features)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = [
    "layer_imbalance",
    "neuron_balance",
    "gd_step_drift",
    "predicted_gd_drift",
    "weight_decay_decay",
    "FlowIntegral",
    "gradient_flow_integral",
]


def _check_matrix(name: str, value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor) or value.ndim != 2:
        raise ValueError(f"{name} must be a 2-D torch tensor (out_features, in_features), got "
                         f"{getattr(value, 'shape', type(value).__name__)}")


def layer_imbalance(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Imbalance of consecutive layers, ``D_l = W_{l+1}^T W_{l+1} - W_l W_l^T`` (Du, Hu & Lee 2018, sec. 2).

    Parameters
    ----------
    weights : sequence of L >= 2 tensors
        The weight matrices in forward order, ``W_l`` of shape ``(n_l, n_{l-1})`` (torch ``Linear.weight``).

    Returns
    -------
    list of L - 1 tensors
        ``D_l`` of shape ``(n_l, n_l)``, l = 1 .. L-1: conserved by gradient flow on any loss of the product
        ``W_L ... W_1`` (and of the layer pair around a positively homogeneous activation, summed per neuron as
        :func:`neuron_balance`). Applied to the *gradients* it gives the exact GD step drift (:func:`gd_step_drift`).
    """
    if isinstance(weights, torch.Tensor) or len(weights) < 2:
        raise ValueError("weights must be a sequence of at least two 2-D tensors")
    for i, w in enumerate(weights):
        _check_matrix(f"weights[{i}]", w)
    out = []
    for i, (lower, upper) in enumerate(zip(weights[:-1], weights[1:], strict=False)):
        if upper.shape[1] != lower.shape[0]:
            raise ValueError(f"weights[{i + 1}] must have in_features {lower.shape[0]} (= out_features of "
                             f"weights[{i}]), got shape {tuple(upper.shape)}")
        out.append(upper.T @ upper - lower @ lower.T)
    return out


def neuron_balance(w_in: torch.Tensor, w_out: torch.Tensor, b_in: torch.Tensor | None = None) -> torch.Tensor:
    """Per-neuron balance ``||w_in_j||^2 + b_j^2 - ||w_out_j||^2`` of a hidden layer (Du, Hu & Lee 2018, Thm. 2.1).

    Parameters
    ----------
    w_in : (h, d) tensor
        Incoming weights of the ``h`` hidden neurons.
    w_out : (k, h) tensor
        Outgoing weights (column ``j`` leaves neuron ``j``).
    b_in : (h,) tensor, optional
        Biases of the hidden neurons (they scale with the incoming weights under the ReLU rescaling symmetry).

    Returns
    -------
    (h,) tensor
        Conserved per neuron by gradient flow when the activation is positively homogeneous of degree 1 (ReLU,
        leaky ReLU, identity); not conserved for tanh, erf, GELU (no rescaling symmetry).
    """
    _check_matrix("w_in", w_in)
    _check_matrix("w_out", w_out)
    if w_out.shape[1] != w_in.shape[0]:
        raise ValueError(f"w_out must have {w_in.shape[0]} columns (one per hidden neuron), got {tuple(w_out.shape)}")
    balance = w_in.square().sum(dim=1) - w_out.square().sum(dim=0)
    if b_in is not None:
        if not isinstance(b_in, torch.Tensor) or b_in.shape != (w_in.shape[0],):
            raise ValueError(f"b_in must be a tensor of shape ({w_in.shape[0]},), got "
                             f"{getattr(b_in, 'shape', type(b_in).__name__)}")
        balance = balance + b_in.square()
    return balance


def gd_step_drift(quantity: Callable[..., torch.Tensor | list[torch.Tensor]], grads: Sequence[torch.Tensor],
                  lr: float) -> torch.Tensor | list[torch.Tensor]:
    """Exact change of a symmetry's quadratic conserved quantity in one GD step: ``lr^2 Q(G)``.

    For a quadratic form ``Q`` with ``Q(w - lr G) = Q(w) - 2 lr B(w, G) + lr^2 Q(G)`` and the symmetry's identity
    ``B(w, grad L(w)) = 0`` (Kunin et al. 2021, sec. 4), the first-order term vanishes and the step changes
    ``Q`` by ``lr^2 Q(G)`` exactly (no weight decay).

    Parameters
    ----------
    quantity : callable
        ``Q`` applied positionally to ``grads`` (e.g. :func:`neuron_balance`, or ``lambda *w:
        layer_imbalance(w)``).
    grads : sequence of tensors
        The gradients ``G`` of the parameters ``quantity`` reads, in its argument order.
    lr : float
        Learning rate (> 0).

    Returns
    -------
    tensor or list of tensors
        ``lr^2 Q(G)``, shaped like ``Q``'s output.
    """
    if not (lr > 0):
        raise ValueError(f"lr must be > 0, got {lr}")
    value = quantity(*grads)
    if isinstance(value, (list, tuple)):
        return [lr**2 * v for v in value]
    return lr**2 * value


def predicted_gd_drift(lr: float, flow_integral: torch.Tensor) -> torch.Tensor:
    """Leading-order drift of a conserved quantity after GD for a training time ``t = steps * lr``.

    Summing the per-step drift ``lr^2 Q(G_k)`` (:func:`gd_step_drift`) over the ``t / lr`` steps is a Riemann sum
    of ``lr int_0^t Q(G(s)) ds`` along the gradient-flow path (Kunin et al. 2021, sec. 5): the drift is O(lr) at
    fixed time (O(lr^2) per step), with a relative correction O(lr * lambda_max) from GD's deviation from the
    flow (modified-equation analysis, Barrett & Dherin 2021).

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    flow_integral : tensor
        ``int_0^t Q(G(s)) ds`` along gradient flow (:func:`gradient_flow_integral`), any shape.

    Returns
    -------
    tensor
        ``lr * flow_integral``, the predicted ``Q(w_GD(t)) - Q(w(0))``.
    """
    if not (lr > 0):
        raise ValueError(f"lr must be > 0, got {lr}")
    return lr * flow_integral


def weight_decay_decay(initial: torch.Tensor, weight_decay: float, t: float) -> torch.Tensor:
    """Gradient-flow value of a rescaling-symmetry quantity under weight decay: ``exp(-2 lambda t) Q(0)``.

    With loss ``L(w) + lambda/2 ||w||^2`` the symmetry's cross term vanishes for ``L`` and the decay term adds
    ``-lambda w`` to the velocity, so ``dQ/dt = -2 lambda Q`` (Kunin et al. 2021, sec. 5; ``t`` = steps x lr).

    Parameters
    ----------
    initial : tensor
        ``Q(0)``, any shape.
    weight_decay : float
        ``lambda >= 0`` (coefficient of ``lambda/2 ||w||^2``, i.e. torch ``SGD(weight_decay=lambda)``).
    t : float
        Training time ``>= 0``.

    Returns
    -------
    tensor
        ``exp(-2 lambda t) Q(0)``.
    """
    if not (weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not (t >= 0):
        raise ValueError(f"t must be >= 0, got {t}")
    return math.exp(-2.0 * weight_decay * t) * initial


class FlowIntegral:
    """Result of :func:`gradient_flow_integral`.

    Attributes
    ----------
    params : list of tensors
        Parameters at time ``t``.
    integrals : list of tensors
        ``int_0^t integrand(w(s), G(s)) ds`` for each tensor the integrand returns (trapezoid on the RK4 grid).
    times : (m,) tensor
        The grid times.
    losses : (m,) tensor
        The loss on the grid.
    """

    def __init__(self, params: list[torch.Tensor], integrals: list[torch.Tensor], times: torch.Tensor,
                 losses: torch.Tensor) -> None:
        self.params, self.integrals, self.times, self.losses = params, integrals, times, losses


def _grads(loss_fn: Callable[[list[torch.Tensor]], torch.Tensor], params: list[torch.Tensor],
           weight_decay: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [p.detach().requires_grad_(True) for p in params]
    loss = loss_fn(leaves)
    grads = list(torch.autograd.grad(loss, leaves))
    if weight_decay:
        grads = [g + weight_decay * p.detach() for g, p in zip(grads, params, strict=False)]
    return loss.detach(), grads


def gradient_flow_integral(loss_fn: Callable[[list[torch.Tensor]], torch.Tensor], params: Sequence[torch.Tensor],
                           t: float, dt: float,
                           integrand: Callable[[list[torch.Tensor], list[torch.Tensor]], Sequence[torch.Tensor]],
                           weight_decay: float = 0.0) -> FlowIntegral:
    """Integrate gradient flow ``dw/dt = -grad L(w)`` (RK4) and ``int_0^t integrand(w, grad L(w)) ds`` along it.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params) -> scalar tensor``, differentiable in the list of parameter tensors.
    params : sequence of tensors
        Initial parameters (not modified).
    t : float
        Final time (> 0), in the units of ``steps * lr``.
    dt : float
        RK4 step (> 0); the last step is shortened to land on ``t``.
    integrand : callable
        ``integrand(params, grads) -> sequence of tensors`` evaluated on the grid, e.g. ``lambda w, g:
        layer_imbalance(g)`` for the drift rate of :func:`predicted_gd_drift`. ``grads`` exclude weight decay.
    weight_decay : float
        ``lambda`` of an added ``lambda/2 ||w||^2`` (default 0).

    Returns
    -------
    FlowIntegral
        Final parameters, the integrals (trapezoid rule: O(dt^2)), grid times and losses.
    """
    if not (t > 0) or not math.isfinite(t):
        raise ValueError(f"t must be a finite number > 0, got {t}")
    if not (dt > 0):
        raise ValueError(f"dt must be > 0, got {dt}")
    if not (weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    w = [p.detach().clone() for p in params]
    n_steps = max(1, math.ceil(t / dt - 1e-9))
    times, losses, values = [], [], []

    def record(time: float, w: list[torch.Tensor]) -> None:
        loss, grads = _grads(loss_fn, w, 0.0)
        times.append(time)
        losses.append(float(loss))
        values.append([v.detach() for v in integrand(w, grads)])

    time = 0.0
    record(time, w)
    for _ in range(n_steps):
        h = min(dt, t - time)

        def velocity(p: list[torch.Tensor]) -> list[torch.Tensor]:
            return [-g for g in _grads(loss_fn, p, weight_decay)[1]]

        k1 = velocity(w)
        k2 = velocity([p + 0.5 * h * k for p, k in zip(w, k1, strict=False)])
        k3 = velocity([p + 0.5 * h * k for p, k in zip(w, k2, strict=False)])
        k4 = velocity([p + h * k for p, k in zip(w, k3, strict=False)])
        w = [p + h / 6.0 * (a + 2 * b + 2 * c + d) for p, a, b, c, d in zip(w, k1, k2, k3, k4, strict=False)]
        time += h
        record(time, w)
    integrals = []
    for j in range(len(values[0])):
        total = torch.zeros_like(values[0][j])
        for i in range(1, len(values)):
            total = total + 0.5 * (times[i] - times[i - 1]) * (values[i][j] + values[i - 1][j])
        integrals.append(total)
    device = w[0].device
    return FlowIntegral(w, integrals, torch.tensor(times, dtype=torch.float64, device=device),
                        torch.tensor(losses, dtype=torch.float64, device=device))
