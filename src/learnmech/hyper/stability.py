"""Stability ceilings of gradient descent, measured on real training by refining a learning-rate bracket.

Theory (full-batch GD on MSE): near a minimum the loss is a quadratic with Hessian H; GD multiplies the error
along H's top eigenvector by ``(1 - lr * lambda_max)`` per step, so the loss *initially grows* iff
``lr > 2 / lambda_max`` (the classical bound; Lewkowycz et al. 2020, sec. 2). For wide networks the growth
changes the curvature: in the "catapult" band ``2/lambda_0 < lr < lr_max`` the loss spikes, the sharpness drops
below ``2/lr`` and training then converges; only above ``lr_max`` does it diverge. For the two-layer linear
"uv" model in the NTK parametrization ``lr_max = 4 / lambda_0`` at large width (Lewkowycz et al. 2020, sec. 2);
ReLU nets were found to catapult up to ``~12 / lambda_0`` (their sec. 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn

from .._aliases import renamed, renamed_attribute
from .._checks import as_array, positive_float, positive_int
from .batched import gd_lr_grid


def spiked(losses: np.ndarray) -> bool:
    """True if the loss curve ``(steps + 1,)`` ever rose above its initial value (or blew up, ``inf``): the
    signature of ``lr > 2 / lambda_0``."""
    losses = np.asarray(losses, dtype=float)
    return bool(np.any(losses[1:] > losses[0]) or not np.all(np.isfinite(losses)))


def diverged(losses: np.ndarray) -> bool:
    """True if the loss curve blew up (``inf``) or ended no lower than it started (it never came back down)."""
    losses = np.asarray(losses, dtype=float)
    return bool(not np.all(np.isfinite(losses)) or not losses[-1] < losses[0])


def blew_up(losses: np.ndarray) -> bool:
    """True if the loss curve went non-finite or past the trainer's blow-up threshold (recorded as ``inf``):
    divergence proper. Unlike :func:`diverged` it does not count a slow catapult that is still elevated at the
    last step (just above ``2/lambda_0`` the spike takes ~ 1/(lr*lambda_0 - 2) steps to build and resolve)."""
    return bool(not np.all(np.isfinite(np.asarray(losses, dtype=float))))


@dataclass
class Bracket:
    """A learning-rate interval ``[stable, unstable]`` around a stability boundary.

    estimate: the geometric midpoint; log2_halfwidth: half the bracket's width in log2 units (the resolution);
    runs: how many training runs it took.
    """

    stable: float
    unstable: float
    runs: int

    @property
    def estimate(self) -> float:
        return math.sqrt(self.stable * self.unstable)

    @property
    def log2_halfwidth(self) -> float:
        return 0.5 * math.log2(self.unstable / self.stable)


@renamed(lr_mult="lr_multipliers")
def lr_boundary(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    unstable: Callable[[np.ndarray], bool],
    lr_low: float,
    lr_high: float,
    *,
    steps: int = 200,
    points: int = 8,
    rounds: int = 3,
    lr_multipliers: Mapping[str, float] | None = None,
    max_shifts: int = 6,
    blowup: float = 1e6,
) -> list[Bracket]:
    """For each model, the learning rate where full-batch GD switches from stable to ``unstable(losses)``.

    A batched bisection: each round trains ``points`` geometrically spaced lrs per model at once
    (:func:`~learnmech.hyper.batched.gd_lr_grid`) and keeps the interval between the last stable and the first
    unstable lr, so after ``rounds`` rounds the bracket is ``(lr_high/lr_low)^(1/(points-1)^rounds)`` wide. If a
    model's starting range ``[lr_low, lr_high]`` has no switch it is shifted down/up by its own width (at most
    ``max_shifts`` times, then ValueError). Instability is assumed monotone in lr, as theory has it for GD on MSE.
    models: modules of one architecture (e.g. seeds), not modified; lr_multipliers: per-parameter lr multipliers
    (``lr_mult`` is a deprecated keyword alias);
    blowup: a run whose loss exceeds ``blowup`` x its initial value is stopped and recorded as ``inf`` (see
    :func:`~learnmech.hyper.gd_lr_grid`); raise it when a converging run may legitimately spike that high (the
    catapult peak of a wide net grows with width).
    """
    lo, hi = positive_float(lr_low, "lr_low"), positive_float(lr_high, "lr_high")
    if lo >= hi:
        raise ValueError(f"lr_low must be < lr_high, got {lo} and {hi}")
    points, rounds = positive_int(points, "points", minimum=3), positive_int(rounds, "rounds")
    steps = positive_int(steps, "steps")
    n = len(models)
    low, high = np.full(n, lo), np.full(n, hi)
    runs, settled, shifts = 0, np.zeros(n, dtype=bool), 0
    while True:
        grid = np.geomspace(low, high, points, axis=1)  # (M, points)
        flags = _flags(models, x, y, grid, steps, lr_multipliers, unstable, blowup)
        runs += grid.size
        for i in range(n):
            if settled[i]:
                continue
            if flags[i, 0]:  # even the smallest lr is unstable: look lower
                low[i], high[i] = low[i] ** 2 / high[i], low[i]
            elif not flags[i, -1]:  # even the largest is stable: look higher
                low[i], high[i] = high[i], high[i] ** 2 / low[i]
            else:
                settled[i] = True
        if settled.all():
            break
        shifts += 1
        if shifts > max_shifts:
            raise ValueError(f"no stability boundary found within {max_shifts} shifts of [{lo}, {hi}]")
    for _ in range(rounds):
        first = np.argmax(flags, axis=1)
        low, high = grid[np.arange(n), first - 1], grid[np.arange(n), first]
        if _ == rounds - 1:
            break
        grid = np.geomspace(low, high, points, axis=1)
        flags = _flags(models, x, y, grid, steps, lr_multipliers, unstable, blowup)
        flags[:, 0], flags[:, -1] = False, True  # endpoints are known from the previous round
        runs += grid.size
    return [Bracket(float(a), float(b), runs // n) for a, b in zip(low, high, strict=True)]


def _flags(models, x, y, grid, steps, lr_multipliers, unstable, blowup=1e6) -> np.ndarray:
    losses = gd_lr_grid(models, grid, x, y, steps, lr_multipliers=lr_multipliers, blowup=blowup)
    flags = np.array([[unstable(run) for run in per_model] for per_model in losses])
    # Monotone by assumption: everything above the first unstable lr counts as unstable.
    return np.maximum.accumulate(flags, axis=1)


@dataclass
class WidthExtrapolation:
    """Least-squares fit ``value(n) = limit + coeff / sqrt(n)`` (the O(n^-1/2) finite-width correction of the
    NTK regime, Lee et al. 2019, thm. 2.1). limit_se: the standard error of ``limit`` from the fit's residuals."""

    limit: float
    limit_se: float
    coeff: float


def extrapolate_width(widths: Sequence[float], values: Sequence[float]) -> WidthExtrapolation:
    """Fit ``values ~ limit + coeff * widths^-1/2`` over repeated (width, value) points; needs >= 2 distinct
    widths and >= 3 points (for a residual variance)."""
    n = as_array(widths, "widths", ndim=1)
    v = as_array(values, "values", ndim=1)
    if len(n) != len(v):
        raise ValueError(f"widths and values must have the same length, got {len(n)} and {len(v)}")
    if len(np.unique(n)) < 2 or len(n) < 3:
        raise ValueError("need at least 2 distinct widths and 3 points to extrapolate to infinite width")
    design = np.column_stack([np.ones_like(n), n**-0.5])
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    residual = v - design @ coef
    dof = len(v) - 2
    sigma2 = float(residual @ residual) / dof if dof > 0 else 0.0
    cov = sigma2 * np.linalg.inv(design.T @ design)
    return WidthExtrapolation(float(coef[0]), float(np.sqrt(cov[0, 0])), float(coef[1]))


@dataclass
class RatioInterval:
    """Mean of repeated measurements of a positive ratio (e.g. ``lr * lambda_0`` over seeds) with a two-sided
    t-interval, in log2 units so it can be compared with a multiplicative bracket resolution.

    mean: arithmetic mean; log2_halfwidth: ``log2(1 + t_{conf, k-1} * sd / sqrt(k) / mean)``, 0 for one sample;
    n_samples: number of samples (``n`` is a deprecated alias)."""

    mean: float
    log2_halfwidth: float
    n_samples: int

    n = renamed_attribute("n_samples", warn=False)

    def log2_error(self, target: float) -> float:
        """``|log2(mean / target)|``: how far the mean is from ``target`` in doublings."""
        return abs(math.log2(self.mean / positive_float(target, "target")))


def ratio_interval(values: Sequence[float], confidence: float = 0.95) -> RatioInterval:
    """The mean of ``values`` (k,), all > 0, with its Student-t interval (few seeds, so t rather than z quantiles;
    the t quantile is ``scipy.stats.t.ppf((1 + confidence) / 2, k - 1)``)."""
    v = as_array(values, "values", ndim=1)
    if len(v) == 0 or np.any(v <= 0):
        raise ValueError("values must be a non-empty array of positive numbers")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(v.mean())
    if len(v) < 2:
        return RatioInterval(mean, 0.0, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return RatioInterval(mean, math.log2(1 + half / mean), len(v))


def uv_catapult(f0: float, lam0: float, lr: float, kappa: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact GD dynamics of the two-layer linear "uv" model on one example with target 0 (Lewkowycz et al.
    2020, sec. 2, eq. 3): ``f_{t+1} = f_t (1 - lr lambda_t + lr^2 kappa f_t^2)`` and ``lambda_{t+1} = lambda_t +
    lr kappa f_t^2 (lr lambda_t - 4)``, where ``f = c v^T U x`` (c the readout multiplier), ``lambda`` is the NTK
    ``c^2 (|U x|^2 + |v|^2 |x|^2)`` and ``kappa = c^2 |x|^2`` (``1/n`` for their x = 1, c = n^-1/2).

    Hence, at every width, the loss ``f^2/2`` first grows iff ``lr lambda_0 > 2 + lr^2 kappa f_0^2`` and lambda
    falls (the catapult) iff ``lr lambda_t < 4``: GD converges for ``lr < 4/lambda_0`` and diverges above.
    Returns ``(f, lam)``, each ``(steps + 1,)``; values past an overflow are ``inf``/``nan``.
    """
    steps = positive_int(steps, "steps")
    lam0, lr, kappa = positive_float(lam0, "lam0"), positive_float(lr, "lr"), positive_float(kappa, "kappa")
    f, lam = np.empty(steps + 1), np.empty(steps + 1)
    f[0], lam[0] = float(f0), lam0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            f[t + 1] = f[t] * (1 - lr * lam[t] + lr**2 * kappa * f[t] ** 2)
            lam[t + 1] = lam[t] + lr * kappa * f[t] ** 2 * (lr * lam[t] - 4)
    return f, lam
