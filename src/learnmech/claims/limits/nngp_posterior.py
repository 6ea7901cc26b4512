"""nngp-posterior: an ensemble of wide random networks is the NNGP prior.

Theory (Neal 1996; Lee et al. 2018, eq. 4; Matthews et al. 2018, Thm. 4): the outputs of an MLP at random
initialisation, over the draw of its parameters, converge as the width grows to a centred Gaussian process whose
covariance is the analytic NNGP kernel ``K`` (:func:`learnmech.kernels.mlp` ``.nngp``).

Experiment: ``members`` independent draws of a width-n net (:func:`~learnmech.kernels.empirical.mlp_network`,
all parameters re-drawn in one vectorised pass), outputs on fixed inputs; the empirical second moment
``C = (1/M) sum_m f_m f_m^T`` (the prior mean is exactly 0: flipping the readout's sign is a symmetry of the
parameter distribution) is compared with ``K`` by the relative Frobenius error ``||C - K||_F / ||K||_F``.

Tolerance: (i) Monte-Carlo error, the ``quantile`` (default 99%) of the same error when the M members are exact
draws from ``N(0, K)`` (a parametric bootstrap of the null hypothesis; its root-mean-square is
``sqrt(((tr K)^2 + ||K||_F^2) / M) / ||K||_F``, i.e. about ``sqrt(2/M)`` per diagonal entry) plus (ii) the
finite-width correction to the two-point function, ``O(L/n)`` for ``L`` hidden layers (Roberts, Yaida & Hanin
2022, ch. 4-5; Yaida 2020), counted as ``L / n``. The NNGP posterior (:func:`learnmech.kernels.nngp_posterior`)
with ``K`` vs with the ensemble's ``C`` is reported as a metric (not judged).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnmech.claims import Claim, Panel, Result, Series, step
from learnmech.kernels import mlp, nngp_posterior
from learnmech.kernels.empirical import ensemble_outputs, mlp_network
from learnmech.seeding import rng


def _relative_error(second_moment: np.ndarray, kernel: np.ndarray) -> float:
    return float(np.linalg.norm(second_moment - kernel) / np.linalg.norm(kernel))


def _gaussian_null_errors(kernel: np.ndarray, members: int, draws: int, generator: np.random.Generator) -> np.ndarray:
    """Relative Frobenius errors of the second moment of ``members`` exact ``N(0, kernel)`` samples, ``draws``
    times: the error distribution if the ensemble *were* the NNGP (Monte-Carlo noise only)."""
    evals, evecs = np.linalg.eigh(kernel)
    root = evecs * np.sqrt(np.clip(evals, 0.0, None))
    errors = np.empty(draws)
    for d in range(draws):
        samples = generator.standard_normal((members, kernel.shape[0])) @ root.T
        errors[d] = _relative_error(samples.T @ samples / members, kernel)
    return errors


def run(config: dict[str, Any], seed: int) -> Result:
    generator = rng(seed)
    n_inputs, dim, width = int(config["n_inputs"]), int(config["in_dim"]), int(config["width"])
    members, layers = int(config["members"]), int(config["hidden_layers"])
    x = generator.standard_normal((n_inputs, dim))
    arch = dict(hidden_layers=layers, activation=config["activation"], W_std=float(config["W_std"]),
                b_std=float(config["b_std"]))
    kernel = mlp(**arch)(x).nngp

    step(1, 3, f"{members} networks of width {width}")
    template = mlp_network(dim, width=width, **arch)
    outputs = ensemble_outputs(template, x, members, seed=int(generator.integers(2**31)))[:, :, 0]  # (M, n)
    second_moment = outputs.T @ outputs / members
    error = _relative_error(second_moment, kernel)

    step(2, 3, "Monte-Carlo null distribution")
    null = _gaussian_null_errors(kernel, members, int(config["null_draws"]), generator)
    mc_tolerance = float(np.quantile(null, float(config["quantile"])))
    width_allowance = layers / width
    tolerance = mc_tolerance + width_allowance

    # Error vs ensemble size on nested subsets, against the Gaussian root-mean-square prediction.
    sizes = np.unique(np.geomspace(max(16, members // 64), members, 7).astype(int))
    subset_errors = [_relative_error(outputs[:m].T @ outputs[:m] / m, kernel) for m in sizes]
    rms_constant = np.sqrt(np.trace(kernel) ** 2 + np.sum(kernel**2)) / np.linalg.norm(kernel)
    grid = np.geomspace(sizes[0], sizes[-1], 50)

    # Posterior on held-out inputs from the analytic prior vs from the ensemble's empirical prior.
    n_train = n_inputs // 2
    y_train = np.sin(x[:n_train].sum(axis=1))
    noise = float(config["noise"])

    def posterior(k: np.ndarray) -> Any:
        return nngp_posterior(k[:n_train, :n_train], k[n_train:, :n_train], k[n_train:, n_train:], y_train,
                              noise=noise)

    exact, empirical = posterior(kernel), posterior(second_moment)
    step(3, 3, "done")
    lo, hi = float(kernel.min()), float(kernel.max())
    upper = np.triu_indices(n_inputs)
    entries = sorted(zip(kernel[upper], second_moment[upper], strict=True))  # distinct pairs, in x order
    panels = [
        Panel(
            title=f"Output covariance of {members} random nets vs the NNGP kernel",
            xlabel="analytic NNGP K(x, x') (output units^2)",
            ylabel="ensemble E[f(x) f(x')] (output units^2)",
            series=[
                Series("y = x, with tolerance band (relative)", [lo, hi], [lo, hi], role="prediction",
                       lower=[lo * (1 - tolerance), hi * (1 - tolerance)],
                       upper=[lo * (1 + tolerance), hi * (1 + tolerance)]),
                Series("kernel entries (upper triangle)", *np.array(entries).T, role="measurement"),
            ],
        ),
        Panel(
            title="Error vs ensemble size",
            xlabel="ensemble members M (count)",
            ylabel="||C_M - K||_F / ||K||_F (dimensionless)",
            xscale="log",
            yscale="log",
            series=[
                Series("Monte-Carlo RMS error of a Gaussian process with kernel K", grid,
                       rms_constant / np.sqrt(grid), role="prediction"),
                Series(f"nested sub-ensembles, width {width}", sizes, subset_errors, role="measurement"),
            ],
            hlines=[(width_allowance, "finite-width allowance L/n")],
        ),
    ]
    return Result(
        prediction=0.0,
        measurement=error,
        error=error,
        tolerance=tolerance,
        figure=panels,
        metrics={
            "monte_carlo_tolerance": mc_tolerance,
            "monte_carlo_rms_expected": float(rms_constant / np.sqrt(members)),
            "finite_width_allowance": width_allowance,
            "null_median": float(np.median(null)),
            "mean_output": float(outputs.mean()),
            "posterior_mean_relative_difference": float(
                np.linalg.norm(empirical.mean - exact.mean) / np.linalg.norm(exact.mean)),
            "posterior_variance_relative_difference": float(
                np.linalg.norm(np.diag(empirical.covariance) - np.diag(exact.covariance))
                / np.linalg.norm(np.diag(exact.covariance))),
        },
    )


CLAIM = Claim(
    name="nngp-posterior",
    strand="limits",
    reference="Lee et al. (2018), eq. 4; Matthews et al. (2018), Thm. 4",
    statement="theory says the outputs of an ensemble of wide random MLPs have the analytic NNGP covariance, "
    "up to Monte-Carlo error and an O(depth/width) finite-width correction",
    quick={"width": 128, "hidden_layers": 2, "members": 2000, "n_inputs": 8, "in_dim": 4, "activation": "relu",
           "W_std": 1.5, "b_std": 0.1, "null_draws": 400, "quantile": 0.99, "noise": 0.01},
    full={"width": 256, "hidden_layers": 2, "members": 4000, "n_inputs": 16, "in_dim": 4, "activation": "relu",
          "W_std": 1.5, "b_std": 0.1, "null_draws": 1000, "quantile": 0.99, "noise": 0.01},
    run=run,
)
