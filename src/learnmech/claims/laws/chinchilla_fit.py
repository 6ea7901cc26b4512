"""chinchilla-fit: refitting Chinchilla's points by approach 3 reproduces Besiroglu et al.'s published table.

Theory (the published result): Besiroglu, Erdil, Barnett & You (2024, "Chinchilla scaling: a replication attempt",
table 1) digitised the 245 runs of Hoffmann et al. (2022) figure 4, dropped the 5 highest-loss points and refitted
L(N, D) = E + A/N^alpha + B/D^beta by approach 3 (Huber delta 1e-3 on log-loss, L-BFGS from the original grid of
starts). Their table: E = 1.8172, A = 482.01, B = 2085.43, alpha = 0.3478, beta = 0.3658, with standard errors
0.03, 124.58, 1293.23, 0.02, 0.02. We measure our own refit of the same points by the same procedure
(:func:`learnmech.laws.fit_scaling_law`) and compare it with that table.

Error: the largest |ours - published| over the five parameters in units of the *published* standard error (a
number fixed before our run). Tolerance: the two-sided 95% familywise normal quantile over the five parameters,
z_{1 - 0.05/10} = 2.58 (Bonferroni; the published SEs come from a bootstrap with many resamples, so the normal, not
Student's t, is the right reference). The same data and procedure should land far inside it (only optimiser
tolerance and the table's rounding separate the two fits).

Control (rejected): Hoffmann et al.'s own published parameters (2022, eq. 10: E = 1.69, A = 406.4, B = 410.7,
alpha = 0.34, beta = 0.28), judged against our refit with the same metric and tolerance. They sit ~4 published
SEs away in E and beta, so the experiment can tell the two tables apart. Our own bootstrap standard errors and
compute-optimal exponent are in the metrics.

Choices fixed after a first look: the prediction is the published Besiroglu et al. table, judged in the published
SEs, not this package's own refit ("Epoch" constants E = 1.817, A = 478, B = 2143, alpha = 0.3473, beta = 0.3672),
which a first design used, i.e. it compared us with ourselves; Hoffmann et al.'s table is a coded control.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from learnmech.claims import Claim, Control, Panel, Result, Series, step
from learnmech.laws import (
    PARAMETER_NAMES,
    compute_optimal,
    default_start_grid,
    fit_scaling_law,
    frontier_panel,
    load_chinchilla,
    loss_vs_compute_panel,
)

# Besiroglu, Erdil, Barnett & You (2024), table 1: the published refit and its standard errors.
BESIROGLU = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
BESIROGLU_SE = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}
# Hoffmann et al. (2022), eq. 10: the parametric fit the Chinchilla paper published (the control).
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
#: two-sided 95% familywise (Bonferroni over the 5 parameters) normal quantile: 2.576
TOLERANCE = float(stats.norm.ppf(1 - 0.05 / (2 * len(BESIROGLU))))


def _max_z(table: dict[str, float], ours: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Largest |table - ours| in published standard errors, and the signed z per parameter."""
    z = {k: (table[k] - ours[k]) / BESIROGLU_SE[k] for k in PARAMETER_NAMES}
    return max(abs(v) for v in z.values()), z


def run(config: dict[str, Any], seed: int) -> Result:
    step(0, 3, "loading the digitised Chinchilla points")
    N, D, loss = load_chinchilla(exclude_highest=int(config["exclude_highest"]))
    step(1, 3, "grid of L-BFGS starts and bootstrap refits")
    fit = fit_scaling_law(N, D, loss, starts=default_start_grid(int(config["start_stride"])),
                          n_bootstrap=int(config["n_bootstrap"]), seed=seed)
    step(2, 3, "comparing with the published tables")
    ours = {k: float(fit.params[k]) for k in PARAMETER_NAMES}
    error, z_published = _max_z(BESIROGLU, ours)
    hoffmann_error, z_hoffmann = _max_z(HOFFMANN, ours)
    control = Control(
        name="hoffmann-table",
        statement=("rival: the refit gives Hoffmann et al. (2022, eq. 10)'s E=1.69, A=406.4, B=410.7, alpha=0.34, "
                   "beta=0.28 (error: max |Hoffmann - ours| in published SEs, same 2.58 tolerance)"),
        prediction=dict(HOFFMANN), measurement=dict(ours), error=hoffmann_error, tolerance=TOLERANCE,
    )
    a_hoffmann = float(compute_optimal(**HOFFMANN)[0])
    a_low, a_high = fit.compute_optimal.intervals["a"]

    names = list(PARAMETER_NAMES)
    index = np.arange(len(names), dtype=float)
    ours_arr = np.array([ours[k] for k in names])
    published = np.array([BESIROGLU[k] for k in names])
    band = TOLERANCE * np.array([BESIROGLU_SE[k] for k in names])
    relative = Panel(
        title="Parameters relative to our refit",
        xlabel="parameter",
        ylabel="value / our refit (dimensionless)",
        yscale="log",
        xticks=[(float(i), k) for i, k in enumerate(names)],
        series=[
            Series(label=f"Besiroglu et al. 2024 (prediction, +-{TOLERANCE:.2f} published SE)", x=index,
                   y=published / ours_arr, role="prediction", connect=False,
                   lower=np.maximum(published - band, 1e-3 * published) / ours_arr,
                   upper=(published + band) / ours_arr),
            Series(label=f"our refit, {100 * fit.confidence:.0f}% bootstrap interval", x=index, y=np.ones(5),
                   role="measurement", lower=[fit.intervals[k][0] / ours[k] for k in names],
                   upper=[fit.intervals[k][1] / ours[k] for k in names], connect=False),
            Series(label=f"control: Hoffmann et al. 2022 ({'rejected' if control.rejected else 'NOT rejected'})",
                   x=index, y=[HOFFMANN[k] for k in names] / ours_arr, role="reference", connect=False),
        ],
    )
    z_panel = Panel(
        title="Distance from our refit in published standard errors",
        xlabel="parameter",
        ylabel="(table - ours) / published SE",
        xticks=[(float(i), k) for i, k in enumerate(names)],
        series=[
            Series(label="Besiroglu et al. 2024 (prediction: 0 within the tolerance)", x=index,
                   y=[z_published[k] for k in names], role="prediction", connect=False,
                   lower=[-TOLERANCE] * 5, upper=[TOLERANCE] * 5),
            Series(label=f"control: Hoffmann et al. 2022 ({'rejected' if control.rejected else 'NOT rejected'})",
                   x=index, y=[z_hoffmann[k] for k in names], role="reference", connect=False),
        ],
        hlines=[(TOLERANCE, "+tolerance"), (-TOLERANCE, "-tolerance")],
    )
    compute = np.geomspace(1e18, 1e26, 40)
    figure = [
        relative,
        z_panel,
        loss_vs_compute_panel(fit, N, D, loss, title="Chinchilla runs and the refitted law"),
        frontier_panel(fit, compute, {"Besiroglu et al. 2024": BESIROGLU, "Hoffmann et al. 2022": HOFFMANN}),
    ]
    step(3, 3, "done")
    return Result(
        prediction=dict(BESIROGLU),
        measurement=ours,
        error=error,
        tolerance=TOLERANCE,
        units="published standard errors (max over E, A, B, alpha, beta)",
        controls=[control],
        figure=figure,
        metrics={
            "error_definition": "max over parameters of |ours - Besiroglu et al.| / Besiroglu et al.'s SE",
            "published_standard_errors": dict(BESIROGLU_SE),
            "z_published_minus_ours": z_published,
            "z_hoffmann_minus_ours": z_hoffmann,
            "objective": fit.objective,
            "n_points": fit.n_points,
            "n_starts": fit.n_starts,
            "n_bootstrap": int(fit.bootstrap.shape[0]),
            "our_bootstrap_standard_errors": fit.standard_errors,
            "our_intervals": fit.intervals,
            "compute_optimal_a": fit.compute_optimal.a,
            "compute_optimal_b": fit.compute_optimal.b,
            "compute_optimal_a_interval": [a_low, a_high],
            "hoffmann_a": a_hoffmann,
            "hoffmann_a_inside_interval": bool(a_low <= a_hoffmann <= a_high),
        },
        note=(
            f"Our refit is within {error:.3f} published SE of Besiroglu et al. (tolerance {TOLERANCE:.2f}); "
            f"Hoffmann et al.'s table is {hoffmann_error:.1f} SE away "
            f"({'rejected' if control.rejected else 'not rejected'}); their a={a_hoffmann:.3f} is "
            f"{'inside' if a_low <= a_hoffmann <= a_high else 'outside'} our interval [{a_low:.3f}, {a_high:.3f}]."
        ),
    )


CLAIM = Claim(
    name="chinchilla-fit",
    strand="laws",
    reference="Besiroglu, Erdil, Barnett & You (2024), table 1; Hoffmann et al. (2022), eq. 2 and 10",
    statement=(
        "theory says refitting Chinchilla's 240 points (5 highest-loss dropped) by approach 3 gives Besiroglu et "
        "al.'s published E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658 within 2.58 published SEs, not "
        "Hoffmann et al.'s E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28"
    ),
    quick={"start_stride": 2, "n_bootstrap": 500, "exclude_highest": 5},
    full={"start_stride": 1, "n_bootstrap": 4000, "exclude_highest": 5},
    run=run,
)
