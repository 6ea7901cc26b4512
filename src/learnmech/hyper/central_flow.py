"""The central flow of gradient descent at the edge of stability (Cohen, Damian, Talwalkar, Kolter & Lee 2024).

Full-batch GD with learning rate ``lr`` on a loss whose sharpness ``S(w)`` (top Hessian eigenvalue) reaches
``2/lr`` does not diverge: it oscillates along the top eigenvector ``u`` while the oscillation, through the third
derivative, pushes the sharpness back (self-stabilisation, Damian, Nichani & Lee 2023). Cohen et al. (2024,
"Understanding optimization in deep learning with central flows", sec. 3) model the *time-averaged* iterate as

    dw/dt = -lr [ grad L(w) + 1/2 sigma^2(t) grad S(w) ]            (t in GD steps)

where ``sigma^2 >= 0`` is the variance of the oscillation along ``u`` (``w_t = w(t) + x_t u``, ``E x_t^2 =
sigma^2``), fixed by the constraint that ``S(w) <= 2/lr`` holds with complementarity (``sigma^2 = 0`` while
``S < 2/lr``; on the edge, ``dS/dt = 0`` gives ``sigma^2 = 2 <-grad L, grad S> / ||grad S||^2``, clipped at 0).
Equivalently the flow is gradient flow projected onto the stable set ``{S <= 2/lr}``. The GD loss, averaged over
the oscillation, is predicted as ``L(w) + 1/2 sigma^2 S(w) = L(w) + sigma^2 / lr`` on the edge. With ``k``
eigenvalues at the edge ``sigma^2`` becomes a PSD matrix in the top eigenspace (the paper's multi-eigenvalue flow,
a semidefinite complementarity problem); this
module keeps its diagonal (one variance per eigenvector, the constraint a non-negative least-squares problem),
which is exact when the top eigenvalues are separated and ``k = 1`` is the default.

The integrator (:func:`central_flow`) is forward Euler with step ``dt`` (in GD steps) on that velocity, with the
constraint imposed on the *linearised next sharpness* so that the discrete iterate lands on ``S = 2/lr`` instead of
drifting off it: ``S_i + <grad S_i, dw> <= 2/lr`` for each tracked eigenvalue, ``sigma_i^2 >= 0``, complementarity
(an LCP solved as a bound-constrained QP by NNLS): the discretisation of the authors' reference implementation
(linearised next-step constraint, four substeps per GD step by default). Curvature comes from Hessian-vector
products by double backward (:func:`hvp`), the top eigenpairs from Lanczos (:func:`top_eigenpairs`), and the
eigenvalue gradient from the third derivative ``grad_w (u^T H(w) u)`` at fixed ``u`` (:func:`eigenvalue_gradient`;
Hellmann-Feynman for a simple eigenvalue).

Everything works on a *flat* parameter vector ``w`` (:func:`flat_loss` turns a module, loss and batch into one)
and follows the device and dtype of ``w``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import nnls
from torch import nn

__all__ = [
    "flat_loss",
    "hvp",
    "top_eigenpairs",
    "eigenvalue_gradient",
    "central_flow_velocity",
    "CentralFlow",
    "central_flow",
]

LossFn = Callable[[torch.Tensor], torch.Tensor]


def flat_loss(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[LossFn, torch.Tensor]:
    """The full-batch loss as a function of one flat parameter vector (for :func:`central_flow`).

    Parameters
    ----------
    model : nn.Module
        Any module; its trainable parameters define ``w`` (concatenated in ``named_parameters`` order).
    loss_fn : callable
        ``loss_fn(output, target) -> scalar``.
    batch : (inputs, targets)
        The full batch.

    Returns
    -------
    loss : callable
        ``loss(w) -> scalar tensor`` for ``w`` of shape ``(P,)``, differentiable to any order (``torch.func``).
    w0 : (P,) tensor
        The model's current parameters, flattened (detached copy).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ValueError("batch must be a pair (inputs, targets)")
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad], strict=True)
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    inputs, targets = batch

    def loss(w: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(w, sizes)
        state = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return loss_fn(torch.func.functional_call(model, state, (inputs,)), targets)

    return loss, torch.cat([p.detach().reshape(-1) for p in params]).clone()


class _Graph:
    """Loss, gradient and its autograd graph at one ``w``, reused for every HVP and third derivative there.

    Double backward through one retained graph (``torch.autograd``) costs ~1/4 of ``torch.func``'s per-call
    transform overhead on the small nets this integrator is used for (measured here: 1.5 vs 8 ms per HVP).
    """

    def __init__(self, loss: LossFn, w: torch.Tensor) -> None:
        self.w = w.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            self.value = loss(self.w)
            (self.grad,) = torch.autograd.grad(self.value, self.w, create_graph=True)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(self.grad, self.w, grad_outputs=v, retain_graph=True)[0].detach()

    def hessian(self) -> torch.Tensor:
        eye = torch.eye(self.w.numel(), dtype=self.w.dtype, device=self.w.device)
        with torch.enable_grad():
            rows = torch.autograd.grad(self.grad, self.w, grad_outputs=eye, is_grads_batched=True,
                                       retain_graph=True)[0].detach()
        return 0.5 * (rows + rows.T)

    def eigenvalue_gradient(self, u: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            (hv,) = torch.autograd.grad(self.grad, self.w, grad_outputs=u, retain_graph=True, create_graph=True)
            return torch.autograd.grad(torch.dot(hv, u), self.w, retain_graph=True)[0].detach()


def hvp(loss: LossFn, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Hessian-vector product ``H(w) v`` (Pearlmutter's double backward).

    Parameters
    ----------
    loss : callable
        ``loss(w) -> scalar``, twice differentiable by autograd.
    w, v : (P,) tensors

    Returns
    -------
    (P,) tensor
    """
    if w.ndim != 1 or v.shape != w.shape:
        raise ValueError(f"w and v must be flat tensors of the same shape, got {tuple(w.shape)} and {tuple(v.shape)}")
    return _Graph(loss, w).hvp(v)


def _eigenpairs(graph: _Graph, k: int, start: torch.Tensor | None, iterations: int, seed: int,
                method: str) -> tuple[torch.Tensor, torch.Tensor]:
    w = graph.w
    p = w.numel()
    if not (1 <= k <= p):
        raise ValueError(f"k must be in [1, {p}], got {k}")
    if method not in ("auto", "lanczos", "dense"):
        raise ValueError(f"method must be 'auto', 'lanczos' or 'dense', got {method!r}")
    if method == "dense" or (method == "auto" and p <= 512):
        evals_d, evecs_d = torch.linalg.eigh(graph.hessian())
        return evals_d.flip(0)[:k].clone(), evecs_d.T.flip(0)[:k].clone()
    m = min(p, max(int(iterations), k + 2))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    q = torch.randn(p, generator=gen, dtype=w.dtype).to(w.device)
    if start is not None:
        s = start.reshape(-1, p).to(dtype=w.dtype, device=w.device).sum(dim=0)
        if float(s.norm()) > 0:
            q = s / s.norm() + 1e-3 * q / q.norm()
    basis = torch.empty(m, p, dtype=w.dtype, device=w.device)
    basis[0] = q / q.norm()
    alphas: list[float] = []
    betas: list[float] = []
    used = m
    for j in range(m):
        hv = graph.hvp(basis[j])
        alphas.append(float(torch.dot(hv, basis[j])))
        if j == m - 1:
            break
        r = hv - basis[: j + 1].T @ (basis[: j + 1] @ hv)
        r = r - basis[: j + 1].T @ (basis[: j + 1] @ r)  # twice is enough (Parlett)
        beta = float(r.norm())
        if beta < 1e-12 * max(1.0, abs(alphas[-1])):
            used = j + 1
            break
        betas.append(beta)
        basis[j + 1] = r / beta
    t = np.diag(alphas[:used]) + np.diag(betas[: used - 1], 1) + np.diag(betas[: used - 1], -1)
    evals, evecs = np.linalg.eigh(t)
    order = np.argsort(evals)[::-1][:k]
    vecs = torch.as_tensor(evecs[:, order].T.copy(), dtype=w.dtype, device=w.device) @ basis[:used]
    vecs = vecs / vecs.norm(dim=1, keepdim=True)
    return torch.as_tensor(evals[order].copy(), dtype=w.dtype, device=w.device), vecs


def top_eigenpairs(loss: LossFn, w: torch.Tensor, k: int = 1, start: torch.Tensor | None = None,
                   iterations: int = 30, seed: int = 0, method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` Hessian eigenpairs: Lanczos with full reorthogonalisation over :func:`hvp`, or dense.

    Parameters
    ----------
    loss : callable
        ``loss(w) -> scalar``.
    w : (P,) tensor
        Where to evaluate the Hessian.
    k : int
        Number of (largest algebraic) eigenpairs, ``1 <= k <= P``.
    start : (P,) or (m, P) tensor, optional
        Lanczos start vector(s), e.g. the previous step's eigenvectors (warm start: they are summed, plus a small
        random part so that no eigenvector is missed).
    iterations : int
        Krylov dimension (capped at ``P``).
    seed : int
        Seed of Lanczos' random start.
    method : {"auto", "lanczos", "dense"}
        ``"dense"`` builds the full Hessian (one batched double backward, ``P`` HVPs at once) and diagonalises it:
        cheaper than sequential HVPs for a few hundred parameters; ``"auto"`` picks it for ``P <= 512``.

    Returns
    -------
    eigenvalues : (k,) tensor
        Descending.
    eigenvectors : (k, P) tensor
        Unit-norm rows (sign arbitrary).
    """
    if w.ndim != 1:
        raise ValueError(f"w must be a flat (P,) tensor, got shape {tuple(w.shape)}")
    return _eigenpairs(_Graph(loss, w), k, start, iterations, seed, method)


def eigenvalue_gradient(loss: LossFn, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Gradient of a simple Hessian eigenvalue, ``grad S(w) = grad_w (u^T H(w) u)`` at its fixed eigenvector ``u``.

    For a simple eigenvalue ``S = u^T H u`` with ``||u|| = 1`` the variation of ``u`` does not contribute
    (Hellmann-Feynman), so ``grad S = nabla^3 L(w)[u, u]``: the gradient of an HVP (third-order autograd).

    Parameters
    ----------
    loss : callable
        ``loss(w) -> scalar``, three times differentiable by autograd.
    w : (P,) tensor
    u : (P,) tensor
        Unit eigenvector of ``H(w)``.

    Returns
    -------
    (P,) tensor
    """
    if w.ndim != 1 or u.shape != w.shape:
        raise ValueError(f"w and u must be flat tensors of the same shape, got {tuple(w.shape)} and {tuple(u.shape)}")
    return _Graph(loss, w).eigenvalue_gradient(u)


def _sigma2(sharp: torch.Tensor, grads_s: torch.Tensor, grad: torch.Tensor, lr: float, dt: float) -> torch.Tensor:
    """Variances solving the discrete complementarity problem of :func:`central_flow_velocity` (NNLS)."""
    # Next sharpness (linearised): S_i - lr dt <gS_i, g> - (lr dt / 2) sum_j s_j <gS_i, gS_j> <= 2/lr, s >= 0,
    # complementarity. With A = G G^T and c = (S - 2/lr - lr dt G g) / (lr dt / 2): A s >= c, s >= 0,
    # s.(A s - c) = 0, the KKT system of min_{s >= 0} 1/2 s^T A s - c^T s = 1/2 ||R s - R^{-T} c||^2 + const.
    g = grads_s.detach().cpu().double().numpy()
    a = g @ g.T
    a = a + 1e-12 * np.trace(a) / len(a) * np.eye(len(a))
    c = ((sharp.detach().cpu().double().numpy() - 2.0 / lr - lr * dt * g @ grad.detach().cpu().double().numpy())
         / (0.5 * lr * dt))
    if np.all(c <= 0):
        return torch.zeros(len(a), dtype=grad.dtype, device=grad.device)
    r = np.linalg.cholesky(a).T
    s, _ = nnls(r, np.linalg.solve(r.T, c))
    return torch.as_tensor(s, dtype=grad.dtype, device=grad.device)


def central_flow_velocity(loss: LossFn, w: torch.Tensor, lr: float, k: int = 1, dt: float = 0.0,
                          start: torch.Tensor | None = None, iterations: int = 30, method: str = "auto"
                          ) -> dict[str, torch.Tensor]:
    """Velocity of the GD central flow at ``w`` (Cohen et al. 2024, sec. 3).

    Parameters
    ----------
    loss : callable
        ``loss(w) -> scalar``.
    w : (P,) tensor
    lr : float
        GD learning rate (> 0); time is counted in GD steps.
    k : int
        Number of top eigenvalues held at ``2/lr`` (diagonal variance approximation for ``k > 1``).
    dt : float
        Step of the integrator the velocity is for (>= 0). ``dt = 0`` gives the continuous-time flow (active
        constraint iff ``S >= 2/lr`` and ``<grad S, grad L> < 0``); ``dt > 0`` imposes ``S(w + dt v) <= 2/lr`` to
        first order, which also pulls a discrete iterate that overshot back onto the edge.
    start : tensor, optional
        Warm start for :func:`top_eigenpairs`.
    iterations : int
        Lanczos iterations.
    method : str
        Eigensolver of :func:`top_eigenpairs`.

    Returns
    -------
    dict
        ``velocity`` (P,), ``grad`` (P,) the loss gradient, ``sigma2`` (k,), ``sharpness`` (k,) the top
        eigenvalues, ``eigenvectors`` (k, P), ``loss`` () and ``central_loss`` () = ``L + 1/2 sum sigma_i^2 S_i``,
        the predicted time-averaged GD loss (sec. 3).
    """
    if not (lr > 0):
        raise ValueError(f"lr must be > 0, got {lr}")
    if not (dt >= 0):
        raise ValueError(f"dt must be >= 0, got {dt}")
    graph = _Graph(loss, w)
    value, grad = graph.value.detach(), graph.grad.detach()
    sharp, vecs = _eigenpairs(graph, k, start, iterations, 0, method)
    grads_s = torch.stack([graph.eigenvalue_gradient(u) for u in vecs])
    if dt > 0:
        sigma2 = _sigma2(sharp, grads_s, grad, lr, dt)
    else:
        active = sharp >= 2.0 / lr
        sigma2 = torch.zeros_like(sharp)
        if bool(active.any()):
            sub = grads_s[active]
            # Continuous complementarity on the active set: A s = -2 G g (dS/dt = 0), s >= 0 (sec. 3).
            gram = (sub @ sub.T).detach().cpu().double().numpy()
            rhs = (-2.0 * sub @ grad).detach().cpu().double().numpy()
            gram = gram + 1e-12 * np.trace(gram) / len(gram) * np.eye(len(gram))
            r = np.linalg.cholesky(gram).T
            s, _ = nnls(r, np.linalg.solve(r.T, rhs))
            sigma2[active] = torch.as_tensor(s, dtype=w.dtype, device=w.device)
    velocity = -lr * (grad + 0.5 * (sigma2[:, None] * grads_s).sum(dim=0))
    return {"velocity": velocity, "grad": grad, "sigma2": sigma2, "sharpness": sharp, "eigenvectors": vecs,
            "loss": value.detach(), "central_loss": (value + 0.5 * (sigma2 * sharp).sum()).detach()}


@dataclass
class CentralFlow:
    """A central-flow trajectory sampled every ``record_every`` Euler steps.

    Attributes
    ----------
    times : (m,) ndarray
        Time in GD steps.
    weights : (m, P) tensor
        ``w(t)``.
    loss : (m,) ndarray
        ``L(w(t))``.
    central_loss : (m,) ndarray
        Predicted time-averaged GD loss ``L + 1/2 sum sigma_i^2 S_i``.
    sharpness : (m, k) ndarray
        Top eigenvalues.
    sigma2 : (m, k) ndarray
        Predicted oscillation variances along the eigenvectors.
    eigenvectors : (m, k, P) tensor
        Top eigenvectors.
    """

    times: np.ndarray
    weights: torch.Tensor
    loss: np.ndarray
    central_loss: np.ndarray
    sharpness: np.ndarray
    sigma2: np.ndarray
    eigenvectors: torch.Tensor


def central_flow(loss: LossFn, w0: torch.Tensor, lr: float, steps: float, dt: float = 0.25, k: int = 1,
                 record_every: int = 1, iterations: int = 30, stabilize: bool = True,
                 method: str = "auto") -> CentralFlow:
    """Integrate the GD central flow from ``w0`` for ``steps`` GD steps (Cohen et al. 2024, sec. 3).

    Parameters
    ----------
    loss : callable
        ``loss(w) -> scalar`` (:func:`flat_loss`).
    w0 : (P,) tensor
        Initial weights; the theory assumes ``S(w0) <= 2/lr`` (GD starts stable).
    lr : float
        GD learning rate (> 0).
    steps : float
        Duration in GD steps (> 0).
    dt : float
        Euler step in GD steps (0 < dt <= 1): below the edge this is gradient flow ``dw/dt = -lr grad L``
        discretised at ``dt`` (``dt = 1`` would be GD itself), so ``dt`` well below 1 is needed to approximate
        the flow; the default 0.25 keeps the Euler error at ~1/8 of GD's own deviation from gradient flow.
    k : int
        Eigenvalues held at the edge.
    record_every : int
        Keep every ``record_every``-th Euler step (plus the first).
    iterations : int
        Lanczos iterations per step (warm-started from the previous eigenvectors).
    method : str
        Eigensolver of :func:`top_eigenpairs`.
    stabilize : bool
        Impose the edge constraint on the linearised next sharpness (``dt`` in :func:`central_flow_velocity`);
        ``False`` uses the continuous-time complementarity only (the discrete iterate may drift off the edge).

    Returns
    -------
    CentralFlow
    """
    if not (lr > 0):
        raise ValueError(f"lr must be > 0, got {lr}")
    if not (steps > 0) or not math.isfinite(steps):
        raise ValueError(f"steps must be a finite number > 0, got {steps}")
    if not (0 < dt <= 1):
        raise ValueError(f"dt must be in (0, 1], got {dt}")
    if w0.ndim != 1:
        raise ValueError(f"w0 must be a flat (P,) tensor, got shape {tuple(w0.shape)}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    n = max(1, math.ceil(steps / dt - 1e-9))
    h = steps / n
    w = w0.detach().clone()
    start = None
    rec: dict[str, list] = {"t": [], "w": [], "loss": [], "cl": [], "s": [], "sig": [], "u": []}
    for i in range(n + 1):
        out = central_flow_velocity(loss, w, lr, k, dt=h if stabilize else 0.0, start=start, iterations=iterations,
                                    method=method)
        start = out["eigenvectors"]
        if not torch.isfinite(out["loss"]):
            raise FloatingPointError(f"central flow diverged at t = {i * h:g} steps")
        if i % record_every == 0 or i == n:
            rec["t"].append(i * h)
            rec["w"].append(w.detach().clone())
            rec["loss"].append(float(out["loss"]))
            rec["cl"].append(float(out["central_loss"]))
            rec["s"].append(out["sharpness"].detach().cpu().numpy())
            rec["sig"].append(out["sigma2"].detach().cpu().numpy())
            rec["u"].append(out["eigenvectors"].detach().clone())
        if i < n:
            w = (w + h * out["velocity"]).detach()
    return CentralFlow(np.array(rec["t"]), torch.stack(rec["w"]), np.array(rec["loss"]), np.array(rec["cl"]),
                       np.array(rec["s"]), np.array(rec["sig"]), torch.stack(rec["u"]))
