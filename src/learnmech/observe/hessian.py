"""Curvature of the loss: top Hessian eigenvalues (sharpness), Hutchinson trace, and the spectral density.

Everything here only ever touches the Hessian through Hessian-vector products (HVPs): one forward and backward
pass builds the gradient with its graph (``create_graph=True``), and each HVP is then one extra backward pass
through it (Pearlmutter 1994; the double-backward trick). Every result reports how many HVPs it used.

Convention: ``batch = (inputs, targets)`` (or a list of such pairs: the Hessian of the mean loss over all of
them), ``loss_fn(model(inputs), targets)`` is a scalar (e.g. ``torch.nn.MSELoss()``); the Hessian is with respect
to all parameters with ``requires_grad``, at their current values. The model's mode (train/eval) is left as it
is: dropout makes the "Hessian" random.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch

from .._checks import positive_float, positive_int
from ..seeding import torch_generator
from ._torch import LossFn, batch_loss, check_batch, flat_to_params, params_to_flat, trainable_parameters

__all__ = [
    "HessianOperator",
    "HessianEigen",
    "TraceEstimate",
    "HessianSpectrum",
    "sharpness",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_spectrum",
    "power_iteration",
    "lanczos",
]


class HessianOperator:
    """The Hessian of ``loss_fn(model(inputs), targets)`` at the current parameters, as a linear operator on
    flat float64 vectors of length ``dim`` (the number of trainable parameters). Counts its HVPs in ``n_hvp``.

    ``batch`` is one ``(inputs, targets)`` pair: building the operator costs one forward and backward pass and
    keeps the gradient's graph, so each HVP is one more backward pass. Or ``batch`` is a list of such pairs (a
    data set too big for one graph): the Hessian of the example-weighted mean loss over all of them, each HVP
    then redoing a forward and double backward per pair and keeping no graph (PyHessian's data-loader mode).
    ``loss`` is the (mean) loss, in the loss's units. Raises ValueError for an empty batch, a model without
    parameters, or a non-scalar or non-finite loss.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, batch: Any) -> None:
        self.params = trainable_parameters(model)
        self.dim = int(sum(p.numel() for p in self.params))
        self.device = self.params[0].device  # Lanczos vectors live next to the parameters (CPU or GPU)
        self.n_hvp = 0
        self._model, self._loss_fn = model, loss_fn
        several = isinstance(batch, (list, tuple)) and len(batch) > 0 and isinstance(batch[0], (list, tuple))
        if several:
            self._batches = [check_batch(b, f"batch[{i}]") for i, b in enumerate(batch)]
            sizes = [inputs.shape[0] for inputs, _ in self._batches]
            self._weights = [size / sum(sizes) for size in sizes]
            with torch.no_grad():
                losses = [self._finite_loss(b, f"batch[{i}]") for i, b in enumerate(self._batches)]
            self.loss = float(sum(w * float(loss) for w, loss in zip(self._weights, losses, strict=True)))
        else:
            self._batches = None
            loss = self._finite_loss(batch, "batch")
            self.loss = float(loss.detach())
            self._grads, self._grad_index = self._differentiable_gradient(loss)

    def _finite_loss(self, batch: Any, name: str) -> torch.Tensor:
        loss = batch_loss(self._model, self._loss_fn, batch)
        if not torch.isfinite(loss):
            value = float(loss.detach())
            raise ValueError(f"the loss on this {name} is not finite ({value}); its Hessian is undefined")
        return loss

    def _differentiable_gradient(self, loss: torch.Tensor) -> tuple[list[torch.Tensor], list[int]]:
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        # Parameters whose gradient is constant (or absent) have zero rows in the Hessian: skip them in the
        # double backward, they only contribute zeros.
        index = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        return [grads[i] for i in index], index

    def _hvp(self, grads: list[torch.Tensor], index: list[int], vector: torch.Tensor, keep: bool) -> torch.Tensor:
        if not grads:
            return torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        pieces = flat_to_params(vector.detach(), self.params)
        hvp = torch.autograd.grad(
            grads, self.params, grad_outputs=[pieces[i] for i in index], retain_graph=keep, allow_unused=True
        )
        return params_to_flat(hvp, self.params)

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """H @ vector for a flat vector of shape (dim,); returns float64 of shape (dim,)."""
        self.n_hvp += 1
        if self._batches is None:
            return self._hvp(self._grads, self._grad_index, vector, keep=True)
        total = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        for weight, part in zip(self._weights, self._batches, strict=True):
            grads, index = self._differentiable_gradient(batch_loss(self._model, self._loss_fn, part))
            total += weight * self._hvp(grads, index, vector, keep=False)
        return total

    __matmul__ = matvec


@dataclass
class HessianEigen:
    """Top eigenvalues of the Hessian, descending, in loss units per parameter unit squared.

    eigenvalues: (k,); error_bounds: (k,) a-posteriori bounds on |lambda - estimate|; n_hvp: HVPs used;
    converged: all bounds <= rtol * |eigenvalue|; eigenvectors: (k, dim) float64 unit vectors, if requested.
    """

    eigenvalues: np.ndarray
    error_bounds: np.ndarray
    n_hvp: int
    converged: bool
    eigenvectors: np.ndarray | None = None


def _random_start(dim: int, seed: int, device: torch.device | None = None) -> torch.Tensor:
    """A standard Gaussian vector (dim,), float64, drawn on the CPU (so the seed means the same everywhere)."""
    return torch.randn(dim, generator=torch_generator(seed), dtype=torch.float64).to(device)


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    max_steps: int,
    stop: Callable[[np.ndarray, np.ndarray], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Symmetric Lanczos with full reorthogonalization (Lanczos 1950; Paige 1972; Golub & Van Loan §10.1).

    start: (dim,) starting vector. Returns ``alphas`` (m,), ``betas`` (m,) and the basis Q (m, dim): the
    tridiagonal T = tridiag(betas[:-1], alphas, betas[:-1]) = Q H Q^T, and ``betas[-1]`` is the norm of the
    residual that the next step would normalise (it multiplies the last row of Ritz vectors in the residual
    bound). ``stop(alphas, betas)`` is asked after every step and ends the iteration early when True.
    """
    dim = start.numel()
    steps = min(int(max_steps), dim)
    # Rows are filled as they are reached; ``empty`` avoids paying to zero a (max_steps, dim) block upfront.
    basis = torch.empty(steps, dim, dtype=torch.float64, device=start.device)
    q = start.to(torch.float64) / torch.linalg.vector_norm(start)
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(steps):
        basis[j] = q
        w = matvec(q)
        alpha = float(w @ q)
        # Three-term recurrence, then full reorthogonalization against all previous vectors so that HVP round-off
        # in float32 does not create ghost copies; a second pass only when the first cancelled most of w
        # (the DGKS criterion, Daniel, Gragg, Kaufman & Stewart 1976: "twice is enough").
        w = w - alpha * q - (betas[-1] * basis[j - 1] if j > 0 else 0.0)
        before = float(torch.linalg.vector_norm(w))
        w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(torch.linalg.vector_norm(w))
        if beta < before / np.sqrt(2.0):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
            beta = float(torch.linalg.vector_norm(w))
        alphas.append(alpha)
        betas.append(beta)
        scale = max(abs(a) for a in alphas) + max(betas)
        if beta <= 1e-12 * scale:  # invariant subspace: the Ritz values are exact eigenvalues
            betas[-1] = 0.0
            break
        if stop is not None and stop(np.asarray(alphas), np.asarray(betas)):
            break
        q = w / beta
    m = len(alphas)
    return np.asarray(alphas), np.asarray(betas), basis[:m]


def _ritz(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the Lanczos tridiagonal matrix."""
    # LAPACK's tridiagonal solver, not a dense eigh of T: convergence is checked after every step, and numpy's
    # dense eigh goes through threaded OpenBLAS, whose worker threads (woken by any larger product earlier in
    # the process) cost ~3 ms per call on a busy 2-core CPU and slowed the HVPs between calls as well: 0.25 s
    # instead of 0.08 s for a 33-step run on the benchmark's 22k-parameter MLP.
    return scipy.linalg.eigh_tridiagonal(alphas, betas[: len(alphas) - 1])


def _top_bounds(alphas: np.ndarray, betas: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k Ritz values (descending), their error bounds and Ritz vectors (in the Lanczos basis).

    For a Ritz pair (theta, s) the residual ||H y - theta y|| equals r = |beta_m s_m|, and some eigenvalue of H
    lies within r of theta (Parlett 1980, thm 4.5.1; the test ARPACK uses). The sharper r^2 / gap bound needs
    the gap to the *true* rest of the spectrum, which Ritz values can overestimate while a close eigenvalue is
    still unresolved (we saw it stop 2% short at rtol = 1e-2), so we do not use it: the error is usually far
    below the bound. Guarding it (Kato-Temple with a = theta_2 + r_2, used only once both residuals are below a
    tenth of the Ritz gap) does not rescue it: a Ritz value mixing two close eigenvalues d apart has residual
    <= d / 2, so once the next Ritz value is resolved r^2 / gap passes while the pair is still unsplit. On a
    dense Hessian with lambda_2 = 0.99 lambda_1 (tests/test_observe_hessian.py) it stopped more than 1e-3 short
    from 13% of 200 random starts, against 2% for this bound, to save 9% of the HVPs (12.0 vs 13.2).
    """
    theta, vectors = _ritz(alphas, betas)
    order = np.argsort(theta)[::-1]
    theta, vectors = theta[order], vectors[:, order]
    bounds = np.abs(betas[-1] * vectors[-1, :])
    return theta[:k], bounds[:k], vectors[:, :k]


def hessian_eigenvalues(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    k: int = 1,
    rtol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    return_vectors: bool = False,
) -> HessianEigen:
    """Top-``k`` (largest algebraic) Hessian eigenvalues by Lanczos over HVPs, each to relative tolerance
    ``rtol`` (the certified residual bound of :func:`_top_bounds`; the actual error is usually orders of
    magnitude smaller), using at most ``max_iter`` HVPs (``converged`` says whether the bound was reached).

    Lanczos needs fewer HVPs than power iteration for the same accuracy: its error falls like a Chebyshev
    polynomial in the relative gap, power iteration's only like (lambda_2/lambda_1)^(2t) (Kuczynski &
    Wozniakowski 1992). The saving is large when the top eigenvalues are close and small when lambda_1 stands far
    out (benchmarks/bench_hessian.py, small MLP/CNN with 10-class cross-entropy: at init, where the top is
    clustered, 3x and 2x fewer HVPs than power iteration needs to be within 1e-3 and 4-7x fewer than it needs
    for the same residual certificate; once training has split lambda_1 off, 1-2x and 2-3x). ``seed`` fixes
    the random start vector.
    """
    k = positive_int(k, "k")
    rtol = positive_float(rtol, "rtol")
    max_iter = positive_int(max_iter, "max_iter")
    operator = HessianOperator(model, loss_fn, batch)
    if k > operator.dim:
        raise ValueError(f"k must be <= the number of parameters ({operator.dim}), got {k}")

    def converged(alphas: np.ndarray, betas: np.ndarray) -> bool:
        if len(alphas) < k:
            return False
        theta, bounds, _ = _top_bounds(alphas, betas, k)
        return bool(np.all(bounds <= rtol * np.abs(theta)))

    start = _random_start(operator.dim, seed, operator.device)
    alphas, betas, basis = lanczos(operator.matvec, start, max_iter, converged)
    theta, bounds, ritz_vectors = _top_bounds(alphas, betas, k)
    vectors = None
    if return_vectors:
        vectors = (torch.as_tensor(ritz_vectors.T, device=basis.device) @ basis).cpu().numpy()
    return HessianEigen(
        eigenvalues=theta,
        error_bounds=bounds,
        n_hvp=operator.n_hvp,
        converged=bool(np.all(bounds <= rtol * np.abs(theta))),
        eigenvectors=vectors,
    )


def sharpness(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    rtol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
) -> float:
    """Sharpness: the largest eigenvalue of the loss Hessian at the current parameters (Cohen et al. 2021), by
    Lanczos over HVPs to relative tolerance ``rtol``.

    model: any ``torch.nn.Module``; batch: ``(inputs, targets)``; loss_fn: ``(outputs, targets) -> scalar``.
    Returns a float in loss units per parameter unit squared; gradient descent with learning rate ``lr`` is
    stable on a quadratic only while sharpness < 2 / lr. Use :func:`hessian_eigenvalues` for top-k, the HVP
    count and error bounds.
    """
    result = hessian_eigenvalues(model, loss_fn, batch, k=1, rtol=rtol, max_iter=max_iter, seed=seed)
    return float(result.eigenvalues[0])


def power_iteration(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    rtol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
) -> tuple[float, int]:
    """Largest-magnitude Hessian eigenvalue by power iteration, stopping when the Rayleigh quotient changes by
    less than ``rtol`` relative (the method and stopping rule of PyHessian; Yao et al. 2020, alg. 1).

    Kept as the baseline Lanczos is compared against. Returns (eigenvalue, number of HVPs).
    """
    rtol = positive_float(rtol, "rtol")
    max_iter = positive_int(max_iter, "max_iter")
    operator = HessianOperator(model, loss_fn, batch)
    v = _random_start(operator.dim, seed, operator.device)
    v = v / torch.linalg.vector_norm(v)
    eigenvalue = None
    for _ in range(max_iter):
        hv = operator.matvec(v)
        new = float(hv @ v)
        v = hv / torch.linalg.vector_norm(hv)
        if eigenvalue is not None and abs(new - eigenvalue) <= rtol * (abs(eigenvalue) + 1e-6):
            eigenvalue = new
            break
        eigenvalue = new
    return float(eigenvalue), operator.n_hvp


@dataclass
class TraceEstimate:
    """Hutchinson estimate of Tr(H): ``value`` with its standard error ``stderr`` over probes; ``n_hvp``."""

    value: float
    stderr: float
    n_hvp: int


def hessian_trace(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    n_samples: int = 50,
    seed: int = 0,
) -> TraceEstimate:
    """Hutchinson's estimator Tr(H) ~ mean_v v^T H v over Rademacher vectors v (Hutchinson 1989; Avron &
    Toledo 2011): unbiased, with variance 2 * (||H||_F^2 - sum_i H_ii^2) / n_samples."""
    n_samples = positive_int(n_samples, "n_samples")
    operator = HessianOperator(model, loss_fn, batch)
    gen = torch_generator(seed)
    quads = []
    for _ in range(n_samples):
        v = (torch.randint(0, 2, (operator.dim,), generator=gen).to(torch.float64) * 2 - 1).to(operator.device)
        quads.append(float(operator.matvec(v) @ v))
    values = np.asarray(quads)
    stderr = float(values.std(ddof=1) / np.sqrt(n_samples)) if n_samples > 1 else float("nan")
    return TraceEstimate(value=float(values.mean()), stderr=stderr, n_hvp=operator.n_hvp)


@dataclass
class HessianSpectrum:
    """Stochastic Lanczos quadrature of the Hessian's eigenvalue density (Ghorbani, Krishnan & Xiao 2019).

    nodes, weights: (n_probes, n_steps) Gauss quadrature nodes (Ritz values) and weights (squared first
    components of the Ritz vectors) of each probe; each probe's weights sum to 1. dim: number of parameters.
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    n_hvp: int

    def density(self, grid: Any = None, sigma: float | None = None, n_points: int = 400) -> tuple[np.ndarray, ...]:
        """The eigenvalue density (integrates to 1) on ``grid`` (default: ``n_points`` spanning the nodes),
        smoothing each node with a Gaussian of width ``sigma`` (default: 1% of the spectral range; Ghorbani et
        al. 2019, eq. 5). Returns (grid, density)."""
        lo, hi = float(self.nodes.min()), float(self.nodes.max())
        width = max(hi - lo, 1e-12)
        sigma = 0.01 * width if sigma is None else positive_float(sigma, "sigma")
        if grid is None:
            grid = np.linspace(lo - 0.05 * width, hi + 0.05 * width, positive_int(n_points, "n_points"))
        grid = np.asarray(grid, dtype=float)
        kernel = np.exp(-0.5 * ((grid[:, None] - self.nodes.reshape(-1)[None, :]) / sigma) ** 2)
        kernel /= sigma * np.sqrt(2 * np.pi)
        density = kernel @ self.weights.reshape(-1) / self.nodes.shape[0]
        return grid, density

    @property
    def trace(self) -> float:
        """Tr(H) implied by the quadrature: dim * mean over probes of sum_i w_i theta_i."""
        return float(self.dim * np.mean(np.sum(self.weights * self.nodes, axis=1)))


def hessian_spectrum(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    n_probes: int = 4,
    n_steps: int = 50,
    seed: int = 0,
) -> HessianSpectrum:
    """Stochastic Lanczos quadrature (Lin, Saad & Yang 2016; Ghorbani et al. 2019): ``n_probes`` Lanczos runs
    of ``n_steps`` HVPs from Gaussian start vectors; the Ritz values and squared first Ritz-vector components
    are the nodes and weights of a Gauss quadrature of the spectral measure v^T delta(H - t) v / |v|^2."""
    n_probes = positive_int(n_probes, "n_probes")
    n_steps = positive_int(n_steps, "n_steps")
    operator = HessianOperator(model, loss_fn, batch)
    steps = min(n_steps, operator.dim)
    nodes = np.zeros((n_probes, steps))
    weights = np.zeros((n_probes, steps))
    for probe in range(n_probes):
        start = _random_start(operator.dim, seed + probe, operator.device)
        alphas, betas, _ = lanczos(operator.matvec, start, steps)
        theta, vectors = _ritz(alphas, betas)
        m = len(theta)  # fewer than ``steps`` if Lanczos found an invariant subspace: pad with zero weight
        nodes[probe, :m], weights[probe, :m] = theta, vectors[0, :] ** 2
        nodes[probe, m:] = theta[-1]
    return HessianSpectrum(nodes=nodes, weights=weights, dim=operator.dim, n_hvp=operator.n_hvp)
