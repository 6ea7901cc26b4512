"""ntk-convergence: the empirical NTK of a width-n MLP converges to the analytic NTK, with error ~ n^-1/2.

Theory (Jacot, Gabriel & Hongler 2018, Thm. 1; fluctuations: Hanin & Nica 2019, Thm. 1): at initialisation the
empirical NTK of an MLP in the NTK parameterization is a sum over ``n`` hidden units per layer of i.i.d.-like
terms, so it equals the deterministic limit plus O(n^-1/2) Gaussian fluctuations: the relative Frobenius error
``||Theta_n - Theta||_F / ||Theta||_F`` decays as ``n^-1/2``, i.e. the log-log slope of error vs width is -1/2.

Experiment: the network is one :func:`learnmech.kernels.stax.MLP` description: its ``kernel_fn`` gives the analytic
NTK, and for each width and seed its ``module`` gives an independent finite net, whose empirical NTK is computed in
float64 on fixed inputs, and the error to the analytic NTK. Fit ``log error = a + slope * log width`` by least
squares over all (width, seed) points. Tolerance: the ``confidence`` (default 95%) t-interval half-width of the
fitted slope, from the fit's residuals (i.e. the seed-to-seed spread); the prediction (-1/2) is fixed, never fitted.

Controls (judged on the same fitted slope with the same t-interval): ``slope-zero``, the empirical NTK does not
converge (a width-independent error, e.g. a fixed bias between the finite network and the analytic kernel);
``slope-minus-one``, the error falls as 1/n (the rate of a mean-field / 1/n-bias effect rather than O(n^-1/2)
Gaussian fluctuations). Both must be rejected.

Figure: the prediction's tolerance band (slopes -1/2 +- tolerance, pinned at the fit's centre) and the rejected
rivals.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from scipy import stats

from learnmech.claims import Claim, Control, Result, step
from learnmech.kernels import asymptotic_exponent, convergence_panels, empirical_ntk, stax
from learnmech.seeding import rng

PREDICTED_SLOPE = -0.5
#: Rival slopes the experiment must reject: no convergence, and a 1/n rate.
RIVAL_SLOPES = {"slope-zero": 0.0, "slope-minus-one": -1.0}


def run(config: dict[str, Any], seed: int) -> Result:
    generator = rng(seed)
    # One description of the net at any width: its kernels and its finite versions (kernels.stax.MLP).
    network = partial(stax.MLP, config["hidden_layers"], activation=config["activation"], W_std=config["W_std"],
                      b_std=config["b_std"])
    widths = [int(w) for w in config["widths"]]
    seeds = int(config["seeds"])
    x = generator.standard_normal((int(config["n_inputs"]), int(config["in_dim"])))
    # NTK parameterization: the limit is the same for every width, so any width's description gives it.
    analytic = network(widths[0]).kernel_fn(x).ntk
    errors = np.empty((len(widths), seeds))
    largest = None
    total = len(widths) * seeds
    for i, width in enumerate(widths):
        for s in range(seeds):
            # Independent nets for every (width, seed) point, so the regression residuals are independent.
            net = network(width).module((x.shape[1],), seed=int(generator.integers(2**31)))
            empirical = empirical_ntk(net, x, dtype="float64")
            errors[i, s] = np.linalg.norm(empirical - analytic) / np.linalg.norm(analytic)
            largest = empirical
            step(i * seeds + s + 1, total, f"width {width}, seed {s}")

    # The plain log-log slope over all (width, seed) points, its standard error from the residuals.
    fit = asymptotic_exponent(np.repeat(widths, seeds).astype(float), errors.reshape(-1), corrections=0)
    slope, intercept, slope_se, dof = fit.exponent, fit.intercept, fit.se, fit.df
    tolerance = float(stats.t.ppf(0.5 + float(config["confidence"]) / 2, dof) * slope_se)

    controls = [
        Control(name, f"the log-log slope of the empirical NTK's relative error vs width is {rival:g}; units: "
                "|slope difference| vs the slope's t-interval half-width", prediction=rival, measurement=float(slope),
                error=abs(float(slope) - rival), tolerance=tolerance)
        for name, rival in RIVAL_SLOPES.items()
    ]
    mean_err, std_err = errors.mean(axis=1), errors.std(axis=1, ddof=1)
    panels = convergence_panels(
        widths, errors, analytic, largest, slope=float(slope), intercept=float(intercept), tolerance=tolerance,
        predicted=PREDICTED_SLOPE, rivals=[(c.prediction, c.rejected) for c in controls],
        title="Empirical NTK -> analytic NTK (Jacot et al. 2018)", width_label="hidden width n (units)",
        entries_title=f"Kernel entries at width {widths[-1]}", entry_units="(output units^2)")
    return Result(
        prediction=PREDICTED_SLOPE,
        measurement=float(slope),
        error=abs(float(slope) - PREDICTED_SLOPE),
        tolerance=tolerance,
        units="|slope - (-1/2)| (log-log slope units)",
        figure=panels,
        controls=controls,
        metrics={
            "slope_se": slope_se,
            "dof": dof,
            "widths": widths,
            "mean_relative_error": mean_err,
            "sd_relative_error": std_err,
            "error_times_sqrt_width": mean_err * np.sqrt(widths),
        },
    )


CLAIM = Claim(
    name="ntk-convergence",
    strand="limits",
    reference="Jacot, Gabriel & Hongler (2018), Thm. 1; Hanin & Nica (2019), Thm. 1",
    statement="theory says the empirical NTK of a width-n MLP (NTK parameterization) converges to the analytic "
    "NTK with relative error ~ n^-1/2: the log-log slope of error vs width is -1/2",
    quick={"widths": [64, 128, 256, 512, 1024], "seeds": 8, "hidden_layers": 2, "n_inputs": 8, "in_dim": 4,
           "activation": "relu", "W_std": 1.5, "b_std": 0.1, "confidence": 0.95},
    full={"widths": [64, 128, 256, 512, 1024, 2048, 4096], "seeds": 8, "hidden_layers": 3, "n_inputs": 16,
          "in_dim": 8, "activation": "relu", "W_std": 1.5, "b_std": 0.1, "confidence": 0.95},
    run=run,
)
