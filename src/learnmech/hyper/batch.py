"""Batch size and its scaling rules: the gradient noise scale, the steps/examples trade-off, and the SDE scaling
rules for SGD and Adam.

- McCandlish, Kaplan, Amodei et al. (2018, "An empirical model of large-batch training"): with the learning rate
  tuned per batch size B, the steps S and examples E = B S to reach a target loss trade off as
  ``(S/S_min - 1)(E/E_min - 1) = 1`` (their eq. 2.11), equivalently ``S(B) = S_min + E_min / B``, and the
  critical batch ``B_crit = E_min / S_min`` (eq. 2.12) is predicted by the noise scale ``B_noise =
  tr(H Sigma) / (G^T H G)`` (eq. 2.8) or its Hessian-free simplification ``B_simple = tr(Sigma) / |G|^2`` (eq. 2.9),
  both measured at the relevant point of training: :func:`noise_scales`, :func:`fit_tradeoff`,
  :func:`critical_batch_from_run`.
- Goyal et al. (2017) linear scaling rule (batch k B with learning rate k lr) and its SDE justification (Li,
  Malladi & Arora 2021); Malladi, Lyu, Panigrahi & Arora (2022) square-root rule for Adam (lr sqrt(k) lr,
  1 - beta -> k (1 - beta), eps -> eps / sqrt(k)): :func:`linear_scaling_rule`, :func:`sqrt_scaling_rule`, and
  :func:`curve_distance` to compare loss-versus-examples curves with a seed-to-seed t-band.
- A vectorized least-squares task (:class:`LinearRegressionTask`, :func:`train_linear`): many SGD/Adam runs of a
  linear model at once, with the exact full-data loss, per-example gradients and Hessian (the quadratic model the
  trade-off is derived in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, stats

from .._checks import as_array, one_of, positive_float, positive_int

__all__ = [
    "NoiseScales", "noise_scales", "steps_to_target", "parabolic_minimum", "TradeoffFit", "fit_tradeoff",
    "TRADEOFF_RULES",
    "critical_batch_from_run", "ScaledHyper", "linear_scaling_rule", "sqrt_scaling_rule", "CurveDistance",
    "curve_distance", "LinearRegressionTask", "train_linear",
]

TRADEOFF_RULES = ("hyperbola", "constant", "linear")


# ----------------------------------------------------------------------------------------------- noise scale
@dataclass(frozen=True)
class NoiseScales:
    """Exact noise scales of a data set (McCandlish et al. 2018, eqs. 2.8-2.9), in examples.

    b_simple: ``tr(Sigma) / |G|^2``; b_noise: ``tr(H Sigma) / (G^T H G)`` (NaN without a Hessian);
    trace_covariance: ``tr(Sigma)``, Sigma the per-example gradient covariance (population form, 1/n);
    gradient_norm_sq: ``|G|^2``, G the mean gradient; trace_h_covariance / g_h_g: ``tr(H Sigma)``, ``G^T H G``.
    """

    b_simple: float
    b_noise: float
    trace_covariance: float
    gradient_norm_sq: float
    trace_h_covariance: float
    g_h_g: float


def noise_scales(per_example_grads: np.ndarray | torch.Tensor,
                 hessian: np.ndarray | torch.Tensor | None = None) -> NoiseScales:
    """Exact B_simple and B_noise from every example's gradient.

    Parameters
    ----------
    per_example_grads : (n, p) array
        Gradient of each example's loss (the loss being their mean); n >= 2.
    hessian : (p, p) array, optional
        Hessian H of the mean loss; gives ``B_noise = tr(H Sigma) / (G^T H G)`` (McCandlish et al. 2018, eq. 2.8:
        the batch at which the optimal step's improvement is half the noiseless one). Without it b_noise is NaN.

    Returns
    -------
    NoiseScales
        ``b_simple = tr(Sigma) / |G|^2`` (eq. 2.9, equal to b_noise when H is proportional to the identity).
    """
    g = torch.as_tensor(per_example_grads, dtype=torch.float64)
    if g.ndim != 2 or g.shape[0] < 2 or g.shape[1] < 1:
        raise ValueError(f"per_example_grads must be an (n, p) array with n >= 2, got shape {tuple(g.shape)}")
    if not torch.isfinite(g).all():
        raise ValueError("per_example_grads contains NaN or inf")
    mean = g.mean(dim=0)
    centred = g - mean
    # Sigma = (1/n) sum_i (g_i - G)(g_i - G)^T: the covariance of one example drawn uniformly from the data set,
    # so a batch of B drawn with replacement has covariance Sigma / B (McCandlish et al. 2018, eq. 2.2).
    trace_cov = float((centred**2).sum() / g.shape[0])
    grad_sq = float(mean @ mean)
    b_simple = trace_cov / grad_sq if grad_sq > 0 else math.inf
    tr_h_cov = g_h_g = b_noise = math.nan
    if hessian is not None:
        h = torch.as_tensor(hessian, dtype=torch.float64)
        if h.shape != (g.shape[1], g.shape[1]):
            raise ValueError(f"hessian must be ({g.shape[1]}, {g.shape[1]}), got shape {tuple(h.shape)}")
        tr_h_cov = float(torch.einsum("ni,ij,nj->", centred, h, centred) / g.shape[0])
        g_h_g = float(mean @ h @ mean)
        b_noise = tr_h_cov / g_h_g if g_h_g > 0 else math.inf
    return NoiseScales(b_simple, b_noise, trace_cov, grad_sq, tr_h_cov, g_h_g)


def critical_batch_from_run(noise_scale_per_step: Sequence[float] | np.ndarray) -> float:
    """Predicted ``B_crit = E_min / S_min`` from the noise scale along a large-batch run to the target.

    McCandlish et al. (2018, sec. 2.3 and eq. 2.11's derivation): a step at batch B makes ``1 / (1 + B_noise/B)``
    of the large-batch step's progress, so ``S(B) = sum_t (1 + B_noise(t) / B)`` over the large-batch steps t,
    i.e. ``S_min`` = their number and ``E_min = sum_t B_noise(t)``: B_crit is the *step average* of the noise
    scale over the large-batch run. ``noise_scale_per_step``: (S_min,) values before each of its steps.
    """
    values = as_array(noise_scale_per_step, "noise_scale_per_step", ndim=1)
    if np.any(values <= 0):
        raise ValueError("noise_scale_per_step must be positive")
    return float(values.mean())


# ----------------------------------------------------------------------------------------- steps/examples fit
def steps_to_target(losses: Sequence[float] | np.ndarray, target: float, window: float = 0.0) -> float:
    """Fractional number of steps until ``losses`` first reaches ``target`` (inf if it never does).

    losses: (T,) loss before step 0, 1, ... (index = steps taken); NaN marks steps not run (an early stop).
    Between the last step above the target and the first at or below it the log-loss is interpolated linearly,
    which removes most of the integer-step resolution when the runs to the target are short.

    window: if > 0, the log-loss at step t is first replaced by its mean over the steps ``t - h .. t + h``,
    ``h = round(window t)`` (a centred moving average in log time, no lag on a smooth curve). Why: the theory speaks of
    the *expected* loss, and the first crossing of one noisy SGD curve is biased early (a first-passage time),
    most at small batches where the curve approaches the target slowly with large fluctuations. A step whose
    window reaches past the recorded steps (or holds NaN/inf) counts as not reached.
    """
    values = np.asarray(as_array(losses, "losses", ndim=1, finite=False))
    target = positive_float(target, "target")
    window = positive_float(window, "window", allow_zero=True)
    if window > 0:
        values = _log_time_smooth(values, window)
    reached = np.where(np.isnan(values), False, values <= target)
    below = np.nonzero(reached)[0]
    if below.size == 0:
        return math.inf
    first = int(below[0])
    if first == 0:
        return 0.0
    hi, lo = values[first - 1], values[first]
    if not (np.isfinite(hi) and hi > target and lo > 0):
        return float(first)
    return first - 1 + float((math.log(hi) - math.log(target)) / (math.log(hi) - math.log(lo)))


def _log_time_smooth(values: np.ndarray, window: float) -> np.ndarray:
    """exp of the mean log value over [t (1 - window), t (1 + window)]; NaN where the window is incomplete."""
    t = np.arange(len(values))
    half = np.round(t * window).astype(np.int64)  # symmetric, so a log-linear stretch is left unchanged
    lo, hi = t - half, t + half
    ok = np.isfinite(values) & (values > 0)
    logs = np.where(ok, np.log(np.where(ok, values, 1.0)), 0.0)
    csum = np.concatenate([[0.0], np.cumsum(logs)])
    bad = np.concatenate([[0], np.cumsum(~ok)])
    out = np.full(len(values), np.nan)
    inside = hi < len(values)
    lo_i, hi_i = lo[inside], hi[inside]
    complete = (bad[hi_i + 1] - bad[lo_i]) == 0
    idx = np.nonzero(inside)[0][complete]
    out[idx] = np.exp((csum[hi_i + 1] - csum[lo_i])[complete] / (hi_i - lo_i + 1)[complete])
    return out


def parabolic_minimum(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Minimum of a function sampled on an equally spaced grid, refined by the parabola through the grid minimum
    and its two neighbours (e.g. log steps-to-target over a log-spaced learning-rate grid).

    values: (n,) samples (inf/NaN allowed: a run that never reached the target). Returns (minimum, position) with
    position in grid-index units (fractional). At an edge of the grid, next to a non-finite neighbour or where the
    parabola is not convex, the grid minimum itself is returned; the refinement never moves the position by more
    than half a grid step or raises the value.
    """
    v = np.asarray(as_array(values, "values", ndim=1, finite=False))
    v = np.where(np.isnan(v), np.inf, v)
    i = int(np.argmin(v))
    if not np.isfinite(v[i]):
        return math.inf, float(i)
    if i == 0 or i == len(v) - 1 or not (np.isfinite(v[i - 1]) and np.isfinite(v[i + 1])):
        return float(v[i]), float(i)
    curvature = v[i - 1] - 2 * v[i] + v[i + 1]
    if curvature <= 0:
        return float(v[i]), float(i)
    shift = float(np.clip(0.5 * (v[i - 1] - v[i + 1]) / curvature, -0.5, 0.5))
    # The parabola's value at the (clipped) vertex: v_i + slope * shift + curvature * shift^2 / 2.
    value = v[i] + 0.5 * (v[i + 1] - v[i - 1]) * shift + 0.5 * curvature * shift**2
    return float(min(value, v[i])), i + shift


@dataclass(frozen=True)
class TradeoffFit:
    """A fit of steps to target vs batch size.

    rule: ``"hyperbola"`` (McCandlish et al. 2018, eq. 2.11: ``S = S_min + E_min / B``), ``"constant"`` (S does
    not depend on B: ``S = S_min``, e_min 0) or ``"linear"`` (perfect scaling at every B: ``S = E_min / B``,
    s_min 0); s_min in steps, e_min in examples; rms_log_residual: root-mean-square of ``log S - log S_fit``.
    """

    rule: str
    s_min: float
    e_min: float
    rms_log_residual: float

    @property
    def b_crit(self) -> float:
        """``E_min / S_min`` (eq. 2.12), in examples (inf for the linear rule, 0 for the constant one)."""
        return self.e_min / self.s_min if self.s_min > 0 else math.inf

    def steps(self, batch_size: float | np.ndarray) -> np.ndarray:
        """Predicted steps ``S_min + E_min / B``; batch_size scalar or (m,)."""
        b = np.asarray(batch_size, dtype=np.float64)
        return self.s_min + self.e_min / b

    def examples(self, batch_size: float | np.ndarray) -> np.ndarray:
        """Predicted examples ``E = B S(B) = E_min + S_min B``."""
        return np.asarray(batch_size, dtype=np.float64) * self.steps(batch_size)


def fit_tradeoff(batch_sizes: Sequence[float] | np.ndarray, steps: Sequence[float] | np.ndarray,
                 rule: str = "hyperbola") -> TradeoffFit:
    """Fit S_min and E_min to steps-to-target measured at several batch sizes.

    Parameters
    ----------
    batch_sizes : (m,) array
        Batch sizes B (examples per step), positive, m >= 2 (>= 3 for the hyperbola).
    steps : (m,) array
        Steps S(B) to the target loss at each B (with the learning rate tuned per B, as McCandlish et al. 2018).
    rule : {"hyperbola", "constant", "linear"}
        The model: eq. 2.11 rewritten with ``E = B S`` as ``S(B) = S_min + E_min / B`` (two parameters), or one of
        the two one-parameter rivals (S constant; S = E_min / B).

    Returns
    -------
    TradeoffFit
        Least squares on log S (relative errors: S spans orders of magnitude across B); the hyperbola is fitted by
        Levenberg-Marquardt in (log S_min, log E_min) from the closed-form linear least-squares start.
    """
    b = as_array(batch_sizes, "batch_sizes", ndim=1)
    s = as_array(steps, "steps", ndim=1)
    rule = one_of(rule, "rule", TRADEOFF_RULES)
    if b.shape != s.shape:
        raise ValueError(f"steps must have the shape of batch_sizes {b.shape}, got {s.shape}")
    if np.any(b <= 0) or np.any(s <= 0):
        raise ValueError("batch_sizes and steps must be positive")
    if len(b) < (3 if rule == "hyperbola" else 2):
        raise ValueError(f"rule {rule!r} needs at least {3 if rule == 'hyperbola' else 2} points, got {len(b)}")
    log_s = np.log(s)
    if rule == "constant":
        s_min, e_min = float(np.exp(log_s.mean())), 0.0
    elif rule == "linear":
        s_min, e_min = 0.0, float(np.exp((log_s + np.log(b)).mean()))
    else:
        # Start: S = S_min + E_min / B is linear in (S_min, E_min); weights 1/S make it relative least squares.
        design = np.stack([1.0 / s, 1.0 / (b * s)], axis=1)
        start, *_ = np.linalg.lstsq(design, np.ones_like(s), rcond=None)
        start = np.log(np.maximum(start, [s.min() * 1e-3, (b * s).min() * 1e-3]))

        def residual(theta: np.ndarray) -> np.ndarray:
            return np.log(np.exp(theta[0]) + np.exp(theta[1]) / b) - log_s

        theta = optimize.least_squares(residual, start, method="lm").x
        s_min, e_min = float(np.exp(theta[0])), float(np.exp(theta[1]))
    fitted = TradeoffFit(rule, s_min, e_min, 0.0)
    rms = float(np.sqrt(np.mean((np.log(fitted.steps(b)) - log_s) ** 2)))
    return TradeoffFit(rule, s_min, e_min, rms)


# ------------------------------------------------------------------------------------------------ scaling rules
@dataclass(frozen=True)
class ScaledHyper:
    """Hyperparameters after a scaling rule: lr, batch_size, betas (Adam's (beta1, beta2) or None), eps."""

    lr: float
    batch_size: int
    betas: tuple[float, float] | None = None
    eps: float | None = None


def _check_k(k: float, batch_size: int) -> float:
    k = positive_float(k, "k")
    if abs(k * batch_size - round(k * batch_size)) > 1e-9:
        raise ValueError(f"k * batch_size must be an integer, got k={k} and batch_size={batch_size}")
    return k


def linear_scaling_rule(lr: float, batch_size: int, k: float) -> ScaledHyper:
    """SGD's linear scaling rule (Goyal et al. 2017): batch ``k B`` with learning rate ``k lr``.

    Why: the SDE ``dtheta = -grad L dt + sqrt(lr / B) Sigma^(1/2) dW`` with time ``t = lr * steps`` (Li, Malladi &
    Arora 2021) is unchanged by ``(lr, B) -> (k lr, k B)`` and so is ``t`` per example seen, so the loss-vs-examples
    curve is unchanged while the SDE approximates SGD (small ``k lr`` relative to the curvature, noise-dominated
    gradients).
    """
    batch_size = positive_int(batch_size, "batch_size")
    k = _check_k(k, batch_size)
    return ScaledHyper(positive_float(lr, "lr") * k, round(k * batch_size))


def sqrt_scaling_rule(lr: float, batch_size: int, k: float, betas: tuple[float, float] = (0.9, 0.999),
                      eps: float = 1e-8) -> ScaledHyper:
    """Adam's square-root scaling rule (Malladi, Lyu, Panigrahi & Arora 2022):
    batch ``k B``, ``lr sqrt(k)``, ``1 - beta_i -> k (1 - beta_i)``, ``eps -> eps / sqrt(k)``.

    Why: Adam's update ``m / sqrt(v)`` is scale-free in the gradient, so in the noise-dominated regime its SDE
    (Malladi et al. 2022) advances by ``lr^2`` per step with moment rates ``(1 - beta_i) / lr^2``: under the rule
    both are unchanged per example seen; eps is scaled like the batch gradient's noise, ``~ 1/sqrt(B)``. Raises
    ValueError if a scaled beta leaves [0, 1).
    """
    batch_size = positive_int(batch_size, "batch_size")
    k = _check_k(k, batch_size)
    b1, b2 = (float(b) for b in betas)
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas must lie in [0, 1), got {betas}")
    new = (1 - k * (1 - b1), 1 - k * (1 - b2))
    if not all(0 <= b < 1 for b in new):
        raise ValueError(f"k={k} takes the betas {betas} outside [0, 1) (1 - beta -> k (1 - beta)): {new}")
    return ScaledHyper(positive_float(lr, "lr") * math.sqrt(k), round(k * batch_size), new,
                       positive_float(eps, "eps", allow_zero=True) / math.sqrt(k))


@dataclass(frozen=True)
class CurveDistance:
    """Distance between two sets of paired loss curves on a common examples grid.

    distance: normalized area between the seed-mean curves, ``mean_j |mean_r d_rj|`` with ``d = scaled -
    reference`` (in the curves' units; log-loss gives a relative distance); tolerance: the area of the seed-to-seed
    t-band, ``mean_j t_q sd_r(d_rj) / sqrt(R)`` (t_q the two-sided quantile with R - 1 degrees of freedom);
    mean_difference, band: (T,) the pointwise ``mean_r d`` and ``t_q sd / sqrt(R)``.
    """

    distance: float
    tolerance: float
    mean_difference: np.ndarray
    band: np.ndarray

    @property
    def ratio(self) -> float:
        """distance / tolerance (<= 1: the curves agree within the seed-to-seed spread)."""
        return self.distance / self.tolerance if self.tolerance > 0 else math.inf


def curve_distance(reference: np.ndarray, scaled: np.ndarray, confidence: float = 0.95) -> CurveDistance:
    """Normalized area between two families of loss-vs-examples curves, with a t-band tolerance.

    Parameters
    ----------
    reference, scaled : (R, T) arrays
        R paired runs (same init per row, e.g. the base and the scaled hyperparameters from the same seed) sampled
        at the same T points of the examples axis (e.g. log training loss); R >= 2. Non-finite values (a run that
        blew up) make the distance inf.
    confidence : float
        Two-sided confidence of the t-band (default 0.95).

    Returns
    -------
    CurveDistance
        The curves "trace the same curve" when distance <= tolerance: the average gap is within the average
        half-width of the t-interval of the paired difference (R - 1 degrees of freedom), i.e. within what
        seed-to-seed spread allows.
    """
    ref = np.asarray(as_array(reference, "reference", ndim=2, finite=False))
    new = np.asarray(as_array(scaled, "scaled", ndim=2, finite=False))
    if ref.shape != new.shape:
        raise ValueError(f"scaled must have the shape of reference {ref.shape}, got {new.shape}")
    if ref.shape[0] < 2:
        raise ValueError(f"reference needs at least 2 paired runs (rows), got {ref.shape[0]}")
    confidence = positive_float(confidence, "confidence")
    if confidence >= 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    diff = new - ref
    r = diff.shape[0]
    if not np.all(np.isfinite(diff)):
        nan = np.full(diff.shape[1], np.nan)
        return CurveDistance(math.inf, 0.0, nan, nan)
    quantile = float(stats.t.ppf(0.5 + confidence / 2, r - 1))
    mean = diff.mean(axis=0)
    band = quantile * diff.std(axis=0, ddof=1) / math.sqrt(r)
    return CurveDistance(float(np.abs(mean).mean()), float(band.mean()), mean, band)


# ------------------------------------------------------------------------------------ vectorized linear task
class LinearRegressionTask:
    """Least squares ``L(W) = mean_i |W x_i - y_i|^2 / 2`` of a linear map ``W (c, d)``: the quadratic model in
    which McCandlish et al. (2018) derive the trade-off, with everything exact.

    Parameters
    ----------
    x : (n, d) array
        Inputs (float64 copy kept).
    y : (n, c) array
        Targets.

    Attributes: ``hessian_inputs`` (d, d) ``X^T X / n`` (the Hessian is ``I_c kron`` it), ``w_star`` (c, d)
    minimum-norm minimizer, ``loss_star`` its loss, ``lambda_max`` the top Hessian eigenvalue.
    """

    def __init__(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> None:
        self.x = torch.as_tensor(as_array(x, "x", ndim=2), dtype=torch.float64)
        self.y = torch.as_tensor(as_array(y, "y", ndim=2), dtype=torch.float64)
        if self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"y must have {self.x.shape[0]} rows like x, got {tuple(self.y.shape)}")
        n = self.x.shape[0]
        self.hessian_inputs = self.x.T @ self.x / n
        # The normal equations' minimum-norm solution via the pseudo-inverse (torch.linalg.lstsq's default CPU
        # driver mishandles rank-deficient inputs such as the digits' always-blank pixels).
        self.w_star = (torch.linalg.pinv(self.x) @ self.y).T
        self.loss_star = float(0.5 * ((self.x @ self.w_star.T - self.y) ** 2).sum(dim=1).mean())
        self.lambda_max = float(torch.linalg.eigvalsh(self.hessian_inputs)[-1])

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def loss(self, w: torch.Tensor) -> torch.Tensor:
        """Exact full-data loss of each of P models: w (P, c, d) -> (P,), via ``L* + tr(D H D^T) / 2``."""
        d = torch.as_tensor(w, dtype=torch.float64) - self.w_star
        return self.loss_star + 0.5 * torch.einsum("pij,jk,pik->p", d, self.hessian_inputs, d)

    def per_example_grads(self, w: torch.Tensor) -> torch.Tensor:
        """(n, c * d): the gradient ``(W x_i - y_i) x_i^T`` of each example's loss at one model w (c, d)."""
        w = torch.as_tensor(w, dtype=torch.float64)
        residual = self.x @ w.T - self.y
        return torch.einsum("ni,nj->nij", residual, self.x).reshape(self.n, -1)

    def hessian(self) -> torch.Tensor:
        """(c * d, c * d) Hessian of the loss in the row-major flattening of W: ``I_c kron X^T X / n``."""
        return torch.kron(torch.eye(self.y.shape[1], dtype=torch.float64), self.hessian_inputs)

    def noise_scales(self, w: torch.Tensor) -> NoiseScales:
        """:func:`noise_scales` at the model w (c, d), with the exact Hessian."""
        return noise_scales(self.per_example_grads(w), self.hessian())


def train_linear(task: LinearRegressionTask, w0: torch.Tensor, lr: Sequence[float] | np.ndarray, batch_size: int,
                 steps: int, *, optimizer: Sequence[str] | str = "sgd", betas: Sequence[tuple[float, float]] |
                 tuple[float, float] = (0.9, 0.999), eps: Sequence[float] | float = 1e-8,
                 streams: Sequence[int] | np.ndarray | None = None, seed: int = 0, record_every: int = 1,
                 stop_below: float | None = None, patience: float | None = None) -> np.ndarray:
    """Train P linear models at once with minibatch SGD or Adam; returns their full-data loss curves.

    Parameters
    ----------
    task : LinearRegressionTask
    w0 : (P, c, d) tensor
        Initial weights of the P runs.
    lr : (P,) learning rates.
    batch_size : examples per step, drawn uniformly *with replacement* (so the batch gradient's covariance is
        exactly Sigma / B, McCandlish et al. 2018 eq. 2.2).
    steps : number of steps.
    optimizer : "sgd" / "adam" for all runs or a (P,) sequence; Adam is Kingma & Ba (2015) with bias correction,
        the same update as ``torch.optim.Adam`` (eps added to ``sqrt(v_hat)``).
    betas, eps : Adam's, one for all runs or (P,) sequences.
    streams : (P,) ints; runs with the same stream see the same minibatches (common random numbers, e.g. across a
        learning-rate grid); default: all runs share one stream.
    seed : seeds the minibatch streams.
    record_every : record the loss every that many steps.
    stop_below : stop early once every run's loss is at or below this value.
    patience : with stop_below, stop already once every stream has a run at or below stop_below and ``patience``
        times the step at which the last stream got its first one has passed (for steps-to-target sweeps over a
        learning-rate grid: slower runs cannot be the optimum). After an early stop the curves are padded with NaN.

    Returns
    -------
    (P, steps // record_every + 1) float64 array: the exact loss before the first step and after every
    ``record_every`` steps; inf from the step a run blew up (non-finite or 1e12 x the initial loss) onwards; NaN
    after an early stop (stop_below).
    """
    w = torch.as_tensor(w0, dtype=torch.float64).clone()
    if w.ndim != 3 or w.shape[1:] != task.w_star.shape:
        raise ValueError(f"w0 must be (P, {task.w_star.shape[0]}, {task.w_star.shape[1]}), got {tuple(w.shape)}")
    p = w.shape[0]
    lrs = torch.as_tensor(as_array(lr, "lr", ndim=1), dtype=torch.float64)
    if lrs.shape != (p,) or torch.any(lrs <= 0):
        raise ValueError(f"lr must hold {p} positive learning rates, got shape {tuple(lrs.shape)}")
    batch_size = positive_int(batch_size, "batch_size")
    steps = positive_int(steps, "steps")
    record_every = positive_int(record_every, "record_every")
    kinds = [optimizer] * p if isinstance(optimizer, str) else list(optimizer)
    if len(kinds) != p:
        raise ValueError(f"optimizer must be one name or {p} names, got {len(kinds)}")
    for kind in kinds:
        one_of(kind, "optimizer", ("sgd", "adam"))
    beta_list = [tuple(betas)] * p if np.ndim(betas) == 1 else [tuple(b) for b in betas]  # type: ignore[arg-type]
    eps_list = [float(eps)] * p if np.ndim(eps) == 0 else [float(e) for e in eps]  # type: ignore[arg-type]
    if len(beta_list) != p or len(eps_list) != p:
        raise ValueError(f"betas and eps must be one value or {p} values")
    stream = np.zeros(p, dtype=np.int64) if streams is None else np.asarray(streams, dtype=np.int64)
    if stream.shape != (p,):
        raise ValueError(f"streams must hold {p} ints, got shape {stream.shape}")
    unique, inverse = np.unique(stream, return_inverse=True)
    inverse_t = torch.as_tensor(inverse)
    adam = torch.tensor([k == "adam" for k in kinds])[:, None, None]
    b1 = torch.tensor([b[0] for b in beta_list], dtype=torch.float64)[:, None, None]
    b2 = torch.tensor([b[1] for b in beta_list], dtype=torch.float64)[:, None, None]
    eps_t = torch.tensor(eps_list, dtype=torch.float64)[:, None, None]
    lr_t = lrs[:, None, None]
    gen = torch.Generator().manual_seed(int(seed))
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    initial = task.loss(w)
    limit = initial * 1e12
    dead = torch.zeros(p, dtype=torch.bool)
    first_hit = np.full(len(unique), math.inf)
    curve = [initial.numpy().copy()]
    x, y = task.x, task.y
    for t in range(1, steps + 1):
        idx = torch.randint(0, task.n, (len(unique), batch_size), generator=gen)[inverse_t]
        xb, yb = x[idx], y[idx]
        residual = torch.bmm(w, xb.transpose(1, 2)) - yb.transpose(1, 2)
        grad = torch.bmm(residual, xb) / batch_size
        if adam.any():
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            update = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps_t)
            grad = torch.where(adam, update, grad)
        w = w - lr_t * grad
        if t % record_every == 0 or t == steps:
            current = task.loss(w)
            dead |= ~torch.isfinite(current) | (current > limit)
            w[dead] = 0.0  # keep dead runs finite so they cost nothing odd; their curve is inf from now on
            if t % record_every == 0:
                curve.append(torch.where(dead, torch.full_like(current, math.inf), current).numpy().copy())
            if stop_below is not None:
                if bool((current[~dead] <= stop_below).all()):
                    break
                if patience is not None:
                    hit = np.zeros(len(unique), dtype=bool)
                    np.logical_or.at(hit, inverse, (current <= stop_below).numpy())
                    first_hit[hit & ~np.isfinite(first_hit)] = t
                    if np.all(np.isfinite(first_hit)) and t >= patience * first_hit.max():
                        break
    out = np.array(curve).T
    total = steps // record_every + 1
    if out.shape[1] < total:
        out = np.concatenate([out, np.full((p, total - out.shape[1]), np.nan)], axis=1)
    return out
