"""central-flows: time-averaged GD at the edge of stability follows the central flow.

Theory (Cohen, Damian, Talwalkar, Kolter & Lee 2024, "Understanding optimization in deep learning with central
flows", sec. 3; self-stabilisation: Damian, Nichani & Lee 2023): full-batch GD with learning rate ``lr``
whose sharpness ``S`` (top Hessian eigenvalue) has reached ``2/lr`` oscillates along the top eigenvector ``u``,
``w_t = w(t) + x_t u``, while its centre ``w(t)`` follows the *central flow*
``dw/dt = -lr [grad L + 1/2 sigma^2 grad S]``, with ``sigma^2 = E x_t^2`` the unique value that keeps
``S(w(t)) = 2/lr``; the time-averaged GD loss is ``L(w) + sigma^2 / lr``. The flow, ``sigma^2`` and
the predicted loss come from :func:`learnmech.hyper.central_flow.central_flow` (Euler, HVPs, third-derivative
gradient of ``S``, the edge constraint solved each step), integrated independently of the GD run it is judged on.

Experiment: a tanh MLP (8 -> h -> h -> 1, biases, fan-in init, float64) on ``n`` Gaussian inputs with Gaussian
targets (more examples than the net can fit quickly, so the loss stays away from 0 and progressive sharpening
keeps pushing into the edge), MSE, ``lr = 2 / (ratio * S(w_0))``: GD sharpens to ``2/lr`` and enters the edge.
Float64 GD starts its unstable oscillation from rounding-size components along ``u``, so the *entry* overshoots
(a catapult, outside the flow's assumption of a developed oscillation): the judged run starts ``warmup`` steps
after the entry ``t_e`` (the first step whose loss rises; fixed rule), from GD's period-2 centre ``(w_a + w_{a+1})/2``,
and both the central flow and the gradient-flow control are integrated from that centre for ``steps`` GD steps.
Judged on ``t >= steps/10`` (the flow first projects the centre, a little past the edge, onto ``S = 2/lr``), on
time averages: GD's oscillation amplitude can itself cycle slowly around its equilibrium (the self-stabilisation
cycle of Damian et al. 2023, tens of steps long here), and the flow predicts the average over it. Criteria (the
error is the worst error / tolerance, tolerance 1):

* weights: ``||mean c_t - mean w(t)||`` over the last ``block`` steps, with ``c_t`` GD's period-2 centre, tolerance
  the RMS ``sigma`` there: the flow describes GD as ``w(t) + x_t u`` up to corrections of higher order in the
  oscillation (sec. 3), so the centre must sit within one oscillation RMS of the flow;
* loss: mean GD loss vs mean ``L(w) + sigma^2 / lr`` over the judged window, tolerance half the oscillation term
  ``mean sigma^2 / 2 lr``: the midpoint between this prediction and the rival without the term (``L(w)``), which
  differs from it by exactly ``sigma^2 / lr``;
* oscillation: mean of ``x_t^2 = <w_t - w(t), u(t)>^2`` vs mean ``sigma^2``, tolerance ``mean sigma^2 / 2``: the
  midpoint between the prediction and the no-oscillation rival (0).

Control (must be rejected): ``gradient-flow``: plain gradient flow ``dw/dt = -lr grad L`` from the same centre
predicts GD's last-block mean centre (same weight tolerance) and its mean loss (``L(w_GF)``, same loss tolerance); the
control's error is the worse of the two ratios. Metric only: the edge constraint is held (``max |S(w(t)) lr/2 - 1|``).

Boundary (metric only, full config): the same flow integrated from the initialization, through GD's entry
catapult, compared with GD's centre at the end of the judged window (``boundary_flow_from_init``).

Choices the theory does not fix (fixed a priori): ``ratio`` (EoS at 2.5x the initial sharpness), ``warmup`` steps
after the entry, ``steps/10`` to skip, block length, Euler step ``dt`` (halving it, 0.5 -> 0.25, changes the judged
ratios by <= 0.04: quick seeds 0 and 5, full seed 0), ``k = 1`` tracked eigenvalue (the top two eigenvalues are
8-15% apart at the edge here; the flow with several eigenvalues at the edge is implemented but not judged).

Boundary finding (full, seeds 0-2): the flow from the initialization misses GD's centre at the end by 17-31 sigma
(20-34% of the distance travelled) and its loss by up to 7%: in this float64 setting GD's entry into the edge is a
catapult that the flow does not model, which is why the judged run starts after it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from learnmech.claims import Claim, Control, Diverged, Panel, Result, Series, step
from learnmech.hyper.central_flow import central_flow, top_eigenpairs
from learnmech.seeding import rng


def _mlp(config: dict[str, Any], generator: np.random.Generator) -> tuple[Any, torch.Tensor]:
    """Flat-parameter loss of a two-hidden-layer tanh MLP (written out: no functional_call overhead)."""
    n, d, h = int(config["n_train"]), int(config["in_dim"]), int(config["hidden"])
    x = torch.as_tensor(generator.standard_normal((n, d)))
    y = torch.as_tensor(generator.standard_normal((n, 1)))
    shapes = [(h, d), (h,), (h, h), (h,), (1, h), (1,)]
    sizes = [math.prod(s) for s in shapes]
    w0 = torch.cat([torch.as_tensor(generator.standard_normal(math.prod(s)) / math.sqrt(s[1])) if len(s) == 2
                    else torch.zeros(s[0], dtype=torch.float64) for s in shapes])

    def loss(w: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3 = (c.reshape(s) for c, s in zip(torch.split(w, sizes), shapes, strict=True))
        out = torch.tanh(torch.tanh(x @ w1.T + b1) @ w2.T + b2) @ w3.T + b3
        return 0.5 * (out - y).square().mean()

    return loss, w0


def _gd(loss: Any, w0: torch.Tensor, lr: float, warmup: int, steps: int, max_steps: int) -> dict[str, Any]:
    """Full-batch GD until ``warmup + steps + 2`` steps after the entry (first loss increase)."""
    w = w0.clone()
    weights, losses = [w.clone()], []
    entry = None
    for k in range(max_steps):
        leaf = w.detach().requires_grad_(True)
        value = loss(leaf)
        if not torch.isfinite(value):
            raise Diverged(k, "GD diverged")
        (grad,) = torch.autograd.grad(value, leaf)
        losses.append(float(value.detach()))
        if entry is None and k > 0 and losses[-1] > losses[-2]:
            entry = k
        w = (w - lr * grad).detach()
        weights.append(w.clone())
        if entry is not None and k >= entry + warmup + steps + 2:
            break
    if entry is None or len(losses) < entry + warmup + steps + 3:
        raise RuntimeError(f"GD did not reach the edge of stability and run {warmup + steps} steps past it within "
                           f"{max_steps} steps (entry: {entry})")
    losses.append(float(loss(w)))
    return {"weights": torch.stack(weights), "losses": np.array(losses), "entry": entry}


def _gradient_flow(loss: Any, w0: torch.Tensor, lr: float, steps: int, dt: float) -> torch.Tensor:
    """Euler gradient flow ``dw/dt = -lr grad L`` (t in GD steps), recorded once per GD step."""
    per = round(1.0 / dt)
    w = w0.clone()
    out = [w.clone()]
    for i in range(steps * per):
        leaf = w.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(leaf), leaf)
        w = (w - lr * dt * grad).detach()
        if (i + 1) % per == 0:
            out.append(w.clone())
    return torch.stack(out)


def _blocks(values: np.ndarray, start: int, block: int) -> np.ndarray:
    """Means of consecutive ``block``-long pieces of ``values[start:]`` (incomplete tail dropped)."""
    v = values[start:]
    m = v.size // block
    return v[: m * block].reshape(m, block).mean(axis=1)


def run(config: dict[str, Any], seed: int) -> Result:
    generator = rng(seed)
    loss, w0 = _mlp(config, generator)
    s0 = float(top_eigenpairs(loss, w0)[0][0])
    lr = 2.0 / (float(config["ratio"]) * s0)
    warmup, steps, dt = int(config["warmup"]), int(config["steps"]), float(config["dt"])
    block = int(config["block"])
    step(0, 4, "gradient descent")
    gd = _gd(loss, w0, lr, warmup, steps, int(config["max_steps"]))
    a = gd["entry"] + warmup
    weights = gd["weights"][a: a + steps + 2].numpy()  # GD step a + j  <->  flow time j - 1/2
    losses = gd["losses"][a: a + steps + 2]
    centre0 = torch.as_tensor(0.5 * (weights[0] + weights[1]))  # flow time 0 = GD time a + 1/2

    step(1, 4, "central flow")
    flow = central_flow(loss, centre0, lr, steps, dt=dt, record_every=round(1.0 / dt), method="lanczos",
                        iterations=int(config["lanczos"]))
    step(2, 4, "gradient flow")
    gf = _gradient_flow(loss, centre0, lr, steps, dt).numpy()
    boundary: dict[str, float] = {}
    if config["boundary_from_init"]:
        # Boundary (not judged): the flow integrated from the initialization through GD's entry catapult.
        step(3, 4, "boundary: central flow from init")
        total = a + steps
        init_flow = central_flow(loss, w0, lr, total + 0.5, dt=0.5, record_every=2, method="lanczos",
                                 iterations=int(config["lanczos"]))
        w_init = init_flow.weights.numpy()  # flow time j <-> GD time j; GD centre at a + steps + 1/2
        end = 0.5 * (gd["weights"][total].numpy() + gd["weights"][total + 1].numpy())
        sig_end = math.sqrt(max(float(init_flow.sigma2[-1, 0]), 0.0)) or math.nan
        boundary = {"centre_distance_over_sigma": float(np.linalg.norm(end - w_init[-1])) / sig_end,
                    "relative_weight_error": float(np.linalg.norm(end - w_init[-1]) /
                                                   np.linalg.norm(end - w0.numpy())),
                    "loss_gd_two_step": float(0.5 * (gd["losses"][total] + gd["losses"][total + 1])),
                    "loss_predicted": float(init_flow.central_loss[-1])}
    step(3, 4, "judge")

    cf_w = flow.weights.numpy()                     # (steps + 1, P) at flow times 0..steps
    sigma2 = flow.sigma2[:, 0]
    centres = 0.5 * (weights[:-1] + weights[1:])[: steps + 1]        # GD centre at flow time j
    gd_loss = 0.5 * (losses[:-1] + losses[1:])[: steps + 1]          # two-step mean loss at flow time j
    # Oscillation: GD iterate at flow time j - 1/2 against the flow interpolated there, along u(j).
    cf_half = np.concatenate([cf_w[:1], 0.5 * (cf_w[:-1] + cf_w[1:])])[: steps + 1]
    u = flow.eigenvectors.numpy()[:, 0, :]
    x2 = np.einsum("tp,tp->t", weights[: steps + 1] - cf_half, u) ** 2
    skip = steps // 10
    sigma = np.sqrt(sigma2)
    w_err_cf = np.linalg.norm(centres - cf_w, axis=1)
    w_err_gf = np.linalg.norm(centres - gf, axis=1)
    gf_loss = np.array([float(loss(torch.as_tensor(w)).detach()) for w in gf])
    judged = slice(skip, steps + 1)
    last = slice(steps + 1 - block, steps + 1)
    # Time averages over the judged window (loss, oscillation) and the last block (weights): GD's oscillation
    # amplitude itself can cycle slowly (self-stabilisation, Damian et al. 2023), and the flow predicts the average.
    osc_term = float(np.mean(sigma2[judged] / lr))  # sigma^2 / lr = 1/2 sigma^2 S on the edge
    mean_gd, mean_pred = float(np.mean(gd_loss[judged])), float(np.mean(flow.central_loss[judged]))
    mean_gf, mean_cf = float(np.mean(gf_loss[judged])), float(np.mean(flow.loss[judged]))
    mean_x2, mean_s2 = float(np.mean(x2[judged])), float(np.mean(sigma2[judged]))
    sigma_last = float(np.sqrt(np.mean(sigma2[last])))
    centre_last = centres[last].mean(axis=0)
    weight_err = float(np.linalg.norm(centre_last - cf_w[last].mean(axis=0)))
    weight_err_gf = float(np.linalg.norm(centre_last - gf[last].mean(axis=0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        weight_ratio = weight_err / sigma_last
        weight_ratio_gf = weight_err_gf / sigma_last
        loss_ratio = abs(mean_gd - mean_pred) / (0.5 * osc_term)
        loss_ratio_gf = abs(mean_gd - mean_gf) / (0.5 * osc_term)
        loss_ratio_noterm = abs(mean_gd - mean_cf) / (0.5 * osc_term)
        osc_ratio = abs(mean_x2 - mean_s2) / (0.5 * mean_s2)
    ratios = {"weights": weight_ratio, "loss": loss_ratio, "oscillation": osc_ratio}
    ratios = {k: (float(v) if math.isfinite(v) else math.inf) for k, v in ratios.items()}
    edge = float(np.max(np.abs(flow.sharpness[skip:, 0] * lr / 2 - 1)))
    # Per-block ratios (metric only): how much the oscillation amplitude cycles within the judged window.
    bl_x2, bl_s2 = _blocks(x2, skip, block), _blocks(sigma2, skip, block)

    controls = [Control(
        "gradient-flow", "plain gradient flow from the same centre predicts GD's last-block mean centre (error / "
        "sigma) and its mean loss (error / (sigma^2 / 2 lr)); error: the worse ratio, tolerance 1",
        prediction={"mean_loss": mean_gf}, measurement={"mean_loss": mean_gd},
        error=max(weight_ratio_gf, loss_ratio_gf), tolerance=1.0)]

    t = np.arange(steps + 1, dtype=float)
    rejected = "rejected" if controls[0].rejected else "NOT rejected"
    tj = t[judged]
    pred_loss, half_term = flow.central_loss[judged], 0.5 * sigma2[judged] / lr
    panels = [
        Panel("Loss: GD vs central flow L + sigma^2/lr", "GD steps after the judged start", "train loss", [
            Series("central flow L + sigma^2/lr (+- sigma^2/2lr)", tj, pred_loss, role="prediction",
                   lower=pred_loss - half_term, upper=pred_loss + half_term),
            Series("GD (two-step mean)", t, gd_loss),
            Series("judged: window mean of GD", [float(tj.mean())], [mean_gd], connect=False),
            Series(f"control: gradient flow ({rejected})", t, gf_loss, role="reference"),
        ]),
        Panel("Distance of GD's centre from the flow", "GD steps after the judged start", "||c_t - w(t)||", [
            Series("oscillation RMS sigma(t) (tolerance scale)", tj, np.zeros(tj.size), role="prediction",
                   lower=np.zeros(tj.size), upper=sigma[judged]),
            Series("central flow (every step)", t, w_err_cf),
            Series("judged: last-block mean centre vs flow", [float(t[last].mean())], [weight_err],
                   connect=False),
            Series(f"control: gradient flow ({rejected})", t, w_err_gf, role="reference"),
        ]),
        Panel("Oscillation variance along u", "GD steps after the judged start", "x_t^2", [
            Series("central flow sigma^2 (+- sigma^2/2)", tj, sigma2[judged], role="prediction",
                   lower=0.5 * sigma2[judged], upper=1.5 * sigma2[judged]),
            Series("GD <w_t - w(t), u(t)>^2", t, x2),
            Series("judged: window mean of x_t^2", [float(tj.mean())], [mean_x2], connect=False),
        ]),
    ]
    return Result(
        prediction={"sigma2_mean": mean_s2, "loss_mean": mean_pred, "sharpness": 2.0 / lr},
        measurement={"x2_mean": mean_x2, "loss_mean": mean_gd, "centre_distance_last_block": weight_err},
        error=max(ratios.values()),
        tolerance=1.0,
        units="max over weight (/ sigma), loss (/ sigma^2 / 2lr) and oscillation (/ sigma^2 / 2) criteria of "
        "error / tolerance",
        controls=controls,
        figure=panels,
        metrics={
            "criteria_error_over_tolerance": ratios,
            "control_ratios": {"weights": weight_ratio_gf, "loss": loss_ratio_gf,
                               "loss_without_sigma2_term": loss_ratio_noterm},
            "lr": lr, "initial_sharpness": s0, "entry_step": gd["entry"], "judged_start_step": a,
            "edge_violation_max": edge, "distance_travelled": float(np.linalg.norm(cf_w[-1] - cf_w[0])),
            "centre_distance_max_over_sigma": float(np.max(w_err_cf[judged] / sigma[judged])),
            "gf_centre_distance_max_over_sigma": float(np.max(w_err_gf[judged] / sigma[judged])),
            "relative_weight_error": weight_err / float(np.linalg.norm(cf_w[-1] - cf_w[0])),
            "block_x2_over_sigma2": (bl_x2 / bl_s2).tolist(),
            "boundary_flow_from_init": boundary,
        },
    )


CLAIM = Claim(
    name="central-flows",
    strand="hyper",
    reference="Cohen, Damian, Talwalkar, Kolter & Lee (2024), sec. 3 (GD central flow); Damian, Nichani & Lee (2023)",
    statement="theory says that full-batch GD at the edge of stability oscillates along the top Hessian "
    "eigenvector with variance sigma^2 while its centre follows the central flow (gradient flow with the implicit "
    "penalty that holds the sharpness at 2/lr) and its time-averaged loss is L + sigma^2/lr; plain gradient flow "
    "does not describe it",
    quick={"n_train": 256, "in_dim": 8, "hidden": 8, "ratio": 2.5, "warmup": 150, "steps": 150, "dt": 0.5,
           "block": 50, "lanczos": 6, "max_steps": 2000,
           "boundary_from_init": False},
    full={"n_train": 256, "in_dim": 8, "hidden": 8, "ratio": 2.5, "warmup": 150, "steps": 500, "dt": 0.5,
          "block": 100, "lanczos": 8, "max_steps": 3000,
          "boundary_from_init": True},
    run=run,
)
