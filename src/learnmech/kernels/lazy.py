"""Lazy vs rich training: the centred, output-scaled model of Chizat, Oyallon & Bach (2019) and the leading
power-law exponent of a quantity measured along a scale (alpha, width) with its t-interval.

Chizat, Oyallon & Bach (2019, "On lazy training in differentiable programming", sec. 2) scale a model's output
by ``alpha`` and subtract its value at initialisation, ``f_alpha(x; w) = alpha (f(x; w) - f(x; w0))``, and train
with a learning rate ``~ 1/alpha^2``. Then the function starts at 0 and initially moves at an alpha-independent
speed (its tangent kernel is ``alpha^2 Theta`` and the step ``lr/alpha^2``), while the weights only need to move
``O(1/alpha)`` to fit the data: as ``alpha -> inf`` training is *lazy* (the model is its linearisation, i.e.
kernel regression with the initial NTK; Thm. 2.3 there: ``||w(t) - w0|| = O(1/alpha)`` and the function stays
``O(1/alpha)`` from the linearised flow), while small ``alpha`` is the *rich*, feature-learning regime
(Geiger, Spigler, Jacot & Wyart 2020, "Disentangling feature and lazy training in deep neural networks").
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import optimize, stats
from torch import nn

from .._aliases import renamed_attribute
from .._checks import as_array, positive_float, positive_int

__all__ = ["CenteredScaled", "centered_scaled", "Exponent", "asymptotic_exponent", "KernelTrajectory",
           "train_tracking_ntk"]


class CenteredScaled(nn.Module):
    """``alpha (model(x) - model_0(x))`` with ``model_0`` a frozen copy of ``model`` at construction time.

    Only ``model``'s parameters are trainable (``model_0``'s are frozen and excluded from the NTK), so the NTK
    of this module is ``alpha^2`` times ``model``'s (Chizat et al. 2019, sec. 2). Input and output shapes are
    those of ``model``.
    """

    def __init__(self, model: nn.Module, alpha: float) -> None:
        super().__init__()
        self.model = model
        self.alpha = positive_float(alpha, "alpha")
        self.initial = copy.deepcopy(model)
        for param in self.initial.parameters():
            param.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            reference = self.initial(x)
        return self.alpha * (self.model(x) - reference)


def centered_scaled(model: nn.Module, alpha: float) -> CenteredScaled:
    """Wrap ``model`` as ``f_alpha(x) = alpha (model(x) - model_0(x))`` (Chizat, Oyallon & Bach 2019, sec. 2).

    model: any ``nn.Module`` (trained in place through the wrapper; the wrapper keeps a frozen copy of its
    current weights as ``w0``). alpha: the output scale, > 0. Train the result with learning rate
    ``lr / alpha^2`` to keep the function's initial speed independent of alpha. Returns a
    :class:`CenteredScaled` whose output is exactly 0 at construction.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return CenteredScaled(model, alpha)


@dataclass
class Exponent:
    """Leading exponent ``b`` of ``y = C x^b (1 + c_1/x + ...)`` fitted on log y.

    exponent: ``b``; se: its standard error from the residuals; df: residual degrees of freedom; t95: the
    two-sided 95% t-quantile for ``df``; corrections: the fitted coefficients of ``x^-1, ..., x^-m`` (the
    nuisance terms), intercept ``log C``; interval: ``(b - t95 se, b + t95 se)``.
    """

    exponent: float
    se: float
    df: int
    t95: float
    intercept: float
    corrections: np.ndarray

    @property
    def interval(self) -> tuple[float, float]:
        return (self.exponent - self.t95 * self.se, self.exponent + self.t95 * self.se)


def asymptotic_exponent(x: Any, y: Any, corrections: int = 1) -> Exponent:
    """Least-squares fit of ``log y = log C + b log x + log(1 + sum_{m=1..M} c_m x^-m)`` (M = ``corrections``).

    A quantity predicted to scale as ``C x^b`` *asymptotically* (``x`` = an output scale or a width) carries
    analytic corrections in ``1/x`` at finite ``x``: ``y = C x^b (1 + c_1/x + ...)``. Fitting them as nuisance
    terms makes ``b`` the leading exponent instead of a local slope biased by them (``corrections=0``: the plain
    log-log slope, closed form; otherwise Gauss-Newton/Levenberg-Marquardt from the plain slope and ``c = 0``). The
    standard error comes from the residuals (the least-squares covariance ``s^2 (J^T J)^-1`` with
    ``df = n - 2 - M``); judge ``b`` with the t-interval ``b +- t95 se`` (t-quantile because sigma is estimated
    from few points).

    x, y: ``(n,)`` positive arrays; repeated ``x`` (replicates) are allowed. Needs ``n >= 3 + M`` points and
    at least ``2 + M`` distinct ``x``. Returns an :class:`Exponent`.
    """
    xs = as_array(x, "x", ndim=1)
    ys = as_array(y, "y", ndim=1)
    corrections = positive_int(corrections, "corrections", minimum=0)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same shape (n,), got {xs.shape} and {ys.shape}")
    if np.any(xs <= 0) or np.any(ys <= 0) or not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("x and y must be finite and > 0 (they are fitted on a log scale)")
    if xs.size < 3 + corrections or np.unique(xs).size < 2 + corrections:
        raise ValueError(f"x must have at least {3 + corrections} points and {2 + corrections} distinct values "
                         f"for an exponent with {corrections} correction(s) and a standard error, got {xs.size} "
                         f"points, {np.unique(xs).size} distinct")
    log_x, log_y = np.log(xs), np.log(ys)
    design = np.column_stack([np.ones_like(xs), log_x])
    coef, *_ = np.linalg.lstsq(design, log_y, rcond=None)
    df = xs.size - 2 - corrections
    if corrections == 0:
        residual = log_y - design @ coef
        jacobian = design
    else:
        powers = np.column_stack([xs ** (-m) for m in range(1, corrections + 1)])

        def model(*params: float) -> np.ndarray:
            factor = 1.0 + powers @ np.asarray(params[2:])
            return params[0] + params[1] * log_x + np.log(np.maximum(factor, 1e-300))

        start = np.concatenate([coef, np.zeros(corrections)])
        params, _ = optimize.curve_fit(lambda _x, *p: model(*p), xs, log_y, p0=start, method="lm", maxfev=20000)
        coef = params
        residual = log_y - model(*params)
        factor = 1.0 + powers @ params[2:]
        jacobian = np.column_stack([np.ones_like(xs), log_x, powers / factor[:, None]])
    sigma2 = float(residual @ residual) / df
    cov = sigma2 * np.linalg.pinv(jacobian.T @ jacobian)
    se = math.sqrt(max(float(cov[1, 1]), 0.0))
    return Exponent(exponent=float(coef[1]), se=se, df=df, t95=float(stats.t.ppf(0.975, df)),
                    intercept=float(coef[0]), corrections=np.asarray(coef[2:], dtype=float))


@dataclass
class KernelTrajectory:
    """A full-batch GD run with the empirical NTK tracked (:func:`train_tracking_ntk`).

    loss: ``(steps + 1,)`` train loss ``1/2 mean (f - y)^2`` before each step and after the last (``inf`` from a
    divergence on); record_steps: ``(r,)`` the steps where the kernel was taken; ntk: ``(r, n, n)`` the empirical
    NTK on the training inputs there; alignment: ``(r,)`` its centred kernel-target alignment with ``y y^T``;
    test: ``(r, m, k)`` outputs on ``x_test`` at those steps (None without test inputs); diverged_step: step or None.
    """

    loss: np.ndarray
    record_steps: np.ndarray
    ntk: np.ndarray
    alignment: np.ndarray
    test: np.ndarray | None
    diverged_step: int | None

    diverged_at = renamed_attribute("diverged_step", warn=False)


def train_tracking_ntk(
    model: nn.Module,
    x_train: Any,
    y_train: Any,
    lr: float,
    steps: int,
    record_steps: Any,
    x_test: Any = None,
) -> KernelTrajectory:
    """Full-batch GD on ``1/2 mean (f(x_train) - y_train)^2`` (the convention of
    :func:`learnmech.kernels.gradient_flow`), updating ``model`` in place, with the loss at every step and the
    empirical NTK (:func:`learnmech.kernels.empirical_ntk`) and its kernel-target alignment
    (:func:`learnmech.observe.target_alignment`, Cristianini et al. 2002) at ``record_steps``: the observables of
    the silent-alignment effect (Atanasov, Bordelon & Pehlevan 2021).

    model: a scalar-output ``nn.Module``; x_train ``(n, ...)``, y_train ``(n,)`` or ``(n, 1)``; lr > 0;
    steps >= 1; record_steps: steps in ``[0, steps]`` (0 = init); x_test: ``(m, ...)`` or None. Runs on the
    model's device. Returns a :class:`KernelTrajectory`.
    """
    from ..observe.similarity import target_alignment  # late import: observe is a sibling strand
    from .empirical import empirical_ntk

    lr = positive_float(lr, "lr")
    steps = positive_int(steps, "steps")
    record = np.unique(np.asarray([positive_int(s, "record_steps", minimum=0) for s in np.ravel(record_steps)]))
    if record.size == 0 or record[-1] > steps:
        raise ValueError(f"record_steps must be non-empty steps in [0, steps={steps}], got {record_steps!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    dtype, device = params[0].dtype, params[0].device
    xs = torch.as_tensor(as_array(x_train, "x_train"), dtype=dtype, device=device)
    ys = torch.as_tensor(as_array(y_train, "y_train", ndim=(1, 2)), dtype=dtype, device=device).reshape(-1, 1)
    if ys.shape[0] != xs.shape[0]:
        raise ValueError(f"y_train must have one row per row of x_train ({xs.shape[0]}), got {ys.shape[0]}")
    xt = None if x_test is None else torch.as_tensor(as_array(x_test, "x_test"), dtype=dtype, device=device)
    targets = ys.detach().cpu().double().numpy()
    losses = np.full(steps + 1, np.inf)
    kernels, alignments, tests = [], [], []
    diverged_step = None
    wanted = set(record.tolist())
    for t in range(steps + 1):
        if t in wanted:
            kernel = empirical_ntk(model, xs)
            kernels.append(kernel)
            alignments.append(target_alignment(kernel, targets))
            if xt is not None:
                with torch.no_grad():
                    tests.append(model(xt).reshape(xt.shape[0], -1).cpu().double().numpy())
        loss = 0.5 * torch.mean((model(xs).reshape(ys.shape) - ys) ** 2)
        if not torch.isfinite(loss):
            diverged_step = t
            break
        losses[t] = float(loss.detach())
        if t == steps:
            break
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for param, grad in zip(params, grads, strict=True):
                param.sub_(lr * grad)
    recorded = len(kernels)
    return KernelTrajectory(loss=losses, record_steps=record[:recorded], ntk=np.asarray(kernels),
                            alignment=np.asarray(alignments), test=np.asarray(tests) if xt is not None else None,
                            diverged_step=diverged_step)
