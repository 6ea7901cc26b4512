"""Deep linear networks: exact mode-by-mode learning dynamics (Saxe, McClelland & Ganguli 2014).

A depth-N linear net y = W_N ... W_1 x trained by gradient flow on the MSE with whitened inputs
(Sigma_xx = I) sees the teacher only through Sigma_yx = U S V^T. From small, *balanced and aligned* initial
weights (every layer carries each singular mode with the same strength b, the end-to-end strength is a = b^N)
the modes decouple and each one follows

    tau da/dt = N a^(2 - 2/N) (s - a)

(Saxe et al. 2014, Sec. 1-2: for N = 2 this is tau da/dt = 2 a (s - a); for deeper nets, Sec. 3). For N = 2 it
integrates in closed form to the sigmoid a(t) = s e^(2st/tau) / (e^(2st/tau) - 1 + s/a0), and the time to learn
a mode (reach s/2) is tau/(2s) log(s/a0 - 1): strong modes first, stage-like. For N > 2 the ODE is integrated
numerically; the learning time is still ~ 1/s but grows like a0^-(1 - 2/N) instead of log(1/a0).

Units: time t is in units of tau; with gradient descent at learning rate lr, t = steps * lr / tau (we use
tau = 1, so t = steps * lr).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate

from .._aliases import renamed
from .._checks import as_array, one_of, positive_float, positive_int
from ..seeding import rng as make_rng
from ._linalg import single_threaded

__all__ = [
    "mode_strength",
    "mode_strength_ode",
    "mode_velocity",
    "learning_time",
    "Teacher",
    "make_teacher",
    "DeepLinearRun",
    "simulate",
    "half_times",
]


def _modes(s: object, a0: object) -> tuple[np.ndarray, np.ndarray]:
    s_arr = as_array(s, "s", ndim=(0, 1)).reshape(-1)
    if np.any(s_arr <= 0):
        raise ValueError(f"s (singular values) must be > 0, got {s_arr}")
    a0_arr = np.broadcast_to(as_array(a0, "a0", ndim=(0, 1)).reshape(-1), s_arr.shape).astype(float)
    if np.any(a0_arr <= 0) or np.any(a0_arr >= s_arr):
        raise ValueError(f"a0 (initial strength) must lie in (0, s) for every mode, got a0={a0_arr}, s={s_arr}")
    return s_arr, a0_arr


def _times(t: object) -> np.ndarray:
    times = as_array(t, "t", ndim=(0, 1)).reshape(-1)
    if np.any(times < 0):
        raise ValueError("t (times) must be >= 0")
    return times


def mode_strength(t: object, s: object, a0: object, tau: float = 1.0) -> np.ndarray:
    """Closed-form strength of each singular mode of a two-layer linear net under gradient flow.

    a(t) = s e^(2st/tau) / (e^(2st/tau) - 1 + s/a0) (Saxe, McClelland & Ganguli 2014, Sec. 1), evaluated as
    s / (1 + (s/a0 - 1) e^(-2st/tau)) to stay finite for large t. t: ``(T,)`` times (units of tau) >= 0;
    s: ``(M,)`` teacher singular values > 0; a0: scalar or ``(M,)`` initial strengths in (0, s). Returns
    ``(T, M)`` strengths (units of s).
    """
    times = _times(t)
    s_arr, a0_arr = _modes(s, a0)
    tau = positive_float(tau, "tau")
    decay = np.exp(-2.0 * np.outer(times, s_arr) / tau)
    return s_arr / (1.0 + (s_arr / a0_arr - 1.0) * decay)


def mode_velocity(a: object, s: object, depth: int = 2, tau: float = 1.0) -> np.ndarray:
    """da/dt = depth a^(2 - 2/depth) (s - a) / tau for balanced deep linear nets (Saxe et al. 2014, Sec. 3).

    a: strengths (any shape broadcastable with s). Returns an array of the broadcast shape (units of s / tau).
    """
    depth = positive_int(depth, "depth", minimum=2)
    tau = positive_float(tau, "tau")
    a_arr = np.asarray(a, dtype=float)
    return depth * np.abs(a_arr) ** (2.0 - 2.0 / depth) * (np.asarray(s, dtype=float) - a_arr) / tau


def mode_strength_ode(
    t: object, s: object, a0: object, tau: float = 1.0, depth: int = 2, rtol: float = 1e-10
) -> np.ndarray:
    """Mode strengths of a depth-``depth`` balanced linear net, by integrating the mode ODE with scipy.

    Integrates tau da/dt = N a^(2-2/N) (s - a) (N = depth, the number of weight matrices) in log a, which keeps
    the tiny-a0 plateau accurate. t: ``(T,)`` times >= 0; s: ``(M,)``; a0: scalar or ``(M,)`` in (0, s).
    Returns ``(T, M)``. For depth 2 it reproduces :func:`mode_strength` (tests check this).
    """
    times = _times(t)
    s_arr, a0_arr = _modes(s, a0)
    tau = positive_float(tau, "tau")
    depth = positive_int(depth, "depth", minimum=2)
    rtol = positive_float(rtol, "rtol")

    def rhs(_time: float, log_a: np.ndarray) -> np.ndarray:
        a = np.exp(log_a)
        # d log a / dt = N a^(1 - 2/N) (s - a) / tau
        return depth * a ** (1.0 - 2.0 / depth) * (s_arr - a) / tau

    order = np.argsort(times)
    sorted_t = times[order]
    sol = integrate.solve_ivp(
        rhs, (0.0, float(sorted_t[-1]) if sorted_t[-1] > 0 else 1.0), np.log(a0_arr), method="LSODA",
        t_eval=sorted_t, rtol=rtol, atol=rtol * 1e-2,
    )
    if not sol.success:  # pragma: no cover - LSODA on this smooth scalar ODE does not fail in practice
        raise RuntimeError(f"mode ODE integration failed: {sol.message}")
    out = np.empty((times.size, s_arr.size))
    out[order] = np.exp(sol.y.T)
    return out


def learning_time(s: object, a0: object, tau: float = 1.0, depth: int = 2, fraction: float = 0.5) -> np.ndarray:
    """Time for each mode to reach ``fraction`` of its final strength s, shape ``(M,)`` (units of tau).

    Depth 2, closed form: t = tau/(2s) log(a_f (s - a0) / (a0 (s - a_f))) with a_f = fraction * s (Saxe et al.
    2014, Sec. 1); fraction = 1/2 gives tau/(2s) log(s/a0 - 1) ~ (tau/s) log(s/a0) / 2. Deeper: the exact integral
    t = tau int_{a0}^{a_f} da / (N a^(2-2/N) (s - a)), which for a0 << s scales as
    tau a0^-(1-2/N) / (s (N - 2)): still ~ 1/s, but no longer logarithmic in a0.
    """
    s_arr, a0_arr = _modes(s, a0)
    tau = positive_float(tau, "tau")
    depth = positive_int(depth, "depth", minimum=2)
    fraction = positive_float(fraction, "fraction")
    a_f = fraction * s_arr
    if fraction >= 1 or np.any(a_f <= a0_arr):
        raise ValueError(f"fraction must lie in (a0/s, 1), got {fraction}")
    if depth == 2:
        return tau / (2 * s_arr) * np.log(a_f * (s_arr - a0_arr) / (a0_arr * (s_arr - a_f)))
    out = np.empty_like(s_arr)
    for i, (s_i, a0_i, af_i) in enumerate(zip(s_arr, a0_arr, a_f, strict=True)):
        # Substitute u = log a so the integrand is smooth over the many decades between a0 and s.
        def integrand(u: float, s_i: float = s_i) -> float:
            a = math.exp(u)
            return 1.0 / (depth * a ** (1.0 - 2.0 / depth) * (s_i - a))

        out[i] = tau * integrate.quad(integrand, math.log(a0_i), math.log(af_i), limit=200, epsabs=0, epsrel=1e-10)[0]
    return out


@dataclass(frozen=True)
class Teacher:
    """A linear teacher Sigma_yx = U diag(s) V^T. U: ``(out, M)`` and V: ``(in, M)`` orthonormal columns."""

    U: np.ndarray
    s: np.ndarray
    V: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """``(out, in)`` the teacher map U diag(s) V^T."""
        return (self.U * self.s) @ self.V.T


@renamed(input_dim="in_dim", output_dim="out_dim")
def make_teacher(in_dim: int, out_dim: int, singular_values: object, seed: int = 0) -> Teacher:
    """A random-orientation teacher with the given singular values (Haar-random singular vectors).

    ``input_dim`` and ``output_dim`` are deprecated keyword aliases of ``in_dim`` and ``out_dim``.
    """
    input_dim = positive_int(in_dim, "in_dim")
    output_dim = positive_int(out_dim, "out_dim")
    s = as_array(singular_values, "singular_values", ndim=1)
    if np.any(s <= 0):
        raise ValueError("singular_values must be > 0")
    if s.size > min(input_dim, output_dim):
        raise ValueError(f"singular_values has {s.size} modes but min(input_dim, output_dim) = "
                         f"{min(input_dim, output_dim)}")
    gen = make_rng(seed)
    U = np.linalg.qr(gen.standard_normal((output_dim, s.size)))[0]
    V = np.linalg.qr(gen.standard_normal((input_dim, s.size)))[0]
    return Teacher(U=U, s=s.copy(), V=V)


def whitened_inputs(num_samples: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``(num_samples, dim)`` inputs with exactly whitened second moment X^T X / num_samples = I (needs
    num_samples >= dim): Gaussian draws orthonormalised by QR and rescaled by sqrt(num_samples)."""
    num_samples = positive_int(num_samples, "num_samples")
    dim = positive_int(dim, "dim")
    if num_samples < dim:
        raise ValueError(f"num_samples must be >= dim={dim} to whiten, got {num_samples}")
    Q = np.linalg.qr(rng.standard_normal((num_samples, dim)))[0]
    return math.sqrt(num_samples) * Q


@dataclass(frozen=True)
class DeepLinearRun:
    """Measured trajectory of a trained deep linear net.

    times: ``(T,)`` in units of tau (= steps * lr). strengths: ``(T, M)`` projections u_i^T W_N...W_1 v_i of the
    end-to-end map on the teacher's singular vectors. loss: ``(T,)`` training MSE (1/2 mean squared error).
    initial_strengths: ``(M,)`` strengths at t = 0 (= a0 for balanced init; random for random init).
    """

    times: np.ndarray
    strengths: np.ndarray
    loss: np.ndarray
    teacher: Teacher
    depth: int
    init: str
    lr: float

    @property
    def initial_strengths(self) -> np.ndarray:
        return self.strengths[0]


def _init_weights(
    teacher: Teacher, depth: int, hidden: int, init: str, a0: float, gen: np.random.Generator
) -> list[np.ndarray]:
    in_dim, out_dim, modes = teacher.V.shape[0], teacher.U.shape[0], teacher.s.size
    dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
    if init == "balanced":
        # Saxe et al. (2014), Sec. 2 "decoupled initial conditions": every layer carries mode i with the same
        # strength b = a0^(1/N), routed through orthonormal hidden directions O_l, so W_N...W_1 = a0 U V^T.
        b = a0 ** (1.0 / depth)
        routes = [teacher.V] + [np.linalg.qr(gen.standard_normal((hidden, modes)))[0] for _ in range(depth - 1)]
        routes.append(teacher.U)
        return [b * routes[l + 1] @ routes[l].T for l in range(depth)]
    # Random Gaussian init, scaled so a typical end-to-end projection u^T W v has size a0:
    # Var(u^T W_N...W_1 v) = sigma^(2N) hidden^(N-1), so sigma = (a0^2 / hidden^(N-1))^(1/(2N)).
    sigma = (a0**2 / hidden ** (depth - 1)) ** (1.0 / (2 * depth))
    return [sigma * gen.standard_normal((dims[l + 1], dims[l])) for l in range(depth)]


def _linear_net(weights: list[np.ndarray]) -> torch.nn.Sequential:
    """A float64 stack of bias-free ``Linear`` layers holding ``weights`` (each ``(out, in)``, first layer first)."""
    net = torch.nn.Sequential(*[torch.nn.Linear(w.shape[1], w.shape[0], bias=False) for w in weights]).double()
    with torch.no_grad():
        for layer, w in zip(net, weights, strict=True):
            layer.weight.copy_(torch.from_numpy(w))
    return net


def _end_to_end(net: torch.nn.Sequential) -> torch.Tensor:
    """The product ``W_L ... W_1`` of the layers' weights, ``(output_dim, input_dim)``."""
    product = net[0].weight
    for layer in list(net)[1:]:
        product = layer.weight @ product
    return product


def _train_recording(net: torch.nn.Sequential, X: np.ndarray, Y: np.ndarray, teacher: Teacher, lr: float,
                     num_steps: int, record_steps: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """Full-batch GD on ``(1/2) mean ||y - f(x)||^2`` for ``num_steps`` steps of size ``lr``.

    X: ``(P, input_dim)``; Y: ``(P, output_dim)``. At each step in ``record_steps`` (sorted) it records the mode
    strengths ``u_m^T W_end-to-end v_m`` (``(M,)``) and the loss. FloatingPointError with ``.step`` on a
    non-finite loss.
    """
    x_t, y_t = torch.from_numpy(X), torch.from_numpy(Y)
    U_t, V_t = torch.from_numpy(teacher.U), torch.from_numpy(teacher.V)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    strengths, losses = [], []
    next_record = 0
    # The matrices are tiny: intra-op threads only add synchronisation (20x slower on a loaded 2-core box).
    with single_threaded():
        for step in range(num_steps + 1):
            loss = 0.5 * ((y_t - net(x_t)) ** 2).sum(dim=1).mean()
            if not torch.isfinite(loss):
                error = FloatingPointError(f"loss became non-finite at step {step}")
                error.step = step  # type: ignore[attr-defined] - read by claims to report Diverged(step)
                raise error
            if next_record < record_steps.size and step == record_steps[next_record]:
                with torch.no_grad():
                    W = _end_to_end(net)
                    strengths.append(torch.einsum("oi,om,im->m", W, U_t, V_t).numpy().copy())
                losses.append(float(loss.detach()))
                next_record += 1
            if step == num_steps:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return strengths, losses


@renamed(input_dim="in_dim", output_dim="out_dim", num_samples="n_samples")
def simulate(
    singular_values: object,
    t_max: float,
    lr: float,
    *,
    depth: int = 2,
    a0: float = 1e-3,
    init: str = "balanced",
    in_dim: int | None = None,
    out_dim: int | None = None,
    hidden: int | None = None,
    n_samples: int | None = None,
    num_records: int = 200,
    seed: int = 0,
) -> DeepLinearRun:
    """Train a real torch deep linear network by full-batch gradient descent and record its mode strengths.

    singular_values: ``(M,)`` teacher spectrum s. t_max: training time in units of tau (steps = t_max / lr).
    lr: learning rate (= the time step dt / tau of the gradient flow being approximated). depth: number of
    weight matrices (>= 2). a0: initial strength scale. init: "balanced" (Saxe's aligned, balanced init, for
    which the theory is exact as lr -> 0) or "random" (small i.i.d. Gaussian weights of matching scale).
    in_dim/out_dim default to M + 2, hidden (the width) to M + 2, n_samples to 4 * in_dim (whitened exactly).
    ``input_dim``, ``output_dim`` and ``num_samples`` are deprecated keyword aliases of ``in_dim``, ``out_dim`` and
    ``n_samples``.
    The loss is (1/2) mean_mu ||y_mu - f(x_mu)||^2 so its gradient flow is Saxe's tau dW/dt = -dL/dW.
    Raises ``FloatingPointError`` (with the failing ``.step``) if the loss becomes non-finite (lr too large).
    """
    s = as_array(singular_values, "singular_values", ndim=1)
    t_max = positive_float(t_max, "t_max")
    lr = positive_float(lr, "lr")
    depth = positive_int(depth, "depth", minimum=2)
    a0 = positive_float(a0, "a0")
    init = one_of(init, "init", ("balanced", "random"))
    modes = s.size
    input_dim = positive_int(in_dim if in_dim is not None else modes + 2, "in_dim")
    output_dim = positive_int(out_dim if out_dim is not None else modes + 2, "out_dim")
    hidden = positive_int(hidden if hidden is not None else modes + 2, "hidden")
    if hidden < modes:
        raise ValueError(f"hidden must be >= the number of modes ({modes}) to learn them all, got {hidden}")
    num_samples = positive_int(n_samples if n_samples is not None else 4 * input_dim, "n_samples")
    num_records = positive_int(num_records, "num_records", minimum=2)
    if np.any(a0 >= s):
        raise ValueError(f"a0 must be below every singular value, got a0={a0}, s={s}")

    teacher = make_teacher(input_dim, output_dim, s, seed=seed)
    gen = make_rng(seed + 1)
    X = whitened_inputs(num_samples, input_dim, gen)
    Y = X @ teacher.matrix.T
    weights = _init_weights(teacher, depth, hidden, init, a0, gen)

    net = _linear_net(weights)
    num_steps = int(math.ceil(t_max / lr))
    record_steps = np.unique(np.linspace(0, num_steps, num_records).round().astype(int))
    strengths, losses = _train_recording(net, X, Y, teacher, lr, num_steps, record_steps)
    return DeepLinearRun(
        times=record_steps * lr,
        strengths=np.asarray(strengths),
        loss=np.asarray(losses),
        teacher=teacher,
        depth=depth,
        init=init,
        lr=lr,
    )


def half_times(times: object, strengths: object, s: object) -> np.ndarray:
    """First time each mode's strength crosses s/2, by linear interpolation; NaN if it never does.

    times: ``(T,)`` increasing; strengths: ``(T, M)``; s: ``(M,)``. Returns ``(M,)`` in the units of ``times``.
    """
    t = as_array(times, "times", ndim=1)
    a = as_array(strengths, "strengths", ndim=2)
    s_arr = as_array(s, "s", ndim=1)
    if a.shape != (t.size, s_arr.size):
        raise ValueError(f"strengths must have shape ({t.size}, {s_arr.size}), got {a.shape}")
    out = np.full(s_arr.size, np.nan)
    for i in range(s_arr.size):
        above = np.nonzero(a[:, i] >= s_arr[i] / 2)[0]
        if above.size and above[0] > 0:
            j = above[0]
            frac = (s_arr[i] / 2 - a[j - 1, i]) / (a[j, i] - a[j - 1, i])
            out[i] = t[j - 1] + frac * (t[j] - t[j - 1])
        elif above.size:
            out[i] = t[0]
    return out
