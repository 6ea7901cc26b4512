"""mup-transfer: the optimal learning rate stays put across widths under muP and drifts under SP.

Experiment: a 2-hidden-layer ReLU MLP on a fixed synthetic regression task, full-batch SGD for ``steps`` steps,
a grid of learning rates at each width, under SP and muP (both equal at the base width, the smallest). The
optimum of the seed-averaged final loss is located per width (parabola-refined on the log2-lr grid) and its drift
is the least-squares slope against log2(width). Prediction (Yang et al. 2022): muP slope 0; SP slope about -1
(the NTK of hidden/readout layers grows ~ width under SP, so lr must shrink ~ 1/width). Verdict on muP: the
error is |muP slope|, the tolerance two standard errors of that slope (seed bootstrap and grid quantisation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnmech import hyper
from learnmech.claims import Claim, Panel, Result, Series, step


def run(config: dict[str, Any], seed: int) -> Result:
    widths = [int(w) for w in config["widths"]]
    grid = np.arange(config["log2_lr_min"], config["log2_lr_max"] + 1e-9, config["log2_lr_step"])
    seeds = [seed * 1000 + k for k in range(config["seeds"])]
    x, y = hyper.synthetic_regression(config["n_samples"], config["in_dim"], seed=seed)
    schemes = ("sp", "mup")
    total = len(schemes) * len(widths)
    sweeps, drifts = {}, {}
    with hyper.single_threaded():
        for si, scheme in enumerate(schemes):
            sweeps[scheme] = hyper.lr_sweep(
                lambda width: hyper.mlp(config["in_dim"], width, 1, hidden_layers=2, activation="relu"),
                widths, grid, x, y, scheme=scheme, base_width=widths[0], steps=config["steps"], seeds=seeds,
                gain=2**0.5,  # He init: keeps ReLU activations O(1) through depth at init
                on_width=lambda wi, si=si, scheme=scheme: step(si * len(widths) + wi + 1, total, f"{scheme} sweep"),
            )
            drifts[scheme] = hyper.optimum_drift(sweeps[scheme], seed=seed)
    mup, sp = drifts["mup"], drifts["sp"]
    error = abs(mup.slope)
    tolerance = 2.0 * mup.slope_se  # ~95% interval of a slope whose true value is 0
    panels = []
    for scheme in schemes:
        sweep = sweeps[scheme]
        mean_loss = np.exp(np.log(sweep.loss).mean(axis=0))
        series = [Series(f"width {int(w)}", grid, np.where(np.isfinite(mean_loss[i]), mean_loss[i], np.nan))
                  for i, w in enumerate(sweep.widths)]
        panels.append(Panel(f"{scheme.upper()}: final training loss vs learning rate", "log2 learning rate",
                            "training loss (1/2 MSE)", series, yscale="log"))
    log2_w = np.log2(widths)
    optimum_panel = Panel("Optimal log2 lr vs width", "width (units)", "optimal log2 learning rate",
                          xscale="log")
    for scheme, slope_pred in (("mup", 0.0), ("sp", -1.0)):
        drift = drifts[scheme]
        boot_sd = np.nanstd(drift.boot_optima, axis=0, ddof=1)
        optimum_panel.series.append(Series(f"{scheme} measured (slope {drift.slope:+.2f} ± {drift.slope_se:.2f})",
                                           widths, drift.optima, yerr=boot_sd))
        line = drift.optima[0] + slope_pred * (log2_w - log2_w[0])
        optimum_panel.series.append(Series(f"{scheme} theory (slope {slope_pred:+.0f})", widths, line,
                                           role="prediction"))
    panels.append(optimum_panel)
    return Result(
        prediction={"mup_slope": 0.0, "sp_slope": -1.0},
        measurement={"mup_slope": mup.slope, "sp_slope": sp.slope},
        error=error,
        tolerance=tolerance,
        figure=panels,
        metrics={
            "widths": widths, "log2_lr_grid": grid, "mup_optima": mup.optima, "sp_optima": sp.optima,
            "mup_slope_se": mup.slope_se, "sp_slope_se": sp.slope_se, "mup_seed_se": mup.seed_se,
            "grid_se": mup.grid_se,
            "mup_total_drift_log2": mup.slope * (log2_w[-1] - log2_w[0]),
            "sp_total_drift_log2": sp.slope * (log2_w[-1] - log2_w[0]),
            "sp_drifts": bool(abs(sp.slope) > 2 * sp.slope_se),
            "sp_slope_within_2se_of_minus_1": bool(abs(sp.slope + 1.0) <= 2 * sp.slope_se),
        },
    )


CLAIM = Claim(
    name="mup-transfer",
    strand="hyper",
    reference="Yang et al. (2022), Tensor Programs V, fig. 1 and Table 3",
    statement=(
        "theory says the optimal learning rate of SGD converges to a width-independent value under muP "
        "(slope 0 of optimal log2 lr vs log2 width), while under SP it drifts like 1/width (slope -1)"
    ),
    quick={"widths": [64, 128, 256], "log2_lr_min": -8.0, "log2_lr_max": -1.0, "log2_lr_step": 0.5, "seeds": 3,
           "steps": 40, "n_samples": 64, "in_dim": 16},
    full={"widths": [64, 128, 256, 512], "log2_lr_min": -9.0, "log2_lr_max": -1.0, "log2_lr_step": 0.5,
          "seeds": 4, "steps": 50, "n_samples": 64, "in_dim": 16},
    run=run,
)
