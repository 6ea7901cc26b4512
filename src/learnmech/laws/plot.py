"""Figure data for scaling-law fits, as :class:`~learnmech.claims.Panel` (plain data the report and CLI draw)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..panels import Panel, Series
from .fit import ScalingLawFit, compute_optimal

__all__ = ["loss_vs_compute_panel", "frontier_panel"]

_MAX_POINTS_PER_SERIES = 40  # the renderer draws denser measurement series as lines; keep scatter as scatter


def loss_vs_compute_panel(fit: ScalingLawFit, N: np.ndarray, D: np.ndarray, loss: np.ndarray,
                          title: str = "Loss vs training compute") -> Panel:
    """Loss against compute C = 6 N D (Kaplan et al. 2020's FLOP estimate): the runs grouped by model size,
    the fitted law's iso-N curves through each group (at its geometric-mean N) and the compute-optimal frontier
    L(N_opt(C), D_opt(C)). N, D, loss: (n,) arrays of the fitted runs."""
    N, D, loss = (np.asarray(v, dtype=float) for v in (N, D, loss))
    compute = 6.0 * N * D
    order = np.argsort(N, kind="stable")
    n_groups = max(1, -(-N.size // _MAX_POINTS_PER_SERIES))
    grid = np.geomspace(compute.min() / 2, compute.max() * 2, 60)
    series: list[Series] = []
    for group in np.array_split(order, n_groups):
        if group.size == 0:
            continue
        label = f"runs N {N[group].min():.2g}-{N[group].max():.2g}"
        # the runs and the law's curve at their N share one colour (group), so each fit reads against its data
        series.append(Series(label=label, x=compute[group], y=loss[group], role="measurement", group=label))
        n_mid = float(np.exp(np.mean(np.log(N[group]))))
        # each iso-N curve spans its group's compute range (x2 either side), where the law was constrained
        span = np.geomspace(compute[group].min() / 2, compute[group].max() * 2, 30)
        series.append(Series(label=f"fit, N={n_mid:.2g}", x=span, y=fit.predict(n_mid, span / (6.0 * n_mid)),
                             role="prediction", group=label))
    frontier = fit.compute_optimal
    series.append(Series(label="compute-optimal frontier", x=grid,
                         y=fit.predict(frontier.n_opt(grid), frontier.d_opt(grid)), role="reference"))
    return Panel(title=title, xlabel="training compute C = 6ND (FLOP)", ylabel="loss (nats)", series=series,
                 xscale="log", yscale="log")


def frontier_panel(fit: ScalingLawFit, compute: np.ndarray, others: Mapping[str, Mapping[str, float]],
                   title: str = "Compute-optimal model size") -> Panel:
    """N_opt(C) of ``fit`` with its bootstrap band (percentiles at each C, at the fit's confidence level)
    against the frontiers implied by other parameter sets ``others`` (label -> E, A, B, alpha, beta), drawn as
    references. compute: (m,) FLOP values."""
    compute = np.asarray(compute, dtype=float)
    ours = fit.compute_optimal.n_opt(compute)
    lower = upper = None
    if fit.bootstrap.shape[0] > 1:
        a, _, G = compute_optimal(*fit.bootstrap.T)
        curves = G[:, None] * (compute[None, :] / 6.0) ** a[:, None]
        tail = 100 * (1 - fit.confidence) / 2
        lower, upper = np.percentile(curves, [tail, 100 - tail], axis=0)
    series = [Series(label=f"our fit (a={fit.compute_optimal.a:.3f})", x=compute, y=ours, role="measurement",
                     lower=lower, upper=upper)]
    for label, params in others.items():
        a, _, G = compute_optimal(**params)
        series.append(Series(label=f"{label} (a={float(a):.3f})", x=compute, y=G * (compute / 6.0) ** a,
                             role="prediction" if not series[1:] else "reference"))
    return Panel(title=title, xlabel="training compute C (FLOP)", ylabel="N_opt (parameters)", series=series,
                 xscale="log", yscale="log")

