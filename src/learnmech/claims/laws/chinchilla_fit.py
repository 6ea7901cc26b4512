"""chinchilla-fit: refitting Chinchilla's own points reproduces Epoch AI's replication, not the original table.

Besiroglu, Erdil, Barnett & You (2024) digitised the 245 runs of Hoffmann et al. (2022) figure 4, dropped the 5
highest-loss points and refitted L(N, D) = E + A/N^alpha + B/D^beta by approach 3 (Huber delta 1e-3 on log-loss,
L-BFGS from the original grid of starts). We redo that fit with :func:`learnmech.laws.fit_scaling_law` and compare.

Error: the largest |ours - Epoch| over the five parameters in units of our bootstrap standard error (4000 resamples
of the points in the full config). Tolerance: 1 standard error. The same data and the same procedure should give
the same optimum up to optimiser tolerance and the rounding of the published table, i.e. a gap far below the
statistical uncertainty of the fit; a gap of one bootstrap SE or more would mean a different procedure or data.
The finding is in the metrics: the original paper's parameters (Hoffmann et al. 2022, eq. 10) sit several standard
errors away (E and beta) and its compute-optimal exponent a = 0.46 falls outside our bootstrap interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnmech.claims import Claim, Panel, Result, Series, step
from learnmech.laws import (
    PARAMETER_NAMES,
    compute_optimal,
    default_start_grid,
    fit_scaling_law,
    frontier_panel,
    load_chinchilla,
    loss_vs_compute_panel,
)

# Epoch AI's refit (Besiroglu et al. 2024), the values this project's design states.
EPOCH = {"E": 1.817, "A": 478.0, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672}
# Hoffmann et al. (2022), eq. 10: the parametric fit the Chinchilla paper published.
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def run(config: dict[str, Any], seed: int) -> Result:
    step(0, 3, "loading the digitised Chinchilla points")
    N, D, loss = load_chinchilla(exclude_highest=int(config["exclude_highest"]))
    step(1, 3, "grid of L-BFGS starts and bootstrap refits")
    fit = fit_scaling_law(N, D, loss, starts=default_start_grid(int(config["start_stride"])),
                          n_bootstrap=int(config["n_bootstrap"]), seed=seed)
    step(2, 3, "comparing with the published tables")
    se = fit.standard_errors
    z_epoch = {k: (fit.params[k] - EPOCH[k]) / se[k] for k in PARAMETER_NAMES}
    z_hoffmann = {k: (HOFFMANN[k] - fit.params[k]) / se[k] for k in PARAMETER_NAMES}
    hoffmann_inside = {k: bool(fit.intervals[k][0] <= HOFFMANN[k] <= fit.intervals[k][1]) for k in PARAMETER_NAMES}
    a_hoffmann = float(compute_optimal(**HOFFMANN)[0])
    a_low, a_high = fit.compute_optimal.intervals["a"]
    error = max(abs(z) for z in z_epoch.values())

    names = list(PARAMETER_NAMES)
    index = np.arange(len(names), dtype=float)
    ours = np.array([fit.params[k] for k in names])
    relative = Panel(
        title="Parameters / our refit (0=E 1=A 2=B 3=alpha 4=beta)",
        xlabel="parameter index",
        ylabel="value relative to our refit (1)",
        yscale="log",
        series=[
            Series(label=f"our refit, {100 * fit.confidence:.0f}% bootstrap interval", x=index, y=np.ones(5),
                   role="measurement", lower=[fit.intervals[k][0] / fit.params[k] for k in names],
                   upper=[fit.intervals[k][1] / fit.params[k] for k in names]),
            Series(label="Epoch AI (Besiroglu et al. 2024)", x=index, y=[EPOCH[k] for k in names] / ours,
                   role="prediction"),
            Series(label="Hoffmann et al. 2022", x=index, y=[HOFFMANN[k] for k in names] / ours, role="reference"),
        ],
    )
    compute = np.geomspace(1e18, 1e26, 40)
    figure = [
        relative,
        loss_vs_compute_panel(fit, N, D, loss, title="Chinchilla runs and the refitted law"),
        frontier_panel(fit, compute, {"Epoch AI": EPOCH, "Hoffmann et al. 2022": HOFFMANN}),
    ]
    step(3, 3, "done")
    return Result(
        prediction=dict(EPOCH),
        measurement=dict(fit.params),
        error=error,
        tolerance=1.0,
        figure=figure,
        metrics={
            "error_definition": "max over parameters of |ours - Epoch| / bootstrap standard error",
            "objective": fit.objective,
            "n_points": fit.n_points,
            "n_starts": fit.n_starts,
            "n_bootstrap": int(fit.bootstrap.shape[0]),
            "standard_errors": se,
            "intervals": fit.intervals,
            "z_ours_minus_epoch": z_epoch,
            "z_hoffmann_minus_ours": z_hoffmann,
            "hoffmann_inside_interval": hoffmann_inside,
            "hoffmann_max_abs_z": max(abs(z) for z in z_hoffmann.values()),
            "compute_optimal_a": fit.compute_optimal.a,
            "compute_optimal_b": fit.compute_optimal.b,
            "compute_optimal_a_interval": [a_low, a_high],
            "hoffmann_a": a_hoffmann,
            "hoffmann_a_inside_interval": bool(a_low <= a_hoffmann <= a_high),
        },
        note=(
            f"Our refit matches Epoch AI's within {error:.3f} SE. Hoffmann et al.'s published parameters lie up to "
            f"{max(abs(z) for z in z_hoffmann.values()):.1f} SE away, and their a={a_hoffmann:.3f} is "
            f"{'inside' if a_low <= a_hoffmann <= a_high else 'outside'} our interval [{a_low:.3f}, {a_high:.3f}]."
        ),
    )


CLAIM = Claim(
    name="chinchilla-fit",
    strand="laws",
    reference="Besiroglu, Erdil, Barnett & You (2024), table 1; Hoffmann et al. (2022), eq. 2 and 10",
    statement=(
        "theory says refitting Chinchilla's 240 points (5 highest-loss dropped) with approach 3 gives Epoch AI's "
        "E=1.817, A=478, B=2143, alpha=0.3473, beta=0.3672, not the published E=1.69, A=406.4, B=410.7, "
        "alpha=0.34, beta=0.28"
    ),
    quick={"start_stride": 2, "n_bootstrap": 500, "exclude_highest": 5},
    full={"start_stride": 1, "n_bootstrap": 4000, "exclude_highest": 5},
    run=run,
)
