"""lr-width-scaling: under SP the largest stable learning rate of GD shrinks like 1/width.

Theory: in the standard parametrization the hidden and readout layers each contribute ~ width to the NTK (their
gradients have ~width O(1) entries), so the top Hessian eigenvalue at init grows ~ width and the largest stable
learning rate, a width-independent multiple of 1/lambda_0 in the NTK regime (Lewkowycz et al. 2020), scales as
width^-1 (Jacot et al. 2018; Yang & Hu 2021, sec. 3: SP needs lr ~ 1/width). Experiment: a 2-hidden-layer ReLU
MLP in SP, full-batch GD on a fixed regression task; the largest lr that still converges is bracketed on real
training per width and seed, and ``laws.fit_power_law`` fits lr_max ~ width^-k.
Tolerance: half the fit's 95% bootstrap interval on k, plus the finite-width correction theory expects at these
widths, estimated independently of the training runs from the sharpness at init (the local exponent of
1/lambda_0(width) differs from -1 by the O(1) input-layer share of the NTK).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnmech import hyper, laws
from learnmech.claims import Claim, Panel, Result, Series, step
from learnmech.observe import sharpness


def run(config: dict[str, Any], seed: int) -> Result:
    widths = [int(w) for w in config["widths"]]
    x, y = hyper.synthetic_regression(config["n_samples"], config["in_dim"], seed=seed)
    lr_points, lam_points = [], []
    with hyper.single_threaded():
        for wi, width in enumerate(widths):
            models, lams = [], []
            for k in range(config["seeds"]):
                model = hyper.mlp(config["in_dim"], width, 1, hidden_layers=2, activation="relu")
                hyper.parametrize(model, "sp", base_width=widths[0], seed=seed * 1000 + k, gain=2**0.5)
                models.append(model)
                lams.append(sharpness(model, hyper.half_mse, (x, y), rtol=1e-3))
            lam = float(np.mean(lams))
            # The catapult band of ReLU nets reaches ~12/lambda_0 (Lewkowycz et al. 2020), so search [1, 32]/lambda.
            brackets = hyper.lr_boundary(models, x, y, hyper.diverged, 1.0 / lam, 32.0 / lam, steps=config["steps"],
                                         rounds=config["rounds"], points=config["points"])
            lr_points += [(width, b.estimate) for b in brackets]
            lam_points += [(width, lam_k) for lam_k in lams]
            step(wi + 1, len(widths), f"width {width}")
    n_lr, lr_max = np.array(lr_points).T
    n_lam, lam0 = np.array(lam_points).T
    fit = laws.fit_power_law(n_lr, lr_max, seed=seed)
    exponent = -fit.params["k"]
    low, high = fit.intervals["k"]
    half_ci = 0.5 * (high - low)
    # Finite-width exponent implied by the curvature at init alone: lr_max ∝ 1/lambda_0(width) in the NTK regime.
    lam_fit = laws.fit_power_law(n_lam, 1.0 / lam0, n_bootstrap=0)
    curvature_exponent = -lam_fit.params["k"]
    finite_width = abs(curvature_exponent - (-1.0))
    predicted = -1.0
    error = abs(exponent - predicted)
    tolerance = half_ci + finite_width
    grid = np.geomspace(min(widths), max(widths), 30)
    anchor = float(np.exp(np.mean(np.log(lr_max * n_lr))))  # only places the -1 line on the plot
    panel = Panel("Largest stable GD learning rate vs width (SP)", "width (units)", "lr_max (1/loss-curvature units)",
                  [Series("measured lr_max (seeds)", n_lr, lr_max),
                   Series(f"fit: exponent {exponent:+.3f} [{-high:+.3f}, {-low:+.3f}]", grid, fit.predict(grid),
                          role="reference"),
                   Series("NTK limit: width^-1", grid, anchor / grid, role="prediction"),
                   Series("2/lambda_0 at init (spike onset)", n_lam, 2.0 / lam0, role="reference")],
                  xscale="log", yscale="log")
    return Result(
        prediction=predicted,
        measurement=exponent,
        error=error,
        tolerance=tolerance,
        figure=[panel],
        metrics={
            "exponent_ci95": [-high, -low], "curvature_exponent": curvature_exponent,
            "finite_width_allowance": finite_width, "fit_half_ci": half_ci,
            "lr_max_times_lambda0": (lr_max * lam0).tolist(),
            "points": [list(p) for p in lr_points],
        },
    )


CLAIM = Claim(
    name="lr-width-scaling",
    strand="hyper",
    reference="Jacot et al. (2018); Yang & Hu (2021), sec. 3 (SP needs lr ~ 1/width); Lewkowycz et al. (2020)",
    statement=(
        "theory says that in the standard parametrization the largest learning rate at which full-batch GD still "
        "converges scales as width^-1, as the NTK (which grows ~ width) predicts"
    ),
    quick={"widths": [32, 64, 128, 256], "seeds": 3, "n_samples": 32, "in_dim": 8, "steps": 60, "rounds": 2,
           "points": 8},
    full={"widths": [64, 128, 256, 512, 1024], "seeds": 3, "n_samples": 32, "in_dim": 8, "steps": 60,
          "rounds": 2, "points": 8},
    run=run,
)
