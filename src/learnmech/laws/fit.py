"""Fitting the parametric scaling law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2).

Approach 3 of Hoffmann et al. (2022, "Training compute-optimal large language models", section 3.3 and
appendix D.2): parametrise A = e^a, B = e^b, E = e^e and minimise the Huber loss (delta = 1e-3) between the
log-sum-exp form LSE(a - alpha log N, b - beta log D, e) and log L over all runs, with L-BFGS started from a grid
of points; keep the best. Confidence intervals come from refitting bootstrap resamples of the runs, as Besiroglu,
Erdil, Barnett & You (2024, "Chinchilla scaling: a replication attempt") did.

Everything is vectorised: all grid starts are one batch of :func:`~learnmech.laws.optim.minimize_batched`, and all
bootstrap refits another, with the resampling expressed as integer weights on the original points (a point drawn
k times counts k times in the sum), so every problem in a batch shares the same arrays.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .._checks import as_array, positive_float, positive_int
from ..seeding import rng as make_rng
from .optim import minimize_batched

__all__ = [
    "PARAMETER_NAMES",
    "ComputeOptimal",
    "ScalingLawFit",
    "default_start_grid",
    "scaling_law",
    "huber",
    "compute_optimal",
    "fit_scaling_law",
    "check_scaling_data",
]

PARAMETER_NAMES = ("E", "A", "B", "alpha", "beta")
# relative decrease per iteration below which a start is done: the optimum then agrees to ~1e-7 in the
# parameters with a 100x stricter setting, at ~20% less time (many grid starts drift slowly in flat directions)
_FTOL = 1e-10
_CAP = 700.0  # largest exponent kept: e^700 ~ 1e304 is still a finite float64


def default_start_grid(stride: int = 1) -> np.ndarray:
    """The grid of L-BFGS starts of Hoffmann et al. (2022, appendix D.2) as used by Besiroglu et al. (2024).

    Returns (S, 5) rows of internal parameters (a = log A, b = log B, e = log E, alpha, beta) with
    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}: S = 4500 starts.
    ``stride`` > 1 keeps every stride-th value along each axis (stride 2: 3*3*3*3*3 = 243 starts), a coarser grid
    for quick runs.
    """
    stride = positive_int(stride, "stride")
    exponents = np.arange(0.0, 2.5, 0.5)[::stride]
    log_e = np.arange(-1.0, 1.5, 0.5)[::stride]
    log_coefficients = np.arange(0.0, 30.0, 5.0)[::stride]
    grid = itertools.product(log_coefficients, log_coefficients, log_e, exponents, exponents)
    return np.array(list(grid), dtype=float)


def scaling_law(N: np.ndarray, D: np.ndarray, E: float, A: float, B: float, alpha: float, beta: float) -> np.ndarray:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, eq. 2), broadcast over N and D.

    N: parameters, D: training tokens (or samples); returns the loss in the data's units (nats per token there).
    """
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return E + A / N**alpha + B / D**beta


def huber(residual: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss: r^2/2 for |r| <= delta, delta (|r| - delta/2) beyond (Huber 1964), elementwise."""
    magnitude = np.abs(residual)
    return np.where(magnitude <= delta, 0.5 * residual**2, delta * (magnitude - 0.5 * delta))


def _objective(log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, weights: np.ndarray | None,
               delta: float):
    """Batched Huber objective of approach 3 and its analytic gradient in theta = (a, b, e, alpha, beta).

    log_n, log_d, log_loss (n,); weights: None (every point once) or (n_problems_total, n) per-problem point
    multiplicities (bootstrap). The model is log L = LSE(a - alpha log N, b - beta log D, e) (Hoffmann et al.
    2022, eq. 10 of appendix D.2) = log(A N^-alpha + B D^-beta + E).
    """

    def fun_and_grad(theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta = theta.T
        # exponents are clipped to +-700 so that a wild line-search trial gives a huge finite loss instead of
        # inf/NaN and the sum of terms never underflows to 0; inside that range no max-shift is needed
        n_term = np.exp(np.clip(a[:, None] - np.multiply.outer(alpha, log_n), -_CAP, _CAP))
        d_term = np.exp(np.clip(b[:, None] - np.multiply.outer(beta, log_d), -_CAP, _CAP))
        e_term = np.exp(np.clip(e, -_CAP, _CAP))
        total = n_term + d_term
        total += e_term[:, None]
        residual = np.log(total)
        residual -= log_loss
        psi = np.clip(residual, -delta, delta)  # Huber derivative psi(r)
        loss = psi * (residual - 0.5 * psi)  # = Huber(r): r^2/2 inside [-delta, delta], delta(|r| - delta/2) outside
        if weights is not None:
            w = weights[rows]
            loss *= w
            psi *= w
        psi /= total  # psi(r) / sum of terms: chain rule through log(total)
        by_n, by_d = psi * n_term, psi * d_term
        grad = np.empty((theta.shape[0], 5))
        grad[:, 0] = by_n.sum(axis=1)
        grad[:, 1] = by_d.sum(axis=1)
        grad[:, 2] = psi.sum(axis=1) * e_term
        grad[:, 3] = -(by_n @ log_n)
        grad[:, 4] = -(by_d @ log_d)
        return loss.sum(axis=1), grad

    return fun_and_grad


def _to_params(theta: np.ndarray) -> np.ndarray:
    """(…, 5) internal (a, b, e, alpha, beta) -> (…, 5) public (E, A, B, alpha, beta)."""
    theta = np.asarray(theta, dtype=float)
    return np.stack([np.exp(theta[..., 2]), np.exp(theta[..., 0]), np.exp(theta[..., 1]), theta[..., 3],
                     theta[..., 4]], axis=-1)


@dataclass(frozen=True)
class ComputeOptimal:
    """Compute-optimal allocation N_opt(C) = G (C/6)^a, D_opt(C) = (C/6)^b / G (Hoffmann et al. 2022, eq. 4).

    a = beta/(alpha+beta), b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta)); C is training
    compute in FLOP with C = 6 N D. ``intervals`` maps "a", "b", "G" to (low, high) bootstrap bounds (NaN when no
    bootstrap was run).
    """

    a: float
    b: float
    G: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def n_opt(self, compute: np.ndarray) -> np.ndarray:
        """Loss-minimising parameter count at training compute ``compute`` (FLOP)."""
        return self.G * (np.asarray(compute, dtype=float) / 6.0) ** self.a

    def d_opt(self, compute: np.ndarray) -> np.ndarray:
        """Loss-minimising number of training tokens at training compute ``compute`` (FLOP)."""
        return (np.asarray(compute, dtype=float) / 6.0) ** self.b / self.G


def compute_optimal(E: float, A: float, B: float, alpha: float, beta: float) -> tuple[float, float, float]:
    """(a, b, G) of the compute-optimal frontier for the law's parameters (Hoffmann et al. 2022, eq. 4).

    Arrays broadcast (used on bootstrap samples). E does not enter: the frontier minimises only the reducible
    terms at fixed C = 6 N D.
    """
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    total = alpha + beta
    G = (alpha * np.asarray(A, dtype=float) / (beta * np.asarray(B, dtype=float))) ** (1.0 / total)
    return beta / total, alpha / total, G


@dataclass(frozen=True)
class ScalingLawFit:
    """A fit of L(N, D) = E + A/N^alpha + B/D^beta.

    params: best-fit values by name (:data:`PARAMETER_NAMES`); objective: the summed Huber loss there.
    intervals: name -> (low, high) percentile bootstrap interval at ``confidence``; standard_errors: name -> the
    bootstrap standard deviation. bootstrap: (n_bootstrap, 5) refitted (E, A, B, alpha, beta), columns in
    :data:`PARAMETER_NAMES` order. compute_optimal: the frontier with its intervals. n_points: points fitted;
    n_starts / n_converged: grid starts run / stopped by a tolerance.
    """

    params: dict[str, float]
    objective: float
    intervals: dict[str, tuple[float, float]]
    standard_errors: dict[str, float]
    bootstrap: np.ndarray
    compute_optimal: ComputeOptimal
    n_points: int
    n_starts: int
    n_converged: int
    huber_delta: float
    confidence: float

    def __getattr__(self, name: str) -> float:
        # fit.E, fit.alpha, ... as shorthands for fit.params[...]
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(name)

    def predict(self, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        """The fitted law's loss at parameters N and tokens D (broadcast)."""
        return scaling_law(N, D, **self.params)


def check_scaling_data(N: object, D: object, loss: object, n_parameters: int = 5) -> tuple[np.ndarray, ...]:
    """Validate (N, D, loss) for a fit: 1-D, same length, finite, strictly positive, more points than parameters.

    Returns the three arrays as float64. ValueError naming the offending argument otherwise.
    """
    arrays = []
    for name, value in (("N", N), ("D", D), ("loss", loss)):
        arr = as_array(value, name, ndim=1)
        if np.any(arr <= 0):
            raise ValueError(f"{name} must be strictly positive (logs are taken), got min {arr.min():g}")
        arrays.append(arr)
    if not (arrays[0].size == arrays[1].size == arrays[2].size):
        raise ValueError(f"N, D and loss must have the same length, got {[a.size for a in arrays]}")
    if arrays[0].size <= n_parameters:
        raise ValueError(
            f"need more points than the {n_parameters} parameters of the law to fit it, got {arrays[0].size}"
        )
    # Identifiability: along N the law varies only through A/N^alpha (E and the D term are shared), so the data pin
    # down (A, alpha) only through loss differences between distinct N values. One distinct N leaves A, alpha (and
    # E + A/N^alpha as one number) free; two give one difference for two unknowns, a curve of equally good fits.
    # Three distinct values are the minimum for each of N and D (the same for beta, B along D).
    for name, arr in (("N", arrays[0]), ("D", arrays[1])):
        distinct = np.unique(arr).size
        if distinct < 3:
            raise ValueError(
                f"{name} takes {distinct} distinct value(s); the law L = E + A/N^alpha + B/D^beta cannot be "
                f"identified from it: need runs at >= 3 distinct values of each of N and D"
            )
    return tuple(arrays)


def _distinct_minima(theta: np.ndarray, fun: np.ndarray, count: int, separation: float = 0.1) -> np.ndarray:
    """Up to ``count`` best local minima (rows of ``theta``) lying more than ``separation`` apart (max-abs in the
    internal coordinates), best first; nearly identical copies of one minimum reached from many starts count once."""
    picked: list[np.ndarray] = []
    for index in np.argsort(fun):
        if not np.isfinite(fun[index]) or len(picked) == count:
            break
        if all(np.max(np.abs(theta[index] - other)) > separation for other in picked):
            picked.append(theta[index])
    return np.array(picked)


def fit_scaling_law(
    N: np.ndarray,
    D: np.ndarray,
    loss: np.ndarray,
    *,
    huber_delta: float = 1e-3,
    starts: np.ndarray | None = None,
    n_bootstrap: int = 4000,
    bootstrap_starts: int = 2,
    confidence: float = 0.95,
    seed: int = 0,
    max_iter: int = 1000,
) -> ScalingLawFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta by Hoffmann et al.'s approach 3, with bootstrap intervals.

    N (n,): parameter counts; D (n,): training tokens; loss (n,): final losses (nats). huber_delta: the Huber
    threshold on log-loss residuals (1e-3 in Hoffmann et al. 2022). starts: (S, 5) internal starting points
    (log A, log B, log E, alpha, beta), default :func:`default_start_grid` (4500 starts). n_bootstrap: resamples of
    the n points with replacement (0 skips intervals; 4000 as in Besiroglu et al. 2024); each resample is refitted
    from the ``bootstrap_starts`` best distinct local minima of the full-data grid search (a warm start, instead of
    rerunning the whole grid 4000 times), keeping the best. confidence: level of the percentile intervals.
    """
    N, D, loss = check_scaling_data(N, D, loss)
    huber_delta = positive_float(huber_delta, "huber_delta")
    n_bootstrap = positive_int(n_bootstrap, "n_bootstrap", minimum=0)
    bootstrap_starts = positive_int(bootstrap_starts, "bootstrap_starts")
    confidence = positive_float(confidence, "confidence")
    if confidence >= 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    starts = default_start_grid() if starts is None else as_array(starts, "starts", ndim=2)
    if starts.shape[1] != 5:
        raise ValueError(f"starts must have shape (S, 5) (log A, log B, log E, alpha, beta), got {starts.shape}")
    log_n, log_d, log_loss = np.log(N), np.log(D), np.log(loss)

    grid = minimize_batched(_objective(log_n, log_d, log_loss, None, huber_delta), starts, max_iter=max_iter,
                            ftol=_FTOL)
    best = int(np.nanargmin(np.where(np.isfinite(grid.fun), grid.fun, np.inf)))
    theta_best = grid.x[best]
    params = dict(zip(PARAMETER_NAMES, (float(v) for v in _to_params(theta_best)), strict=True))
    co = compute_optimal(**params)

    nan_pair = (float("nan"), float("nan"))
    intervals = {name: nan_pair for name in PARAMETER_NAMES}
    errors = {name: float("nan") for name in PARAMETER_NAMES}
    co_intervals = {name: nan_pair for name in ("a", "b", "G")}
    samples = np.zeros((0, 5))
    if n_bootstrap > 0:
        generator = make_rng(seed)
        # a resample is a multinomial draw of point multiplicities (same law as sampling indices with replacement)
        counts = generator.multinomial(N.size, np.full(N.size, 1.0 / N.size), size=n_bootstrap).astype(float)
        warm = _distinct_minima(grid.x, grid.fun, bootstrap_starts)
        k = warm.shape[0]
        weights = np.repeat(counts, k, axis=0)  # (n_bootstrap * k, n)
        x0 = np.tile(warm, (n_bootstrap, 1))
        refit = minimize_batched(_objective(log_n, log_d, log_loss, weights, huber_delta), x0, max_iter=max_iter,
                                 ftol=_FTOL)
        fun = np.where(np.isfinite(refit.fun), refit.fun, np.inf).reshape(n_bootstrap, k)
        choice = np.argmin(fun, axis=1)
        theta_boot = refit.x.reshape(n_bootstrap, k, 5)[np.arange(n_bootstrap), choice]
        samples = _to_params(theta_boot)
        tail = 100 * (1 - confidence) / 2
        for j, name in enumerate(PARAMETER_NAMES):
            low, high = np.percentile(samples[:, j], [tail, 100 - tail])
            intervals[name] = (float(low), float(high))
            errors[name] = float(np.std(samples[:, j], ddof=1))
        boot_co = compute_optimal(*samples.T)
        for name, values in zip(("a", "b", "G"), boot_co, strict=True):
            low, high = np.percentile(values, [tail, 100 - tail])
            co_intervals[name] = (float(low), float(high))

    return ScalingLawFit(
        params=params,
        objective=float(grid.fun[best]),
        intervals=intervals,
        standard_errors=errors,
        bootstrap=samples,
        compute_optimal=ComputeOptimal(a=float(co[0]), b=float(co[1]), G=float(co[2]), intervals=co_intervals),
        n_points=int(N.size),
        n_starts=int(starts.shape[0]),
        n_converged=int(grid.converged.sum()),
        huber_delta=huber_delta,
        confidence=confidence,
    )
