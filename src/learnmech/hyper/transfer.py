"""Hyperparameter transfer: where is the optimal learning rate, and does it move with width?

Under muP the optimal learning rate converges to a width-independent value as width grows, so it can be tuned on
a small model and reused on a big one (Yang et al. 2022, "Tensor Programs V", fig. 1 and sec. 6). Under SP with
SGD the hidden and readout layers' NTK contributions grow ~ width, so the largest stable and (for short training)
the optimal learning rate shrink ~ 1/width: a drift of about -1 in log2(lr) per doubling of width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._aliases import renamed
from .._checks import as_array, one_of, positive_int
from ..panels import Panel, Series
from .batched import gd_lr_grid
from .parametrize import SCHEMES, parametrize


def optimal_log2_lr(log2_lrs: Sequence[float], losses: np.ndarray) -> np.ndarray:
    """The minimiser of each loss curve over a log2-lr grid, refined between grid points by a parabola.

    log2_lrs: ``(L,)`` increasing, evenly spaced; losses: ``(..., L)`` positive (``inf``/NaN = diverged, never
    optimal). Returns ``(...)``: the grid argmin, moved to the vertex of the parabola through ``log(loss)`` at it
    and its two neighbours when both are finite (clipped to half a grid step); NaN where every lr diverged.
    """
    grid = as_array(log2_lrs, "log2_lrs", ndim=1)
    if len(grid) < 3 or not np.allclose(np.diff(grid), grid[1] - grid[0]) or grid[1] <= grid[0]:
        raise ValueError("log2_lrs must be an increasing, evenly spaced grid of at least 3 points")
    values = np.asarray(losses, dtype=float)
    if values.shape[-1] != len(grid):
        raise ValueError(f"losses must end in an axis of length {len(grid)} (the lr grid), got {values.shape}")
    logs = np.where(np.isfinite(values) & (values > 0), np.log(np.where(values > 0, values, 1.0)), np.inf)
    flat = logs.reshape(-1, len(grid))
    step = grid[1] - grid[0]
    out = np.full(flat.shape[0], np.nan)
    for row, curve in enumerate(flat):
        if not np.isfinite(curve).any():
            continue
        i = int(np.argmin(curve))
        out[row] = grid[i]
        if 0 < i < len(grid) - 1 and np.isfinite(curve[i - 1]) and np.isfinite(curve[i + 1]):
            curvature = curve[i - 1] - 2 * curve[i] + curve[i + 1]
            if curvature > 0:
                offset = 0.5 * step * (curve[i - 1] - curve[i + 1]) / curvature
                out[row] += float(np.clip(offset, -step / 2, step / 2))
    return out.reshape(values.shape[:-1])


@dataclass
class LRSweep:
    """A width x learning-rate sweep. loss: ``(seeds, widths, lrs)`` training loss (1/2 MSE, mean over the last
    ``average_last`` steps; ``inf`` where the run diverged); curves: ``(seeds, widths, lrs, steps + 1)``."""

    scheme: str
    widths: np.ndarray
    log2_lrs: np.ndarray
    seeds: list[int]
    loss: np.ndarray
    curves: np.ndarray

    @property
    def log_loss(self) -> np.ndarray:
        """``(seeds, widths, lrs)`` log of the loss, a diverged run (NaN or inf loss) at ``+inf``."""
        return np.log(np.where(np.isfinite(self.loss), self.loss, np.inf))

    @property
    def seed_mean_loss(self) -> np.ndarray:
        """``(widths, lrs)`` geometric mean of the loss over seeds (one seed's blow-up does not swamp the others;
        ``inf`` where any seed diverged): the curves whose minima :func:`optimum_drift` locates."""
        return np.exp(self.log_loss.mean(axis=0))

    def loss_panel(self, title: str, label: str = "width {}") -> Panel:
        """:attr:`seed_mean_loss` against log2 lr, one series per width (a diverged lr is a gap). title: the
        panel's title; label: each series' label, formatted with the width (``"L = {}"`` when the sweep is over
        depth).
        """
        mean_loss = self.seed_mean_loss
        series = [Series(label.format(int(w)), self.log2_lrs, np.where(np.isfinite(mean_loss[i]), mean_loss[i], np.nan))
                  for i, w in enumerate(self.widths)]
        return Panel(title, "log2 learning rate", "training loss (1/2 MSE)", series, yscale="log")


def lr_sweep(
    model_factory: Callable[[int], nn.Module],
    widths: Sequence[int],
    log2_lrs: Sequence[float],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    scheme: str,
    base_width: int,
    steps: int = 50,
    seeds: Sequence[int] = (0, 1, 2),
    gain: float = 1.0,
    average_last: int = 10,
    on_width: Callable[[int], None] | None = None,
    parametrize_kwargs: Callable[[int], Mapping[str, Any]] | None = None,
) -> LRSweep:
    """Full-batch SGD from ``model_factory(width)`` parametrized with ``scheme`` for every (seed, width, lr).

    log2_lrs: the base learning rates' log2 (each layer gets ``lr * its SGD multiplier``); x ``(n, d)``, y
    ``(n, out)``; the loss of a run is the mean of its last ``average_last`` full-batch losses (smooths GD's
    period-2 oscillations near the stability edge). on_width: called with each width's index when it is done.
    parametrize_kwargs: extra keyword arguments for :func:`parametrize` at each swept size, e.g. Depth-muP's
    ``lambda L: {"depth": (L, 1), "branches": ...}`` when ``model_factory`` builds by depth: the swept "widths"
    are then depths, and :func:`optimum_drift` gives the drift per doubling of depth.
    """
    scheme = one_of(scheme, "scheme", SCHEMES)
    width_list = [positive_int(w, "widths") for w in widths]
    grid = as_array(log2_lrs, "log2_lrs", ndim=1)
    steps, average_last = positive_int(steps, "steps"), positive_int(average_last, "average_last")
    if average_last > steps + 1:
        raise ValueError(f"average_last must be <= steps + 1 ({steps + 1}), got {average_last}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    losses, curves = [], []
    for wi, width in enumerate(width_list):
        models, mults = [], None
        for seed in seeds:
            model = model_factory(width)
            extra = dict(parametrize_kwargs(width)) if parametrize_kwargs is not None else {}
            mults = parametrize(model, scheme, base_width, seed=int(seed), gain=gain, **extra).lr_multipliers("sgd")
            models.append(model)
        curve = gd_lr_grid(models, 2.0**grid, x, y, steps, lr_multipliers=mults)  # (seeds, lrs, steps + 1)
        curves.append(curve)
        losses.append(curve[..., -average_last:].mean(axis=-1))
        if on_width is not None:
            on_width(wi)
    return LRSweep(scheme, np.array(width_list, dtype=float), grid, [int(s) for s in seeds],
                   np.stack(losses, axis=1), np.stack(curves, axis=1))


@dataclass
class Drift:
    """How the optimal log2-lr moves with width.

    optima: ``(W,)`` optimum of the seed-averaged (geometric mean) loss curve at each width; slope: least-squares
    slope of the optima against log2(width) (log2-lr per doubling of width); slope_se: its standard error,
    combining the seed bootstrap and the grid quantisation (``step / sqrt(12)`` per optimum); boot_optima:
    ``(B, W)`` bootstrap optima.
    """

    optima: np.ndarray
    slope: float
    slope_se: float
    seed_se: float
    grid_se: float
    boot_optima: np.ndarray


def _slope(log2_widths: np.ndarray, optima: np.ndarray) -> float:
    return float(np.polyfit(log2_widths, optima, 1)[0])


@renamed(n_boot="n_bootstrap")
def optimum_drift(sweep: LRSweep, *, n_bootstrap: int = 200, seed: int = 0) -> Drift:
    """Fit the drift of the optimal log2-lr across the sweep's widths, with a seed-bootstrap standard error.

    n_bootstrap: bootstrap resamples of the seeds (``n_boot`` is a deprecated keyword alias)."""
    n_bootstrap = positive_int(n_bootstrap, "n_bootstrap")
    log_loss = sweep.log_loss
    log2_widths = np.log2(sweep.widths)
    optima = optimal_log2_lr(sweep.log2_lrs, sweep.seed_mean_loss)
    if np.isnan(optima).any():
        raise ValueError("every learning rate diverged at some width; widen the lr grid downwards")
    rng = np.random.default_rng(seed)
    n_seeds = log_loss.shape[0]
    boot = np.empty((n_bootstrap, len(sweep.widths)))
    for b in range(n_bootstrap):
        pick = rng.integers(0, n_seeds, n_seeds)
        boot[b] = optimal_log2_lr(sweep.log2_lrs, np.exp(log_loss[pick].mean(axis=0)))
    ok = ~np.isnan(boot).any(axis=1)
    boot_slopes = np.array([_slope(log2_widths, row) for row in boot[ok]])
    seed_se = float(boot_slopes.std(ddof=1)) if len(boot_slopes) > 1 else 0.0
    # Each optimum is only known to within the grid: a uniform error of one step has std step/sqrt(12), which
    # propagates to the least-squares slope as sigma / sqrt(sum (log2 w - mean)^2).
    step = float(sweep.log2_lrs[1] - sweep.log2_lrs[0])
    spread = float(np.sum((log2_widths - log2_widths.mean()) ** 2))
    grid_se = step / np.sqrt(12.0) / np.sqrt(spread)
    return Drift(optima, _slope(log2_widths, optima), float(np.hypot(seed_se, grid_se)), seed_se, grid_se, boot)
