"""stability-ceiling: full-batch GD on MSE loses stability at lr = 2/lambda_0 and, for wide nets, only diverges
above ~4/lambda_0; in between lies the catapult band (Lewkowycz et al. 2020).

Experiment: the two-layer linear "uv" model (the setting where Lewkowycz et al. solve the dynamics) in the NTK
parametrization, on a fixed synthetic regression task. lambda_0 is the top Hessian eigenvalue at init from
:func:`learnmech.observe.sharpness`. For each width and seed, two boundaries are bracketed on real training:
*spike* (the loss ever rises above its initial value; theory 2/lambda_0) and *divergence* (the loss blows up:
non-finite or 1e6 x its initial value within the run; theory 4/lambda_0). Both are theory statements about the
infinite-width limit, so the measured ratios lr * lambda_0 are extrapolated in width with the NTK regime's
O(n^-1/2) correction (Lee et al. 2019) and the limits compared with 2 and 4. Tolerance per boundary (log2
units): twice the fit's standard error + the bracket's resolution + Lanczos' relative tolerance; the reported
error is the larger of the two boundaries' error/tolerance ratios (so the tolerance is 1).

Caveat: the 4/lambda_0 ceiling is derived for the uv model trained on one example (Lewkowycz et al. 2020, sec. 2);
here 32 examples share the dynamics. The full config measures the ceiling at ~3.7/lambda_0 with no trend
towards 4 in width, and the claim reports that as a disagreement rather than widening the tolerance.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from learnmech import hyper
from learnmech.claims import Claim, Panel, Result, Series, step
from learnmech.observe import sharpness

SHARPNESS_RTOL = 1e-3


def run(config: dict[str, Any], seed: int) -> Result:
    widths = [int(w) for w in config["widths"]]
    x, y = hyper.synthetic_regression(config["n_samples"], config["in_dim"], seed=seed)
    batch = (x, y)
    points: dict[str, list[tuple[int, float]]] = {"spike": [], "divergence": []}
    resolution = 0.0
    total = 2 * len(widths)
    with hyper.single_threaded():
        for wi, width in enumerate(widths):
            models, lams = [], []
            for k in range(config["seeds"]):
                model = hyper.mlp(config["in_dim"], width, 1, hidden_layers=1, activation="linear")
                hyper.parametrize(model, "ntp", base_width=widths[0], seed=seed * 1000 + k)
                models.append(model)
                lams.append(sharpness(model, hyper.half_mse, batch, rtol=SHARPNESS_RTOL))
            lam = float(np.mean(lams))
            common = {"steps": config["steps"], "rounds": config["rounds"], "points": config["points"]}
            for bi, (name, test, lo, hi) in enumerate((("spike", hyper.spiked, 1.0, 4.0),
                                                       ("divergence", hyper.blew_up, 2.0, 8.0))):
                brackets = hyper.lr_boundary(models, x, y, test, lo / lam, hi / lam, **common)
                for bracket, lam_k in zip(brackets, lams, strict=True):
                    points[name].append((width, bracket.estimate * lam_k))
                    resolution = max(resolution, bracket.log2_halfwidth)
                step(2 * wi + bi + 1, total, f"width {width}: {name} boundary")
        demo = _catapult_demo(models[0], lams[0], x, y, config["steps"])
    predicted = {"spike": 2.0, "divergence": 4.0}
    fits, errors, tolerances = {}, {}, {}
    for name, pts in points.items():
        n, ratio = np.array(pts).T
        fit = hyper.extrapolate_width(n, ratio)
        fits[name] = fit
        errors[name] = abs(math.log2(fit.limit / predicted[name]))
        tolerances[name] = 2 * fit.limit_se / (fit.limit * math.log(2)) + resolution + SHARPNESS_RTOL / math.log(2)
    error = max(errors[name] / tolerances[name] for name in predicted)
    return Result(
        prediction={"spike_lr_times_lambda": 2.0, "divergence_lr_times_lambda": 4.0},
        measurement={"spike_lr_times_lambda": fits["spike"].limit,
                     "divergence_lr_times_lambda": fits["divergence"].limit},
        error=error,
        tolerance=1.0,
        figure=[_boundary_panel(points, fits, predicted), *demo["panels"]],
        metrics={
            "log2_error": errors, "log2_tolerance": tolerances,
            "limit_se": {name: fit.limit_se for name, fit in fits.items()},
            "finite_width_coeff": {name: fit.coeff for name, fit in fits.items()},
            "points": {name: [list(p) for p in pts] for name, pts in points.items()},
            "bracket_log2_halfwidth": resolution,
            "catapult": demo["metrics"],
        },
    )


def _boundary_panel(points, fits, predicted) -> Panel:
    panel = Panel("Stability boundaries vs width (lr in units of 1/lambda_0)", "width^-1/2 (units)",
                  "lr x lambda_0 (dimensionless)")
    for name, pts in points.items():
        n, ratio = np.array(pts).T
        panel.series.append(Series(f"{name} (measured)", n**-0.5, ratio))
        grid = np.linspace(0.0, float(np.max(n**-0.5)), 20)
        fit = fits[name]
        panel.series.append(Series(f"{name} fit -> {fit.limit:.3f} ± {fit.limit_se:.3f}", grid,
                                   fit.limit + fit.coeff * grid, role="reference"))
        panel.series.append(Series(f"{name} theory ({predicted[name]:g}/lambda_0)", grid,
                                   np.full_like(grid, predicted[name]), role="prediction"))
    return panel


def _catapult_demo(model: torch.nn.Module, lam: float, x, y, steps: int) -> dict[str, Any]:
    """Loss curves below, inside and above the band, and the sharpness before/after a catapult run."""
    factors = (1.5, 3.0, 4.5)
    curves = hyper.gd_lr_grid([model], [f / lam for f in factors], x, y, steps)[0]
    inside = copy.deepcopy(model)
    run = hyper.train(inside, torch.optim.SGD(inside.parameters(), lr=3.0 / lam), x, y, steps)
    lam_after = sharpness(inside, hyper.half_mse, (x, y), rtol=SHARPNESS_RTOL) if run.diverged_at is None else None
    t = np.arange(curves.shape[1])
    loss_panel = Panel("Full-batch GD loss at three learning rates", "step", "training loss (1/2 MSE)",
                       [Series(f"lr = {f:g}/lambda_0", t, np.where(np.isfinite(c), c, np.nan))
                        for f, c in zip(factors, curves, strict=True)], yscale="log")
    sharp_panel = Panel("Catapult at lr = 3/lambda_0: sharpness drops below 2/lr", "time (before=0, after=1)",
                        "top Hessian eigenvalue (loss units)",
                        [Series("sharpness", [0, 1], [lam, np.nan if lam_after is None else lam_after])],
                        hlines=[(2.0 / (3.0 / lam), "2/lr")])
    return {
        "panels": [loss_panel, sharp_panel],
        "metrics": {"lambda_0": lam, "lambda_after": lam_after, "two_over_lr": 2.0 / (3.0 / lam),
                    "peak_loss_over_initial": float(np.nanmax(run.losses) / run.losses[0]),
                    "final_loss_over_initial": float(run.losses[-1] / run.losses[0])},
    }


CLAIM = Claim(
    name="stability-ceiling",
    strand="hyper",
    reference="Lewkowycz et al. (2020), The large learning rate phase of deep learning, sec. 2 (uv model)",
    statement=(
        "theory says full-batch GD on MSE is unstable (the loss rises) once lr > 2/lambda_0, lambda_0 the top "
        "Hessian eigenvalue at init, and for wide nets diverges only above 4/lambda_0: in between the loss "
        "catapults, the sharpness drops below 2/lr and training converges"
    ),
    quick={"widths": [256, 1024], "seeds": 3, "n_samples": 32, "in_dim": 8, "steps": 100, "rounds": 2, "points": 8},
    full={"widths": [256, 1024, 4096], "seeds": 4, "n_samples": 32, "in_dim": 8, "steps": 100, "rounds": 3,
          "points": 8},
    run=run,
)
