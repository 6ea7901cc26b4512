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

The derivative kernel E[phi'(u) phi'(v)] (needed by the NTK, Jacot et al. (2018), eq. 5) uses the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

# Tanh-sinh ("double exponential") rule of Takahasi & Mori (1974): trapezoid in x after
# y = (1 + tanh(pi/2 sinh x)) / 2, which clusters nodes double-exponentially at both ends of [0, 1]. Errors for
# an integrand analytic in a strip decay like exp(-c / h); ANGLE_STEP = 0.15 gives ~1e-13 on a sector and
# RADIUS_STEP = 0.2 ~1e-12 on [0, RADIUS_SPLIT] (checked in tests against closed forms). x is cut at
# +-TS_SPAN, where the weights are < 1e-20.
ANGLE_STEP = 0.15
RADIUS_STEP = 0.2
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
def _radial_rule() -> tuple[np.ndarray, np.ndarray]:
    """Radii and weights (including r exp(-r^2/2)) for int_0^inf f(r) r exp(-r^2/2) dr."""
    y, w = _tanh_sinh(RADIUS_STEP)
    g, gw = np.polynomial.legendre.leggauss(RADIUS_GL)
    outer = RADIUS_MAX - RADIUS_SPLIT
    radius = np.concatenate([RADIUS_SPLIT * y, RADIUS_SPLIT + outer * (g + 1) / 2])
    weight = np.concatenate([RADIUS_SPLIT * w, gw * outer / 2])
    return radius, weight * radius * np.exp(-0.5 * radius**2)


def _rule(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Angular fractions of a sector, their weights, radii, radial weights."""
    frac, wfrac = _tanh_sinh(ANGLE_STEP)
    radius, wradius = _radial_rule()
    return tuple(torch.as_tensor(a, dtype=dtype) for a in (frac, wfrac, radius, wradius))  # type: ignore[return-value]


def dual_pairs(
    fn: Callable[[torch.Tensor], torch.Tensor],
    q1: torch.Tensor,
    q2: torch.Tensor,
    c: torch.Tensor,
) -> torch.Tensor:
    """E[fn(u) fn(v)] for (u, v) ~ N(0, [[q1, c], [c, q2]]), elementwise over 1-D tensors of equal length.

    q1, q2: variances (> 0); c: covariances. Returns a tensor like ``c``. ``fn`` maps a tensor of scaled
    pre-activations to activations elementwise.
    """
    frac, wfrac, radius, wradius = _rule(c.dtype)
    n_ang, n_rad = frac.numel(), radius.numel()
    out = torch.empty_like(c)
    per_pair = 4 * n_ang * n_rad
    chunk = max(1, _NODES_PER_CHUNK // per_pair)
    for start in range(0, c.numel(), chunk):
        sl = slice(start, start + chunk)
        s1, s2 = q1[sl].sqrt(), q2[sl].sqrt()
        rho = (c[sl] / (s1 * s2)).clamp(-1.0, 1.0)
        # a = angle between the u- and v-directions in z-space (cos a = rho).
        a = torch.arccos(rho)
        half_pi = math.pi / 2
        # The four sectors between consecutive zero rays of u (t = -pi/2, pi/2) and v (t = a -/+ pi/2).
        edges = torch.stack([-half_pi + 0 * a, a - half_pi, half_pi + 0 * a, a + half_pi], dim=1)  # (p, 4)
        widths = torch.stack([a, math.pi - a, a, math.pi - a], dim=1)  # (p, 4)
        t = edges[:, :, None] + widths[:, :, None] * frac  # (p, 4, n_ang)
        wt = widths[:, :, None] * wfrac  # (p, 4, n_ang)
        cos_u = torch.cos(t)[..., None] * radius  # (p, 4, n_ang, n_rad): r cos t
        cos_v = torch.cos(t - a[:, None, None])[..., None] * radius
        fu = fn(cos_u * s1[:, None, None, None])
        fv = fn(cos_v * s2[:, None, None, None])
        inner = (fu * fv) @ wradius  # (p, 4, n_ang)
        out[sl] = (inner * wt).sum(dim=(1, 2)) / (2 * math.pi)
    return out


TensorFn = Callable[[torch.Tensor], torch.Tensor]


def as_torch_activation(fn: Callable) -> tuple[TensorFn, TensorFn]:
    """Wrap a user elementwise callable (torch or numpy) as (phi, phi') acting on float64 torch tensors.

    phi' comes from torch autograd when ``fn`` is a torch function; for numpy functions it is a central
    difference with step eps^(1/3) * max(1, |x|), whose truncation error ~ eps^(2/3) ~ 4e-11 relative is far
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

        def phi(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return fn(x)

        def dphi(x: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                leaf = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(fn(leaf).sum(), leaf, allow_unused=True)
            return torch.zeros_like(x) if grad is None else grad

        return phi, dphi

    step_rel = np.finfo(np.float64).eps ** (1.0 / 3.0)

    def dphi_numpy(x: torch.Tensor) -> torch.Tensor:
        h = step_rel * x.abs().clamp_min(1.0)
        return (call_numpy(x + h) - call_numpy(x - h)) / (2 * h)

    return call_numpy, dphi_numpy
