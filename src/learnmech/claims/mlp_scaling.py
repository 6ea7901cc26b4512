"""mlp-scaling: our own scaling law, fitted on small runs, predicts the held-out largest runs.

Two-layer ReLU MLPs of widths N, readout trained to convergence on D examples of a task with a power-law spectrum
(Maloney, Roberts & Sully 2022; see :mod:`learnmech.laws.experiment`), several seeds per (N, D). We fit
L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, approach 3) to the seed-averaged log-losses of every run
except the largest width and the largest data size, and predict those held-out runs (the last row and column of
the grid: extrapolation in N, in D, and in both).

Error: max over held-out runs of |log(predicted/measured)| / sigma, with sigma^2 = (seed spread of the measured
mean log-loss)^2 + (bootstrap spread of the fit's log-prediction)^2. The seed term is the standard deviation of
log-loss across seeds over sqrt(seeds); the fit term is half the 16-84 percentile width of the bootstrap
predictions (robust to the occasional wild resample). Tolerance 3: for k held-out runs with Gaussian errors
the largest |z| stays below 3 with probability 0.9973^k (97% for k = 9). Each training run is cached, so a killed
sweep resumes inside the claim.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnmech.claims import Claim, Panel, Result, Series, step
from learnmech.laws import default_start_grid, fit_scaling_law, scaling_law
from learnmech.laws.experiment import make_task, train_random_feature_mlp
from learnmech.run.cache import cached

_TASK_KEYS = ("input_dim", "spectrum_exponent", "noise", "widths", "data_sizes", "n_test", "ridge")


def _sweep(config: dict[str, Any], seed: int) -> np.ndarray:
    """Test losses (seeds, widths, data sizes), each run cached under its full description."""
    widths, sizes = list(config["widths"]), list(config["data_sizes"])
    seeds = [seed * 1000 + s for s in range(int(config["seeds"]))]
    losses = np.zeros((len(seeds), len(widths), len(sizes)))
    total, done = losses.size, 0
    for i, run_seed in enumerate(seeds):
        task = None  # built only if some run of this seed is not cached yet

        def compute(width: int, size: int, run_seed: int = run_seed) -> dict[str, float]:
            nonlocal task
            if task is None:
                task = make_task(config["input_dim"], config["spectrum_exponent"], config["noise"], max(widths),
                                 max(sizes), config["n_test"], run_seed)
            return train_random_feature_mlp(task, width, size, config["ridge"])

        for j, width in enumerate(widths):
            for k, size in enumerate(sizes):
                key = {**{name: config[name] for name in _TASK_KEYS}, "width": width, "n_train": size,
                       "seed": run_seed}
                losses[i, j, k] = cached("mlp-scaling", key, lambda w=width, d=size: compute(w, d))["test_loss"]
                done += 1
                step(done, total + 1, f"seed {run_seed}, width {width}, {size} examples")
    return losses


def run(config: dict[str, Any], seed: int) -> Result:
    widths = np.array(config["widths"], dtype=float)
    sizes = np.array(config["data_sizes"], dtype=float)
    losses = _sweep(config, seed)
    log_losses = np.log(losses)
    mean_log = log_losses.mean(axis=0)
    seed_sigma = log_losses.std(axis=0, ddof=1) / np.sqrt(losses.shape[0])
    N, D = np.meshgrid(widths, sizes, indexing="ij")
    held_out = (N == widths.max()) | (D == sizes.max())
    fit = fit_scaling_law(N[~held_out], D[~held_out], np.exp(mean_log[~held_out]),
                          starts=default_start_grid(int(config["start_stride"])),
                          n_bootstrap=int(config["n_bootstrap"]), seed=seed)
    step(losses.size + 1, losses.size + 1, "fitted")

    predicted = np.log(fit.predict(N, D))
    boot = fit.bootstrap  # (B, 5) in E, A, B, alpha, beta order
    boot_pred = np.log(scaling_law(N[held_out], D[held_out], *(column[:, None] for column in boot.T)))
    low, high = np.percentile(boot_pred, [16, 84], axis=0)
    fit_sigma = (high - low) / 2
    sigma = np.sqrt(seed_sigma[held_out] ** 2 + fit_sigma**2)
    log_ratio = predicted[held_out] - mean_log[held_out]
    z = log_ratio / sigma
    error = float(np.max(np.abs(z)))

    label = [f"N={int(n)},D={int(d)}" for n, d in zip(N[held_out], D[held_out], strict=True)]
    panels = []
    dense_d = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 40)
    series = []
    for j, width in enumerate(widths):
        role_label = "held out" if width == widths.max() else "fitted"
        series.append(Series(label=f"N={int(width)} ({role_label})", x=sizes, y=np.exp(mean_log[j]),
                             yerr=np.exp(mean_log[j]) * seed_sigma[j], role="measurement"))
        series.append(Series(label=f"law, N={int(width)}", x=dense_d, y=fit.predict(width, dense_d),
                             role="prediction"))
    panels.append(Panel(title="Test loss vs data size (last width and size held out)",
                        xlabel="training examples D", ylabel="test MSE (target variance 1)", series=series,
                        xscale="log", yscale="log", hlines=[(config["noise"] ** 2, "noise floor")]))
    index = np.arange(held_out.sum(), dtype=float)
    panels.append(Panel(
        title="Held-out runs: predicted vs measured",
        xlabel="held-out run index (" + ", ".join(label) + ")" if len(label) <= 4 else "held-out run index",
        ylabel="test MSE",
        yscale="log",
        series=[
            Series(label="law fitted on smaller runs", x=index, y=np.exp(predicted[held_out]), role="prediction",
                   lower=np.exp(predicted[held_out] - 3 * sigma), upper=np.exp(predicted[held_out] + 3 * sigma)),
            Series(label="measured (seed mean)", x=index, y=np.exp(mean_log[held_out]),
                   yerr=np.exp(mean_log[held_out]) * seed_sigma[held_out], role="measurement"),
        ],
    ))
    worst = int(np.argmax(np.abs(z)))
    return Result(
        prediction={name: float(np.exp(v)) for name, v in zip(label, predicted[held_out], strict=True)},
        measurement={name: float(np.exp(v)) for name, v in zip(label, mean_log[held_out], strict=True)},
        error=error,
        tolerance=3.0,
        figure=panels,
        metrics={
            "error_definition": "max |log(pred/meas)| / sigma over held-out runs (seed + bootstrap sigma)",
            "fit": fit.params,
            "fit_intervals": fit.intervals,
            "held_out_log_ratio": dict(zip(label, log_ratio.tolist(), strict=True)),
            "held_out_z": dict(zip(label, z.tolist(), strict=True)),
            "max_abs_log_ratio": float(np.max(np.abs(log_ratio))),
            "rms_log_ratio": float(np.sqrt(np.mean(log_ratio**2))),
            "n_fitted_runs": int((~held_out).sum()),
            "n_held_out_runs": int(held_out.sum()),
            "n_seeds": int(losses.shape[0]),
            "noise_floor": config["noise"] ** 2,
            "spectrum_exponent": config["spectrum_exponent"],
        },
        note=(f"worst held-out run {label[worst]}: predicted {np.exp(predicted[held_out][worst]):.4g}, measured "
              f"{np.exp(mean_log[held_out][worst]):.4g} ({100 * (np.exp(log_ratio[worst]) - 1):+.1f}%, "
              f"z={z[worst]:.2f}); fitted alpha={fit.params['alpha']:.3f}, beta={fit.params['beta']:.3f}"),
    )


_COMMON = {"input_dim": 400, "spectrum_exponent": 1.0, "noise": 0.1, "n_test": 1000, "ridge": 1e-3}

CLAIM = Claim(
    name="mlp-scaling",
    strand="laws",
    reference="Hoffmann et al. (2022), eq. 2; Maloney, Roberts & Sully (2022); Bahri et al. (2021)",
    statement=(
        "theory says the test loss of width-N MLPs trained on D examples of a power-law task follows "
        "L = E + A/N^alpha + B/D^beta, so a fit on the smaller runs predicts the largest width and data size"
    ),
    quick={**_COMMON, "widths": [16, 32, 64, 128, 256], "data_sizes": [32, 64, 128, 256, 512], "seeds": 3,
           "n_bootstrap": 200, "start_stride": 2},
    full={**_COMMON, "widths": [16, 32, 64, 128, 256, 512], "data_sizes": [32, 64, 128, 256, 512, 1024],
          "seeds": 8, "n_bootstrap": 1000, "start_stride": 1},
    run=run,
)
