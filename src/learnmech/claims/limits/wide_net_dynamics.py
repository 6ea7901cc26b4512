"""wide-net-dynamics: a wide MLP trained by full-batch GD on MSE follows the infinite-width NTK prediction.

Theory (Lee et al. 2019, eqs. 10-11 and Thm. 2.1): in the NTK parameterization a width-n network trained by
gradient flow on MSE stays within O(n^-1/2) of its linearization, whose outputs evolve as
``f_t = f_0 + Theta_* Theta^{-1} (e^{-lr t Theta / N} - I)(f_0 - Y)`` with the deterministic analytic NTK
``Theta`` (:func:`learnmech.kernels.gradient_flow`, loss ``1/2 mean (f - Y)^2``, ``N = Y.size``).

Experiment: one net (a :func:`learnmech.kernels.stax.MLP` description: ``module`` is the finite net, ``kernel_fn``
its analytic kernels), full-batch GD with ``lr = lr_fraction * N / lambda_max(Theta)`` on a smooth
regression task; its test outputs at log-spaced steps are compared with ``gradient_flow`` on the **analytic**
NTK, started from the net's own initial outputs. Error: ``sup_t RMS_test(f_net(t) - f_pred(t))`` divided by the
RMS distance the prediction moves (``f_pred(t_end) - f_0``), so it is dimensionless.

Tolerance (an error budget of the finite-width effects the theory names, none of them using the trajectory
being judged): (i) the init fluctuation of the kernel, the same flow run with the net's empirical NTK at
initialisation instead of the analytic one; (ii) the kernel's drift during training, the flow with the
empirical NTK after training vs at initialisation (both O(n^-1/2), Lee et al. 2019, Thm. 2.1); (iii) the GD
discretisation of the flow, at most ``x / (2e)`` of the movement per eigenmode where ``x = lr lambda_max / N``
(since ``|(1 - x)^k - e^{-kx}| <= x/(2e)`` to first order in x). Tolerance = sup_t [(i) + (ii)] / movement + (iii).

Controls (same task, same lr, same error metric and tolerance unless stated):
(1) ``deviation-does-not-shrink``: the rival "a finite network deviates from the analytic prediction by a
width-independent amount". ``nets`` further networks at each of ``control_widths`` (plus the judged width) are
trained and the same deviation measured; the log-log slope of deviation vs width is fitted (all nets pooled) and the
rival slope 0 is judged against the slope's ``confidence`` t-interval half-width. (Theory: O(n^-1/2), slope -1/2,
reported as a metric.)
(2) ``nngp-flow``: the rival "GD on all layers follows the gradient flow of the NNGP kernel" (as if only the readout
were trained: the random-features limit, Lee et al. 2019), started from the same f_0 with the same lr,
judged with the claim's own metric and tolerance.

Why the controls: a single-width comparison alone could not fail for lack of a rival. The figure draws the
rejected rivals.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
from scipy import stats

from learnmech.claims import Claim, Control, Diverged, Panel, Result, Series, step
from learnmech.kernels import empirical_ntk, gradient_flow, stax, train_mse_gd
from learnmech.seeding import rng


def _rms(values: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    return np.sqrt(np.mean(np.square(values), axis=axis))


def run(config: dict[str, Any], seed: int) -> Result:
    generator = rng(seed)
    # One description of the net at any width: its kernels and its finite versions (kernels.stax.MLP).
    network = partial(stax.MLP, config["hidden_layers"], activation=config["activation"], W_std=config["W_std"],
                      b_std=config["b_std"])
    n_train, n_test, dim = int(config["n_train"]), int(config["n_test"]), int(config["in_dim"])
    x = generator.standard_normal((n_train + n_test, dim))
    # A smooth target, so the kernel regression interpolant is meaningful on the test points.
    direction = generator.standard_normal(dim) / math.sqrt(dim)
    y = np.sin(2.0 * x @ direction)[:, None]
    x_train, x_test, y_train = x[:n_train], x[n_train:], y[:n_train]
    kernels = network(int(config["width"])).kernel_fn(x)  # NTK parameterization: any width's limit
    kernel, nngp = kernels.ntk, kernels.nngp
    k_tt = kernel[:n_train, :n_train]
    lam_max = float(np.linalg.eigvalsh(k_tt)[-1])
    lr = float(config["lr_fraction"]) * y_train.size / lam_max
    steps = int(config["steps"])
    record = np.unique(np.concatenate([[0], np.geomspace(1, steps, int(config["points"])).astype(int)]))

    net = network(int(config["width"])).module((dim,), seed=int(generator.integers(2**31)))
    ntk_init = empirical_ntk(net, x)
    step(1, 4, "trained network: gradient descent")
    trajectory = train_mse_gd(net, x_train, y_train, lr, record, x_test=x_test)
    if trajectory.diverged_step is not None:
        raise Diverged(trajectory.diverged_step)
    step(2, 4, "kernel after training")
    ntk_final = empirical_ntk(net, x)
    step(3, 4, "predictions")

    f0_train, f0_test = trajectory.train[0], trajectory.test[0]

    def flow(k: np.ndarray, times: np.ndarray = record) -> Any:
        return gradient_flow(k[:n_train, :n_train], k[n_train:, :n_train], y_train, times, lr=lr,
                             y0_train=f0_train, y0_test=f0_test)

    predicted = flow(kernel)
    with_init_kernel = flow(ntk_init)
    with_final_kernel = flow(ntk_final)
    movement = float(_rms(predicted.test[-1] - f0_test, (0, 1)))
    deviation = _rms(trajectory.test - predicted.test, (1, 2)) / movement
    fluctuation = _rms(with_init_kernel.test - predicted.test, (1, 2)) / movement
    drift = _rms(with_final_kernel.test - with_init_kernel.test, (1, 2)) / movement
    discretisation = float(config["lr_fraction"]) / (2 * math.e)
    error = float(deviation.max())
    tolerance = float((fluctuation + drift).max() + discretisation)

    # Control 2: the NNGP-kernel flow from the same start, judged with the claim's metric and tolerance.
    nngp_flow = flow(nngp)
    nngp_error = float((_rms(trajectory.test - nngp_flow.test, (1, 2)) / movement).max())

    # Control 1: deviation vs width over several independent nets per width (the judged net included).
    def deviation_of(width: int) -> float:
        other = network(width).module((dim,), seed=int(generator.integers(2**31)))
        run_ = train_mse_gd(other, x_train, y_train, lr, record, x_test=x_test)
        if run_.diverged_step is not None:
            raise Diverged(run_.diverged_step)
        pred = gradient_flow(kernel[:n_train, :n_train], kernel[n_train:, :n_train], y_train, record, lr=lr,
                             y0_train=run_.train[0], y0_test=run_.test[0])
        move = float(_rms(pred.test[-1] - run_.test[0], (0, 1)))
        return float((_rms(run_.test - pred.test, (1, 2)) / move).max())

    width = int(config["width"])
    sweep_widths = [int(w) for w in config["control_widths"]] + [width]
    nets = int(config["nets"])
    sweep = []
    for w in sweep_widths:
        for _ in range(nets - 1 if w == width else nets):
            sweep.append((w, deviation_of(w)))
        if w == width:
            sweep.append((w, error))
    sweep_w = np.array([w for w, _ in sweep], dtype=float)
    sweep_e = np.array([e for _, e in sweep])
    (slope, intercept), cov = np.polyfit(np.log(sweep_w), np.log(sweep_e), 1, cov="unscaled")
    resid = np.log(sweep_e) - (intercept + slope * np.log(sweep_w))
    dof = sweep_e.size - 2
    slope_se = float(np.sqrt(cov[0, 0] * resid @ resid / dof))
    slope_tol = float(stats.t.ppf(0.5 + float(config["confidence"]) / 2, dof) * slope_se)
    controls = [
        Control("deviation-does-not-shrink",
                "a finite network deviates from the analytic-NTK prediction by a width-independent amount (log-log "
                "slope of deviation vs width = 0); units: |slope| vs its t-interval half-width",
                prediction=0.0, measurement=float(slope), error=abs(float(slope)), tolerance=slope_tol),
        Control("nngp-flow",
                "GD on all layers follows the gradient flow of the NNGP kernel (a random-features model); units: "
                "sup_t RMS test deviation / RMS movement, same tolerance as the claim",
                prediction=float(_rms(nngp_flow.test[-1], (0, 1))),
                measurement=float(_rms(trajectory.test[-1], (0, 1))), error=nngp_error, tolerance=tolerance),
    ]

    grid = np.unique(np.concatenate([[0], np.geomspace(1, steps, 80)]))
    smooth = flow(kernel, grid)
    loss_pred = 0.5 * np.mean((smooth.train - y_train[None]) ** 2, axis=(1, 2))
    shown = 0  # the test point drawn in the second panel
    wgrid = np.geomspace(min(sweep_widths), max(sweep_widths), 40)
    centre_w = float(np.exp(np.mean(np.log(sweep_w))))
    centre_dev = float(np.exp(intercept + slope * np.log(centre_w)))
    band = tolerance * movement
    panels = [
        Panel(
            title="Training loss: wide net vs NTK gradient flow",
            xlabel="GD step (lr units)",
            ylabel="train loss 1/2 mean (f - y)^2 (target units^2)",
            xscale="symlog",
            yscale="log",
            series=[
                Series("gradient flow, analytic NTK (Lee et al. 2019)", grid, loss_pred, role="prediction"),
                Series(f"net, width {config['width']}", trajectory.steps, trajectory.loss, role="measurement"),
            ],
        ),
        Panel(
            title="Output on a held-out input",
            xlabel="GD step (lr units)",
            ylabel="network output f(x_test) (target units)",
            xscale="symlog",
            series=[
                Series("gradient flow, analytic NTK (tolerance band)", grid, smooth.test[:, shown, 0],
                       role="prediction", lower=smooth.test[:, shown, 0] - band,
                       upper=smooth.test[:, shown, 0] + band),
                Series(f"net, width {config['width']}", trajectory.steps, trajectory.test[:, shown, 0],
                       role="measurement"),
                Series(f"control: NNGP-kernel flow ({'rejected' if controls[1].rejected else 'not rejected'})",
                       record, nngp_flow.test[:, shown, 0], role="reference"),
            ],
        ),
        Panel(
            title="Deviation from the prediction vs the finite-width budget",
            xlabel="GD step (lr units)",
            ylabel="RMS test deviation / RMS movement (dimensionless)",
            xscale="symlog",
            series=[
                Series("measured |net - prediction|", trajectory.steps, deviation, role="measurement"),
                Series("budget: kernel fluctuation + drift + discretisation", record,
                       fluctuation + drift + discretisation, role="prediction"),
                Series("kernel fluctuation at init alone", record, fluctuation, role="reference"),
            ],
        ),
        Panel(
            title="Deviation from the analytic-NTK flow vs width",
            xlabel="hidden width n (units)",
            ylabel="sup_t RMS test deviation / RMS movement (dimensionless)",
            xscale="log",
            yscale="log",
            series=[
                Series(f"theory O(n^-1/2), pinned at the fit's centre; band: slope -1/2 +- {slope_tol:.2f}", wgrid,
                       centre_dev * (wgrid / centre_w) ** -0.5, role="prediction",
                       lower=np.minimum(centre_dev * (wgrid / centre_w) ** (-0.5 - slope_tol),
                                        centre_dev * (wgrid / centre_w) ** (-0.5 + slope_tol)),
                       upper=np.maximum(centre_dev * (wgrid / centre_w) ** (-0.5 - slope_tol),
                                        centre_dev * (wgrid / centre_w) ** (-0.5 + slope_tol))),
                Series(f"{nets} nets per width", sweep_w, sweep_e, role="measurement"),
                Series(f"control: no shrinking, slope 0 ({'rejected' if controls[0].rejected else 'not rejected'})",
                       wgrid, np.full(wgrid.size, centre_dev), role="reference"),
            ],
        ),
    ]
    step(4, 4, "done")
    return Result(
        prediction={"final_test_rms": float(_rms(predicted.test[-1], (0, 1))), "final_loss": float(loss_pred[-1])},
        measurement={"final_test_rms": float(_rms(trajectory.test[-1], (0, 1))),
                     "final_loss": float(trajectory.loss[-1])},
        error=error,
        tolerance=tolerance,
        units="sup_t RMS test deviation / RMS movement (dimensionless)",
        figure=panels,
        controls=controls,
        metrics={
            "lr": lr,
            "nngp_flow_error": nngp_error,
            "deviation_slope": float(slope),
            "deviation_slope_se": slope_se,
            "deviation_slope_theory": -0.5,
            "sweep_widths": sweep_w,
            "sweep_deviations": sweep_e,
            "movement_rms": movement,
            "deviation_by_step": deviation,
            "kernel_fluctuation_term": fluctuation,
            "kernel_drift_term": drift,
            "discretisation_term": discretisation,
            "ntk_init_relative_error": float(np.linalg.norm(ntk_init - kernel) / np.linalg.norm(kernel)),
            "ntk_drift_relative": float(np.linalg.norm(ntk_final - ntk_init) / np.linalg.norm(ntk_init)),
            "steps": trajectory.steps,
        },
    )


CLAIM = Claim(
    name="wide-net-dynamics",
    strand="limits",
    reference="Lee et al. (2019), eqs. 10-11 and Thm. 2.1",
    statement="theory says a wide MLP (NTK parameterization) trained by full-batch GD on MSE follows the "
    "gradient-flow prediction of the analytic NTK, up to its O(n^-1/2) finite-width effects",
    quick={"width": 512, "hidden_layers": 2, "n_train": 16, "n_test": 8, "in_dim": 4, "activation": "relu",
           "W_std": 1.5, "b_std": 0.1, "lr_fraction": 0.05, "steps": 400, "points": 12,
           "control_widths": [16, 32, 64, 128], "nets": 3, "confidence": 0.95},
    full={"width": 1024, "hidden_layers": 2, "n_train": 24, "n_test": 12, "in_dim": 4, "activation": "relu",
          "W_std": 1.5, "b_std": 0.1, "lr_fraction": 0.05, "steps": 500, "points": 16,
          "control_widths": [16, 32, 64, 128, 256, 512], "nets": 3, "confidence": 0.95},
    run=run,
)
