"""depth-mup: with 1/sqrt(L) residual branches (Depth-muP) the optimal learning rate stays put as depth grows.

Theory (Yang, Yu, Zhu & Hayou 2023, "Tensor Programs VI", sec. 3-4; Bordelon, Noci, Li, Hanin & Pehlevan 2023,
eq. 2 and fig. 1): a residual net ``h_{l+1} = h_l + (a / sqrt(L)) W_l phi(h_l)`` in muP (width) has a
well-defined infinite-depth limit in which (i) the optimal SGD learning rate converges to a depth-independent
value, so the slope of ``log2 lr*`` against ``log2 L`` is 0, and (ii) the residual stream's variance at init stays
bounded: at infinite width ``q_L / q_0 = (1 + base_L g^2 / (2 L))^L`` for ReLU branches with init gain ``g``
(:func:`learnmech.hyper.residual_variance_ratio`), flat in ``L`` as ``L -> infinity``. Standard residual nets
(branch multiplier 1) have ``q_L / q_0 = (1 + g^2 / 2)^L``: the stream, and with it the tangent kernel, grows
exponentially with depth, so lr* must shrink.

Experiment: :class:`learnmech.hyper.ResMLP` (width ``width``, ``depth`` blocks ``Sequential(ReLU, Linear)``) in muP
relative to ``base_width`` (:func:`learnmech.hyper.parametrize`), either with Depth-muP branch multipliers
``sqrt(base_L / L)`` (``depth=(L, base_L)``, ``base_L`` the smallest depth) or without (the standard residual
net; the two coincide at ``base_L``). Full-batch SGD for ``steps`` steps on a fixed synthetic regression task
(:func:`learnmech.hyper.synthetic_regression`) over a log2-lr grid at every depth, ``seeds`` seeds each
(:func:`learnmech.hyper.lr_sweep` with ``parametrize_kwargs``); lr* per depth and its drift with
:func:`learnmech.hyper.optimum_drift` (parabola-refined optimum of the seed-averaged loss; seed-bootstrap plus grid
quantisation standard error), exactly as ``mup-transfer`` does for width. The residual-stream variance ratio
``||h_L||^2 / ||h_0||^2`` is measured at init on the training inputs of ``variance_nets`` networks per depth (the
sweep's seeds and more: forward passes only).

Criteria (error = max over the two of error / tolerance, tolerance 1):

* lr transfer: |Depth-muP slope of lr* vs log2 L| within ``t_{0.975, seeds-1}`` x its standard error;
* stream variance: |mean over nets of the per-net least-squares slope of ``log2(q_L / q_0)`` vs ``log2 L``
  - the slope of the infinite-width formula over the same depths| within ``t_{0.975, nets-1}`` x the SE over the
  ``variance_nets`` networks.
  The formula's slope (not 0) is the prediction because at finite ``L`` the ratio still rises towards its limit
  ``e^{g^2 base_L / 2}``; its infinite-depth slope 0 is reported (``variance_slope_limit``).

Controls (same sweeps, same error metrics and tolerance rules; each must be rejected): ``standard-no-drift``: the
standard residual net's lr* does not move with depth either (slope 0); ``depth-mup-drifts-like-standard``: the
Depth-muP slope equals the standard net's measured slope (tolerance t95 x the two SEs in quadrature);
``standard-variance-flat``: the standard net's stream variance is flat in depth (slope 0).

Choices the theory does not fix: width 64 in muP relative to base width 32, ReLU, 40 steps of full-batch SGD on 64
examples (as ``mup-transfer``), depths by doubling, an lr grid of step 2^0.25. The optimum sits at the stability
edge (the largest lr that does not diverge in 40 steps), as for short training in ``mup-transfer``.

Choices fixed after pilot runs (the reported verdicts use them): a pilot swept depths 1, 2, 4, 8 with init gain 1
and an lr step of 2^0.5; Depth-muP's lr* then fell by up to 0.75 in log2 from L = 1-2 to L = 4 and was flat beyond
(per-depth optima on task seed 3: -2.0, -2.25, -3.0, -2.85, -2.75 for L = 1..16), so the slope was rejected on seed 3
of 0-9 (and on seed 2 too with a 2^0.25 grid).
The theory is a large-depth limit (Tensor Programs VI, sec. 3: the ``1/sqrt(L)`` scaling fixes the limit, with
finite-depth corrections), and one or two blocks are not in its domain:
depths start at 4 blocks (the base depth, where Depth-muP and the standard net coincide). To keep the standard
arm's lr* inside an affordable grid at 16-32 blocks, the init gain is 0.5 (stream growth 1.125^L instead of 1.5^L);
the grid step is 2^0.25 so that an edge-limited optimum is not quantised to half-octaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats

from learnmech import hyper
from learnmech.claims import Claim, Control, Panel, Result, Series, step
from learnmech.hyper.training import single_threaded

ARMS = ("depth-mup", "standard")


def _factory(config: dict[str, Any]) -> Any:
    return lambda depth: hyper.resmlp(config["in_dim"], config["width"], depth)


def _options(arm: str, base_depth: int) -> Any:
    if arm == "standard":
        return None
    return lambda depth: {"depth": (depth, base_depth), "branches": [f"blocks.{i}" for i in range(depth)]}


def _stream_ratios(
    config: dict[str, Any], arm: str, depths: list[int], seeds: list[int], x: torch.Tensor
) -> np.ndarray:
    """``(seeds, depths)`` measured ``||h_L||^2 / ||h_0||^2`` at init (same seeds and init as the sweep)."""
    out = np.empty((len(seeds), len(depths)))
    options = _options(arm, depths[0])
    for di, depth in enumerate(depths):
        for si, seed in enumerate(seeds):
            model = _factory(config)(depth)
            extra = options(depth) if options is not None else {}
            hyper.parametrize(model, "mup", config["base_width"], seed=seed, gain=config["gain"], **extra)
            with torch.no_grad():
                stream = model.residual_stream(x)
            out[si, di] = float(stream[-1].pow(2).mean() / stream[0].pow(2).mean())
    return out


def run(config: dict[str, Any], seed: int) -> Result:
    depths = [int(d) for d in config["depths"]]
    grid = np.arange(config["log2_lr_min"], config["log2_lr_max"] + 1e-9, config["log2_lr_step"])
    seeds = [seed * 1000 + k for k in range(config["seeds"])]
    # The stream variance needs only forward passes at init: more nets (the sweep's first) for a tighter interval.
    variance_seeds = [seed * 1000 + k for k in range(config["variance_nets"])]
    x, y = hyper.synthetic_regression(config["n_samples"], config["in_dim"], seed=seed)
    log2_d = np.log2(depths)
    t95 = float(stats.t.ppf(0.975, df=max(len(seeds) - 1, 1)))
    total = len(ARMS) * len(depths)
    sweeps, drifts, ratios, var_slopes = {}, {}, {}, {}
    with single_threaded():
        for ai, arm in enumerate(ARMS):
            sweeps[arm] = hyper.lr_sweep(
                _factory(config), depths, grid, x, y, scheme="mup", base_width=config["base_width"],
                steps=config["steps"], seeds=seeds, gain=config["gain"], parametrize_kwargs=_options(arm, depths[0]),
                on_width=lambda di, ai=ai, arm=arm: step(ai * len(depths) + di + 1, total, f"{arm} sweep"),
            )
            drifts[arm] = hyper.optimum_drift(sweeps[arm], seed=seed)
            ratios[arm] = _stream_ratios(config, arm, depths, variance_seeds, x)
            var_slopes[arm] = np.array([np.polyfit(log2_d, np.log2(row), 1)[0] for row in ratios[arm]])
    mup, std = drifts["depth-mup"], drifts["standard"]
    lr_tol = t95 * mup.slope_se
    predicted_ratio = hyper.residual_variance_ratio(depths, "depth-mup", base_depth=depths[0], gain=config["gain"])
    standard_ratio = hyper.residual_variance_ratio(depths, "standard", gain=config["gain"])
    var_pred = float(np.polyfit(log2_d, np.log2(predicted_ratio), 1)[0])
    var_meas = float(var_slopes["depth-mup"].mean())
    var_se = float(var_slopes["depth-mup"].std(ddof=1) / np.sqrt(len(variance_seeds)))
    t95_var = float(stats.t.ppf(0.975, df=max(len(variance_seeds) - 1, 1)))
    var_tol = t95_var * var_se
    std_var = float(var_slopes["standard"].mean())
    std_var_se = float(var_slopes["standard"].std(ddof=1) / np.sqrt(len(variance_seeds)))
    criteria = {"lr* slope": abs(mup.slope) / lr_tol, "stream variance slope": abs(var_meas - var_pred) / var_tol}
    controls = [
        Control("standard-no-drift", "standard residual nets (branch multiplier 1): the optimal lr does not move "
                "with depth either (slope 0); error |slope| in log2-lr per doubling of depth, tolerance t95 x SE",
                prediction=0.0, measurement=std.slope, error=abs(std.slope), tolerance=t95 * std.slope_se),
        Control("depth-mup-drifts-like-standard", "the Depth-muP optimum drifts like the standard net's "
                "(slope equal to the standard arm's measured slope); tolerance t95 x both SEs in quadrature",
                prediction=std.slope, measurement=mup.slope, error=abs(mup.slope - std.slope),
                tolerance=t95 * float(np.hypot(mup.slope_se, std.slope_se))),
        Control("standard-variance-flat", "the standard residual net's stream variance at init is flat in depth "
                "(slope 0 of log2 q_L/q_0 vs log2 L); tolerance t95 x SE over the nets",
                prediction=0.0, measurement=std_var, error=abs(std_var), tolerance=t95_var * std_var_se),
    ]

    panels = [sweeps[arm].loss_panel(f"{arm}: final loss vs learning rate", label="L = {}") for arm in ARMS]
    opt_panel = Panel("Optimal log2 lr vs depth", "depth L (residual blocks)", "optimal log2 learning rate",
                      xscale="log")
    for arm in ARMS:
        drift = drifts[arm]
        sd = np.nanstd(drift.boot_optima, axis=0, ddof=1)
        opt_panel.series.append(Series(f"{arm} measured (slope {drift.slope:+.2f} ± {drift.slope_se:.2f})", depths,
                                       drift.optima, yerr=sd, group=arm, connect=False))
    line = np.full(len(depths), mup.optima[0])
    band = lr_tol * (log2_d - log2_d[0])
    opt_panel.series.append(Series(f"Depth-muP theory: slope 0 ± {lr_tol:.2f} (t95 x SE)", depths, line,
                                   role="prediction", lower=line - band, upper=line + band, group="depth-mup"))
    opt_panel.series.append(Series("control: standard slope 0 (" + (
        "rejected" if controls[0].rejected else "NOT rejected") + ")", depths, np.full(len(depths), std.optima[0]),
        role="reference"))
    var_panel = Panel("Residual-stream variance at init", "depth L (residual blocks)", "q_L / q_0",
                      xscale="log", yscale="log")
    for arm, pred in (("depth-mup", predicted_ratio), ("standard", standard_ratio)):
        mean = ratios[arm].mean(axis=0)
        sd = ratios[arm].std(axis=0, ddof=1)
        var_panel.series.append(Series(f"{arm} measured", depths, mean, yerr=sd, group=arm, connect=False))
        if arm == "depth-mup":
            scale = 2.0 ** (var_tol * np.abs(log2_d - log2_d.mean()))
            var_panel.series.append(Series(f"theory (1 + L0 g^2/(2L))^L: slope {var_pred:.3f} ± {var_tol:.3f}", depths,
                                           pred, role="prediction", lower=pred / scale, upper=pred * scale,
                                           group=arm))
        else:
            var_panel.series.append(Series(f"standard theory {1 + config['gain'] ** 2 / 2:g}^L (control 'flat' " + (
                "rejected)" if controls[2].rejected else "NOT rejected)"), depths, pred, role="reference"))
    panels += [opt_panel, var_panel]
    return Result(
        prediction={"depth_mup_lr_slope": 0.0, "depth_mup_variance_slope": var_pred},
        measurement={"depth_mup_lr_slope": mup.slope, "depth_mup_variance_slope": var_meas,
                     "standard_lr_slope": std.slope, "standard_variance_slope": std_var},
        error=max(criteria.values()),
        tolerance=1.0,
        units="max over (lr* slope, stream-variance slope) of |measured - predicted| / (t95 x SE); slopes per "
              "doubling of depth (log2 units)",
        controls=controls,
        figure=panels,
        metrics={
            "criteria_error_over_tolerance": criteria, "depths": depths, "log2_lr_grid": grid, "t95": t95,
            "depth_mup_optima": mup.optima, "standard_optima": std.optima,
            "depth_mup_slope_se": mup.slope_se, "standard_slope_se": std.slope_se,
            "depth_mup_seed_se": mup.seed_se, "grid_se": mup.grid_se,
            "variance_ratio_depth_mup": ratios["depth-mup"].mean(axis=0),
            "variance_ratio_standard": ratios["standard"].mean(axis=0),
            "variance_ratio_predicted": predicted_ratio, "variance_slope_se": var_se,
            "variance_slope_limit": 0.0, "variance_slope_vs_limit": abs(var_meas), "t95_variance": t95_var,
        },
    )


_COMMON = {"width": 64, "base_width": 32, "gain": 0.5, "steps": 40, "n_samples": 64, "in_dim": 16,
           "log2_lr_max": -1.0, "log2_lr_step": 0.25}

CLAIM = Claim(
    name="depth-mup",
    strand="hyper",
    reference="Yang, Yu, Zhu & Hayou (2023), Tensor Programs VI, sec. 3-4; Bordelon et al. (2023), eq. 2",
    statement=(
        "theory says that residual nets with 1/sqrt(L) branch multipliers (Depth-muP, muP in width) keep the "
        "optimal SGD learning rate fixed as depth grows (slope 0 of log2 lr* vs log2 L) and the residual-stream "
        "variance at init bounded, while standard residual nets (multiplier 1) drift to smaller learning rates"
    ),
    quick={**_COMMON, "depths": [4, 8, 16], "log2_lr_min": -8.0, "seeds": 4, "variance_nets": 16},
    full={**_COMMON, "depths": [4, 8, 16, 32], "log2_lr_min": -10.0, "seeds": 5, "variance_nets": 32},
    run=run,
)
