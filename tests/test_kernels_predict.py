"""Discrete-time predictions of the infinitely wide (linearised) network: ``gradient_descent`` with heavy-ball
momentum equals a brute-force simulation of the linear model, tends to ``gradient_flow`` as the step shrinks,
and ``max_learning_rate`` is the sharp stability edge; cross-checked with neural-tangents 0.6.5 (reference
numbers made by tests/data/make_nt_predict_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learnmech.kernels import gradient_descent, gradient_flow, max_learning_rate, train_mse_gd

NT = json.loads((Path(__file__).parent / "data" / "nt_predict_reference.json").read_text())


def _linear_problem(n: int = 6, m: int = 3, k: int = 2, p: int = 9, seed: int = 0) -> dict:
    """Features of a linear model f(x) = phi(x) . w over train + test points (its NTK is phi phi^T exactly,
    Jacot et al. 2018, eq. 4), targets and a random initial weight."""
    gen = np.random.default_rng(seed)
    phi = gen.standard_normal((n + m, p)) / np.sqrt(p)
    return dict(phi_train=phi[:n], phi_test=phi[n:], y=gen.standard_normal((n, k)),
                w0=0.5 * gen.standard_normal((p, k)))


def _simulate(prob: dict, lr: float, momentum: float, steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Heavy-ball GD on L = 1/2 mean((phi w - Y)^2), v <- m v - lr dL/dw, w <- w + v: outputs at ``steps``."""
    phi, y = prob["phi_train"], prob["y"]
    w, v = prob["w0"].copy(), np.zeros_like(prob["w0"])
    train, test = [], []
    for step in range(max(steps) + 1):
        if step in steps:
            train.append(phi @ w)
            test.append(prob["phi_test"] @ w)
        grad = phi.T @ (phi @ w - y) / y.size
        v = momentum * v - lr * grad
        w = w + v
    return np.array(train), np.array(test)


def _predict(prob: dict, steps, lr: float, momentum: float = 0.0):
    k_train = prob["phi_train"] @ prob["phi_train"].T
    k_test = prob["phi_test"] @ prob["phi_train"].T
    return gradient_descent(k_train, k_test, prob["y"], steps, lr, momentum,
                            y0_train=prob["phi_train"] @ prob["w0"], y0_test=prob["phi_test"] @ prob["w0"])


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("fraction", [0.3, 0.97])  # of max_learning_rate: smooth and near-edge oscillating
def test_gradient_descent_equals_brute_force_linear_model(momentum: float, fraction: float) -> None:
    prob = _linear_problem()
    k_train = prob["phi_train"] @ prob["phi_train"].T
    lr = fraction * max_learning_rate(k_train, prob["y"].size, momentum)
    steps = [0, 1, 2, 7, 50, 333]
    train, test = _simulate(prob, lr, momentum, steps)
    pred = _predict(prob, steps, lr, momentum)
    assert pred.train.shape == (6, 6, 2) and pred.test.shape == (6, 3, 2)
    np.testing.assert_array_equal(pred.t, steps)
    scale = np.abs(train).max()
    np.testing.assert_allclose(pred.train, train, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(pred.test, test, rtol=0, atol=1e-12 * scale)


def test_one_dimensional_targets_and_scalar_steps() -> None:
    prob = _linear_problem(k=1)
    k_train = prob["phi_train"] @ prob["phi_train"].T
    k_test = prob["phi_test"] @ prob["phi_train"].T
    y = prob["y"][:, 0]
    pred = gradient_descent(k_train, k_test, y, 9, 0.4, 0.3)
    column = gradient_descent(k_train, k_test, prob["y"], [9], 0.4, 0.3)
    assert pred.train.shape == (6,) and pred.test.shape == (3,) and pred.t == 9
    np.testing.assert_allclose(pred.train, column.train[0, :, 0], atol=1e-15)
    np.testing.assert_allclose(pred.test, column.test[0, :, 0], atol=1e-15)
    assert gradient_descent(k_train, None, y, 3, 0.4).test is None


def test_small_steps_converge_to_gradient_flow_at_first_order() -> None:
    # (1 - a)^t -> e^{-a t} at fixed a t, with relative error ~ a^2 t / 2 = (a t) a / 2: first order in lr.
    prob = _linear_problem(seed=1)
    k_train = prob["phi_train"] @ prob["phi_train"].T
    k_test = prob["phi_test"] @ prob["phi_train"].T
    f0, g0 = prob["phi_train"] @ prob["w0"], prob["phi_test"] @ prob["w0"]
    time = 30.0  # steps x lr
    flow = gradient_flow(k_train, k_test, prob["y"], time, lr=1.0, y0_train=f0, y0_test=g0)
    errors = []
    for steps in (100, 1000, 10000):
        pred = gradient_descent(k_train, k_test, prob["y"], steps, time / steps, y0_train=f0, y0_test=g0)
        errors.append(max(np.abs(pred.train - flow.train).max(), np.abs(pred.test - flow.test).max()))
    assert errors[2] < 1e-3 * np.abs(flow.train).max()
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert 8 < coarse / fine < 12  # first order: 10x per decade of lr


def test_small_steps_with_momentum_converge_to_flow_with_effective_rate() -> None:
    # Heavy ball at small lr moves slow modes like gradient flow with lr / (1 - m) (Qian 1999, eq. 12).
    prob = _linear_problem(seed=2)
    k_train = prob["phi_train"] @ prob["phi_train"].T
    k_test = prob["phi_test"] @ prob["phi_train"].T
    momentum, time = 0.75, 20.0
    flow = gradient_flow(k_train, k_test, prob["y"], time, lr=1.0 / (1 - momentum))
    errors = []
    for steps in (200, 2000, 20000):
        pred = gradient_descent(k_train, k_test, prob["y"], steps, time / steps, momentum)
        errors.append(np.abs(pred.test - flow.test).max())
    assert errors[2] < 1e-3 * np.abs(flow.test).max()
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] / errors[2] > 8


def test_max_learning_rate_is_the_sharp_stability_edge() -> None:
    prob = _linear_problem(seed=3)
    k_train = prob["phi_train"] @ prob["phi_train"].T
    size = prob["y"].size
    for momentum in (0.0, 0.6):
        edge = max_learning_rate(k_train, size, momentum)
        np.testing.assert_allclose(edge, 2 * (1 + momentum) * size / np.linalg.eigvalsh(k_train)[-1], rtol=1e-12)
        residual0 = np.abs(_predict(prob, 0, edge).train - prob["y"]).max()
        below = _predict(prob, [3000, np.inf], 0.99 * edge, momentum)
        above = _predict(prob, [3000, np.inf], 1.01 * edge, momentum)
        assert np.abs(below.train[0] - prob["y"]).max() < 1e-6 * residual0  # converged
        np.testing.assert_allclose(below.train[1], prob["y"], atol=1e-12)  # the limit: interpolation
        assert np.abs(above.train[0] - prob["y"]).max() > 1e6 * residual0  # diverged
        assert np.isnan(above.train[1]).any()
        train, _ = _simulate(prob, 1.01 * edge, momentum, [2000])  # brute force agrees that it grows
        assert np.abs(train - prob["y"]).max() > 1e3 * residual0


def test_max_learning_rate_matches_neural_tangents() -> None:
    k_train = np.array(NT["k_train"])
    for case in NT["max_learning_rate"]:
        ours = max_learning_rate(k_train, case["y_train_size"], case["momentum"])
        np.testing.assert_allclose(ours, case["lr"], rtol=1e-13)


def test_momentum_recursion_tends_to_neural_tangents_momentum_ode() -> None:
    # neural-tangents integrates the continuous-time heavy ball f'' = -Theta dL/df - ((1-m)/sqrt(lr)) f' in time
    # sqrt(lr) t; the exact discrete recursion must approach it as sqrt(lr) -> 0 at fixed sqrt(lr) t (at least
    # first order: >= 8x closer per decade of steps). Same loss, momentum and time conventions or no convergence.
    k_train, k_test = np.array(NT["k_train"]), np.array(NT["k_test"])
    y, f0, g0 = np.array(NT["y"]), np.array(NT["f0"]), np.array(NT["g0"])
    errors = []
    for case in NT["momentum_ode"]:
        pred = gradient_descent(k_train, k_test, y, case["steps"], case["lr"], case["momentum"], f0, g0)
        errors.append(max(np.abs(pred.train - np.array(case["train"])).max(),
                          np.abs(pred.test - np.array(case["test"])).max()))
    assert errors[-1] < 1e-4 * np.abs(y).max()
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert coarse / fine > 8


def test_train_mse_gd_with_momentum_follows_the_prediction_for_a_linear_model() -> None:
    # A bias-free nn.Linear is exactly its linearisation: the finite experiment equals the prediction.
    prob = _linear_problem(seed=4)
    model = torch.nn.Linear(9, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(prob["w0"].T))
    lr, momentum, steps = 2.0, 0.8, [0, 3, 40]
    traj = train_mse_gd(model, prob["phi_train"], prob["y"], lr, steps, x_test=prob["phi_test"], momentum=momentum)
    pred = _predict(prob, steps, lr, momentum)
    np.testing.assert_allclose(traj.train, pred.train, atol=1e-12)
    np.testing.assert_allclose(traj.test, pred.test, atol=1e-12)


def test_zero_kernel_directions_do_not_move() -> None:
    prob = _linear_problem(n=6, p=3, seed=5)  # rank-3 train kernel
    pred = _predict(prob, [0, 10, np.inf], 0.5, 0.5)
    k_train = prob["phi_train"] @ prob["phi_train"].T
    evals, evecs = np.linalg.eigh(k_train)
    null = evecs[:, evals < 1e-10 * evals.max()]
    f0 = prob["phi_train"] @ prob["w0"]
    for frame in pred.train:
        np.testing.assert_allclose(null.T @ frame, null.T @ f0, atol=1e-12)
    assert np.isfinite(pred.test).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda k, y: gradient_descent(k, None, y, 1.5, 0.1), "steps"),
        (lambda k, y: gradient_descent(k, None, y, -1, 0.1), "steps"),
        (lambda k, y: gradient_descent(k, None, y, [[1]], 0.1), "steps"),
        (lambda k, y: gradient_descent(k, None, y, 3, 0.0), "lr"),
        (lambda k, y: gradient_descent(k, None, y, 3, 0.1, momentum=1.0), "momentum"),
        (lambda k, y: gradient_descent(k, None, y, 3, 0.1, momentum=-0.1), "momentum"),
        (lambda k, y: gradient_descent(k[:, :2], None, y, 3, 0.1), "k_train_train"),
        (lambda k, y: gradient_descent(k, np.zeros((2, 5)), y, 3, 0.1), "k_test_train"),
        (lambda k, y: gradient_descent(k, None, y[:3], 3, 0.1), "y_train"),
        (lambda k, y: max_learning_rate(k[:, :2]), "ntk_train"),
        (lambda k, y: max_learning_rate(k + np.triu(np.ones_like(k), 1)), "symmetric"),
        (lambda k, y: max_learning_rate(-k), "positive"),
        (lambda k, y: max_learning_rate(k, y_train_size=0), "y_train_size"),
        (lambda k, y: max_learning_rate(k, momentum=1.5), "momentum"),
        (lambda k, y: max_learning_rate(k, eps=-1.0), "eps"),
    ],
)
def test_bad_input_names_the_argument(call, match: str) -> None:
    prob = _linear_problem()
    k = prob["phi_train"] @ prob["phi_train"].T
    with pytest.raises(ValueError, match=match):
        call(k, prob["y"])


def test_max_learning_rate_accepts_torch_kernels() -> None:
    prob = _linear_problem()
    k = prob["phi_train"] @ prob["phi_train"].T
    assert max_learning_rate(torch.from_numpy(k)) == max_learning_rate(k)
    assert max_learning_rate(k) == pytest.approx(2 * 6 / (np.linalg.eigvalsh(k)[-1] + 1e-12), rel=1e-12)
