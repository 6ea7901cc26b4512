"""wide-net-dynamics: a wide MLP trained by full-batch GD on MSE follows the infinite-width NTK prediction.

Theory (Lee et al. 2019, eqs. 10-11 and Thm. 2.1): in the NTK parameterization a width-n network trained by
gradient flow on MSE stays within O(n^-1/2) of its linearization, whose outputs evolve as
``f_t = f_0 + Theta_* Theta^{-1} (e^{-lr t Theta / N} - I)(f_0 - Y)`` with the deterministic analytic NTK
``Theta`` (:func:`learnmech.kernels.gradient_flow`, loss ``1/2 mean (f - Y)^2``, ``N = Y.size``).

Experiment: one net (:func:`~learnmech.kernels.empirical.mlp_network`, same architecture as
:func:`learnmech.kernels.mlp`), full-batch GD with ``lr = lr_fraction * N / lambda_max(Theta)`` on a smooth
regression task; its test outputs at log-spaced steps are compared with ``gradient_flow`` on the **analytic**
NTK, started from the net's own initial outputs. Error: ``sup_t RMS_test(f_net(t) - f_pred(t))`` divided by the
RMS distance the prediction moves (``f_pred(t_end) - f_0``), so it is dimensionless.

Tolerance (an error budget of the finite-width effects the theory names, none of them using the trajectory
being judged): (i) the init fluctuation of the kernel, the same flow run with the net's empirical NTK at
initialisation instead of the analytic one; (ii) the kernel's drift during training, the flow with the
empirical NTK after training vs at initialisation (both O(n^-1/2), Lee et al. 2019, Thm. 2.1); (iii) the GD
discretisation of the flow, at most ``x / (2e)`` of the movement per eigenmode where ``x = lr lambda_max / N``
(since ``|(1 - x)^k - e^{-kx}| <= x/(2e)`` to first order in x). Tolerance = sup_t [(i) + (ii)] / movement + (iii).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from learnmech.claims import Claim, Diverged, Panel, Result, Series, step
from learnmech.kernels import gradient_flow, mlp
from learnmech.kernels.dynamics import train_mse_gd
from learnmech.kernels.empirical import empirical_ntk, mlp_network
from learnmech.seeding import rng


def _rms(values: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    return np.sqrt(np.mean(np.square(values), axis=axis))


def run(config: dict[str, Any], seed: int) -> Result:
    generator = rng(seed)
    n_train, n_test, dim = int(config["n_train"]), int(config["n_test"]), int(config["in_dim"])
    x = generator.standard_normal((n_train + n_test, dim))
    # A smooth target, so the kernel regression interpolant is meaningful on the test points.
    direction = generator.standard_normal(dim) / math.sqrt(dim)
    y = np.sin(2.0 * x @ direction)[:, None]
    x_train, x_test, y_train = x[:n_train], x[n_train:], y[:n_train]
    arch = dict(hidden_layers=int(config["hidden_layers"]), activation=config["activation"],
                W_std=float(config["W_std"]), b_std=float(config["b_std"]))

    kernel = mlp(**arch)(x).ntk
    k_tt = kernel[:n_train, :n_train]
    lam_max = float(np.linalg.eigvalsh(k_tt)[-1])
    lr = float(config["lr_fraction"]) * y_train.size / lam_max
    steps = int(config["steps"])
    record = np.unique(np.concatenate([[0], np.geomspace(1, steps, int(config["points"])).astype(int)]))

    net = mlp_network(dim, width=int(config["width"]), seed=int(generator.integers(2**31)), **arch)
    ntk_init = empirical_ntk(net, x)
    step(1, 4, "trained network: gradient descent")
    trajectory = train_mse_gd(net, x_train, y_train, lr, record, x_test=x_test)
    if trajectory.diverged_at is not None:
        raise Diverged(trajectory.diverged_at)
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

    grid = np.unique(np.concatenate([[0], np.geomspace(1, steps, 80)]))
    smooth = flow(kernel, grid)
    loss_pred = 0.5 * np.mean((smooth.train - y_train[None]) ** 2, axis=(1, 2))
    shown = 0  # the test point drawn in the second panel
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
    ]
    step(4, 4, "done")
    return Result(
        prediction={"final_test_rms": float(_rms(predicted.test[-1], (0, 1))), "final_loss": float(loss_pred[-1])},
        measurement={"final_test_rms": float(_rms(trajectory.test[-1], (0, 1))),
                     "final_loss": float(trajectory.loss[-1])},
        error=error,
        tolerance=tolerance,
        figure=panels,
        metrics={
            "lr": lr,
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
           "W_std": 1.5, "b_std": 0.1, "lr_fraction": 0.05, "steps": 400, "points": 12},
    full={"width": 1024, "hidden_layers": 2, "n_train": 24, "n_test": 12, "in_dim": 4, "activation": "relu",
          "W_std": 1.5, "b_std": 0.1, "lr_fraction": 0.05, "steps": 500, "points": 16},
    run=run,
)
