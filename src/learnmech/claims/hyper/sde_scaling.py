"""sde-scaling: SGD at (k lr, k B) and Adam under the square-root rule trace the same loss-vs-examples curve
(Goyal et al. 2017; Li, Malladi & Arora 2021; Malladi, Lyu, Panigrahi & Arora 2022). Real data: digits.

Theory. SGD is approximated by the SDE ``dtheta = -grad L dt + sqrt(lr / B) Sigma^(1/2) dW`` with ``t = lr *
steps`` (Li, Malladi & Arora 2021); ``(lr, B) -> (k lr, k B)`` (Goyal et al. 2017's linear scaling rule,
:func:`learnmech.hyper.linear_scaling_rule`) leaves the SDE and the time per example unchanged, so the loss as a
function of examples seen is unchanged. Adam's SDE in the noise-dominated regime (Malladi et al. 2022, their square-root
scaling rule) is invariant instead under ``lr -> sqrt(k) lr``, ``1 - beta_i -> k (1 - beta_i)``,
``eps -> eps / sqrt(k)`` (:func:`learnmech.hyper.sqrt_scaling_rule`). Both approximations need a small step
relative to the curvature and noise-dominated gradients, and break at a predicted k*: SGD diverges at
``k lr lambda_max = 2`` (the quadratic's stability limit), Adam's rule is undefined once ``k (1 - beta1) >= 1``.

Pre-registered domain (fixed in code, computed before training from the base hyperparameters and W0): k is judged
iff ``k lr lambda_max <= 1/4`` (SGD's discretization error is O(k lr lambda), kept an eighth of the stability
limit), ``k (1 - beta1) <= 1/4`` (Adam's momentum still averages >= 4 steps) and ``k B <= B_simple(W0)`` (the
noise-dominated regime; B_simple exact, :func:`learnmech.hyper.noise_scales`). Larger k (up to past k*) form a
labelled boundary panel and metrics, not the verdict.

Experiment: least squares of the centred one-hot labels of scikit-learn's digits on the standardized pixels
(:class:`learnmech.hyper.LinearRegressionTask`), ``replicates`` paired runs (the same W0 for every k of a replicate,
independent minibatch streams), base batch ``base_batch``, SGD lr ``sgd_lr / lambda_max``, Adam lr ``adam_lr`` with
``betas``/``eps``, ``examples`` examples each, the exact full-data loss every ``record_examples`` examples.

Verdict: for each judged k and rule (SGD linear, Adam square root), :func:`learnmech.hyper.curve_distance` of the
log-loss curves to k = 1: the normalized area between the replicate-mean curves vs the area of the paired
difference's 95% t-band (df = replicates - 1); error = the worst distance / tolerance; tolerance 1.

Controls (same runs, same metric, worst judged k; rejected when > 1): ``adam-linear-rule`` (Adam with lr k lr and
the same beta/eps adjustments: only the lr exponent differs from the square-root rule) and ``sgd-batch-only``
(SGD at (lr, k B): the batch alone does not change the curve per example).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from learnmech import hyper
from learnmech.claims import Claim, Control, Panel, Result, Series, step
from learnmech.observe.tasks import digits
from learnmech.seeding import torch_generator

RULES = ("sgd_linear", "adam_sqrt", "adam_linear", "sgd_batch_only")
DOMAIN_LR = 0.25  # k lr lambda_max <= 1/4
DOMAIN_BETA = 0.25  # k (1 - beta1) <= 1/4


def _task(config: dict[str, Any], seed: int) -> tuple[hyper.LinearRegressionTask, torch.Tensor]:
    data = digits(int(config["n_train"]), 0, seed=seed)
    onehot = torch.nn.functional.one_hot(data.y_train, data.num_classes).double()
    task = hyper.LinearRegressionTask(data.x_train.double(), onehot - onehot.mean(dim=0))
    reps, d = int(config["replicates"]), task.x.shape[1]
    w0 = torch.stack([float(config["init_scale"]) * torch.randn(task.w_star.shape, dtype=torch.float64,
                                                                 generator=torch_generator(seed * 1000 + r))
                      / math.sqrt(d) for r in range(reps)])
    return task, w0


def _hyper(config: dict[str, Any], task, k: int) -> dict[str, hyper.ScaledHyper]:
    b0, sgd_lr = int(config["base_batch"]), float(config["sgd_lr"]) / task.lambda_max
    betas, eps, adam_lr = tuple(config["betas"]), float(config["eps"]), float(config["adam_lr"])
    out = {"sgd_linear": hyper.linear_scaling_rule(sgd_lr, b0, k)}
    out["sgd_batch_only"] = hyper.ScaledHyper(sgd_lr, k * b0)
    if k * (1 - betas[0]) < 1:
        adam = hyper.sqrt_scaling_rule(adam_lr, b0, k, betas, eps)
        out["adam_sqrt"] = adam
        out["adam_linear"] = hyper.ScaledHyper(adam_lr * k, adam.batch_size, adam.betas, adam.eps)
    return out


def _curves(task, w0, config, k: int, seed: int) -> dict[str, np.ndarray]:
    """Log-loss curves (R, T_k) of every rule at this k, recorded every max(record_examples, k B) examples."""
    rules = _hyper(config, task, k) if k > 1 else {"sgd_linear": hyper.ScaledHyper(
        float(config["sgd_lr"]) / task.lambda_max, int(config["base_batch"])), "adam_sqrt": hyper.ScaledHyper(
        float(config["adam_lr"]), int(config["base_batch"]), tuple(config["betas"]), float(config["eps"]))}
    reps = w0.shape[0]
    out = {}
    by_batch: dict[int, list[str]] = {}
    for name, h in rules.items():
        by_batch.setdefault(h.batch_size, []).append(name)
    for batch, names in by_batch.items():
        every = max(1, int(config["record_examples"]) // batch)
        steps = int(config["examples"]) // batch
        hs = [rules[n] for n in names]
        curves = hyper.train_linear(
            task, w0.repeat(len(names), 1, 1), np.repeat([h.lr for h in hs], reps), batch, steps,
            optimizer=np.repeat(["adam" if h.betas else "sgd" for h in hs], reps).tolist(),
            betas=[h.betas or (0.9, 0.999) for h in hs for _ in range(reps)],
            eps=[h.eps or 1e-8 for h in hs for _ in range(reps)],
            streams=np.tile(np.arange(reps), len(names)), seed=seed * 7919 + k * 31 + batch, record_every=every)
        with np.errstate(divide="ignore"):
            logs = np.log(curves)
        for i, name in enumerate(names):
            out[name] = logs[i * reps:(i + 1) * reps]
    return out


def _distance(base: np.ndarray, scaled: np.ndarray, base_every: int, every: int) -> hyper.CurveDistance:
    """Compare on the coarser of the two example grids, without the (shared) initial point."""
    stride = every // base_every
    ref = base[:, ::stride][:, 1:]
    new = scaled[:, 1:ref.shape[1] + 1]
    return hyper.curve_distance(ref, new)


def run(config: dict[str, Any], seed: int) -> Result:
    ks = [int(k) for k in config["ks"]]
    b0 = int(config["base_batch"])
    with hyper.single_threaded():
        task, w0 = _task(config, seed)
        b_simple0 = min(task.noise_scales(w).b_simple for w in w0)
        base = _curves(task, w0, config, 1, seed)
        step(1, len(ks) + 1, "k = 1")
        results: dict[int, dict[str, hyper.CurveDistance]] = {}
        curves_at: dict[int, dict[str, np.ndarray]] = {}
        rec = int(config["record_examples"])
        for i, k in enumerate(ks):
            curves = _curves(task, w0, config, k, seed)
            every = max(rec, k * b0)
            results[k] = {}
            for name, c in curves.items():
                ref = base["sgd_linear" if name.startswith("sgd") else "adam_sqrt"]
                results[k][name] = _distance(ref, c, rec, every)
            curves_at[k] = curves
            step(i + 2, len(ks) + 1, f"k = {k}")
    sgd_lr, beta1 = float(config["sgd_lr"]), float(config["betas"][0])
    domain = [k for k in ks if k * sgd_lr <= DOMAIN_LR and k * (1 - beta1) <= DOMAIN_BETA and k * b0 <= b_simple0]
    if not domain:
        raise ValueError(f"no k of {ks} lies in the pre-registered domain (B_simple(W0) = {b_simple0:.1f})")
    ratio = {k: {n: d.ratio for n, d in per.items()} for k, per in results.items()}
    judged = {n: max(ratio[k][n] for k in domain) for n in RULES}
    error = max(judged["sgd_linear"], judged["adam_sqrt"])
    controls = [
        Control("adam-linear-rule", "Adam under the linear rule (lr k lr, same beta/eps adjustments) traces the same "
                "curve; error = worst judged-k distance / t-band tolerance; tolerance 1", prediction=0.0,
                measurement={str(k): results[k]["adam_linear"].distance for k in domain},
                error=judged["adam_linear"], tolerance=1.0),
        Control("sgd-batch-only", "SGD at (lr, k B): the batch size alone leaves the per-example curve unchanged; "
                "error = worst judged-k distance / t-band tolerance; tolerance 1", prediction=0.0,
                measurement={str(k): results[k]["sgd_batch_only"].distance for k in domain},
                error=judged["sgd_batch_only"], tolerance=1.0),
    ]
    k_star_sgd = 2.0 / sgd_lr
    diverged = [k for k in ks if not math.isfinite(results[k]["sgd_linear"].distance)]
    return Result(
        prediction={"distance": 0.0, "domain_ks": domain, "k_star_sgd": k_star_sgd, "k_star_adam": 1 / (1 - beta1)},
        measurement={f"{n}[{k}]": results[k][n].distance for k in domain for n in ("sgd_linear", "adam_sqrt")},
        error=error,
        tolerance=1.0,
        units="worst (area between mean log-loss curves) / (area of the paired 95% t-band), judged k",
        figure=_panels(base, curves_at, results, domain, ks, rec, b0, controls, k_star_sgd),
        controls=controls,
        metrics={
            "lambda_max": task.lambda_max, "b_simple_w0_min": b_simple0, "domain_ks": domain,
            "distance": {str(k): {n: d.distance for n, d in per.items()} for k, per in results.items()},
            "tolerance": {str(k): {n: d.tolerance for n, d in per.items()} for k, per in results.items()},
            "ratio": {str(k): per for k, per in ratio.items()},
            "boundary": {"k_star_sgd_predicted": k_star_sgd, "sgd_first_diverged_k": min(diverged, default=None),
                         "sgd_first_k_beyond_tolerance": min((k for k in ks if ratio[k]["sgd_linear"] > 1),
                                                             default=None),
                         "adam_first_k_beyond_tolerance": min((k for k in ks if "adam_sqrt" in ratio[k]
                                                               and ratio[k]["adam_sqrt"] > 1), default=None)},
            "final_loss_k1": {n: float(np.exp(c[:, -1]).mean()) for n, c in base.items()},
            "loss_star": task.loss_star,
        },
    )


def _curve_panel(title, base, curves_at, results, ks, name, ref_name, rec, b0, control, control_rule):
    ex = np.arange(base[ref_name].shape[1]) * rec
    mean = np.exp(base[ref_name].mean(axis=0))
    band = np.zeros_like(mean)
    band[1:] = results[ks[-1]][name].band  # the largest judged k's t-band (on the k = 1 grid when k B <= rec)
    series = [Series(f"k = 1 (prediction for all k; band: t tolerance at k = {ks[-1]})", ex, mean,
                     role="prediction", lower=mean * np.exp(-band), upper=mean * np.exp(band))]
    for k in ks:
        c = curves_at[k][name]
        series.append(Series(f"k = {k}", np.arange(c.shape[1]) * max(rec, k * b0), np.exp(c.mean(axis=0)),
                             connect=True))
    c = curves_at[ks[-1]][control_rule]
    outcome = "rejected" if control.rejected else "NOT rejected"
    series.append(Series(f"control: {control.name}, k = {ks[-1]} ({outcome})", np.arange(c.shape[1]) *
                         max(rec, ks[-1] * b0), np.exp(c.mean(axis=0)), role="reference"))
    return Panel(title, "examples seen", "training loss (1/2 MSE)", series, yscale="log")


def _panels(base, curves_at, results, domain, ks, rec, b0, controls, k_star_sgd) -> list[Panel]:
    sgd = _curve_panel("SGD at (k lr, k B), digits", base, curves_at, results, domain, "sgd_linear", "sgd_linear",
                       rec, b0, controls[1], "sgd_batch_only")
    adam = _curve_panel("Adam, square-root rule, digits", base, curves_at, results, domain, "adam_sqrt", "adam_sqrt",
                        rec, b0, controls[0], "adam_linear")
    boundary = Panel("Distance / tolerance vs k (boundary: k beyond the domain)", "k (batch multiple)",
                     "distance / t-band tolerance", xscale="log", yscale="log",
                     hlines=[(1.0, "tolerance")])
    for name, label in (("sgd_linear", "SGD linear rule"), ("adam_sqrt", "Adam sqrt rule"),
                        ("adam_linear", "Adam linear rule (control)"), ("sgd_batch_only", "SGD batch only (control)")):
        xs = [k for k in ks if name in results[k] and math.isfinite(results[k][name].ratio)]
        boundary.series.append(Series(label, xs, [results[k][name].ratio for k in xs], connect=True))
    boundary.series.append(Series("predicted SGD breakdown k* = 2/(lr lambda_max)", [k_star_sgd, k_star_sgd],
                                  [1e-2, 1e2], role="reference"))
    return [sgd, adam, boundary]


CLAIM = Claim(
    name="sde-scaling",
    strand="hyper",
    reference=("Goyal et al. (2017); Li, Malladi & Arora (2021), On the validity of modeling SGD with SDEs; Malladi, "
               "Lyu, Panigrahi & Arora (2022), On the SDEs and scaling rules for adaptive gradient algorithms"),
    statement=(
        "theory says SGD at (k lr, k B) and Adam at (sqrt(k) lr, k B, 1-beta -> k(1-beta), eps/sqrt(k)) trace the "
        "loss-vs-examples curve of k = 1 while the SDE approximation holds (small k lr lambda_max, noise-dominated "
        "gradients); the linear rule fails for Adam"
    ),
    quick={"n_train": 1024, "replicates": 6, "base_batch": 1, "sgd_lr": 0.02, "adam_lr": 0.002,
           "betas": [0.99, 0.999], "eps": 1e-8, "examples": 2048, "record_examples": 32, "init_scale": 0.5,
           "ks": [2, 4, 8, 16, 32, 64, 128, 256]},
    full={"n_train": 1500, "replicates": 10, "base_batch": 1, "sgd_lr": 0.02, "adam_lr": 0.002,
          "betas": [0.99, 0.999], "eps": 1e-8, "examples": 4096, "record_examples": 32, "init_scale": 0.5,
          "ks": [2, 4, 8, 16, 32, 64, 128, 256]},
    run=run,
)
