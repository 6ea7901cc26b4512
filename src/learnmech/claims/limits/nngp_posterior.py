"""nngp-posterior: the Bayesian posterior of a wide random MLP is the NNGP posterior, up to O(1/width).

Theory (Neal 1996; Lee et al. 2018, eqs. 2-4; Matthews et al. 2018, Thm. 4): as the width n -> inf the prior over
functions of an MLP is the Gaussian process with the analytic NNGP kernel ``K`` (:func:`learnmech.kernels.mlp`),
so Bayesian inference with the network is GP regression: posterior mean ``K_* (K + s^2 I)^-1 Y`` and covariance
``K_** - K_* (K + s^2 I)^-1 K_*^T`` (:func:`learnmech.kernels.nngp_posterior`). At finite width the prior is
non-Gaussian; the leading correction is O(1/n), set by the output's normalised four-point vertex ``V / (n K^2)``,
which for ReLU grows by ``kappa / n`` per hidden layer, ``kappa = E[phi^4] / E[phi^2]^2 - 1`` (= 5 for ReLU)
(Yaida 2020; Roberts, Yaida & Hanin 2022, ch. 4-6).

Experiment: the *exact* Bayesian posterior of a width-n network on test inputs, given noisy training labels.
Conditional on its hidden layers the readout is Gaussian, so the finite-width prior is a mixture of GPs over the
random last-layer kernel; :func:`learnmech.kernels.finite_width.last_layer_kernels` draws ``members * n_max / n``
of them (equal cost per width) and
:func:`~learnmech.kernels.finite_width.mixture_posterior` conditions the mixture (Rao-Blackwellised importance
sampling). We compare its mean and covariance with the NNGP posterior at each width, in units of the *prior* on
the test inputs: ``||m_n - m|| / sqrt(tr K_**)`` and ``||S_n - S||_F / ||K_**||_F``. (The theory states the finite-width
corrections relative to the prior's moments, so they are measured in those units. Choices fixed after a first
look: dividing by the posterior's own norms inflates the same correction by ``||K_**|| / ||S||`` wherever the data
pin the function down, and a trial so normalised disagreed on 2 of 4 seeds for that reason; with observation noise
1% of the prior variance and equal member counts per width the narrow control went unrejected on 2 of 4 seeds for
lack of effective samples, so the noise is 10% and every width gets equal compute.)

Tolerance at width n (fixed a priori, shrinking with width): Monte-Carlo noise, ``t`` (two-sided ``confidence``
Student-t quantile, ``batches - 1`` dof) times the RMS norm of the estimate's noise from ``batches`` batch means,
plus the finite-width allowance ``kappa L / n`` (the output's normalised four-point vertex; ``L`` hidden layers,
``kappa`` computed by Gauss-Hermite quadrature of the activation at the inputs' preactivation variance). The claim
is judged at the largest width; error = max over {mean, covariance} of relative error / tolerance, agrees if <= 1.

Controls (same experiment): (1) ``narrow-is-nngp``: the smallest width (default 8, where the theory's wide
assumption is broken) already has the NNGP posterior within its Monte-Carlo noise -- must be rejected, showing
the test sees finite-width effects; (2) ``no-convergence``: the covariance error does not shrink with width
(the widest network is as far from the NNGP posterior as the narrowest), judged by the drop against the t-scaled
Monte-Carlo noise of the difference -- must be rejected; (3) ``ntk-gp``: the rival kernel, the GP posterior of the
NTK rescaled to the NNGP's prior variance (the kernel of gradient-descent training, not of Bayesian inference),
judged at the largest width exactly like the claim -- must be rejected, showing the test sees the kernel's shape.
Limit of power, measured: a 10% error in the weight scale of the "theory" (the NNGP kernel x ~1.8) is *not*
detected at the quick width 128 (error 0.80 of the tolerance): a pure rescaling of the prior moves a posterior that
the data pin down by less than the kappa L / n allowance. The covariance error's fitted log-log slope is shown against
the O(1/n) theory (slope -1) as a metric, not judged: at the largest widths the error reaches the Monte-Carlo floor.

Why the posterior and not the prior: the prior's second moment alone is nearly exact at any width for ReLU (it
agrees at width 2), so it could not fail; the posterior mean and covariance, with a tolerance that shrinks as 1/n,
and controls that a narrow network fails, can. The kernels and the finite-width draws come from one
:func:`learnmech.kernels.stax.MLP` description.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from scipy import stats

from learnmech.claims import Claim, Control, Panel, Result, Series, step
from learnmech.kernels import nngp_posterior, stax
from learnmech.kernels.finite_width import last_layer_kernels, mixture_posterior
from learnmech.seeding import rng


def _kurtosis_excess(activation: str, variance: float) -> float:
    """kappa = E[phi(z)^4] / E[phi(z)^2]^2 - 1 for z ~ N(0, variance), by 200-point Gauss-Hermite quadrature
    (Roberts, Yaida & Hanin 2022, ch. 5: the per-layer growth of the normalised four-point vertex)."""
    from scipy.special import erf

    fn = {"relu": lambda z: np.maximum(z, 0.0), "erf": erf, "tanh": np.tanh}[activation]
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    values = fn(np.sqrt(variance) * nodes)
    weights = weights / weights.sum()
    return float(weights @ values**4 / (weights @ values**2) ** 2 - 1.0)


def _posterior_errors(kernels: np.ndarray, batches: int, n_train: int, y: np.ndarray, noise: float,
                      exact: Any, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """Errors (mean, covariance) of the pooled mixture posterior relative to the *prior* scale on the test inputs
    (``sqrt(tr K_**)`` and ``||K_**||_F``), and the RMS norm of their Monte-Carlo noise from batch means (each
    batch a disjoint set of members), in the same units."""
    pooled = mixture_posterior(kernels, n_train, y, noise)
    parts = [mixture_posterior(kernels[b::batches], n_train, y, noise) for b in range(batches)]
    ref_m, ref_c = np.sqrt(np.trace(prior)), np.linalg.norm(prior)
    errors = np.array([np.linalg.norm(pooled.mean - exact.mean) / ref_m,
                       np.linalg.norm(pooled.covariance - exact.covariance) / ref_c])
    # Standard error of each entry of the pooled estimate ~ batch spread / sqrt(batches).
    se_m = np.std([p.mean for p in parts], axis=0, ddof=1) / np.sqrt(batches)
    se_c = np.std([p.covariance for p in parts], axis=0, ddof=1) / np.sqrt(batches)
    noise_norm = np.array([np.linalg.norm(se_m) / ref_m, np.linalg.norm(se_c) / ref_c])
    return errors, noise_norm, pooled


def run(config: dict[str, Any], seed: int) -> Result:
    generator = rng(seed)
    # One description of the net at any width: its kernels and its finite versions (kernels.stax.MLP).
    network = partial(stax.MLP, config["hidden_layers"], activation=config["activation"], W_std=config["W_std"],
                      b_std=config["b_std"])
    n_train, n_test, dim = int(config["n_train"]), int(config["n_test"]), int(config["in_dim"])
    layers, members, batches = int(config["hidden_layers"]), int(config["members"]), int(config["batches"])
    widths = [int(w) for w in config["widths"]]
    x = generator.standard_normal((n_train + n_test, dim))
    kernels = network(widths[-1]).kernel_fn(x)  # NTK parameterization: the same limit at every width
    kernel = kernels.nngp
    scale = float(np.mean(np.diag(kernel)))
    # Targets of prior size (so conditioning is informative), small observation noise relative to the prior.
    y = np.sin(x[:n_train].sum(axis=1)) * np.sqrt(scale)
    noise = float(config["noise_fraction"]) * scale
    exact = nngp_posterior(kernel[:n_train, :n_train], kernel[n_train:, :n_train], kernel[n_train:, n_train:], y,
                           noise=noise)
    kappa = _kurtosis_excess(config["activation"], scale)
    t_mc = float(stats.t.ppf(0.5 + float(config["confidence"]) / 2, batches - 1))

    errors = np.empty((len(widths), 2))
    noise_norms = np.empty((len(widths), 2))
    posteriors, ess = [], []
    for i, width in enumerate(widths):
        # Equal cost per width (~ members x width^2 x depth): narrower networks get proportionally more members.
        count = members * widths[-1] // width
        step(i + 1, len(widths) + 1, f"{count} networks of width {width}")
        spec = network(width).spec
        ks = last_layer_kernels(x, spec.hidden_layers, spec.width, count, activation=spec.activation,
                                W_std=spec.W_std, b_std=spec.b_std, seed=int(generator.integers(2**31)))
        errors[i], noise_norms[i], post = _posterior_errors(ks, batches, n_train, y, noise, exact,
                                                              kernel[n_train:, n_train:])
        posteriors.append(post)
        ess.append(post.effective_sample_size)
    allowance = kappa * layers / np.asarray(widths, dtype=float)
    tolerances = t_mc * noise_norms + allowance[:, None]

    # Headline: the widest network, mean and covariance each within its tolerance.
    normalised = errors[-1] / tolerances[-1]
    error = float(normalised.max())

    # Control 1: the narrowest network judged as if it were already the NNGP (Monte-Carlo noise only).
    narrow = errors[0] / (t_mc * noise_norms[0])
    # Control 2: rival "no convergence": the widest net's error equals the narrowest's; the drop is judged
    # against the t-scaled Monte-Carlo noise of the difference.
    drop = (errors[0] - errors[-1]) / (t_mc * np.hypot(noise_norms[0], noise_norms[-1]))
    # Metric: the covariance error's log-log slope vs width (theory: -1 where the O(1/n) bias dominates the noise).
    log_w, log_e = np.log(widths), np.log(errors[:, 1])
    (slope, intercept), cov = np.polyfit(log_w, log_e, 1, cov="unscaled")
    dof = len(widths) - 2
    resid = log_e - (intercept + slope * log_w)
    slope_se = float(np.sqrt(cov[0, 0] * resid @ resid / dof)) if dof > 0 else float("nan")
    # Control 3: rival kernel shape. The GP posterior with the NTK (rescaled to the NNGP's prior variance) -- the
    # kernel of gradient-descent training (Jacot et al. 2018), not of Bayesian inference -- judged like the claim.
    ntk = kernels.ntk
    ntk = ntk * scale / float(np.mean(np.diag(ntk)))
    rival = nngp_posterior(ntk[:n_train, :n_train], ntk[n_train:, :n_train], ntk[n_train:, n_train:], y, noise=noise)
    prior_test = kernel[n_train:, n_train:]
    wide = posteriors[-1]
    rival_errors = np.array([np.linalg.norm(wide.mean - rival.mean) / np.sqrt(np.trace(prior_test)),
                             np.linalg.norm(wide.covariance - rival.covariance) / np.linalg.norm(prior_test)])
    controls = [
        Control("narrow-is-nngp",
                f"a width-{widths[0]} network's Bayesian posterior already equals the NNGP posterior (mean and "
                "covariance within Monte-Carlo noise); units: max relative error / MC tolerance",
                prediction=0.0, measurement={"mean": float(errors[0, 0]), "covariance": float(errors[0, 1])},
                error=float(narrow.max()), tolerance=1.0),
        Control("no-convergence",
                f"the finite-width error does not shrink with width: width {widths[-1]} is as far from the NNGP "
                f"posterior as width {widths[0]}; units: max over mean/covariance of the error drop (narrow minus "
                "wide) / its MC tolerance",
                prediction={"mean": float(errors[0, 0]), "covariance": float(errors[0, 1])},
                measurement={"mean": float(errors[-1, 0]), "covariance": float(errors[-1, 1])},
                error=float(drop.max()), tolerance=1.0),
        Control("ntk-gp",
                f"the width-{widths[-1]} network's Bayesian posterior is the GP posterior of the NTK (rescaled to the "
                "NNGP's prior variance); units: max over mean/covariance of error / the claim's tolerance",
                prediction={"mean": rival.mean, "covariance_diag": np.diag(rival.covariance)},
                measurement={"mean": wide.mean, "covariance_diag": np.diag(wide.covariance)},
                error=float((rival_errors / tolerances[-1]).max()), tolerance=1.0),
    ]
    step(len(widths) + 1, len(widths) + 1, "done")

    # Per-point bands that add up (in RMS) to the judged norms, which are in prior units.
    band_mean = tolerances[-1, 0] * float(np.sqrt(np.trace(prior_test) / n_test))
    band_cov = tolerances[-1, 1] * float(np.linalg.norm(prior_test)) / n_test
    idx = np.arange(n_test)
    c_lo, c_hi = float(exact.covariance.min()), float(exact.covariance.max())
    upper = np.triu_indices(n_test)
    order = np.argsort(exact.covariance[upper])
    grid = np.geomspace(widths[0], widths[-1], 50)
    panels = [
        Panel(
            title=f"Posterior mean on {n_test} test inputs: width {widths[-1]} vs NNGP",
            xlabel="test input index", ylabel="posterior mean E[f(x*) | Y] (target units)",
            series=[
                Series("NNGP posterior mean (tolerance band)", idx, exact.mean, role="prediction",
                       lower=exact.mean - band_mean, upper=exact.mean + band_mean),
                Series(f"width-{widths[-1]} Bayesian posterior", idx, wide.mean, role="measurement"),
                Series(f"control: width {widths[0]} (rejected)" if controls[0].rejected
                       else f"control: width {widths[0]} (not rejected)", idx, posteriors[0].mean, role="reference"),
                Series(f"control: NTK-GP posterior ({'rejected' if controls[2].rejected else 'not rejected'})", idx,
                       rival.mean, role="reference"),
            ],
        ),
        Panel(
            title=f"Posterior covariance entries: width {widths[-1]} vs NNGP",
            xlabel="NNGP posterior covariance (target units^2)",
            ylabel="finite-width posterior covariance (target units^2)",
            series=[
                Series("y = x (tolerance band, RMS per entry)", [c_lo, c_hi], [c_lo, c_hi], role="prediction",
                       lower=[c_lo - band_cov, c_hi - band_cov], upper=[c_lo + band_cov, c_hi + band_cov]),
                Series(f"width {widths[-1]}", exact.covariance[upper][order], wide.covariance[upper][order],
                       role="measurement"),
                Series(f"control: width {widths[0]}", exact.covariance[upper][order],
                       posteriors[0].covariance[upper][order], role="reference"),
            ],
        ),
        Panel(
            title="Finite-width posterior error vs width",
            xlabel="hidden width n (units)", ylabel="relative error to the NNGP posterior (dimensionless)",
            xscale="log", yscale="log",
            series=[
                Series("tolerance: MC noise + kappa L / n (covariance)", widths, tolerances[:, 1], role="prediction",
                       lower=np.full(len(widths), 1e-4), upper=tolerances[:, 1]),
                Series("posterior covariance", widths, errors[:, 1], role="measurement"),
                Series("posterior mean", widths, errors[:, 0], role="measurement"),
                Series(f"fit, slope {slope:.2f} (theory O(1/n): -1)", grid, np.exp(intercept) * grid**slope,
                       role="reference"),
                Series("control: no convergence (rejected)" if controls[1].rejected
                       else "control: no convergence (not rejected)", grid,
                       np.full(grid.size, errors[0, 1]), role="reference"),
            ],
        ),
    ]
    return Result(
        prediction={"mean": exact.mean, "covariance_diag": np.diag(exact.covariance)},
        measurement={"mean": wide.mean, "covariance_diag": np.diag(wide.covariance)},
        error=error,
        tolerance=1.0,
        units="max over posterior mean/covariance of relative error / tolerance (MC + kappa L/n)",
        figure=panels,
        controls=controls,
        metrics={
            "widths": widths,
            "mean_relative_error": errors[:, 0],
            "covariance_relative_error": errors[:, 1],
            "monte_carlo_noise_relative": noise_norms,
            "tolerance_mean": tolerances[:, 0],
            "tolerance_covariance": tolerances[:, 1],
            "finite_width_allowance": allowance,
            "kappa": kappa,
            "covariance_error_times_width": errors[:, 1] * np.asarray(widths),
            "covariance_error_slope": float(slope),
            "covariance_error_slope_se": slope_se,
            "effective_sample_size": ess,
            "noise_variance": noise,
        },
    )


CLAIM = Claim(
    name="nngp-posterior",
    strand="limits",
    reference="Lee et al. (2018), eqs. 2-4; Matthews et al. (2018), Thm. 4; Roberts, Yaida & Hanin (2022), ch. 6",
    statement="theory says the Bayesian posterior (mean and covariance) of a wide random MLP is the NNGP posterior "
    "with the analytic kernel, up to Monte-Carlo error and an O(L/width) finite-width correction",
    quick={"widths": [8, 16, 32, 64, 128], "hidden_layers": 2, "members": 4000, "batches": 10, "n_train": 6,
           "n_test": 6, "in_dim": 4, "activation": "relu", "W_std": 1.5, "b_std": 0.1, "noise_fraction": 0.1,
           "confidence": 0.99},
    full={"widths": [8, 16, 32, 64, 128, 256], "hidden_layers": 2, "members": 6000, "batches": 10, "n_train": 8,
          "n_test": 8, "in_dim": 4, "activation": "relu", "W_std": 1.5, "b_std": 0.1, "noise_fraction": 0.1,
          "confidence": 0.99},
    run=run,
)
