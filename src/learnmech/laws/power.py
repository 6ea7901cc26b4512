"""One-variable laws: y = c x^-k, y = E + c x^-k, a broken power law, and model comparison on held-out points.

All fits are least squares on log y (relative errors: the usual choice for losses spanning decades, e.g. Kaplan
et al. 2020, section 3), with bootstrap intervals from resampling the points (weights, as in :mod:`.fit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import as_array, one_of, positive_float, positive_int
from ..seeding import rng as make_rng
from .optim import minimize_batched

__all__ = [
    "PowerLawFit",
    "BrokenPowerLawFit",
    "power_law",
    "fit_power_law",
    "fit_broken_power_law",
    "compare_power_laws",
    "MODELS",
]

MODELS = ("power", "power+constant", "broken")


def power_law(x: np.ndarray, c: float, k: float, E: float = 0.0) -> np.ndarray:
    """y = E + c x^-k (elementwise)."""
    return E + c * np.asarray(x, dtype=float) ** (-k)


def _check_xy(x: object, y: object, n_parameters: int) -> tuple[np.ndarray, np.ndarray]:
    x_arr, y_arr = as_array(x, "x", ndim=1), as_array(y, "y", ndim=1)
    if x_arr.size != y_arr.size:
        raise ValueError(f"x and y must have the same length, got {x_arr.size} and {y_arr.size}")
    for name, arr in (("x", x_arr), ("y", y_arr)):
        if np.any(arr <= 0):
            raise ValueError(f"{name} must be strictly positive (logs are taken), got min {arr.min():g}")
    if x_arr.size <= n_parameters:
        raise ValueError(f"need more than {n_parameters} points for this law, got {x_arr.size}")
    return x_arr, y_arr


@dataclass(frozen=True)
class PowerLawFit:
    """y = E + c x^-k. params: "c", "k", "E" (E = 0 without an irreducible term); intervals: name -> (low, high)
    percentile bootstrap bounds at ``confidence``; bootstrap: (n_bootstrap, 3) refits in (c, k, E) order;
    rmse_log: root-mean-square residual of log y."""

    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    bootstrap: np.ndarray
    rmse_log: float
    irreducible: bool
    confidence: float = 0.95

    def predict(self, x: np.ndarray) -> np.ndarray:
        return power_law(x, **self.params)

    def predict_interval(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap band (low, high) of the prediction at x, each (m,)."""
        x = np.asarray(x, dtype=float)
        c, k, E = (column[:, None] for column in self.bootstrap.T)
        curves = power_law(x[None, :], c, k, E)
        tail = 100 * (1 - self.confidence) / 2
        low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
        return low, high


def _weighted_line(log_x: np.ndarray, log_y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares lines log y = intercept - k log x for each row of ``weights`` (B, n)."""
    total = weights.sum(axis=1)
    mean_x = weights @ log_x / total
    mean_y = weights @ log_y / total
    dx = log_x[None, :] - mean_x[:, None]
    slope = (weights * dx * (log_y[None, :] - mean_y[:, None])).sum(axis=1) / np.maximum(
        (weights * dx**2).sum(axis=1), 1e-300)
    return mean_y - slope * mean_x, -slope


def _with_constant_objective(log_x: np.ndarray, log_y: np.ndarray, weights: np.ndarray):
    """Squared error of log(E + c x^-k) against log y, theta = (log c, k, log E); gradient analytic."""

    def fun_and_grad(theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_c, k, log_e = theta.T
        x_term = np.exp(np.clip(log_c[:, None] - np.multiply.outer(k, log_x), -700.0, 700.0))
        e_term = np.exp(np.clip(log_e, -700.0, 700.0))[:, None]
        total = x_term + e_term
        residual = np.log(total) - log_y
        w = weights[rows]
        scaled = w * residual / total  # d(0.5 w r^2)/d total
        grad = np.stack([(scaled * x_term).sum(1), -(scaled * x_term) @ log_x, (scaled * e_term).sum(1)], axis=1)
        return 0.5 * (w * residual**2).sum(axis=1), grad

    return fun_and_grad


def fit_power_law(
    x: np.ndarray,
    y: np.ndarray,
    irreducible: bool = False,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PowerLawFit:
    """Fit y = c x^-k (or y = E + c x^-k with ``irreducible``) by least squares on log y, with bootstrap intervals.

    x, y: (n,) positive arrays (e.g. data size and test loss). Without the irreducible term this is linear
    regression in log-log coordinates (closed form); with it, batched L-BFGS from a small grid of starts
    (E between 0 and min y, as the law requires E < y). n_bootstrap: resamples of the points (0: no intervals).
    """
    x, y = _check_xy(x, y, 3 if irreducible else 2)
    n_bootstrap = positive_int(n_bootstrap, "n_bootstrap", minimum=0)
    confidence = positive_float(confidence, "confidence")
    if confidence >= 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    log_x, log_y = np.log(x), np.log(y)
    weights = np.ones((1, x.size))
    if n_bootstrap:
        counts = make_rng(seed).multinomial(x.size, np.full(x.size, 1.0 / x.size), size=n_bootstrap)
        weights = np.vstack([weights, counts.astype(float)])
    intercept, slope = _weighted_line(log_x, log_y, weights)
    if not irreducible:
        fits = np.stack([np.exp(intercept), slope, np.zeros_like(slope)], axis=1)
    else:
        # starts: the log-log line (E ~ 0) and E at fractions of min(y), each with the line's c and k
        fractions = np.array([1e-3, 0.3, 0.6, 0.9])
        n_fits = weights.shape[0]
        starts = np.stack(
            [np.repeat(intercept, fractions.size), np.repeat(np.maximum(slope, 1e-3), fractions.size),
             np.tile(np.log(fractions * y.min()), n_fits)], axis=1)
        objective = _with_constant_objective(log_x, log_y, np.repeat(weights, fractions.size, axis=0))
        result = minimize_batched(objective, starts, max_iter=2000)
        fun = np.where(np.isfinite(result.fun), result.fun, np.inf).reshape(n_fits, fractions.size)
        theta = result.x.reshape(n_fits, fractions.size, 3)[np.arange(n_fits), np.argmin(fun, axis=1)]
        fits = np.stack([np.exp(theta[:, 0]), theta[:, 1], np.exp(theta[:, 2])], axis=1)
    params = {"c": float(fits[0, 0]), "k": float(fits[0, 1]), "E": float(fits[0, 2])}
    boot = fits[1:]
    tail = 100 * (1 - confidence) / 2
    intervals = {
        name: (tuple(float(v) for v in np.percentile(boot[:, j], [tail, 100 - tail])) if n_bootstrap
               else (float("nan"), float("nan")))
        for j, name in enumerate(("c", "k", "E"))
    }
    rmse = float(np.sqrt(np.mean((np.log(power_law(x, **params)) - log_y) ** 2)))
    return PowerLawFit(params=params, intervals=intervals, bootstrap=boot, rmse_log=rmse, irreducible=irreducible,
                       confidence=confidence)


@dataclass(frozen=True)
class BrokenPowerLawFit:
    """y = c x^-k1 for x <= x_break and continuous with slope -k2 beyond (a sharp break in log-log).

    params: "c", "k1", "k2", "x_break"; rmse_log: root-mean-square residual of log y."""

    params: dict[str, float]
    rmse_log: float
    extra: dict[str, float] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        log_x = np.log(np.asarray(x, dtype=float))
        hinge = np.maximum(log_x - np.log(p["x_break"]), 0.0)
        return np.exp(np.log(p["c"]) - p["k1"] * log_x - (p["k2"] - p["k1"]) * hinge)


def fit_broken_power_law(x: np.ndarray, y: np.ndarray, n_breaks: int = 200) -> BrokenPowerLawFit:
    """Fit a continuous two-segment line to (log x, log y) by least squares, scanning the break.

    For a fixed break b the model log y = u - k1 log x - (k2 - k1) max(log x - b, 0) is linear in (u, k1, k2),
    so each candidate is an exact least-squares solve; ``n_breaks`` candidates span the interior of log x (at
    least two points on each side). x, y: (n,) positive, n >= 5.
    """
    x, y = _check_xy(x, y, 4)
    n_breaks = positive_int(n_breaks, "n_breaks", minimum=2)
    log_x, log_y = np.log(x), np.log(y)
    sorted_x = np.sort(log_x)
    breaks = np.linspace(sorted_x[1], sorted_x[-2], n_breaks)
    best: tuple[float, np.ndarray, float] | None = None
    for b in breaks:
        design = np.stack([np.ones_like(log_x), -log_x, -np.maximum(log_x - b, 0.0)], axis=1)
        coef, *_ = np.linalg.lstsq(design, log_y, rcond=None)
        sse = float(np.sum((design @ coef - log_y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, coef, float(b))
    assert best is not None
    sse, coef, b = best
    params = {"c": float(np.exp(coef[0])), "k1": float(coef[1]), "k2": float(coef[1] + coef[2]),
              "x_break": float(np.exp(b))}
    return BrokenPowerLawFit(params=params, rmse_log=float(np.sqrt(sse / x.size)))


def compare_power_laws(x: np.ndarray, y: np.ndarray, holdout: int = 2,
                       models: tuple[str, ...] = MODELS) -> dict[str, float]:
    """Held-out error of each law: fit on all but the ``holdout`` largest-x points, predict those.

    Returns model name -> root-mean-square error of log y on the held-out points (extrapolation, which is what a
    scaling law is for), plus "best" -> index of the best model in ``models`` as a float.
    """
    x_arr, y_arr = _check_xy(x, y, 1)
    holdout = positive_int(holdout, "holdout")
    for model in models:
        one_of(model, "models", MODELS)
    order = np.argsort(x_arr, kind="stable")
    train, test = order[:-holdout], order[-holdout:]
    errors: dict[str, float] = {}
    for model in models:
        if model == "broken":
            fitted = fit_broken_power_law(x_arr[train], y_arr[train])
        else:
            fitted = fit_power_law(x_arr[train], y_arr[train], irreducible=model == "power+constant", n_bootstrap=0)
        residual = np.log(fitted.predict(x_arr[test])) - np.log(y_arr[test])
        errors[model] = float(np.sqrt(np.mean(residual**2)))
    errors["best"] = float(int(np.argmin([errors[m] for m in models])))
    return errors
