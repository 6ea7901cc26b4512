"""Closed-form dual activations (the layer maps of the NNGP/NTK recursion) for ReLU, erf, GELU and identity.

Each activation provides, for a centred Gaussian pair (u, v) with variances q1, q2 and covariance c,

- ``pair(c, q1, q2)`` -> (E[phi(u) phi(v)], E[phi'(u) phi'(v)]) elementwise over the (n1, n2) covariance
  block, with q1 of shape (n1, 1) and q2 of shape (1, n2);
- ``diag(q)`` -> E[phi(u)^2] for 1-D variances (the new variances of the next layer).

All functions work in place where they can (the block is the caller's scratch buffer) because at
2048 x 2048 x 10 layers the run time is memory traffic, not arithmetic.
"""

from __future__ import annotations

import math

import torch

_TWO_PI = 2.0 * math.pi


def relu_pair(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Arc-cosine kernel of degree 1 and 0 (Cho & Saul (2009), eq. 6 with n = 1 and n = 0):
    E[relu(u) relu(v)] = sqrt(q1 q2) / (2 pi) (sin t + (pi - t) cos t), E[step(u) step(v)] = (pi - t) / (2 pi),
    with cos t = c / sqrt(q1 q2). ``c`` is overwritten."""
    # sqrt(q1 q2) per entry (not sqrt(q1) sqrt(q2)): sqrt(fl(q^2)) == q exactly, so an input paired with itself
    # gets correlation exactly 1; arccos would turn a 1-ulp error into a 1e-8 error of the angle.
    scale = (q1 * q2).sqrt_()
    rho = c.div_(scale).clamp_(-1.0, 1.0)
    sin_t = torch.sqrt(1.0 - rho * rho)  # sin of the angle, cheaper and more accurate than sin(arccos)
    pi_minus_t = torch.arccos(rho).neg_().add_(math.pi)
    nngp = pi_minus_t.mul(rho).add_(sin_t).mul_(scale).div_(_TWO_PI)
    return nngp, pi_minus_t.div_(_TWO_PI)


def relu_diag(q: torch.Tensor) -> torch.Tensor:
    """E[relu(u)^2] = q / 2 (Cho & Saul (2009), eq. 6 at t = 0)."""
    return 0.5 * q


def erf_pair(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Williams (1997), eq. 11: E[erf(u) erf(v)] = 2/pi arcsin(2c / sqrt((1 + 2 q1)(1 + 2 q2))); its derivative
    in c (Price's theorem) gives E[erf'(u) erf'(v)] = 4/pi / sqrt((1 + 2 q1)(1 + 2 q2) - 4 c^2)."""
    denom = (torch.sqrt(1.0 + 2.0 * q1) * torch.sqrt(1.0 + 2.0 * q2)).expand_as(c)
    ratio = c.mul_(2.0).div_(denom).clamp_(-1.0, 1.0)
    dot = torch.rsqrt(1.0 - ratio * ratio).div_(denom).mul_(4.0 / math.pi)
    return torch.arcsin(ratio).mul_(2.0 / math.pi), dot


def erf_diag(q: torch.Tensor) -> torch.Tensor:
    """Williams (1997), eq. 11 at u = v."""
    return (2.0 / math.pi) * torch.arcsin(2.0 * q / (1.0 + 2.0 * q))


def gelu_pair(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact GELU phi(x) = x Phi(x): Tsuchida, Pearce, van der Heide, Roosta & Gallagher (2021), "Avoiding kernel
    fixed points: computing with ELU and GELU infinite networks", thm. 3, in the form neural-tangents 0.6.5
    (``stax.Gelu``) evaluates it, with delta^2 = (1 + q1)(1 + q2) - c^2 and angle = arctan2(c, delta):
    E[phi(u) phi(v)] = c/4 + (c angle + (c^2 + q1 q2 delta^2) / ((1 + q1)(1 + q2) delta)) / (2 pi),
    E[phi'(u) phi'(v)] = 1/4 + angle / (2 pi) + c / (2 pi delta) (1/delta^2 + (1 - q1 q2)/((1 + q1)(1 + q2)) + 1).
    delta^2 is formed as 1 + q1 + q2 + (s - c)(s + c), s = sqrt(q1 q2), to avoid cancelling two O(q^2) terms
    when the variances are huge (W_std = 2 doubles them every layer). ``c`` is not modified."""
    prod = (q1 * q2).expand_as(c)
    s = prod.sqrt()  # per entry, so that s - c == 0 exactly for an input paired with itself
    prod_plus_1 = ((1.0 + q1) * (1.0 + q2)).expand_as(c)
    delta_sq = (s - c).clamp_(min=0.0).mul_(s + c).add_((1.0 + q1 + q2).expand_as(c))
    delta = delta_sq.sqrt()
    angle = torch.arctan2(c, delta)
    nngp = (c * c + prod * delta_sq).div_(prod_plus_1 * delta).add_(c * angle).div_(_TWO_PI).add_(0.25 * c)
    first = (1.0 / delta_sq).add_((1.0 - prod) / prod_plus_1).add_(1.0).mul_(c / delta).div_(_TWO_PI)
    dot = first.add_(angle.div_(_TWO_PI)).add_(0.25)
    return nngp, dot


def gelu_diag(q: torch.Tensor) -> torch.Tensor:
    """Tsuchida et al. (2021), thm. 3 at u = v (neural-tangents' ``nngp_fn_diag``)."""
    root = torch.sqrt(1.0 + 2.0 * q)
    value = q / ((q + 1.0) * root) + torch.arctan2(q, root) / 2.0
    return q * (value / math.pi + 0.25)


def identity_pair(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear activation: the covariance passes through and phi' = 1."""
    return c, torch.ones_like(c)


def identity_diag(q: torch.Tensor) -> torch.Tensor:
    return q.clone()


CLOSED_FORMS = {
    "relu": (relu_pair, relu_diag),
    "erf": (erf_pair, erf_diag),
    "gelu": (gelu_pair, gelu_diag),
    "identity": (identity_pair, identity_diag),
}
