"""saxe-modes: a two-layer linear net learns the teacher's singular modes one by one, each along the closed-form
sigmoid a(t) = s e^(2st/tau) / (e^(2st/tau) - 1 + s/a0), strongest first (Saxe, McClelland & Ganguli 2014).

Experiment: a real torch network (whitened inputs, a teacher with singular values s_i) trained by full-batch
gradient descent from Saxe's small balanced, aligned init; the measured strengths u_i^T W2 W1 v_i are compared
with the closed form at t = steps * lr. Error: max over modes and times of |a_measured - a_predicted| / s_i.
Tolerance (derived, not tuned): gradient descent is the Euler discretisation of the flow. Per step, the
deviation of log a from the flow's is at most lr^2 s (s - a) (second-order Taylor term of
log(1 + lr (s - a))^2 minus the flow's curvature), and the flow is non-expansive in log a, so summing over the
trajectory (dt = lr, dt = da / (2 a (s - a))) bounds |log a_GD - log a| by lr s log(s/a0) / 2; since a <= s,
the normalised error is at most lr s log(s/a0) / 2, maximised over modes. The random (unbalanced, unaligned)
init is run too and reported beside it (metrics ``random_init_*``): it is not covered by the exact solution.
Measured: it still learns the modes sigmoidally and strongest first, but mostly *earlier* than the closed form
with the same a0 (half-times -7%..+1% in the quick config, -8%..-19% in the full one with 32 hidden units: each
layer's component along a mode starts at ~sqrt(a0), while the end-to-end projection that defines a0 is
suppressed by misalignment), so its trajectories deviate by 13-29% of s.
"""

from __future__ import annotations

import numpy as np

from learnmech.claims import Claim, Diverged, Panel, Result, Series, step
from learnmech.solvable import deep_linear


def _mode_panel(title: str, times: np.ndarray, measured: np.ndarray, s: np.ndarray, a0: float,
                band: float | None) -> Panel:
    dense_t = np.linspace(0.0, float(times[-1]), 300)
    predicted = deep_linear.mode_strength(dense_t, s, a0)
    picks = np.linspace(0, times.size - 1, 30).round().astype(int)
    series = []
    for i, s_i in enumerate(s):
        lower = upper = None
        if band is not None:
            lower, upper = predicted[:, i] - band * s_i, predicted[:, i] + band * s_i
        series.append(Series(f"theory s={s_i:g}", dense_t, predicted[:, i], role="prediction", lower=lower,
                             upper=upper))
        series.append(Series(f"net s={s_i:g}", times[picks], measured[picks, i], role="measurement"))
    return Panel(title=title, xlabel="training time t / tau (= steps x lr)", ylabel="mode strength u_i^T W v_i",
                 series=series)


def run(config: dict, seed: int) -> Result:
    s = np.asarray(config["singular_values"], dtype=float)
    a0, lr, t_max = float(config["a0"]), float(config["lr"]), float(config["t_max"])
    runs = {}
    for k, init in enumerate(("balanced", "random")):
        step(k, 2, f"training the {init}-init network")
        try:
            runs[init] = deep_linear.simulate(s, t_max, lr, a0=a0, init=init, hidden=int(config["hidden"]),
                                              seed=seed)
        except FloatingPointError as exc:
            raise Diverged(getattr(exc, "step", 0), str(exc)) from exc
    step(2, 2, "comparing with the closed form")

    def normalised_error(run: deep_linear.DeepLinearRun) -> np.ndarray:
        return np.max(np.abs(run.strengths - deep_linear.mode_strength(run.times, s, a0)), axis=0) / s

    balanced, random = runs["balanced"], runs["random"]
    error_per_mode = normalised_error(balanced)
    # First-order Euler-vs-flow bound on |log a_GD - log a| (see module docstring), times a/s <= 1.
    tolerance = float(np.max(lr * s * np.log(s / a0) / 2))
    t_pred = deep_linear.learning_time(s, a0)
    t_bal = deep_linear.half_times(balanced.times, balanced.strengths, s)
    t_rnd = deep_linear.half_times(random.times, random.strengths, s)
    order_ok = bool(np.all(np.diff(t_bal[np.argsort(-s)]) > 0))

    inv_s = 1.0 / s
    dense_inv = np.linspace(inv_s.min(), inv_s.max(), 100)
    figure = [
        _mode_panel("Balanced small init: theory vs trained net", balanced.times, balanced.strengths, s, a0,
                    tolerance),
        _mode_panel("Random small init (not covered by the exact solution)", random.times, random.strengths, s,
                    a0, None),
        Panel(
            title="Time to learn a mode: t_1/2 = tau/(2s) log(s/a0 - 1)",
            xlabel="1 / singular value (1/s)",
            ylabel="half-learning time t_1/2 / tau",
            series=[
                Series("theory", dense_inv, deep_linear.learning_time(1.0 / dense_inv, a0), role="prediction"),
                Series("balanced init", inv_s, t_bal, role="measurement"),
                Series("random init", inv_s, t_rnd, role="reference"),
            ],
        ),
    ]
    return Result(
        prediction={f"t_half_s={v:g}": float(t) for v, t in zip(s, t_pred, strict=True)},
        measurement={f"t_half_s={v:g}": float(t) for v, t in zip(s, t_bal, strict=True)},
        error=float(error_per_mode.max()),
        tolerance=tolerance,
        figure=figure,
        metrics={
            "error_per_mode": error_per_mode,
            "learned_strongest_first": order_ok,
            "random_init_error": float(normalised_error(random).max()),
            "random_init_error_per_mode": normalised_error(random),
            "random_init_half_times": t_rnd,
            "random_init_half_time_shift": (t_rnd - t_pred) / t_pred,
            "random_init_initial_strengths": random.initial_strengths,
            "final_loss_balanced": float(balanced.loss[-1]),
            "steps": int(round(t_max / lr)),
        },
        note=("error = max_i,t |a_net - a_theory| / s_i (balanced init); tolerance = lr max_i s_i log(s_i/a0) / 2, "
              "the first-order bound on gradient descent's deviation from gradient flow. Random init: see metrics."),
    )


CLAIM = Claim(
    name="saxe-modes",
    strand="solvable",
    reference="Saxe, McClelland & Ganguli (2014), Sec. 1 (closed-form mode dynamics a(t))",
    statement=("theory says a two-layer linear net trained from small balanced weights learns each singular mode of "
               "the teacher along a(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/a0): sigmoidal, strongest mode first, "
               "in time ~ tau/(2s) log(s/a0)"),
    quick={"singular_values": [3.0, 2.0, 1.0, 0.5], "a0": 1e-3, "lr": 0.005, "t_max": 10.0, "hidden": 16},
    full={"singular_values": [4.0, 3.0, 2.0, 1.0, 0.5], "a0": 1e-3, "lr": 0.001, "t_max": 14.0, "hidden": 32},
    run=run,
)
