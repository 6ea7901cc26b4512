"""learnmech.hyper.central_flow: curvature primitives vs dense/finite differences, the flow vs closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from learnmech.hyper.central_flow import (
    central_flow,
    central_flow_velocity,
    eigenvalue_gradient,
    flat_loss,
    hvp,
    top_eigenpairs,
)


def _mlp_loss() -> tuple:  # noqa: ANN202
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    x = torch.randn(10, 3, dtype=torch.float64)
    y = torch.randn(10, 1, dtype=torch.float64)
    return (*flat_loss(model, nn.MSELoss(), (x, y)), model, x, y)


def test_flat_loss_matches_module() -> None:
    loss, w0, model, x, y = _mlp_loss()
    assert math.isclose(float(loss(w0).detach()), float(nn.MSELoss()(model(x), y).detach()), rel_tol=1e-12)
    model.zero_grad()
    nn.MSELoss()(model(x), y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(torch.func.grad(loss)(w0), expected, atol=1e-12)


def test_hvp_and_eigenpairs_match_dense_hessian() -> None:
    loss, w0, *_ = _mlp_loss()
    dense = torch.func.hessian(loss)(w0)
    v = torch.randn(w0.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(hvp(loss, w0, v), dense @ v, atol=1e-10)
    evals = torch.linalg.eigvalsh(dense).flip(0)[:3]
    for method in ("dense", "lanczos"):
        got, vecs = top_eigenpairs(loss, w0, k=3, method=method, iterations=w0.numel())
        assert torch.allclose(got, evals, atol=1e-8), method
        assert torch.allclose((dense @ vecs.T).T, got[:, None] * vecs, atol=1e-6), method


def test_eigenvalue_gradient_matches_finite_differences() -> None:
    loss, w0, *_ = _mlp_loss()
    _, vecs = top_eigenpairs(loss, w0, method="dense")
    grad = eigenvalue_gradient(loss, w0, vecs[0])
    direction = torch.randn(w0.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    eps = 1e-5
    top = [float(torch.linalg.eigvalsh(torch.func.hessian(loss)(w0 + s * eps * direction))[-1]) for s in (1, -1)]
    assert math.isclose(float(grad @ direction), (top[0] - top[1]) / (2 * eps), rel_tol=1e-5)


def _toy(s0: float, c: float):  # noqa: ANN202
    """L = 1/2 (s0 + y) x^2 - c y + 1/2 z^2: sharpness s0 + y along x at x = 0 (Damian et al. 2023's toy)."""
    return lambda w: 0.5 * (s0 + w[1]) * w[0] ** 2 - c * w[1] + 0.5 * w[2] ** 2


def test_central_flow_closed_form_toy() -> None:
    s0, c, lr = 1.0, 0.5, 0.1  # edge at S = 20, i.e. y = 19
    w0 = torch.tensor([0.0, 18.0, 1.0], dtype=torch.float64)
    flow = central_flow(_toy(s0, c), w0, lr, steps=40, dt=0.25)
    y, z = flow.weights[:, 1].numpy(), flow.weights[:, 2].numpy()
    t = flow.times
    below = t <= 19.0  # gradient flow below the edge: y = y0 + lr c t, z = (1 - lr dt)^(t/dt) (Euler, exact)
    assert np.allclose(y[below], 18.0 + lr * c * t[below], atol=1e-9)
    assert np.allclose(z, (1 - lr * 0.25) ** (t / 0.25), atol=1e-12)
    assert np.all(flow.sigma2[below] == 0)
    on_edge = t >= 21.0  # held at S = 2/lr with sigma^2 = 2c (dS/dt = 0: lr (-c + sigma^2 / 2) = 0)
    assert np.allclose(flow.sharpness[on_edge, 0], 2 / lr, atol=1e-9)
    assert np.allclose(flow.sigma2[on_edge, 0], 2 * c, atol=1e-9)
    assert np.allclose(flow.central_loss[on_edge], -c * y[on_edge] + 0.5 * z[on_edge] ** 2 + 0.5 * 2 * c * 2 / lr,
                       atol=1e-9)
    # Continuous-time velocity on the edge: sigma^2 = 2 <-grad L, grad S> / ||grad S||^2 (Cohen et al. 2024, sec. 3).
    out = central_flow_velocity(_toy(s0, c), torch.tensor([0.0, 19.0, 0.0], dtype=torch.float64), lr)
    assert math.isclose(float(out["sigma2"][0]), 2 * c, rel_tol=1e-9)
    assert float(out["velocity"].abs().max()) < 1e-9


def test_two_eigenvalues_at_the_edge() -> None:
    """Two independent toys: both eigenvalues held at 2/lr with their own sigma_i^2 = 2 c_i (NNLS, k = 2)."""
    c1, c2, lr = 0.5, 0.2, 0.1

    def loss(w: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1 + w[1]) * w[0] ** 2 - c1 * w[1] + 0.5 * (2 + w[3]) * w[2] ** 2 - c2 * w[3]

    w0 = torch.tensor([0.0, 18.5, 0.0, 17.8], dtype=torch.float64)
    flow = central_flow(loss, w0, lr, steps=60, dt=0.25, k=2)
    assert np.allclose(flow.sharpness[-1], [20.0, 20.0], atol=1e-9)
    assert np.allclose(np.sort(flow.sigma2[-1]), [2 * c2, 2 * c1], atol=1e-9)


def test_reduces_to_gradient_flow_below_the_edge() -> None:
    loss, w0, *_ = _mlp_loss()
    s = float(top_eigenpairs(loss, w0)[0][0])
    lr, dt, steps = 0.5 / s, 0.5, 20  # far below the edge along the whole (short) run
    flow = central_flow(loss, w0, lr, steps=steps, dt=dt)
    w = w0.clone()
    for _ in range(round(steps / dt)):
        w = w - lr * dt * torch.func.grad(loss)(w)
    assert np.all(flow.sigma2 == 0) and np.all(flow.sharpness[:, 0] < 2 / lr)
    assert torch.allclose(flow.weights[-1], w, atol=1e-12)
    assert np.allclose(flow.central_loss, flow.loss)


@pytest.mark.parametrize("call", [
    lambda loss, w: central_flow(loss, w, 0.0, 10),
    lambda loss, w: central_flow(loss, w, 0.1, 10, dt=1.5),
    lambda loss, w: central_flow(loss, w, 0.1, -1),
    lambda loss, w: central_flow(loss, w[None], 0.1, 10),
    lambda loss, w: top_eigenpairs(loss, w, k=0),
    lambda loss, w: top_eigenpairs(loss, w, method="qr"),
    lambda loss, w: hvp(loss, w, w[:2]),
    lambda loss, w: flat_loss("net", nn.MSELoss(), (w, w)),
])
def test_bad_input(call) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        call(_toy(1.0, 0.5), torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64))
