"""Teacher-student linear regression: exact asymptotic risk of ridge(less) regression with isotropic data.

Setting (Hastie, Montanari, Rosset & Tibshirani 2019, Sec. 2 and 5; Advani & Saxe 2017): x ~ N(0, I_d),
y = x.beta + eps with ||beta||^2 = signal and Var(eps) = noise, n samples, aspect ratio gamma = d/n, and the
ridge estimator beta_hat = (X^T X / n + ridge I)^-1 X^T y / n (ridge = 0: the minimum-norm least-squares
solution). The risk is the excess test error E_x[(x.(beta_hat - beta))^2] = ||beta_hat - beta||^2 in the
proportional limit n, d -> inf with d/n = gamma. With n/d on the x-axis it shows double descent: a peak at
n = d for ridge -> 0 that the optimal ridge ``noise * gamma / signal`` removes.
"""

from __future__ import annotations

import numpy as np

from .._aliases import renamed
from .._checks import as_array, positive_float, positive_int
from ._linalg import matmul, solve_psd

__all__ = [
    "marchenko_pastur_stieltjes",
    "ridge_risk",
    "optimal_ridge",
    "ridge_risk_finite_ridgeless",
    "simulate_ridge_risk",
]


def marchenko_pastur_stieltjes(gamma: object, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Stieltjes transform m(-ridge) of the Marchenko-Pastur law (ratio gamma, unit variance) and its derivative.

    m(z) = lim (1/d) tr (X^T X/n - z I)^-1 solves gamma z m^2 - (1 - gamma - z) m + 1 = 0 (Marchenko & Pastur
    1967); at z = -ridge < 0 the root with m > 0 is taken. Returns ``(m, dm/dz)`` evaluated at z = -ridge, each
    shaped like ``gamma``. ridge must be > 0.
    """
    g = as_array(gamma, "gamma", ndim=(0, 1))
    if np.any(g <= 0):
        raise ValueError("gamma must be > 0")
    lam = positive_float(ridge, "ridge")
    b = 1.0 - g + lam
    # m = (-(1-g+lam) + sqrt((1-g+lam)^2 + 4 g lam)) / (2 g lam), written to avoid cancellation when b >> 0.
    root = np.sqrt(b * b + 4.0 * g * lam)
    m = np.where(b > 0, 2.0 / (b + root), (root - b) / (2.0 * g * lam))
    # Implicit differentiation of the quadratic: m' = (g m^2 + m) / ((1 - g - z) - 2 g z m) at z = -ridge.
    dm = (g * m * m + m) / (b + 2.0 * g * lam * m)
    return m, dm


def ridge_risk(gamma: object, ridge: float = 0.0, signal: float = 1.0, noise: float = 0.0) -> np.ndarray:
    """Asymptotic excess risk of ridge regression with isotropic Gaussian features, shaped like ``gamma``.

    gamma: d/n > 0 (scalar or ``(G,)``). ridge: >= 0 (the estimator's lambda on X^T X / n). signal: ||beta||^2.
    noise: label-noise variance. Units: target units squared.
    ridge > 0: R = signal * ridge^2 m'(-ridge) + noise * gamma (m(-ridge) - ridge m'(-ridge))
    (bias + variance; Hastie et al. 2019, Thm. 5 / Cor. 5 for isotropic features, with m the Marchenko-Pastur
    Stieltjes transform). ridge = 0: R = noise gamma / (1 - gamma) for gamma < 1 and
    signal (1 - 1/gamma) + noise / (gamma - 1) for gamma > 1 (Hastie et al. 2019, Thm. 1); +inf at gamma = 1.
    """
    g = as_array(gamma, "gamma", ndim=(0, 1))
    if np.any(g <= 0):
        raise ValueError("gamma must be > 0 (gamma = d/n)")
    lam = positive_float(ridge, "ridge", allow_zero=True)
    r2 = positive_float(signal, "signal", allow_zero=True)
    s2 = positive_float(noise, "noise", allow_zero=True)
    if lam > 0:
        m, dm = marchenko_pastur_stieltjes(g, lam)
        return r2 * lam * lam * dm + s2 * g * (m - lam * dm)
    with np.errstate(divide="ignore", invalid="ignore"):
        under = s2 * g / (1.0 - g)
        over = r2 * (1.0 - 1.0 / g) + s2 / (g - 1.0)
        risk = np.where(g < 1, under, over)
    return np.where(g == 1, np.inf, risk)


def optimal_ridge(gamma: object, signal: float = 1.0, noise: float = 0.0) -> np.ndarray:
    """Risk-minimising ridge for isotropic data: noise * gamma / signal (Hastie et al. 2019, Thm. 6;
    Dobriban & Wager 2018). Shaped like ``gamma``."""
    g = as_array(gamma, "gamma", ndim=(0, 1))
    r2 = positive_float(signal, "signal")
    s2 = positive_float(noise, "noise", allow_zero=True)
    return s2 * g / r2


@renamed(n="n_samples", d="in_dim")
def ridge_risk_finite_ridgeless(n_samples: int, in_dim: int, signal: float = 1.0, noise: float = 0.0) -> float:
    """Exact finite-(n, d) expected risk of min-norm least squares with Gaussian X (|n - d| >= 2).

    n > d + 1: noise d / (n - d - 1) (the inverse-Wishart mean). d > n + 1: signal (1 - n/d) + noise n / (d - n - 1)
    (Hastie et al. 2019, Sec. 2; Belkin, Hsu & Xu 2020, Thm. 1). The relative gap to :func:`ridge_risk` is at most
    1/(|n - d| - 1): the theory's finite-size error. n_samples: n; in_dim: d (``n`` and ``d`` are deprecated
    keyword aliases).
    """
    n = positive_int(n_samples, "n_samples")
    d = positive_int(in_dim, "in_dim")
    r2 = positive_float(signal, "signal", allow_zero=True)
    s2 = positive_float(noise, "noise", allow_zero=True)
    if abs(n - d) < 2:
        raise ValueError(f"n and d must differ by at least 2 for a finite expected risk, got n={n}, d={d}")
    if n > d:
        return s2 * d / (n - d - 1)
    return r2 * (1.0 - n / d) + s2 * n / (d - n - 1)


@renamed(n="n_samples", d="in_dim", rng="seed")
def simulate_ridge_risk(
    n_samples: int, in_dim: int, ridge: float, signal: float, noise: float, seed: int | np.random.Generator = 0
) -> float:
    """One draw of the excess risk ||beta_hat - beta||^2 of ridge(less) regression on fresh Gaussian data.

    beta is uniform on the sphere of radius sqrt(signal); X ~ N(0, 1)^(n x d); eps ~ N(0, noise). ridge = 0 uses
    the minimum-norm least-squares solution (pseudo-inverse). Returns a float in target units squared.
    n_samples: n, rows of X. in_dim: d, columns of X. seed: an int, or a ``numpy.random.Generator`` to draw from
    (advanced in place, so repeated calls on one stream give independent draws). ``n``, ``d`` and ``rng`` are
    deprecated keyword aliases of ``n_samples``, ``in_dim`` and ``seed``.
    """
    n = positive_int(n_samples, "n_samples")
    d = positive_int(in_dim, "in_dim")
    rng = np.random.default_rng(seed)  # a Generator passes through unchanged
    lam = positive_float(ridge, "ridge", allow_zero=True)
    r2 = positive_float(signal, "signal", allow_zero=True)
    s2 = positive_float(noise, "noise", allow_zero=True)
    beta = rng.standard_normal(d)
    beta *= np.sqrt(r2) / np.linalg.norm(beta)
    X = rng.standard_normal((n, d))
    y = X @ beta + np.sqrt(s2) * rng.standard_normal(n)
    if lam == 0 and abs(n - d) < 2:
        raise ValueError(f"n and d must differ by at least 2 for min-norm least squares, got n={n}, d={d}")
    # Solve in the smaller of the primal (d x d) and dual (n x n) forms; both give the same estimator, and for
    # ridge 0 they are the least-squares (n > d) and minimum-norm interpolating (n < d) solutions. (Normal
    # equations rather than an SVD-based lstsq: |n - d| >= 2 keeps them well conditioned, and they are ~30x
    # faster on a loaded machine.)
    if d <= n:
        beta_hat = solve_psd(matmul(X.T, X) / n + lam * np.eye(d), X.T @ y / n)
    else:
        beta_hat = X.T @ solve_psd(matmul(X, X.T) / n + lam * np.eye(n), y / n)
    return float(np.sum((beta_hat - beta) ** 2))
