"""Numerical dual activations E[phi(u) phi(v)] for activations without a closed form (tanh, any callable).

The expectation is over a centred bivariate Gaussian (u, v) with variances q1, q2 and covariance c. Naive
Gauss-Hermite on the raw scale fails twice over for deep nets: the variances can be astronomically large
(W_std = 2 doubles them every ReLU-like layer) and kinked or nearly kinked activations are not polynomials.
So (following the polar/"angular" form of Cho & Saul (2009), sec. 2, used there for the arc-cosine kernel):

1. rescale by the standard deviations: u = s1 r cos(t), v = s2 r cos(t - a), with z = r (cos t, sin t) a
   standard 2-D normal, s_i = sqrt(q_i) and cos(a) = rho = c / (s1 s2). Then
   E[phi(u) phi(v)] = 1/(2 pi) int_0^{2 pi} dt int_0^inf r exp(-r^2/2) phi(u) phi(v) dr.
2. split the angle at the four rays where u = 0 or v = 0: inside each sector the signs of u and v are fixed,
   so an activation that is kinked (or steep) only at 0 is smooth there.
3. integrate each sector with the tanh-sinh rule (Takahasi & Mori 1974), which clusters nodes
   double-exponentially towards the sector's edges, and the radius with tanh-sinh near 0 plus Gauss-Legendre
   on the bulk. A near-kink of width 1/s (tanh at huge variance, softplus, SiLU) sits next to an edge or at
   small r and is resolved there; smooth parts converge exponentially (Trefethen & Weideman (2014), "The
   exponentially convergent trapezoidal rule", SIAM Review 56).

The derivative kernel E[phi'(u) phi'(v)] (needed by the NTK, Jacot et al. (2018), thm. 1) uses the same rule.

Measured accuracy (against the ReLU/erf/GELU closed forms, tests/test_kernels_analytic.py): <= 2e-9 relative
for variances up to 30, <= 3e-7 at any variance (up to 1e12) for kinked/near-kinked activations and their
step-like derivatives. Limit: a derivative that is a narrow *bump* (erf', tanh' = sech^2) at variance >~ 1e3
sits along the sector edges at every radius and is under-resolved (1.8e-4 at variance 1e4, 14% at 1e12).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

# Tanh-sinh ("double exponential") rule of Takahasi & Mori (1974): trapezoid in x after
# y = (1 + tanh(pi/2 sinh x)) / 2, which clusters nodes double-exponentially at both ends of [0, 1]. Errors for
# an integrand analytic in a strip decay like exp(-c / h). Measured against the erf/ReLU/GELU closed forms:
# (ANGLE_STEP, RADIUS_STEP) = (0.1, 0.15) gives <= 2e-9 relative for variances up to 30 (0.15, 0.2 left 6e-7
# for erf' at variance 30, a Gaussian bump the angular rule must resolve near the sector edges). x is cut at
# +-TS_SPAN, where the weights are < 1e-20.
ANGLE_STEP = 0.1
RADIUS_STEP = 0.15
TS_SPAN = 3.3
# The radius is split at RADIUS_SPLIT: tanh-sinh on [0, RADIUS_SPLIT] resolves near-kinks at small r (a
# steep activation at huge variance), Gauss-Legendre with RADIUS_GL nodes covers the Gaussian bulk up to
# RADIUS_MAX, where exp(-RADIUS_MAX^2 / 2) = exp(-60.5) makes the tail negligible for polynomially bounded phi.
RADIUS_SPLIT = 1.0
RADIUS_GL = 24
RADIUS_MAX = 11.0
# Pairs are processed in chunks so that the (pairs, nodes) work arrays stay a few MB.
_NODES_PER_CHUNK = 1_000_000


@lru_cache(maxsize=8)
def _tanh_sinh(step: float, span: float = TS_SPAN) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y in (0, 1) and weights w with sum w f(y) ~ int_0^1 f(y) dy (Takahasi & Mori 1974)."""
    half = int(np.ceil(span / step))
    x = np.arange(-half, half + 1) * step
    u = 0.5 * np.pi * np.sinh(x)
    y = 0.5 * (1.0 + np.tanh(u))
    w = 0.25 * step * np.pi * np.cosh(x) / np.cosh(u) ** 2
    return y, w
@lru_cache(maxsize=8)
def _gauss_legendre(count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(count)


def _radial_nodes(s1: torch.Tensor, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair radii (p, n_rad) and weights (including r exp(-r^2/2)) for int_0^inf f(r) r exp(-r^2/2) dr.

    [0, RADIUS_SPLIT] is cut at 1/s_max and 1/s_min (where u or v reach the activation's own scale, ~1 for
    every common activation) and each piece gets a tanh-sinh rule; Gauss-Legendre covers the Gaussian bulk.
    Pieces of zero length (s < 1) get zero weight.
    """
    dtype = s1.dtype
    y, w = (torch.as_tensor(a, dtype=dtype) for a in _tanh_sinh(RADIUS_STEP))
    g, gw = (torch.as_tensor(a, dtype=dtype) for a in _gauss_legendre(RADIUS_GL))
    both = torch.stack([s1, s2], dim=1)
    inner = both.max(dim=1).values.reciprocal().clamp(max=RADIUS_SPLIT)
    outer = both.min(dim=1).values.reciprocal().clamp(max=RADIUS_SPLIT)
    cuts = [torch.zeros_like(inner), inner, outer, torch.full_like(inner, RADIUS_SPLIT)]
    radii, weights = [], []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        length = (hi - lo)[:, None]
        radii.append(lo[:, None] + length * y)
        weights.append(length * w)
    bulk = RADIUS_MAX - RADIUS_SPLIT
    radii.append((RADIUS_SPLIT + bulk * (g + 1) / 2).expand(len(s1), -1))
    weights.append((gw * bulk / 2).expand(len(s1), -1))
    radius, weight = torch.cat(radii, dim=1), torch.cat(weights, dim=1)
    return radius, weight * radius * torch.exp(-0.5 * radius**2)


def dual_pairs(
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    q1: torch.Tensor,
    q2: torch.Tensor,
    c: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[q1, c], [c, q2]]), elementwise over 1-D
    float64 tensors of equal length. ``fn(x) -> (phi(x), phi'(x))`` acts elementwise on a tensor.
    q1, q2: variances (> 0); c: covariances.
    """
    frac, wfrac = (torch.as_tensor(a, dtype=c.dtype) for a in _tanh_sinh(ANGLE_STEP))
    n_ang = frac.numel()
    nngp, dot = torch.empty_like(c), torch.empty_like(c)
    n_rad = 3 * _tanh_sinh(RADIUS_STEP)[0].size + RADIUS_GL
    chunk = max(1, _NODES_PER_CHUNK // (4 * n_ang * n_rad))
    half_pi = math.pi / 2
    for start in range(0, c.numel(), chunk):
        sl = slice(start, start + chunk)
        s1, s2 = q1[sl].sqrt(), q2[sl].sqrt()
        rho = (c[sl] / (s1 * s2)).clamp(-1.0, 1.0)
        a = torch.arccos(rho)  # angle between the u- and v-directions in z-space (cos a = rho)
        zero = torch.zeros_like(a)
        # The four sectors between consecutive zero rays of u (t = -pi/2, pi/2) and v (t = a -/+ pi/2).
        edges = torch.stack([zero - half_pi, a - half_pi, zero + half_pi, a + half_pi], dim=1)  # (p, 4)
        widths = torch.stack([a, math.pi - a, a, math.pi - a], dim=1)  # (p, 4)
        t = edges[:, :, None] + widths[:, :, None] * frac  # (p, 4, n_ang)
        radius, wradius = _radial_nodes(s1, s2)  # (p, n_rad)
        radius = radius[:, None, None, :]
        u = (torch.cos(t) * s1[:, None, None])[..., None] * radius  # (p, 4, n_ang, n_rad)
        v = (torch.cos(t - a[:, None, None]) * s2[:, None, None])[..., None] * radius
        fu, dfu = fn(u)
        fv, dfv = fn(v)
        weight = (widths[:, :, None] * wfrac)[..., None] * wradius[:, None, None, :] / (2 * math.pi)
        nngp[sl] = fu.mul_(fv).mul_(weight).sum(dim=(1, 2, 3))
        dot[sl] = dfu.mul_(dfv).mul_(weight).sum(dim=(1, 2, 3))
    return nngp, dot


TensorFn = Callable[[torch.Tensor], torch.Tensor]


def tanh_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tanh x, 1 - tanh^2 x)."""
    value = torch.tanh(x)
    return value, 1.0 - value * value


def as_torch_activation(fn: Callable) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Wrap a user elementwise callable (torch or numpy) as x -> (phi(x), phi'(x)) on float64 torch tensors.

    phi' comes from torch autograd when ``fn`` is a torch function; for numpy functions it is a second-order
    one-sided difference with step h = eps^(1/3) * max(1, |x|), truncation error O(h^2) ~ 4e-11 relative, far
    below the 1e-6 target (Press et al., Numerical Recipes, sec. 5.7).
    """

    def call_numpy(x: torch.Tensor) -> torch.Tensor:
        value = np.asarray(fn(x.detach().cpu().numpy()), dtype=np.float64)
        if value.shape != tuple(x.shape):
            raise ValueError(f"activation must be elementwise: input shape {tuple(x.shape)}, output {value.shape}")
        return torch.from_numpy(value).to(x.dtype)

    probe = torch.linspace(-2.0, 2.0, 5, dtype=torch.float64, requires_grad=True)
    try:
        out = fn(probe)
        is_torch = isinstance(out, torch.Tensor) and out.shape == probe.shape and out.requires_grad
    except Exception:  # noqa: BLE001 - any failure on a tensor means "treat it as a numpy function"
        is_torch = False

    if is_torch:

        def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.enable_grad():
                leaf = x.detach().requires_grad_(True)
                value = fn(leaf)
                (grad,) = torch.autograd.grad(value.sum(), leaf, allow_unused=True)
            return value.detach(), (torch.zeros_like(x) if grad is None else grad)

        return value_and_grad

    step_rel = np.finfo(np.float64).eps ** (1.0 / 3.0)

    def value_and_difference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Second-order one-sided difference pointing away from 0, (-3 f(x) + 4 f(x + h) - f(x + 2h)) / (2h) with
        # h signed like x: it never straddles the kink at 0 that the quadrature's sector split relies on.
        h = step_rel * x.abs().clamp_min(1.0) * torch.where(x < 0, -1.0, 1.0).to(x.dtype)
        value = call_numpy(x)
        return value, (4.0 * call_numpy(x + h) - call_numpy(x + 2.0 * h) - 3.0 * value) / (2.0 * h)

    return value_and_difference
