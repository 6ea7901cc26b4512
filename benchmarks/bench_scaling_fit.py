"""Benchmark: the Chinchilla approach-3 fit (4500 grid starts + 4000 bootstrap refits), batched vs one at a time.

Ours: :func:`learnmech.laws.fit_scaling_law` (every start in one batched L-BFGS with an analytic gradient; every
bootstrap refit in another). Baseline: the straightforward procedure, written here: ``scipy.optimize.minimize``
(L-BFGS-B, numerical 2-point gradient) called once per grid start and once per (resample, warm start). The whole
baseline would take tens of minutes, so it is timed on a seeded random subset of the starts and resamples and
extrapolated linearly to the full counts (each minimisation is independent, so the cost is additive).

Run: ``.venv/bin/python benchmarks/bench_scaling_fit.py [--quick]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from learnmech.laws import PARAMETER_NAMES, default_start_grid, fit_scaling_law, huber, load_chinchilla
from learnmech.seeding import rng as make_rng

TARGET = 50.0
N_BOOTSTRAP = 4000
BOOTSTRAP_STARTS = 2  # fit_scaling_law's default warm starts per resample


def _baseline_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                        weights: np.ndarray, delta: float) -> float:
    a, b, e, alpha, beta = theta
    prediction = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
    return float(np.sum(weights * huber(prediction - log_loss, delta)))


# scipy's defaults stop when the change in f is below 2.2e-9 * max(|f|, 1): on an objective of size 1e-3 that
# leaves bootstrap refits visibly short of the optimum; these options ask for the accuracy ours reaches
MATCHED = {"ftol": 1e-15, "gtol": 1e-9}


def _baseline_fit(x0: np.ndarray, data: tuple[np.ndarray, ...], weights: np.ndarray,
                  options: dict | None = None) -> tuple[np.ndarray, float]:
    result = minimize(_baseline_objective, x0, args=(*data, weights, 1e-3), method="L-BFGS-B", options=options)
    return result.x, float(result.fun)


def _public(theta: np.ndarray) -> np.ndarray:
    a, b, e, alpha, beta = theta
    return np.array([np.exp(e), np.exp(a), np.exp(b), alpha, beta])


def run(quick: bool = False) -> list[dict]:
    """Time ours on the full procedure and the baseline on a subset; rows as the benchmarks runner expects."""
    N, D, loss = load_chinchilla(exclude_highest=5)
    data = (np.log(N), np.log(D), np.log(loss))
    grid = default_start_grid()

    def best_of_two(**kwargs):
        # the machine is shared: the faster of two runs is the better estimate of our own cost
        times = []
        for _ in range(2):
            start = time.perf_counter()
            fit = fit_scaling_law(N, D, loss, seed=0, **kwargs)
            times.append(time.perf_counter() - start)
        return fit, min(times)

    ours, ours_s = best_of_two(n_bootstrap=N_BOOTSTRAP, bootstrap_starts=BOOTSTRAP_STARTS)
    _, ours_grid_s = best_of_two(n_bootstrap=0)

    n_starts_subset, n_boot_subset = (20, 10) if quick else (120, 60)
    picker = np.random.default_rng(1)
    subset = grid[picker.choice(grid.shape[0], n_starts_subset, replace=False)]
    ones = np.ones(N.size)
    start = time.perf_counter()
    baseline = [_baseline_fit(x0, data, ones) for x0 in subset]
    grid_subset_s = time.perf_counter() - start
    best_theta = min(baseline, key=lambda r: r[1])[0]

    # the same resamples as fit_scaling_law(seed=0) draws (a multinomial of point counts), refitted from the
    # full-data optimum (the best of the warm starts; the second start is timed by repeating it)
    counts = make_rng(0).multinomial(N.size, np.full(N.size, 1.0 / N.size), size=N_BOOTSTRAP).astype(float)
    boot_rows = picker.choice(N_BOOTSTRAP, n_boot_subset, replace=False)
    timings, gaps = {}, {}
    for label, options in (("default", None), ("matched", MATCHED)):
        start = time.perf_counter()
        boot = [_baseline_fit(best_theta, data, counts[row], options) for row in boot_rows]
        timings[label] = (time.perf_counter() - start) / n_boot_subset * N_BOOTSTRAP * BOOTSTRAP_STARTS
        gaps[label] = float(np.median([np.max(np.abs(_public(theta) - ours.bootstrap[row]) / ours.bootstrap[row])
                                       for (theta, _), row in zip(boot, boot_rows, strict=True)]))

    peer_grid_s = grid_subset_s / n_starts_subset * grid.shape[0]
    ours_boot_s = max(ours_s - ours_grid_s, 1e-9)
    baseline_best = _public(best_theta)
    ours_best = np.array([ours.params[k] for k in PARAMETER_NAMES])
    best_gap = float(np.max(np.abs(baseline_best - ours_best) / np.abs(ours_best)))
    note = f"baseline timed on {n_starts_subset} starts + {n_boot_subset} refits, extrapolated linearly"
    peer = "scipy L-BFGS-B per start, numerical gradient"

    def row(what: str, ours_time: float, peer_time: float, agreement: str) -> dict:
        return {"what": what, "peer": peer, "ours_s": ours_time, "peer_s": peer_time, "ratio": peer_time / ours_time,
                "target": TARGET, "met": peer_time / ours_time >= TARGET, "agreement": agreement + "; " + note}

    return [
        row("Chinchilla fit: 4500 starts + 4000 bootstraps (x2 warm starts), scipy defaults", ours_s,
            peer_grid_s + timings["default"],
            f"best fit max rel diff {best_gap:.1e}; bootstrap refits median max rel diff {gaps['default']:.1e} "
            "(scipy's default tolerance stops refits early)"),
        row("grid of 4500 starts only, scipy defaults", ours_grid_s, peer_grid_s,
            f"best fit max rel diff {best_gap:.1e}"),
        row("4000 bootstrap refits, scipy with matched tolerances", ours_boot_s, timings["matched"],
            f"bootstrap refits median max rel diff {gaps['matched']:.1e}"),
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['what']}: ours {row['ours_s']:.2f} s, peer {row['peer_s']:.1f} s, ratio {row['ratio']:.0f}x "
              f"(target {row['target']:.0f}x, {'met' if row['met'] else 'NOT met'}); {row['agreement']}")
