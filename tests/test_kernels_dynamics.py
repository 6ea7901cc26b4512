"""Infinite-width dynamics: the closed form equals an ODE solve of the same flow, follows neural-tangents'
loss convention (checked against exact discrete GD of a linear model), and the NNGP posterior is the Gaussian
conditional."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from learnmech.kernels import empirical_ntk, gradient_flow, nngp_posterior
from learnmech.kernels.dynamics import train_mse_gd
from learnmech.kernels.empirical import mlp_network


def _problem(n: int = 6, m: int = 3, k: int = 2, rank: int | None = None, seed: int = 0) -> dict:
    """A consistent joint kernel (a Gram matrix) over train+test, targets and initial outputs."""
    gen = np.random.default_rng(seed)
    features = gen.standard_normal((n + m, rank or (n + m + 2)))
    joint = features @ features.T
    return dict(
        k_tt=joint[:n, :n], k_st=joint[n:, :n], k_ss=joint[n:, n:], y=gen.standard_normal((n, k)),
        f0=gen.standard_normal((n, k)), g0=gen.standard_normal((m, k)),
    )


def test_closed_form_equals_ode_solution() -> None:
    # df/dt = -(lr/N) Theta (f - Y), df*/dt = -(lr/N) Theta_* (f - Y)  (Lee et al. 2019, eq. 9; N = Y.size)
    p = _problem()
    lr, times = 0.3, np.array([0.0, 0.5, 3.0, 20.0])
    n, size = p["y"].shape[0], p["y"].size

    def rhs(_, state: np.ndarray) -> np.ndarray:
        f = state[: p["f0"].size].reshape(p["f0"].shape)
        residual = f - p["y"]
        return np.concatenate([(-lr / size * p["k_tt"] @ residual).ravel(),
                               (-lr / size * p["k_st"] @ residual).ravel()])

    sol = solve_ivp(rhs, (0, times[-1]), np.concatenate([p["f0"].ravel(), p["g0"].ravel()]), t_eval=times,
                    rtol=1e-11, atol=1e-12, method="DOP853")
    pred = gradient_flow(p["k_tt"], p["k_st"], p["y"], times, lr=lr, y0_train=p["f0"], y0_test=p["g0"])
    assert pred.train.shape == (4, n, 2) and pred.test.shape == (4, 3, 2)
    np.testing.assert_allclose(pred.train.reshape(4, -1), sol.y[: p["f0"].size].T, atol=1e-8)
    np.testing.assert_allclose(pred.test.reshape(4, -1), sol.y[p["f0"].size:].T, atol=1e-8)


def test_neural_tangents_reference_values() -> None:
    # Printed by nt.predict.gradient_descent_mse(k, y, learning_rate=0.5)(2.0, f0, g0, kx) with
    # neural-tangents 0.6.5 / jax 0.4.23 in float64 (y, f0, g0 as (n, 1) columns).
    k = np.array([[2.0, 0.5], [0.5, 1.0]])
    kx = np.array([[0.3, 0.8]])
    y, f0, g0 = np.array([[1.0], [-1.0]]), np.array([[0.2], [0.1]]), np.array([[0.05]])
    pred = gradient_flow(k, kx, y, 2.0, lr=0.5, y0_train=f0, y0_test=g0)
    np.testing.assert_allclose(pred.train.ravel(), [0.562071187629795, -0.2185040197698189], atol=1e-14)
    np.testing.assert_allclose(pred.test.ravel(), [-0.23459311281669532], atol=1e-14)


def test_t_zero_inf_and_lr_time_interchangeability() -> None:
    p = _problem(k=1)
    y, f0, g0 = p["y"][:, 0], p["f0"][:, 0], p["g0"][:, 0]
    at0 = gradient_flow(p["k_tt"], p["k_st"], y, 0.0, y0_train=f0, y0_test=g0)
    np.testing.assert_allclose(at0.train, f0, atol=1e-13)
    np.testing.assert_allclose(at0.test, g0, atol=1e-13)
    at_inf = gradient_flow(p["k_tt"], p["k_st"], y, np.inf, y0_train=f0, y0_test=g0)
    np.testing.assert_allclose(at_inf.train, y, atol=1e-10)
    np.testing.assert_allclose(at_inf.test, g0 + p["k_st"] @ np.linalg.solve(p["k_tt"], y - f0), atol=1e-9)
    a = gradient_flow(p["k_tt"], p["k_st"], y, [1.0, 4.0], lr=2.0)
    b = gradient_flow(p["k_tt"], p["k_st"], y, [2.0, 8.0], lr=1.0)
    np.testing.assert_allclose(a.test, b.test, atol=1e-13)
    # default y0 = 0 (the mean over initialisations)
    zero = gradient_flow(p["k_tt"], p["k_st"], y, 3.0, y0_train=np.zeros_like(y), y0_test=np.zeros_like(g0))
    np.testing.assert_allclose(gradient_flow(p["k_tt"], p["k_st"], y, 3.0).test, zero.test, atol=1e-14)


def test_singular_kernel_null_space_does_not_move() -> None:
    p = _problem(n=6, m=2, rank=3)  # train kernel of rank 3
    pred = gradient_flow(p["k_tt"], p["k_st"], p["y"], [1.0, np.inf], y0_train=p["f0"], y0_test=p["g0"])
    assert np.all(np.isfinite(pred.test)) and np.all(np.isfinite(pred.train))
    evals, evecs = np.linalg.eigh(p["k_tt"])
    null = evecs[:, evals < 1e-8 * evals.max()]
    np.testing.assert_allclose(null.T @ pred.train[1], null.T @ p["f0"], atol=1e-8)
    # the test outputs at t=inf are the pseudo-inverse kernel regression
    expected = p["g0"] + p["k_st"] @ np.linalg.pinv(p["k_tt"], rcond=1e-10) @ (p["y"] - p["f0"])
    np.testing.assert_allclose(pred.test[1], expected, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), lr=st.floats(0.01, 10.0))
def test_train_loss_never_increases(seed: int, n: int, lr: float) -> None:
    p = _problem(n=n, m=1, k=1, seed=seed)
    times = np.linspace(0, 50, 11)
    pred = gradient_flow(p["k_tt"], p["k_st"], p["y"], times, lr=lr, y0_train=p["f0"], y0_test=p["g0"])
    loss = 0.5 * np.mean((pred.train - p["y"][None]) ** 2, axis=(1, 2))
    assert np.all(np.diff(loss) <= 1e-12 * max(1.0, loss[0]))


def test_gd_on_a_linear_model_matches_the_discrete_flow_exactly() -> None:
    # hidden_layers=0: the net is linear in its parameters, its NTK is exact and constant, so full-batch GD with
    # loss 1/2 mean (f - y)^2 gives f_k = y + (I - lr Theta / N)^k (f0 - y) -- the same normalisation as
    # gradient_flow, which it approaches for small lr.
    gen = np.random.default_rng(0)
    x, xs = gen.standard_normal((5, 3)), gen.standard_normal((2, 3))
    y = gen.standard_normal((5, 1))
    net = mlp_network(3, 0, 1, W_std=1.2, b_std=0.4, seed=1)
    theta = empirical_ntk(net, np.concatenate([x, xs]))
    lr = 0.5
    traj = train_mse_gd(net, x, y, lr, [0, 1, 10, 40], x_test=xs)
    step = np.eye(5) - lr * theta[:5, :5] / y.size
    for i, k in enumerate(traj.steps):
        residual = np.linalg.matrix_power(step, int(k)) @ (traj.train[0] - y)
        np.testing.assert_allclose(traj.train[i], y + residual, atol=1e-12)
    assert traj.diverged_at is None and np.all(np.diff(traj.loss) < 0)
    small = 0.01
    net2 = mlp_network(3, 0, 1, W_std=1.2, b_std=0.4, seed=1)
    traj2 = train_mse_gd(net2, x, y, small, [0, 2000], x_test=xs)
    flow = gradient_flow(theta[:5, :5], theta[5:, :5], y, 2000, lr=small, y0_train=traj2.train[0],
                         y0_test=traj2.test[0])
    np.testing.assert_allclose(traj2.test[-1], flow.test, atol=2e-3)


def test_gd_reports_divergence() -> None:
    net = mlp_network(2, 0, 1, b_std=1.0, seed=0)  # linear model: lr far above 2 N / lambda_max blows up
    traj = train_mse_gd(net, np.ones((3, 2)), np.ones(3), 1e3, [0, 5000])
    assert traj.diverged_at is not None and traj.diverged_at <= 5000
    assert traj.steps.tolist() == [0]


def test_nngp_posterior_is_the_gaussian_conditional() -> None:
    p = _problem()
    noise = 0.1
    post = nngp_posterior(p["k_tt"], p["k_st"], p["k_ss"], p["y"], noise=noise)
    reg = p["k_tt"] + noise * np.eye(6)
    np.testing.assert_allclose(post.mean, p["k_st"] @ np.linalg.solve(reg, p["y"]), atol=1e-10)
    np.testing.assert_allclose(post.covariance, p["k_ss"] - p["k_st"] @ np.linalg.solve(reg, p["k_st"].T),
                               atol=1e-10)
    diag = nngp_posterior(p["k_tt"], p["k_st"], np.diag(p["k_ss"]), p["y"], noise=noise)
    np.testing.assert_allclose(diag.covariance, np.diag(post.covariance), atol=1e-12)


def test_noiseless_posterior_interpolates_training_points() -> None:
    p = _problem()
    post = nngp_posterior(p["k_tt"], p["k_tt"], p["k_tt"], p["y"])
    np.testing.assert_allclose(post.mean, p["y"], atol=1e-8)
    np.testing.assert_allclose(post.covariance, 0.0, atol=1e-8 * np.abs(p["k_tt"]).max())
    # the posterior mean equals gradient flow to convergence from y0 = 0 (Lee et al. 2019, sec. 2.3)
    flow = gradient_flow(p["k_tt"], p["k_st"], p["y"], np.inf)
    np.testing.assert_allclose(nngp_posterior(p["k_tt"], p["k_st"], p["k_ss"], p["y"]).mean, flow.test, atol=1e-9)


def test_bad_inputs_name_the_argument() -> None:
    p = _problem(k=1)
    k, kx, y = p["k_tt"], p["k_st"], p["y"]
    nan = k.copy()
    nan[0, 0] = np.nan
    not_psd = k - 2 * np.linalg.eigvalsh(k).max() * np.eye(6)
    asym = k.copy()
    asym[0, 1] += 1.0
    cases = [
        (lambda: gradient_flow(nan, kx, y, 1.0), "k_train_train"),
        (lambda: gradient_flow(not_psd, kx, y, 1.0), "positive semi-definite"),
        (lambda: gradient_flow(asym, kx, y, 1.0), "symmetric"),
        (lambda: gradient_flow(k[:, :5], kx, y, 1.0), "k_train_train"),
        (lambda: gradient_flow(k, kx[:, :5], y, 1.0), "k_test_train"),
        (lambda: gradient_flow(k, kx, y[:5], 1.0), "y_train"),
        (lambda: gradient_flow(k, kx, y, -1.0), "t must be >= 0"),
        (lambda: gradient_flow(k, kx, y, [1.0, np.nan]), "t must be >= 0"),
        (lambda: gradient_flow(k, kx, y, 1.0, lr=0.0), "lr"),
        (lambda: gradient_flow(k, kx, y, 1.0, y0_train=np.zeros(3)), "y0_train"),
        (lambda: gradient_flow(k, kx, y, 1.0, y0_test=np.zeros((3, 1))), "y0_test"),
        (lambda: gradient_flow(k, kx, y, 1.0, y0_train=np.zeros((6, 1)), y0_test=np.zeros(5)), "y0_test"),
        (lambda: nngp_posterior(k, kx, p["k_ss"][:2], y), "k_test_test"),
        (lambda: nngp_posterior(k, kx, p["k_ss"], y, noise=-1.0), "noise"),
        (lambda: train_mse_gd(mlp_network(2, 0, 1), np.ones((3, 2)), np.ones(3), 0.1, []), "record_steps"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_gd_trainer_uses_float64_models() -> None:
    net = mlp_network(2, 1, 4, seed=0)
    traj = train_mse_gd(net, torch.ones((3, 2), dtype=torch.float64), np.zeros(3), 0.1, [0, 3])
    assert traj.train.shape == (2, 3, 1) and traj.test is None and traj.loss.shape == (2,)
