"""conservation-laws: symmetry-induced conserved quantities of gradient flow and their O(lr) drift under GD.

Theory (Du, Hu & Lee 2018, sec. 2, Thm. 2.1; Kunin et al. 2021 "Neural mechanics", sec. 4-5;
:mod:`learnmech.solvable.conservation`): a rescaling symmetry makes a quadratic form ``Q`` of the weights a conserved
quantity of gradient flow, and one GD step changes it by exactly ``lr^2 Q(G)`` (``G`` the gradient), so after a
training time ``t = steps * lr`` GD has drifted by ``lr int_0^t Q(G(s)) ds`` to leading order: **O(lr^2) per step,
O(lr) at fixed time** (log-log slope 1 in ``lr`` at fixed ``t``, slope 2 per step). Quantities tested:

* ``linear``: layer imbalances ``W_{l+1}^T W_{l+1} - W_l W_l^T`` of a three-layer linear net (Du et al. sec. 2);
* ``relu``: per-neuron balance ``||w_in_j||^2 + b_j^2 - a_j^2`` of a two-layer ReLU net (Du et al. Thm. 2.1);
* ``scale-invariant``: ``||v_j||^2`` of hidden rows used only through ``v_j / ||v_j||`` (weight normalisation):
  each GD step *adds* ``lr^2 ||g_j||^2`` (Kunin et al. 2021, sec. 4: scale-invariant weights' norm grows);
* ``weight decay``: with ``lambda/2 ||w||^2`` the linear net's imbalance decays as ``exp(-2 lambda t)``
  (Kunin et al. 2021, sec. 5).

Experiment: synthetic regression (``n`` Gaussian inputs, linear / two-layer-ReLU teachers), float64, full-batch GD
at ``lr_i = c_i / lambda_max`` (``lambda_max`` the model's top Hessian eigenvalue at init, so the grid is in the
theory's small-``lr`` domain whatever the seed) for the same training time ``t = horizon / lambda_max``. The
prediction's integral ``int_0^t Q(G) ds`` comes from an independent RK4 integration of gradient flow
(:func:`learnmech.solvable.conservation.gradient_flow_integral`, ``dt = rk4_dt / lambda_max``), never from the GD run.

Criteria (the verdict's error is the worst error/tolerance ratio over criteria and learning rates, tolerance 1):

* drift amplitude, per quantity and ``lr``: ``||dQ_GD - lr I||_F / ||lr I||_F`` within ``c_i = lr_i lambda_max``.
  Why: GD follows gradient flow only up to its first-order modified equation, whose extra velocity ``(lr/2) H grad
  L`` is at most ``lr lambda_max / 2`` of the gradient (Barrett & Dherin 2021); ``Q(G)`` is quadratic in the
  gradient, so its relative change is at most ``lr lambda_max`` to first order (the Riemann-sum error is of the
  same order and smaller on smooth paths).
* slope: the log-log least-squares slope of ``||dQ_GD||_F`` against ``lr`` at fixed time is 1 (per step: 2), within
  ``log((1 + c_max) / (1 - c_max)) / log(lr_max / lr_min)``: the largest change the amplitude tolerance allows.
* weight decay: ``||D_GD(t) - exp(-2 lambda t) D(0)||_F`` within the first-order GD terms bounded by the triangle
  inequality: ``lr (1 + c) int ||Q(G)||_F ds`` (the decayed sum of per-step drifts) plus ``lambda^2 lr t
  exp(-2 lambda t) ||D(0)||_F`` (``(1 - lr lambda)^(2 t/lr)`` vs ``exp(-2 lambda t)``).
* the scale-invariant norm identity ``||v_j(t)||^2 = ||v_j(0)||^2 + lr^2 sum_k ||g_jk||^2`` holds to float64
  rounding (reported as a metric; it is exact, so it is not the judged prediction).

Controls (must be rejected on the same runs): ``tanh-balance``: the per-neuron balance of the same two-layer net
with tanh (no rescaling symmetry) drifts as ``lr int Q(G) ds`` (same amplitude test); ``lr-squared-at-fixed-time``:
the linear imbalance drift at fixed training time scales as ``lr^2`` (slope 2, same slope tolerance): the per-step
``lr^2`` read as a fixed-time law; ``no-decay``: with weight decay the imbalance stays at ``D(0)`` (same tolerance as
the weight-decay criterion).

Choices the theory does not fix (fixed a priori): the lr grid in units of ``1/lambda_max`` (largest 0.2, halving),
the horizon ``t lambda_max`` (long enough for the loss to fall, short enough for a few-hundred-step run), widths,
``lambda t = 0.5`` for weight decay, RK4 step ``0.02 / lambda_max`` (its O(dt^4) error is far below the tolerances).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from learnmech.claims import Claim, Control, Diverged, Panel, Result, Series, step
from learnmech.seeding import rng
from learnmech.solvable.conservation import (
    gradient_flow_integral,
    layer_imbalance,
    neuron_balance,
    predicted_gd_drift,
    weight_decay_decay,
)

Params = list[torch.Tensor]


def _flat(values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.reshape(-1)
    return torch.cat([v.reshape(-1) for v in values])


def _top_eigenvalue(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> float:
    """Top Hessian eigenvalue at ``params`` (dense Hessian: the models here have a few hundred parameters)."""
    sizes = [p.numel() for p in params]
    shapes = [p.shape for p in params]

    def flat_loss(w: torch.Tensor) -> torch.Tensor:
        return loss_fn([c.reshape(s) for c, s in zip(torch.split(w, sizes), shapes, strict=False)])

    hess = torch.func.hessian(flat_loss)(_flat(params).detach())
    return float(torch.linalg.eigvalsh(hess)[-1])


def _gd(loss_fn: Callable[[Params], torch.Tensor], params: Params, lr: float, steps: int, weight_decay: float,
        quantity: Callable[[Params], Any], record_every: int = 0) -> tuple[Params, list[float], list[Any], float]:
    """Full-batch GD; returns final params, recorded times and quantities, and lr^2 sum ||g||^2 per row (scale)."""
    w = [p.detach().clone() for p in params]
    times, values = [0.0], [quantity(w)]
    grad_sq = torch.zeros(w[0].shape[0], dtype=w[0].dtype)
    for k in range(steps):
        leaves = [p.requires_grad_(True) for p in w]
        loss = loss_fn(leaves)
        if not torch.isfinite(loss):
            raise Diverged(k, f"GD at lr={lr:.3g} diverged")
        grads = torch.autograd.grad(loss, leaves)
        grad_sq = grad_sq + lr**2 * grads[0].detach().square().sum(dim=1)
        with torch.no_grad():
            w = [(1.0 - lr * weight_decay) * p - lr * g for p, g in zip(w, grads, strict=False)]
        if record_every and (k + 1) % record_every == 0:
            times.append((k + 1) * lr)
            values.append(quantity(w))
    return w, times, values, grad_sq


def _models(config: dict[str, Any], generator: np.random.Generator) -> dict[str, dict[str, Any]]:
    n, d, h = int(config["n_train"]), int(config["in_dim"]), int(config["hidden"])

    def tensor(*shape: int, std: float = 1.0) -> torch.Tensor:
        return torch.as_tensor(generator.standard_normal(shape) * std)

    x = tensor(n, d)
    y_lin = x @ tensor(d, 2, std=1 / math.sqrt(d))
    teacher = torch.relu(x @ tensor(d, 4, std=1 / math.sqrt(d))) @ tensor(4, 1, std=1.0)
    y_nl = teacher - teacher.mean()

    def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (pred - y).square().sum(dim=1).mean()

    def linear_loss(w: Params) -> torch.Tensor:
        return mse(x @ w[0].T @ w[1].T @ w[2].T, y_lin)

    def two_layer(act: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Params], torch.Tensor]:
        return lambda w: mse(act(x @ w[0].T + w[1]) @ w[2].T, y_nl)

    def scale_invariant_loss(w: Params) -> torch.Tensor:
        rows = w[0] / w[0].norm(dim=1, keepdim=True)  # each hidden row enters only through its direction
        return mse(torch.relu(x @ rows.T) @ w[1].T, y_nl)

    linear_init = [tensor(h, d, std=1 / math.sqrt(d)), tensor(h, h, std=1 / math.sqrt(h)),
                   tensor(2, h, std=1 / math.sqrt(h))]
    two_init = [tensor(h, d, std=1 / math.sqrt(d)), tensor(h, std=0.1), tensor(1, h, std=1 / math.sqrt(h))]
    scale_init = [tensor(h, d, std=1 / math.sqrt(d)), tensor(1, h, std=1 / math.sqrt(h))]

    def imbalance(w: Params) -> torch.Tensor:
        return _flat(layer_imbalance(w))

    def balance(w: Params) -> torch.Tensor:
        return neuron_balance(w[0], w[2], w[1])

    def row_norms(w: Params) -> torch.Tensor:
        return w[0].square().sum(dim=1)

    return {
        "linear": {"loss": linear_loss, "init": linear_init, "q": imbalance},
        "relu": {"loss": two_layer(torch.relu), "init": two_init, "q": balance},
        "scale-invariant": {"loss": scale_invariant_loss, "init": scale_init, "q": row_norms},
        "tanh (control)": {"loss": two_layer(torch.tanh), "init": [p.clone() for p in two_init], "q": balance},
    }


def _slope(lrs: np.ndarray, drifts: np.ndarray) -> float:
    return float(np.polyfit(np.log(lrs), np.log(drifts), 1)[0])


def run(config: dict[str, Any], seed: int) -> Result:
    generator = rng(seed)
    models = _models(config, generator)
    fractions = np.array([float(config["lr_max"]) / 2**i for i in range(int(config["n_lrs"]))])
    horizon, rk4_dt = float(config["horizon"]), float(config["rk4_dt"])
    slope_tol = math.log((1 + fractions[0]) / (1 - fractions[0])) / math.log(fractions[0] / fractions[-1])
    total = len(models) + 1
    out: dict[str, dict[str, Any]] = {}
    for i, (name, model) in enumerate(models.items()):
        step(i, total, name)
        loss_fn, init, q = model["loss"], model["init"], model["q"]
        lam = _top_eigenvalue(loss_fn, init)
        t_end = horizon / lam
        # Prediction: int_0^t Q(G) ds along an RK4 gradient flow (the quantity applied to the gradients).
        flow = gradient_flow_integral(loss_fn, init, t_end, rk4_dt / lam, lambda w, g, q=q: [q(g)])
        integral = flow.integrals[0]
        q0 = q(init)
        rows = []
        for c in fractions:
            steps = max(1, round(t_end * lam / c))
            lr = t_end / steps  # steps * lr = t exactly, so GD and the flow end at the same time
            c = lr * lam
            w, _, _, grad_sq = _gd(loss_fn, init, lr, steps, 0.0, q)
            measured = q(w) - q0
            predicted = predicted_gd_drift(lr, integral)
            rel = float((measured - predicted).norm() / predicted.norm())
            identity = float(((q(w) - q0) - grad_sq).abs().max() / q0.abs().max()) if name == "scale-invariant" \
                else math.nan
            rows.append({"c": float(c), "lr": lr, "steps": steps, "drift": float(measured.norm()),
                         "predicted": float(predicted.norm()), "relative_error": rel, "tolerance": float(c),
                         "ratio": rel / float(c), "identity_error": identity})
        lrs = np.array([r["lr"] for r in rows])
        drifts = np.array([r["drift"] for r in rows])
        steps_arr = np.array([r["steps"] for r in rows], dtype=float)
        out[name] = {"lambda_max": lam, "t": t_end, "rows": rows, "slope": _slope(lrs, drifts),
                     "per_step_slope": _slope(lrs, drifts / steps_arr),
                     "loss_drop": float(flow.losses[-1] / flow.losses[0]), "integral_norm": float(integral.norm())}

    # Weight decay on the linear net: D(t) = exp(-2 lambda t) D(0) + first-order GD terms.
    step(len(models), total, "weight decay")
    linear = models["linear"]
    lam = out["linear"]["lambda_max"]
    t_end = out["linear"]["t"]
    wd = float(config["decay_lambda_t"]) / t_end
    flow = gradient_flow_integral(linear["loss"], linear["init"], t_end, rk4_dt / lam,
                                  lambda w, g: [torch.stack([t.norm() for t in layer_imbalance(g)]).norm()],
                                  weight_decay=wd)
    abs_integral = float(flow.integrals[0])
    d0 = linear["q"](linear["init"])
    decay_rows = []
    curves = []
    for c in fractions:
        steps = max(1, round(t_end * lam / c))
        lr = t_end / steps
        c = lr * lam
        every = max(1, steps // 40)
        w, times, values, _ = _gd(linear["loss"], linear["init"], lr, steps, wd, linear["q"], record_every=every)
        t_run = steps * lr
        predicted = weight_decay_decay(d0, wd, t_run)
        err = float((linear["q"](w) - predicted).norm())
        tol = lr * (1 + c) * abs_integral + wd**2 * lr * t_run * math.exp(-2 * wd * t_run) * float(d0.norm())
        no_decay = float((linear["q"](w) - d0).norm())
        decay_rows.append({"c": float(c), "lr": lr, "error": err, "tolerance": tol, "ratio": err / tol,
                           "no_decay_error": no_decay})
        curves.append((np.array(times), np.array([float(v.norm()) for v in values])))
    step(total, total, "judge")

    ratios = {f"{name} amplitude": max(r["ratio"] for r in out[name]["rows"])
              for name in ("linear", "relu", "scale-invariant")}
    ratios.update({f"{name} slope": abs(out[name]["slope"] - 1.0) / slope_tol for name in ("linear", "relu")})
    ratios["weight decay"] = max(r["ratio"] for r in decay_rows)
    tanh = out["tanh (control)"]
    controls = [
        Control("tanh-balance", "the per-neuron balance of the tanh net drifts as lr int Q(G) ds (max over lr of "
                "relative error / (lr lambda_max))", prediction=[r["predicted"] for r in tanh["rows"]],
                measurement=[r["drift"] for r in tanh["rows"]], error=max(r["ratio"] for r in tanh["rows"]),
                tolerance=1.0),
        Control("lr-squared-at-fixed-time", "the linear imbalance drift at fixed training time scales as lr^2 "
                "(log-log slope 2; error |slope - 2|, tolerance as for slope 1)", prediction=2.0,
                measurement=out["linear"]["slope"], error=abs(out["linear"]["slope"] - 2.0), tolerance=slope_tol),
        Control("no-decay", "with weight decay the linear imbalance stays at D(0) (max over lr of ||D(t) - D(0)||_F "
                "/ the weight-decay tolerance)", prediction=0.0,
                measurement=[r["no_decay_error"] for r in decay_rows],
                error=max(r["no_decay_error"] / r["tolerance"] for r in decay_rows), tolerance=1.0),
    ]

    panels = []
    drift_series = []
    for name in ("linear", "relu", "scale-invariant", "tanh (control)"):
        rows = out[name]["rows"]
        lrs = np.array([r["lr"] for r in rows]) * out[name]["lambda_max"]
        pred = np.array([r["predicted"] for r in rows])
        role_label = name if name != "tanh (control)" else \
            f"tanh: control ({'rejected' if controls[0].rejected else 'NOT rejected'})"
        drift_series.append(Series(f"{name}: lr int Q(G) ds" if name != "tanh (control)" else
                                   "tanh: rival lr int Q(G) ds", lrs, pred,
                                   role="prediction" if name != "tanh (control)" else "reference",
                                   lower=None if name == "tanh (control)" else pred * (1 - lrs),
                                   upper=None if name == "tanh (control)" else pred * (1 + lrs), group=name))
        drift_series.append(Series(f"{role_label}: GD", lrs, [r["drift"] for r in rows], group=name,
                                   connect=False))
    panels.append(Panel("Drift at fixed time t: slope 1 in lr", "lr x lambda_max", "||Q(t) - Q(0)||_F",
                        drift_series, xscale="log", yscale="log"))
    times, decay_curve = curves[-1]
    d0n = float(d0.norm())
    pred_curve = d0n * np.exp(-2 * wd * times)
    tol_end = decay_rows[-1]["tolerance"]
    panels.append(Panel(f"Weight decay: exp(-2 lambda t), lr={fractions[-1]:g}/lambda", "time (steps x lr)",
                        "||D(t)||_F (linear net)", [
                            Series("exp(-2 lambda t) ||D(0)||", times, pred_curve, role="prediction",
                                   lower=pred_curve - tol_end * times / times[-1],
                                   upper=pred_curve + tol_end * times / times[-1]),
                            Series("GD with weight decay", times, decay_curve),
                            Series(f"control: no decay ({'rejected' if controls[2].rejected else 'NOT rejected'})",
                                   [times[0], times[-1]], [d0n, d0n], role="reference"),
                        ]))
    return Result(
        prediction={"fixed_time_slope": 1.0, "per_step_slope": 2.0, "relative_drift_error": 0.0,
                    "weight_decay_factor": math.exp(-2 * float(config["decay_lambda_t"]))},
        measurement={"slopes": {name: out[name]["slope"] for name in out},
                     "relative_drift_error": {name: [r["relative_error"] for r in out[name]["rows"]] for name in out},
                     "weight_decay_error": [r["error"] for r in decay_rows]},
        error=max(ratios.values()),
        tolerance=1.0,
        units="max over criteria and learning rates of error / tolerance",
        controls=controls,
        figure=panels,
        metrics={"criteria_error_over_tolerance": ratios, "slope_tolerance": slope_tol,
                 "runs": {name: {k: v for k, v in o.items()} for name, o in out.items()},
                 "weight_decay": {"lambda": wd, "rows": decay_rows, "gf_int_norm_QG": abs_integral},
                 "scale_invariant_identity_max_error": max(r["identity_error"]
                                                           for r in out["scale-invariant"]["rows"])},
    )


CLAIM = Claim(
    name="conservation-laws",
    strand="solvable",
    reference="Du, Hu & Lee (2018), sec. 2, Thm. 2.1; Kunin et al. (2021), sec. 4-5",
    statement="theory says that layer imbalances (linear nets), per-neuron balances (ReLU) and the norms of "
    "scale-invariant weights are conserved by gradient flow and drift under GD by lr^2 Q(G) per step, i.e. "
    "lr int Q(G) ds at fixed time (slope 1 in lr), and decay as exp(-2 lambda t) with weight decay; a tanh net's "
    "balance is not conserved",
    quick={"n_train": 32, "in_dim": 6, "hidden": 12, "lr_max": 0.2, "n_lrs": 3, "horizon": 10.0, "rk4_dt": 0.05,
           "decay_lambda_t": 0.5},
    full={"n_train": 64, "in_dim": 8, "hidden": 24, "lr_max": 0.2, "n_lrs": 4, "horizon": 20.0, "rk4_dt": 0.02,
          "decay_lambda_t": 0.5},
    run=run,
)
