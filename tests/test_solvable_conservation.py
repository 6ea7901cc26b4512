"""learnmech.solvable.conservation: conserved quantities vs closed forms and brute-force GD steps."""

from __future__ import annotations

import math

import pytest
import torch

from learnmech.solvable.conservation import (
    gd_step_drift,
    gradient_flow_integral,
    layer_imbalance,
    neuron_balance,
    predicted_gd_drift,
    weight_decay_decay,
)


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    return x, torch.randn(16, 2, generator=gen, dtype=torch.float64)


def _linear_params(seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 4, generator=gen, dtype=torch.float64) * 0.5,
            torch.randn(3, 5, generator=gen, dtype=torch.float64) * 0.5,
            torch.randn(2, 3, generator=gen, dtype=torch.float64) * 0.5]


def _linear_loss(w: list[torch.Tensor]) -> torch.Tensor:
    x, y = _data()
    return 0.5 * (x @ w[0].T @ w[1].T @ w[2].T - y).square().sum(dim=1).mean()


def _two_layer_params(seed: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(6, 4, generator=gen, dtype=torch.float64) * 0.5,
            torch.randn(6, generator=gen, dtype=torch.float64) * 0.1,
            torch.randn(2, 6, generator=gen, dtype=torch.float64) * 0.5]


def _two_layer_loss(act):  # noqa: ANN001, ANN202
    x, y = _data()
    return lambda w: 0.5 * (act(x @ w[0].T + w[1]) @ w[2].T - y).square().sum(dim=1).mean()


def _grads(loss_fn, w):  # noqa: ANN001, ANN202
    leaves = [p.detach().clone().requires_grad_(True) for p in w]
    return [g.detach() for g in torch.autograd.grad(loss_fn(leaves), leaves)]


def test_layer_imbalance_closed_form() -> None:
    w1 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)  # (1, 2)
    w2 = torch.tensor([[3.0], [4.0]], dtype=torch.float64)  # (2, 1)
    (d,) = layer_imbalance([w1, w2])
    assert torch.allclose(d, torch.tensor([[25.0 - 5.0]], dtype=torch.float64))


def test_neuron_balance_closed_form() -> None:
    w_in = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    w_out = torch.tensor([[1.0, 2.0], [2.0, 0.0]])
    b = torch.tensor([0.0, 2.0])
    assert torch.allclose(neuron_balance(w_in, w_out), torch.tensor([25.0 - 5.0, 1.0 - 4.0]))
    assert torch.allclose(neuron_balance(w_in, w_out, b), torch.tensor([20.0, 1.0]))


def test_gd_step_drift_is_exact_for_linear_net() -> None:
    w = _linear_params()
    g = _grads(_linear_loss, w)
    lr = 0.1
    after = layer_imbalance([p - lr * q for p, q in zip(w, g, strict=False)])
    before = layer_imbalance(w)
    predicted = gd_step_drift(lambda *m: layer_imbalance(m), g, lr)
    for a, b, p in zip(after, before, predicted, strict=False):
        assert torch.allclose(a - b, p, atol=1e-12)


def test_gd_step_drift_is_exact_for_relu_but_not_tanh() -> None:
    w = _two_layer_params()
    lr = 0.2
    for act, exact in ((torch.relu, True), (torch.tanh, False)):
        g = _grads(_two_layer_loss(act), w)
        change = neuron_balance(*[p - lr * q for p, q in (zip([w[0], w[2], w[1]], [g[0], g[2], g[1]], strict=False))]) \
            - neuron_balance(w[0], w[2], w[1])
        predicted = gd_step_drift(neuron_balance, [g[0], g[2], g[1]], lr)
        assert torch.allclose(change, predicted, atol=1e-12) is exact


def test_scale_invariant_norm_grows_by_lr2_grad2() -> None:
    x, y = _data()
    v = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def loss(w: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * (x @ (w[0] / w[0].norm(dim=1, keepdim=True)).T @ torch.ones(3, 2, dtype=torch.float64)
                      - y).square().mean()

    (g,) = _grads(loss, [v])
    lr = 0.5
    growth = (v - lr * g).square().sum(dim=1) - v.square().sum(dim=1)
    assert torch.allclose(growth, gd_step_drift(lambda m: m.square().sum(dim=1), [g], lr), atol=1e-12)
    assert torch.all(growth >= 0)


def test_gradient_flow_conserves_and_predicts_gd_drift() -> None:
    w0 = _linear_params()
    t = 1.0
    flow = gradient_flow_integral(_linear_loss, w0, t, 0.01, lambda w, g: [torch.cat(
        [d.reshape(-1) for d in layer_imbalance(g)]), torch.cat([d.reshape(-1) for d in layer_imbalance(w)])])
    d0 = torch.cat([d.reshape(-1) for d in layer_imbalance(w0)])
    d_flow = torch.cat([d.reshape(-1) for d in layer_imbalance(flow.params)])
    assert (d_flow - d0).abs().max() < 1e-7 * d0.abs().max()  # conserved by the flow (RK4 error only)
    assert flow.losses[-1] < flow.losses[0]
    # GD for the same time: drift = lr int Q(G) ds to first order in lr (relative error O(lr)).
    errors = []
    for steps in (50, 100):
        lr = t / steps
        w = [p.clone() for p in w0]
        for _ in range(steps):
            g = _grads(_linear_loss, w)
            w = [p - lr * q for p, q in zip(w, g, strict=False)]
        drift = torch.cat([d.reshape(-1) for d in layer_imbalance(w)]) - d0
        pred = predicted_gd_drift(lr, flow.integrals[0])
        errors.append(float((drift - pred).norm() / pred.norm()))
    assert errors[0] < 0.1 and errors[1] < 0.6 * errors[0]  # first-order convergence in lr


def test_weight_decay_decay_matches_flow() -> None:
    w0 = _linear_params()
    lam, t = 0.7, 0.8
    flow = gradient_flow_integral(_linear_loss, w0, t, 0.01, lambda w, g: [], weight_decay=lam)
    for got, start in zip(layer_imbalance(flow.params), layer_imbalance(w0), strict=False):
        assert torch.allclose(got, weight_decay_decay(start, lam, t), atol=1e-9)
    assert math.isclose(float(weight_decay_decay(torch.tensor(2.0, dtype=torch.float64), 0.5, 1.0)), 2 * math.exp(-1.0))


@pytest.mark.parametrize("call", [
    lambda: layer_imbalance([torch.ones(2, 2)]),
    lambda: layer_imbalance([torch.ones(2, 3), torch.ones(2, 3)]),
    lambda: neuron_balance(torch.ones(3, 2), torch.ones(1, 4)),
    lambda: neuron_balance(torch.ones(3, 2), torch.ones(1, 3), torch.ones(2)),
    lambda: gd_step_drift(neuron_balance, [torch.ones(3, 2), torch.ones(1, 3)], 0.0),
    lambda: predicted_gd_drift(-1.0, torch.ones(2)),
    lambda: weight_decay_decay(torch.ones(2), -0.1, 1.0),
    lambda: gradient_flow_integral(lambda w: w[0].sum(), [torch.ones(2)], 0.0, 0.1, lambda w, g: []),
])
def test_bad_input(call) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        call()
