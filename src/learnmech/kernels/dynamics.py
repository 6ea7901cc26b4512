"""Infinite-width training dynamics: gradient flow on MSE in function space (the NTK limit) and the exact
Bayesian posterior of the NNGP; plus the finite-width experiment they predict (full-batch GD on MSE).

Conventions follow neural-tangents' ``nt.predict.gradient_descent_mse`` and ``nt.predict.gp_inference``:

* the loss is ``L = 1/2 * mean((f(X) - Y)**2)`` over **all** ``N = Y.size`` entries of the training targets, so
  gradient flow ``d theta/dt = -lr * dL/d theta`` moves the training outputs as
  ``df/dt = -(lr / N) Theta (f - Y)`` (Lee et al. 2019, eq. 9 with this normalisation), solved in closed form in
  the eigenbasis of ``Theta`` (Lee et al. 2019, eqs. 10-11);
* ``t`` counts steps of size ``lr``: time ``t`` of the flow is the limit of ``t`` GD steps with learning rate
  ``lr`` on the same loss (for ``lr * lambda_max / N << 1``);
* :func:`gradient_descent` is the same linearised model trained by discrete (heavy-ball) GD, and
  :func:`max_learning_rate` the step size where that recursion stops contracting (neural-tangents'
  ``nt.predict.max_learning_rate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch

from .._aliases import renamed_attribute
from .._checks import as_array, positive_float, positive_int

__all__ = ["gradient_flow", "gradient_descent", "max_learning_rate", "nngp_posterior", "FlowPrediction", "Posterior",
           "train_mse_gd", "GDTrajectory"]

# Negative eigenvalues of a train kernel down to -PSD_RTOL * lambda_max are treated as round-off (a kernel from
# float32 Jacobians is accurate to ~1e-7 relative); anything more negative means the matrix is not a kernel.
PSD_RTOL = 1e-6
# Relative asymmetry tolerated (and then symmetrised away) in a train kernel.
SYMMETRY_RTOL = 1e-8


@dataclass
class FlowPrediction:
    """Mean predictions of the infinitely wide network after gradient flow for time(s) ``t``.

    test: ``(n_test, ...)`` for a scalar ``t``, ``(len(t), n_test, ...)`` for an array (None without test inputs);
    train: the same with ``n_train``; ``...`` is the target's trailing shape (``()`` for 1-D targets).
    """

    test: np.ndarray | None
    train: np.ndarray
    t: np.ndarray


@dataclass
class Posterior:
    """NNGP posterior on the test inputs: ``mean`` ``(n_test, ...)`` and ``covariance`` ``(n_test, n_test)``
    (or its diagonal ``(n_test,)`` when only the test variances were given), shared by all output columns."""

    mean: np.ndarray
    covariance: np.ndarray


def _square_symmetric(kernel_like: Any, name: str) -> np.ndarray:
    """``kernel_like`` as a float64 ``(n, n)`` array, refused unless square and symmetric up to ``SYMMETRY_RTOL``
    relative to its largest entry; returned as given (callers symmetrise the round-off away)."""
    kernel = as_array(kernel_like, name, ndim=2)
    n = kernel.shape[0]
    if kernel.shape != (n, n):
        raise ValueError(f"{name} must be square (n_train, n_train), got shape {kernel.shape}")
    scale = float(np.max(np.abs(kernel))) or 1.0
    asymmetry = float(np.max(np.abs(kernel - kernel.T)))
    if asymmetry > SYMMETRY_RTOL * scale:
        raise ValueError(f"{name} must be symmetric, max |K - K^T| = {asymmetry:.3g} (scale {scale:.3g})")
    return kernel


def _train_kernel(k_train_train: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated symmetric PSD train kernel ``(n, n)`` and its eigendecomposition, eigenvalues clipped at 0."""
    kernel = _square_symmetric(k_train_train, "k_train_train")
    kernel = 0.5 * (kernel + kernel.T)
    evals, evecs = np.linalg.eigh(kernel)
    if evals[0] < -PSD_RTOL * max(evals[-1], 0.0):
        raise ValueError(
            f"k_train_train must be positive semi-definite, has eigenvalue {evals[0]:.3g} "
            f"(largest {evals[-1]:.3g}; tolerated down to -{PSD_RTOL:g} x largest)"
        )
    return kernel, np.clip(evals, 0.0, None), evecs


def _null_threshold(evals: np.ndarray) -> float:
    """Eigenvalues at or below this are the kernel's null space (numpy ``pinv``'s rcond rule)."""
    return float(evals.size * np.finfo(np.float64).eps * max(float(evals.max()), 0.0))


def _targets(y_train: Any, n: int) -> np.ndarray:
    targets = as_array(y_train, "y_train", ndim=(1, 2))
    if targets.shape[0] != n:
        raise ValueError(f"y_train must have n_train={n} rows like k_train_train, got shape {targets.shape}")
    return targets


def _cross_kernel(k_test_train: Any, n: int) -> np.ndarray:
    cross = as_array(k_test_train, "k_test_train", ndim=2)
    if cross.shape[1] != n:
        raise ValueError(f"k_test_train must have shape (n_test, n_train={n}), got {cross.shape}")
    return cross


def _scalar_or_vector(value: Any, name: str, expected: str) -> np.ndarray:
    """``value`` as float64, refused unless a scalar or a non-empty 1-D array (``expected`` says of what, for the
    error message): the time grid of :func:`gradient_flow` and the step counts of :func:`gradient_descent`."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {expected} (np.inf allowed), got {value!r}") from None
    if array.ndim > 1 or array.size == 0:
        raise ValueError(f"{name} must be a scalar or a non-empty 1-D array, got shape {array.shape}")
    return array


def _linearised_problem(k_train_train: Any, k_test_train: Any, y_train: Any
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The validated inputs :func:`gradient_flow` and :func:`gradient_descent` share: the train kernel's clipped
    eigenvalues ``(n,)`` and eigenvectors ``(n, n)``, the targets ``(n,)`` or ``(n, k)`` and the test-train kernel
    ``(m, n)`` (None without test inputs)."""
    kernel, evals, evecs = _train_kernel(k_train_train)
    n = kernel.shape[0]
    targets = _targets(y_train, n)
    cross = None if k_test_train is None else _cross_kernel(k_test_train, n)
    return evals, evecs, targets, cross


def _times(t: Any) -> tuple[np.ndarray, bool]:
    times = _scalar_or_vector(t, "t", "a number or a 1-D array of numbers")
    if np.any(np.isnan(times)) or np.any(times < 0):
        raise ValueError(f"t must be >= 0 (np.inf = kernel regression), got {t!r}")
    return np.atleast_1d(times), times.ndim == 0


def gradient_flow(
    k_train_train: Any,
    k_test_train: Any,
    y_train: Any,
    t: Any,
    lr: float = 1.0,
    y0_train: Any = None,
    y0_test: Any = None,
) -> FlowPrediction:
    """Outputs of an infinitely wide network trained by gradient flow on MSE, in closed form
    (Jacot et al. 2018, eq. 8; Lee et al. 2019, eqs. 10-11):

        f_train(t) = Y + e^{-tau Theta} (f0_train - Y)
        f_test(t)  = f0_test + Theta_* Theta^{-1} (e^{-tau Theta} - I) (f0_train - Y),   tau = lr * t / Y.size

    i.e. neural-tangents' ``gradient_descent_mse`` convention, loss ``1/2 mean((f - Y)^2)`` (see module doc).

    k_train_train: ``(n, n)`` NTK on the training inputs (symmetric PSD); k_test_train: ``(m, n)`` or None.
    y_train: ``(n,)`` or ``(n, k)`` targets. t: scalar or 1-D array of times ``>= 0`` in units of steps of size
    ``lr``; ``np.inf`` gives kernel regression ``Theta_* Theta^+ (Y - f0) + f0_test``. y0_train / y0_test: the
    network's outputs at initialisation (same shapes as the targets; default 0, i.e. the mean over random
    initialisations, whose output mean is zero). Directions in the kernel's null space never move.
    """
    evals, evecs, targets, cross = _linearised_problem(k_train_train, k_test_train, y_train)
    times, scalar = _times(t)
    lr = positive_float(lr, "lr")
    f0_train, f0_test = _initial_outputs(y0_train, y0_test, targets, cross)

    moving = evals > _null_threshold(evals)
    tau = lr * times / targets.size
    with np.errstate(invalid="ignore", over="ignore"):
        # expm1(-lambda tau) = e^{-lambda tau} - 1, exact also for tiny lambda*tau; -1 at tau = inf.
        decay = np.where(moving[None, :], np.expm1(-np.outer(tau, evals)), 0.0)  # (T, n)
    return _evolve(decay, moving, evals, evecs, cross, targets, f0_train, f0_test, times, scalar)


def _momentum(momentum: Any) -> float:
    momentum = positive_float(momentum, "momentum", allow_zero=True)
    if momentum >= 1.0:
        raise ValueError(f"momentum must be in [0, 1) (heavy-ball GD diverges for momentum >= 1), got {momentum!r}")
    return momentum


def max_learning_rate(
    ntk_train: Any,
    y_train_size: int | None = None,
    momentum: float = 0.0,
    eps: float = 1e-12,
) -> float:
    """Largest stable learning rate of full-batch (heavy-ball) GD on MSE for the linearised / infinitely wide
    network with train NTK ``ntk_train``, neural-tangents' ``nt.predict.max_learning_rate``:

        lr_max = 2 (1 + momentum) N / (lambda_max + eps),   N = y_train_size (default: n_train)

    Derivation (loss ``L = 1/2 mean((f - Y)^2)`` over the ``N`` training outputs, as :func:`gradient_flow`):
    a GD step moves the train residual ``r`` by ``-(lr/N) Theta r`` (Lee et al. 2019, eq. 9 discretised), so
    along an eigenvector with eigenvalue ``lambda`` and ``a = lr lambda / N`` heavy-ball GD is the recursion
    ``r_{t+1} = (1 + m - a) r_t - m r_{t-1}``; both roots of ``z^2 - (1 + m - a) z + m`` lie inside the unit
    circle iff ``0 < a < 2 (1 + m)`` (for ``0 <= m < 1``; Goh 2017, "Why momentum really works", sec. "The
    dynamics of momentum"). The top eigenvalue binds.

    ntk_train: ``(n, n)`` symmetric train NTK (numpy or torch, any device). y_train_size: ``N``, the number of
    entries of ``y_train``; None takes ``n`` (one output per input; for ``k`` outputs and a kernel traced over
    them pass ``n * k``). momentum: heavy-ball coefficient in ``[0, 1)``. eps: added to ``lambda_max`` (>= 0) so
    a zero kernel gives a finite number, as neural-tangents does. Returns the learning rate (a float).
    """
    kernel = _square_symmetric(ntk_train, "ntk_train")
    n = kernel.shape[0]
    size = n if y_train_size is None else positive_int(y_train_size, "y_train_size")
    momentum = _momentum(momentum)
    eps = positive_float(eps, "eps", allow_zero=True)
    # Only the top eigenvalue is needed (LAPACK's subset solver, as neural-tangents on CPU).
    lambda_max = float(scipy.linalg.eigh(0.5 * (kernel + kernel.T), eigvals_only=True,
                                         subset_by_index=[n - 1, n - 1])[0])
    if lambda_max < 0:
        raise ValueError(f"ntk_train must be positive semi-definite, its largest eigenvalue is {lambda_max:.3g}")
    return 2.0 * (1.0 + momentum) * size / (lambda_max + eps)


def _steps(steps: Any) -> tuple[np.ndarray, bool]:
    counts = _scalar_or_vector(steps, "steps", "an integer or a 1-D array of integers")
    finite = counts[np.isfinite(counts)]
    if np.any(np.isnan(counts)) or np.any(counts < 0) or np.any(finite != np.round(finite)):
        raise ValueError(f"steps must be integers >= 0 (np.inf = the converged limit), got {steps!r}")
    return np.atleast_1d(counts), counts.ndim == 0


def _gd_decay(a: np.ndarray, momentum: float, steps: np.ndarray) -> np.ndarray:
    """``r_t / r_0 - 1`` after ``t`` heavy-ball steps of every mode with step ``a = lr lambda / N``, shape
    ``(len(steps), len(a))``.

    ``d_t = r_t/r_0 - 1`` obeys the affine recursion ``d_{t+1} = (1 + m - a) d_t - m d_{t-1} - a`` with
    ``d_0 = d_{-1} = 0`` (zero initial velocity), so ``d_t = (A^t)[0, 2]`` for
    ``A = [[1 + m - a, -m, -a], [1, 0, 0], [0, 0, 1]]``: ``log2(t)`` batched 3x3 products by squaring. Working
    with ``d`` instead of ``r`` keeps the relative accuracy of ``d ~ -a t`` for tiny ``a`` (no ``1 - 1``
    cancellation), which the test predictions divide by ``lambda``. ``t = inf``: ``-1`` for contracting modes
    (``0 < a < 2(1 + m)``), ``0`` for ``a = 0``, NaN for the others (they diverge).
    """
    modes = a.size
    matrix = np.zeros((modes, 3, 3))
    matrix[:, 0, 0] = 1.0 + momentum - a
    matrix[:, 0, 1] = -momentum
    matrix[:, 0, 2] = -a
    matrix[:, 1, 0] = 1.0
    matrix[:, 2, 2] = 1.0
    decay = np.empty((steps.size, modes))
    with np.errstate(over="ignore", invalid="ignore"):
        for i, t in enumerate(steps):
            if np.isinf(t):
                stable = (a > 0) & (a < 2.0 * (1.0 + momentum))
                decay[i] = np.where(stable, -1.0, np.where(a == 0, 0.0, np.nan))
            else:
                decay[i] = np.linalg.matrix_power(matrix, int(t))[:, 0, 2]
    return decay


def gradient_descent(
    k_train_train: Any,
    k_test_train: Any,
    y_train: Any,
    steps: Any,
    lr: float,
    momentum: float = 0.0,
    y0_train: Any = None,
    y0_test: Any = None,
) -> FlowPrediction:
    """Outputs of an infinitely wide (linearised) network after ``steps`` full-batch GD steps of size ``lr`` with
    heavy-ball momentum on ``L = 1/2 mean((f - Y)^2)`` (the convention of :func:`gradient_flow`), exactly (no
    continuous-time approximation).

    Heavy ball (Polyak 1964): ``v_{t+1} = m v_t - lr dL/dtheta``, ``theta_{t+1} = theta_t + v_{t+1}``, ``v_0 = 0``
    (``torch.optim.SGD(lr, momentum=m)``). For the linearised network ``f = f_0 + J (theta - theta_0)``
    (Lee et al. 2019, eq. 6) the train residual ``r = f - Y`` and its velocity ``u = J v`` follow
    ``u_{t+1} = m u_t - (lr/N) Theta r_t``, ``r_{t+1} = r_t + u_{t+1}`` (``N = Y.size``); in the eigenbasis of
    ``Theta`` each mode evolves independently by the factor ``1 + d_t(a)``, ``a = lr lambda / N`` (see
    ``_gd_decay``). The test outputs move by ``Theta_* Theta^{-1}`` times the train outputs' displacement
    (the same per-mode argument as Lee et al. 2019, eq. 11):

        f_train(t) = Y + V (1 + D_t) V^T (f0_train - Y),     f_test(t) = f0_test + Theta_* V Lambda^{-1} D_t V^T
        (f0_train - Y)

    With ``momentum = 0`` the factor is ``(1 - a)^t``, which tends to gradient flow's ``e^{-lr lambda t / N}``
    as ``lr -> 0`` at fixed ``lr t``. Stable iff ``lr < max_learning_rate(Theta, N, momentum)``; beyond, the
    outputs grow geometrically (inf or NaN once they overflow).

    k_train_train ``(n, n)``, k_test_train ``(m, n)`` or None, y_train ``(n,)`` or ``(n, k)``, y0_train /
    y0_test: as for :func:`gradient_flow`. steps: integer or 1-D array of integers ``>= 0``; ``np.inf`` = the
    converged limit (kernel regression when stable, NaN in diverging modes). lr: step size ``> 0``. momentum:
    heavy-ball coefficient in ``[0, 1)``. Returns a :class:`FlowPrediction` whose ``t`` holds the step counts.
    """
    evals, evecs, targets, cross = _linearised_problem(k_train_train, k_test_train, y_train)
    counts, scalar = _steps(steps)
    lr = positive_float(lr, "lr")
    momentum = _momentum(momentum)
    f0_train, f0_test = _initial_outputs(y0_train, y0_test, targets, cross)

    moving = evals > _null_threshold(evals)
    a = np.where(moving, lr * evals / targets.size, 0.0)
    decay = _gd_decay(a, momentum, counts)  # (T, n)
    return _evolve(decay, moving, evals, evecs, cross, targets, f0_train, f0_test, counts, scalar)


def _initial_outputs(y0_train: Any, y0_test: Any, targets: np.ndarray,
                     cross: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    if y0_test is not None and y0_train is None:
        raise ValueError("y0_test needs y0_train: the test outputs move by the kernel-weighted train residuals")
    f0_train = np.zeros_like(targets) if y0_train is None else as_array(y0_train, "y0_train")
    if f0_train.shape != targets.shape:
        raise ValueError(f"y0_train must have the shape of y_train {targets.shape}, got {f0_train.shape}")
    f0_test = None
    if cross is not None:
        test_shape = (cross.shape[0], *targets.shape[1:])
        f0_test = np.zeros(test_shape) if y0_test is None else as_array(y0_test, "y0_test")
        if f0_test.shape != test_shape:
            raise ValueError(f"y0_test must have shape {test_shape} (n_test plus y_train's trailing shape), "
                             f"got {f0_test.shape}")
    return f0_train, f0_test


def _evolve(decay: np.ndarray, moving: np.ndarray, evals: np.ndarray, evecs: np.ndarray, cross: np.ndarray | None,
            targets: np.ndarray, f0_train: np.ndarray, f0_test: np.ndarray | None, times: np.ndarray,
            scalar: bool) -> FlowPrediction:
    """Train/test outputs from the per-mode relative displacement ``decay`` ``(T, n)`` of the train residual
    (``f_t - f_0 = V diag(decay) V^T (f_0 - Y)`` on the train set, ``Theta_* Theta^+`` of it on the test set)."""
    n = evecs.shape[0]
    residual = evecs.T @ (f0_train - targets).reshape(n, -1)  # (n, k) in the eigenbasis
    with np.errstate(invalid="ignore", over="ignore"):
        train = f0_train.reshape(n, -1)[None] + np.einsum("ij,tj,jk->tik", evecs, decay, residual)
        test = None
        if cross is not None and f0_test is not None:
            inverse = np.where(moving, 1.0 / np.where(moving, evals, 1.0), 0.0)
            projected = cross @ evecs  # (m, n)
            test = f0_test.reshape(cross.shape[0], -1)[None] + np.einsum(
                "ij,tj,jk->tik", projected * inverse[None, :], decay, residual
            )
            test = test.reshape((len(times), *f0_test.shape))
            test = test[0] if scalar else test
    train = train.reshape((len(times), *targets.shape))
    return FlowPrediction(test=test, train=train[0] if scalar else train, t=times[0] if scalar else times)


def nngp_posterior(
    k_train_train: Any,
    k_test_train: Any,
    k_test_test: Any,
    y_train: Any,
    noise: float = 0.0,
) -> Posterior:
    """Exact Bayesian posterior of an infinitely wide network with the NNGP prior (Lee et al. 2018, eqs. 2-3;
    Rasmussen & Williams 2006, eq. 2.23-2.24):

        mean = K_* (K + noise I)^{-1} Y,      cov = K_** - K_* (K + noise I)^{-1} K_*^T

    k_train_train ``(n, n)``, k_test_train ``(m, n)``, k_test_test ``(m, m)`` (or its diagonal ``(m,)``),
    y_train ``(n,)`` or ``(n, k)`` (every output column has the same covariance). noise: the observation noise
    variance (absolute, in the units of the kernel; ``0`` = noiseless, singular directions handled by
    pseudo-inverse, neural-tangents' ``gp_inference`` with ``diag_reg_absolute_scale=True``).
    """
    noise = positive_float(noise, "noise", allow_zero=True)
    kernel, evals, evecs = _train_kernel(k_train_train)
    n = kernel.shape[0]
    targets = _targets(y_train, n)
    cross = _cross_kernel(k_test_train, n)
    m = cross.shape[0]
    prior = as_array(k_test_test, "k_test_test", ndim=(1, 2))
    if prior.shape not in ((m, m), (m,)):
        raise ValueError(f"k_test_test must have shape ({m}, {m}) or ({m},) to match k_test_train, got {prior.shape}")
    shifted = evals + noise
    keep = shifted > _null_threshold(shifted)
    inverse = np.where(keep, 1.0 / np.where(keep, shifted, 1.0), 0.0)
    weights = (cross @ evecs) * inverse[None, :]  # K_* V diag(1/(lambda + noise))
    mean = weights @ (evecs.T @ targets.reshape(n, -1))
    projected = cross @ evecs
    if prior.ndim == 2:
        covariance = prior - weights @ projected.T
        covariance = 0.5 * (covariance + covariance.T)
    else:
        covariance = prior - np.einsum("ij,ij->i", weights, projected)
    return Posterior(mean=mean.reshape((m, *targets.shape[1:])), covariance=covariance)


# ----------------------------------------------------------------------------------------------------------------
# The finite-width experiment these predictions describe
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class GDTrajectory:
    """Outputs of a network during full-batch GD: ``steps`` ``(T,)``, ``train``/``test`` ``(T, n, k)``,
    ``loss`` ``(T,)`` (``1/2 mean((f - Y)^2)``), ``diverged_step``: first step with a non-finite loss or None."""

    steps: np.ndarray
    train: np.ndarray
    test: np.ndarray | None
    loss: np.ndarray
    diverged_step: int | None

    diverged_at = renamed_attribute("diverged_step", warn=False)


def _gd_update(params: list[torch.Tensor], grads: Sequence[torch.Tensor], lr: float, momentum: float,
               velocity: list[torch.Tensor] | None) -> None:
    """One update in place: plain GD ``theta <- theta - lr grad`` when ``velocity`` is None, else heavy ball
    ``v <- momentum v - lr grad``, ``theta <- theta + v`` (Polyak 1964)."""
    with torch.no_grad():
        if velocity is None:
            for param, grad in zip(params, grads, strict=True):
                param.sub_(lr * grad)
        else:
            for param, grad, vel in zip(params, grads, velocity, strict=True):
                vel.mul_(momentum).sub_(lr * grad)
                param.add_(vel)


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """The model's outputs on ``x`` as ``(n, k)`` float64 numpy, without building a graph."""
    with torch.no_grad():
        return model(x).reshape(x.shape[0], -1).cpu().double().numpy()


def train_mse_gd(
    model: torch.nn.Module,
    x_train: Any,
    y_train: Any,
    lr: float,
    record_steps: Sequence[int],
    x_test: Any = None,
    momentum: float = 0.0,
) -> GDTrajectory:
    """Full-batch gradient descent on ``L = 1/2 mean((f(x_train) - y_train)^2)`` (the loss of
    :func:`gradient_flow`) with learning rate ``lr``, updating ``model``'s parameters in place; records the
    outputs on train and test inputs at each step in ``record_steps`` (0 = initialisation; sorted, >= 0).

    x_train ``(n, ...)``, y_train ``(n,)`` or ``(n, k)``; outputs are recorded as ``(n, k)`` float64.
    momentum: heavy-ball coefficient in ``[0, 1)`` (``v <- momentum v - lr grad``, ``theta <- theta + v``,
    ``v_0 = 0``: the dynamics :func:`gradient_descent` predicts). Runs on the device of the model's parameters.
    Training stops early (``diverged_step`` set) when the loss becomes NaN/inf.
    """
    lr = positive_float(lr, "lr")
    momentum = _momentum(momentum)
    steps = sorted({positive_int(s, "record_steps", minimum=0) for s in record_steps})
    if not steps:
        raise ValueError("record_steps must list at least one step >= 0")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    dtype, device = params[0].dtype, params[0].device
    xs = torch.as_tensor(as_array(x_train, "x_train"), dtype=dtype, device=device)
    ys = torch.as_tensor(as_array(y_train, "y_train", ndim=(1, 2)), dtype=dtype,
                         device=device).reshape(xs.shape[0], -1)
    xt = None if x_test is None else torch.as_tensor(as_array(x_test, "x_test"), dtype=dtype, device=device)
    velocity = [torch.zeros_like(p) for p in params] if momentum > 0 else None
    train_out, test_out, losses = [], [], []
    diverged_step = None
    step = 0
    for target_step in steps:
        while True:
            out = model(xs).reshape(ys.shape)
            loss = 0.5 * torch.mean((out - ys) ** 2)
            if not torch.isfinite(loss):
                diverged_step = step
                break
            if step == target_step:
                train_out.append(out.detach().cpu().double().numpy())
                losses.append(float(loss.detach()))
                if xt is not None:
                    test_out.append(_outputs(model, xt))
                break
            _gd_update(params, torch.autograd.grad(loss, params), lr, momentum, velocity)
            step += 1
        if diverged_step is not None:
            break
    recorded = len(train_out)
    return GDTrajectory(
        steps=np.asarray(steps[:recorded]),
        train=np.asarray(train_out),
        test=np.asarray(test_out) if xt is not None else None,
        loss=np.asarray(losses),
        diverged_step=diverged_step,
    )
