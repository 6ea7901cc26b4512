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

from .._checks import one_of, positive_float, positive_int
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
    "subspace_eigenvalues",
    "SharpnessTracker",
    "adam_preconditioner",
    "preconditioned_sharpness",
    "adam_threshold",
    "BlockHessian",
    "block_hessian",
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
        try:
            loss = batch_loss(self._model, self._loss_fn, batch)
        except RuntimeError as exc:  # torch's shape errors: the batch does not fit the model or the loss
            inputs, targets = check_batch(batch, name)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"{name}: the model or loss_fn failed on it (inputs {tuple(inputs.shape)}, targets "
                f"{tuple(targets.shape)}): {reason}"
            ) from None
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


# -- repeated measurements during training: warm starts, blocks, Adam's preconditioner ----------------------------


def _orthonormal_append(basis: torch.Tensor, m: int, vector: torch.Tensor) -> torch.Tensor | None:
    """``vector`` orthonormalised against ``basis[:m]`` (two Gram-Schmidt passes, "twice is enough": Giraud et al.
    2005), or None when it (numerically) lies in their span."""
    norm0 = float(torch.linalg.vector_norm(vector))
    if not np.isfinite(norm0) or norm0 == 0.0:
        return None
    v = vector.to(torch.float64)
    for _ in range(2):
        if m:
            v = v - basis[:m].T @ (basis[:m] @ v)
    norm = float(torch.linalg.vector_norm(v))
    if norm <= 1e-10 * norm0:
        return None
    return v / norm


def subspace_eigenvalues(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    starts: torch.Tensor,
    *,
    k: int = 1,
    rtol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    stop: str = "residual",
) -> HessianEigen:
    """Top-``k`` eigenpairs of a symmetric operator by Rayleigh-Ritz on a growing subspace that starts from the
    rows of ``starts`` (j, dim) and grows by the residual of the least converged of the top-k Ritz pairs.

    From a single start vector this builds exactly the Krylov space Lanczos builds (the residual of a Ritz vector
    of K_m(H, v) lies in K_{m+1}(H, v) and is orthogonal to K_m), so it needs the same HVPs; its use is starting
    from *several* vectors, e.g. the previous top eigenvectors when sharpness is tracked during training (a block
    start: the previous Ritz vectors are already near-invariant, so the residual is small after a few HVPs;
    Saad 2011, "Numerical methods for large eigenvalue problems", sec. 6.3 and 8.3 on Davidson-type expansion with
    an identity preconditioner). Stops when every top-k Ritz residual |H y - theta y| <= rtol |theta| (the same
    certificate as :func:`hessian_eigenvalues`: some eigenvalue lies within the residual of theta, Parlett 1980,
    thm 4.5.1) or after ``max_iter`` HVPs. A start that collapses (zero, or in the span of the others) is dropped;
    if the subspace stops growing before ``k`` vectors, it is topped up with seeded Gaussian vectors.

    Returns a :class:`HessianEigen` with ``eigenvectors`` (k, dim) always set and ``n_hvp`` the HVPs used here.
    Like any Krylov method started near old eigenvectors, it certifies *an* eigenvalue near each Ritz value: an
    eigenvalue that newly overtook the top with almost no weight in the start can be missed until its component
    grows; :class:`SharpnessTracker` restarts from a random vector every ``refresh`` calls to bound that risk.

    ``stop="change"`` instead stops once the top-k Ritz values changed by <= ``rtol`` relative over the last HVP
    (the rule PyHessian applies to power iteration, Yao et al. 2020, alg. 1). Ritz values only grow as the subspace
    does (Cauchy interlacing), so a small change means slow progress, not accuracy: from a random start it can stop
    short on a clustered top; from a warm start, whose Rayleigh quotient is already within (sin angle)^2 * spread
    of lambda_1, it is close but not certified: on benchmarks/bench_sharpness_tracking.py (digits CNN, 50
    measurements during GD) 46 of 50 answers were within 1e-3 of the reference, the worst 4e-3 off, for 55% of the
    HVPs of the certified rule. ``error_bounds`` still reports the certified residuals.
    """
    k = positive_int(k, "k")
    rtol = positive_float(rtol, "rtol")
    max_iter = positive_int(max_iter, "max_iter")
    stop = one_of(stop, "stop", ("residual", "change"))
    return _subspace(matvec, starts, k, rtol, max_iter, seed, k, stop)[1]


def _subspace(
    matvec: Callable[[torch.Tensor], torch.Tensor], starts: torch.Tensor, k: int, rtol: float, max_iter: int,
    seed: int, n_keep: int, stop: str = "residual",
) -> tuple[torch.Tensor, HessianEigen]:
    """:func:`subspace_eigenvalues`, also returning the top ``n_keep`` Ritz vectors (n_keep, dim) for a warm start."""
    if not isinstance(starts, torch.Tensor) or starts.ndim != 2 or starts.shape[0] < 1:
        raise ValueError("starts must be a (j, dim) tensor of start vectors with j >= 1")
    dim = starts.shape[1]
    steps = min(max_iter, dim)
    if k > steps:
        raise ValueError(f"k must be <= min(max_iter, dim) = {steps}, got {k}")
    device = starts.device
    basis = torch.empty(steps, dim, dtype=torch.float64, device=device)
    images = torch.empty(steps, dim, dtype=torch.float64, device=device)
    projected = np.zeros((steps, steps))
    m = 0
    n_hvp = 0
    gen = torch_generator(seed)

    def add(vector: torch.Tensor) -> bool:
        nonlocal m, n_hvp
        q = _orthonormal_append(basis, m, vector.to(device))
        if q is None:
            return False
        basis[m] = q
        images[m] = matvec(q).to(torch.float64)
        n_hvp += 1
        # the new row/column of Q^T H Q; symmetrised because float32 HVPs are symmetric only to round-off
        row = (basis[: m + 1] @ images[m]).cpu().numpy()
        col = (images[: m + 1] @ basis[m]).cpu().numpy()
        projected[m, : m + 1] = projected[: m + 1, m] = 0.5 * (row + col)
        m += 1
        return True

    for start in starts:
        if m >= steps:
            break
        add(start)
    while m < min(k, steps):
        if not add(torch.randn(dim, generator=gen, dtype=torch.float64).to(device)):
            break
    theta = bounds = ritz = previous = None
    while True:
        values, vectors = scipy.linalg.eigh(projected[:m, :m])
        order = np.argsort(values)[::-1][:k]
        theta, ritz = values[order], vectors[:, order]
        coeffs = torch.as_tensor(ritz, device=device)
        residual = images[:m].T @ coeffs - (basis[:m].T @ coeffs) * torch.as_tensor(theta, device=device)
        bounds = torch.linalg.vector_norm(residual, dim=0).cpu().numpy()
        ratio = bounds / np.maximum(np.abs(theta), 1e-300)
        if stop == "change":
            done = previous is not None and len(previous) == len(theta) and bool(
                np.all(np.abs(theta - previous) <= rtol * np.abs(theta)))
            previous = theta.copy()
        else:
            done = bool(np.all(ratio <= rtol))
        if done or m >= steps:
            break
        worst = int(np.argmax(ratio))
        if not add(residual[:, worst]) and not add(torch.randn(dim, generator=gen, dtype=torch.float64)):
            break  # the subspace is invariant: the Ritz values are exact
    vectors_out = (torch.as_tensor(ritz.T, device=device) @ basis[:m]).cpu().numpy()
    values, vectors = scipy.linalg.eigh(projected[:m, :m])
    kept = torch.as_tensor(vectors[:, np.argsort(values)[::-1][:n_keep]].T, device=device) @ basis[:m]
    return kept, HessianEigen(
        eigenvalues=np.asarray(theta, dtype=float),
        error_bounds=np.asarray(bounds, dtype=float),
        n_hvp=n_hvp,
        converged=bool(np.all(bounds <= rtol * np.abs(theta))),
        eigenvectors=vectors_out,
    )


def adam_preconditioner(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter] | None = None) -> list:
    """Adam's diagonal preconditioner P = sqrt(v_hat) + eps per parameter, read from a torch Adam/AdamW state.

    v_hat = exp_avg_sq / (1 - beta2^t) is the bias-corrected second moment that torch's Adam divides by
    (torch.optim.Adam: denom = sqrt(v) / sqrt(1 - beta2^t) + eps), so the update is lr * m_hat / P. Learning-rate
    free: lr stays in the stability threshold (Cohen et al. 2022, sec. 3). Returns one tensor per parameter in
    ``params`` (default: the optimizer's parameters), shaped like it; ValueError if a parameter has no Adam state yet
    (take at least one optimizer step first) or the optimizer is not Adam-like.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Adam/AdamW instance, got {type(optimizer).__name__}")
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    if params is None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    out = []
    for p in params:
        group = groups.get(id(p))
        if group is None or "betas" not in group or "eps" not in group:
            raise ValueError("optimizer must be Adam-like (param groups with betas and eps) and own every parameter")
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state:
            raise ValueError("optimizer has no second-moment state yet: take at least one optimizer.step() first")
        step = float(state["step"])
        v_hat = state["exp_avg_sq"].detach() / (1.0 - group["betas"][1] ** step)
        out.append(v_hat.sqrt() + group["eps"])
    return out


def _preconditioned(operator: HessianOperator, preconditioner: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> P^-1/2 H P^-1/2 x for a diagonal P given per parameter (shaped like them) or flat (dim,)."""
    if isinstance(preconditioner, torch.optim.Optimizer):
        preconditioner = adam_preconditioner(preconditioner, operator.params)
    if isinstance(preconditioner, (list, tuple)):
        if len(preconditioner) != len(operator.params):
            raise ValueError(
                f"preconditioner must hold one tensor per trainable parameter ({len(operator.params)}), "
                f"got {len(preconditioner)}"
            )
        flat = params_to_flat([torch.as_tensor(p) for p in preconditioner], operator.params)
    else:
        flat = torch.as_tensor(preconditioner, dtype=torch.float64, device=operator.device).reshape(-1)
    if flat.numel() != operator.dim:
        raise ValueError(f"preconditioner must have {operator.dim} entries (one per parameter), got {flat.numel()}")
    if not bool(torch.all(torch.isfinite(flat))) or not bool(torch.all(flat > 0)):
        raise ValueError("preconditioner must be finite and positive (Adam's sqrt(v_hat) + eps is)")
    scale = flat.to(operator.device).rsqrt()
    return lambda x: scale * operator.matvec(scale * x)


class SharpnessTracker:
    """Top Hessian eigenvalue(s), measured again and again during training, each warm-started from the previous
    measurement's top eigenvectors (the Hessian moves little between measurements a few steps apart).

    ``tracker(model, loss_fn, batch)`` returns a :class:`HessianEigen` (k eigenvalues to certified ``rtol``, as
    :func:`hessian_eigenvalues`); ``preconditioner=`` (an Adam optimizer or P per parameter) tracks the
    preconditioned sharpness instead (:func:`preconditioned_sharpness`). The first call, every ``refresh``-th call
    and any call after the parameter count changed start from a seeded random vector; the others start from the
    previous top ``keep`` Ritz vectors (default k; keeping runner-ups hedges against an eigenvalue crossing at the
    top but costs one HVP each per call: on the digits CNN under GD, keep=2 needed 116 HVPs where keep=1 needed 88
    for 30 measurements, equally accurate). ``n_hvp`` and ``calls`` accumulate over calls.
    """

    def __init__(
        self, k: int = 1, *, rtol: float = 1e-3, max_iter: int = 100, seed: int = 0, keep: int | None = None,
        refresh: int | None = None, stop: str = "residual",
    ) -> None:
        self.k = positive_int(k, "k")
        self.stop = one_of(stop, "stop", ("residual", "change"))
        self.rtol = positive_float(rtol, "rtol")
        self.max_iter = positive_int(max_iter, "max_iter")
        self.seed = int(seed)
        self.keep = self.k if keep is None else positive_int(keep, "keep")
        self.refresh = None if refresh is None else positive_int(refresh, "refresh")
        self.calls = 0
        self.n_hvp = 0
        self._vectors: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the previous eigenvectors: the next call starts from a random vector."""
        self._vectors = None

    def __call__(
        self, model: torch.nn.Module, loss_fn: LossFn, batch: Any, *, preconditioner: Any = None
    ) -> HessianEigen:
        operator = HessianOperator(model, loss_fn, batch)
        matvec = operator.matvec if preconditioner is None else _preconditioned(operator, preconditioner)
        fresh = (
            self._vectors is None
            or self._vectors.shape[1] != operator.dim
            or (self.refresh is not None and self.calls % self.refresh == 0)
        )
        if fresh:
            starts = _random_start(operator.dim, self.seed + self.calls, operator.device)[None, :]
        else:
            starts = self._vectors.to(operator.device)
        keep = self.keep
        # a fresh (random) start always uses the certified residual rule: "change" is only trusted from a warm start
        stop = "residual" if fresh else self.stop
        kept, result = _subspace(matvec, starts, self.k, self.rtol, self.max_iter, self.seed + self.calls, keep, stop)
        # only the top k are certified; the runner-up Ritz vectors kept with them are a cheap hedge against an
        # eigenvalue crossing at the top before the next measurement
        self._vectors = kept
        self.calls += 1
        self.n_hvp += result.n_hvp
        return result


def preconditioned_sharpness(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    preconditioner: Any,
    *,
    rtol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
) -> float:
    """Adam's preconditioned sharpness: the top eigenvalue of P^-1/2 H P^-1/2 (= that of P^-1 H, a similar matrix),
    Cohen et al. (2022, "Adaptive gradient methods at the edge of stability", sec. 3).

    preconditioner: a torch Adam/AdamW optimizer that has taken at least one step (P = sqrt(v_hat) + eps, see
    :func:`adam_preconditioner`), or P itself as one positive tensor per trainable parameter or a flat (dim,)
    tensor. Derivation of the threshold it is compared with: with P frozen and bias corrections at 1, Adam is
    x_{t+1} = x_t - lr P^-1 m_t, m_t = beta1 m_{t-1} + (1 - beta1) g_t. On a quadratic g = H x, in u = P^1/2 x and
    the eigenbasis of P^-1/2 H P^-1/2 (eigenvalue a) each coordinate is heavy-ball momentum with step
    lr (1 - beta1) a and momentum beta1, whose characteristic polynomial z^2 - (1 + beta1 - lr (1 - beta1) a) z
    + beta1 has both roots inside the unit circle iff lr (1 - beta1) a < 2 + 2 beta1. So Adam is stable on the
    quadratic iff a < (2 + 2 beta1) / ((1 - beta1) lr) (= 38 / lr at beta1 = 0.9), Cohen et al. 2022, eq. 2.
    Returns a in loss units per (parameter unit / P unit)^2, i.e. lr-free.
    """
    rtol = positive_float(rtol, "rtol")
    max_iter = positive_int(max_iter, "max_iter")
    operator = HessianOperator(model, loss_fn, batch)
    matvec = _preconditioned(operator, preconditioner)
    start = _random_start(operator.dim, seed, operator.device)[None, :]
    return float(subspace_eigenvalues(matvec, start, k=1, rtol=rtol, max_iter=max_iter, seed=seed).eigenvalues[0])


def adam_threshold(lr: float, beta1: float = 0.9) -> float:
    """Cohen et al. (2022, eq. 2)'s stability threshold of Adam's preconditioned sharpness,
    (2 + 2 beta1) / ((1 - beta1) lr) (38 / lr at beta1 = 0.9); derivation in :func:`preconditioned_sharpness`."""
    lr = positive_float(lr, "lr")
    beta1 = float(beta1)
    if not 0.0 <= beta1 < 1.0:
        raise ValueError(f"beta1 must be in [0, 1), got {beta1}")
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)


@dataclass
class BlockHessian:
    """Per-block (per-layer) curvature: the diagonal blocks H_BB of the Hessian, one per group of parameters.

    blocks: block names in model order; sizes: parameters per block; eigenvalues: name -> (k,) top eigenvalues of
    H_BB (descending); converged: name -> whether its bound reached rtol; trace: name -> Hutchinson estimate of
    tr(H_BB) with ``trace_stderr``; n_hvp: HVPs of the whole call. The blocks' traces add up to tr(H); their top
    eigenvalues are each <= lambda_max(H) (Cauchy interlacing for a principal submatrix).
    """

    blocks: list[str]
    sizes: dict[str, int]
    eigenvalues: dict[str, np.ndarray]
    converged: dict[str, bool]
    trace: dict[str, float]
    trace_stderr: dict[str, float]
    n_hvp: int


def _default_blocks(model: torch.nn.Module) -> dict[str, list[str]]:
    """Trainable parameters grouped by the module that owns them (a layer's weight and bias together)."""
    blocks: dict[str, list[str]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            owner = name.rsplit(".", 1)[0] if "." in name else name
            owner = owner.replace(".parametrizations.weight", "")  # torch parametrizations (muP multipliers)
            blocks.setdefault(owner, []).append(name)
    return blocks


def block_hessian(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batch: Any,
    *,
    blocks: dict[str, list[str]] | None = None,
    k: int = 1,
    rtol: float = 1e-3,
    max_iter: int = 100,
    n_trace: int = 20,
    eigenvalues: bool = True,
    seed: int = 0,
) -> BlockHessian:
    """Top eigenvalues and traces of the Hessian's diagonal blocks (by default one block per layer).

    blocks: ``{block name: [parameter names as in model.named_parameters()]}``; default: every module's own
    parameters. The eigenvalues of H_BB come from :func:`subspace_eigenvalues` (Lanczos-equivalent) on the operator
    x_B -> (H [x_B; 0])_B, one HVP per step and block. The traces need no per-block probes: for a Rademacher v over
    all parameters, E[v_B^T (H v)_B] = tr(H_BB) (the cross terms v_B^T H_BC v_C have mean zero), so ``n_trace``
    HVPs give every block's Hutchinson estimate at once (Hutchinson 1989), at the price of extra variance from the
    off-diagonal blocks (in ``trace_stderr``). PyHessian computes only the whole-model trace and density.
    ``n_trace=0`` skips the traces (NaN), ``eigenvalues=False`` the eigenvalues (empty arrays).
    """
    k = positive_int(k, "k")
    rtol = positive_float(rtol, "rtol")
    max_iter = positive_int(max_iter, "max_iter")
    n_trace = positive_int(n_trace, "n_trace", minimum=0)
    if n_trace == 1:
        raise ValueError("n_trace must be 0 (no traces) or >= 2 (a standard error needs two probes), got 1")
    operator = HessianOperator(model, loss_fn, batch)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    offsets, start = {}, 0
    for name, p in zip(names, operator.params, strict=True):
        offsets[name] = (start, start + p.numel())
        start += p.numel()
    blocks = _default_blocks(model) if blocks is None else dict(blocks)
    if not blocks:
        raise ValueError("blocks must name at least one block of parameters")
    index: dict[str, torch.Tensor] = {}
    for block, members in blocks.items():
        unknown = [m for m in members if m not in offsets]
        if unknown or not members:
            raise ValueError(f"blocks[{block!r}] must list trainable parameter names of the model, got {unknown or []}")
        index[block] = torch.cat([torch.arange(*offsets[m]) for m in members]).to(operator.device)
    gen = torch_generator(seed)
    samples: dict[str, list[float]] = {block: [] for block in blocks}
    for _ in range(n_trace):
        v = (torch.randint(0, 2, (operator.dim,), generator=gen).to(torch.float64) * 2 - 1).to(operator.device)
        hv = operator.matvec(v)
        for block, idx in index.items():
            samples[block].append(float(v[idx] @ hv[idx]))
    values: dict[str, np.ndarray] = {b: np.zeros(0) for b in blocks}
    converged = {b: True for b in blocks}
    for j, (block, idx) in enumerate(index.items() if eigenvalues else ()):
        def matvec(x: torch.Tensor, idx: torch.Tensor = idx) -> torch.Tensor:
            full = torch.zeros(operator.dim, dtype=torch.float64, device=operator.device)
            full[idx] = x
            return operator.matvec(full)[idx]

        if k > idx.numel():
            raise ValueError(f"k must be <= the size of every block; block {block!r} has {idx.numel()} parameters")
        start_vec = torch.randn(idx.numel(), generator=torch_generator(seed + 1 + j), dtype=torch.float64)
        result = subspace_eigenvalues(matvec, start_vec[None, :].to(operator.device), k=k, rtol=rtol,
                                      max_iter=max_iter, seed=seed + 1 + j)
        values[block], converged[block] = result.eigenvalues, result.converged
    nan = float("nan")
    trace = {b: float(np.mean(s)) if s else nan for b, s in samples.items()}
    stderr = {b: float(np.std(s, ddof=1) / np.sqrt(len(s))) if s else nan for b, s in samples.items()}
    return BlockHessian(
        blocks=list(blocks), sizes={b: int(i.numel()) for b, i in index.items()}, eigenvalues=values,
        converged=converged, trace=trace, trace_stderr=stderr, n_hvp=operator.n_hvp,
    )
