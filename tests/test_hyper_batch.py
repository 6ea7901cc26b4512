"""learnmech.hyper.batch: noise scales, the steps/examples trade-off fit, scaling rules, curve distance and the
vectorized linear-regression trainer, against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from learnmech import hyper
from learnmech.observe import gradient_noise_scale


def test_noise_scales_brute_force():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(50, 6)) + np.array([1.0, -2.0, 0.5, 0, 0, 3.0])
    h = rng.normal(size=(6, 6))
    h = h @ h.T + np.eye(6)
    mean = g.mean(axis=0)
    cov = (g - mean).T @ (g - mean) / len(g)  # population covariance of one uniformly drawn example
    ns = hyper.noise_scales(g, h)
    assert ns.trace_covariance == pytest.approx(np.trace(cov))
    assert ns.gradient_norm_sq == pytest.approx(mean @ mean)
    assert ns.b_simple == pytest.approx(np.trace(cov) / (mean @ mean))
    assert ns.b_noise == pytest.approx(np.trace(h @ cov) / (mean @ h @ mean))
    # H proportional to the identity: B_noise = B_simple (McCandlish et al. 2018, eq. 2.9)
    assert hyper.noise_scales(g, 3.0 * np.eye(6)).b_noise == pytest.approx(ns.b_simple)
    assert math.isnan(hyper.noise_scales(g).b_noise)


def test_noise_scales_batch_variance_monte_carlo():
    """E|G_B|^2 = |G|^2 + tr(Sigma)/B for batches drawn with replacement, the identity B_simple rests on."""
    rng = np.random.default_rng(1)
    g = rng.normal(size=(40, 3)) + 0.5
    ns = hyper.noise_scales(g)
    b = 5
    draws = g[rng.integers(0, len(g), size=(200_000, b))].mean(axis=1)
    measured = float((draws**2).sum(axis=1).mean())
    assert measured == pytest.approx(ns.gradient_norm_sq + ns.trace_covariance / b, rel=5e-3)


def test_noise_scales_agrees_with_instrument_on_linear_model():
    torch.manual_seed(0)
    x, y = torch.randn(512, 5, dtype=torch.float64), torch.randn(512, 2, dtype=torch.float64)
    task = hyper.LinearRegressionTask(x, y)
    w = torch.randn(2, 5, dtype=torch.float64)
    exact = task.noise_scales(w)
    model = torch.nn.Linear(5, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w)
    estimate = gradient_noise_scale(model, lambda out, t: 0.5 * ((out - t) ** 2).sum(dim=1).mean(), (x, y),
                                    n_groups=32)
    assert estimate.gradient_norm_sq == pytest.approx(exact.gradient_norm_sq, rel=0.1)
    assert estimate.trace_covariance == pytest.approx(exact.trace_covariance, rel=0.2)


def test_noise_scales_bad_input():
    with pytest.raises(ValueError, match="per_example_grads"):
        hyper.noise_scales(np.ones(5))
    with pytest.raises(ValueError, match="hessian"):
        hyper.noise_scales(np.ones((4, 3)), np.eye(2))


def test_critical_batch_from_run_is_step_mean():
    assert hyper.critical_batch_from_run([10.0, 20.0, 60.0]) == pytest.approx(30.0)
    with pytest.raises(ValueError, match="noise_scale_per_step"):
        hyper.critical_batch_from_run([1.0, -1.0])


def test_steps_to_target_interpolates_log_loss():
    losses = 2.0 ** -np.arange(6.0)
    assert hyper.steps_to_target(losses, 2.0**-2.5) == pytest.approx(2.5)
    assert hyper.steps_to_target(losses, 1.0) == 0.0
    assert hyper.steps_to_target(losses, 1e-3) == math.inf
    assert hyper.steps_to_target(np.array([1.0, np.inf, 0.1]), 0.5) == 2.0
    assert hyper.steps_to_target(np.array([1.0, 0.1, np.nan]), 0.5) == pytest.approx(math.log(2) / math.log(10))


def test_steps_to_target_window_removes_first_passage_bias():
    t = np.arange(2000.0)
    smooth = 1.0 + 100.0 / (1 + t)  # slow approach to the target region
    target = 1.0 + 100.0 / 1001
    noisy = smooth * np.exp(0.02 * np.random.default_rng(0).normal(size=t.size))
    raw = hyper.steps_to_target(noisy, target)
    windowed = hyper.steps_to_target(noisy, target, window=0.1)
    assert raw < 900  # a lucky fluctuation crosses early
    assert windowed == pytest.approx(1000, rel=0.05)
    assert abs(windowed - 1000) < abs(raw - 1000) / 3
    # on a geometric curve the log-time window is exact (log-loss linear in t)
    geometric = 0.9 ** t
    assert hyper.steps_to_target(geometric, 0.9**100.5, window=0.1) == pytest.approx(100.5)


def test_fit_tradeoff_recovers_hyperbola_and_rivals():
    b = 2.0 ** np.arange(10)
    s = 30.0 + 3000.0 / b  # eq. 2.11 with S_min = 30, E_min = 3000
    fit = hyper.fit_tradeoff(b, s)
    assert fit.s_min == pytest.approx(30.0, rel=1e-6)
    assert fit.e_min == pytest.approx(3000.0, rel=1e-6)
    assert fit.b_crit == pytest.approx(100.0, rel=1e-6)
    assert fit.rms_log_residual < 1e-8
    e = fit.examples(b)
    np.testing.assert_allclose((fit.steps(b) / fit.s_min - 1) * (e / fit.e_min - 1), 1.0, rtol=1e-8)
    const = hyper.fit_tradeoff(b, s, rule="constant")
    assert const.s_min == pytest.approx(np.exp(np.log(s).mean()))
    lin = hyper.fit_tradeoff(b, s, rule="linear")
    assert lin.e_min == pytest.approx(np.exp(np.log(s * b).mean()))
    assert const.rms_log_residual > 1 and lin.rms_log_residual > 0.5
    with pytest.raises(ValueError, match="rule"):
        hyper.fit_tradeoff(b, s, rule="quadratic")
    with pytest.raises(ValueError, match="steps"):
        hyper.fit_tradeoff(b, s[:-1])


def test_scaling_rules():
    lin = hyper.linear_scaling_rule(0.1, 32, 4)
    assert (lin.lr, lin.batch_size) == (pytest.approx(0.4), 128)
    sq = hyper.sqrt_scaling_rule(1e-3, 16, 4, betas=(0.9, 0.999), eps=1e-8)
    assert sq.lr == pytest.approx(2e-3) and sq.batch_size == 64
    assert sq.betas == (pytest.approx(0.6), pytest.approx(0.996))
    assert sq.eps == pytest.approx(5e-9)
    with pytest.raises(ValueError, match="betas"):
        hyper.sqrt_scaling_rule(1e-3, 16, 20, betas=(0.9, 0.999))
    with pytest.raises(ValueError, match="k"):
        hyper.linear_scaling_rule(0.1, 3, 0.5)


def test_curve_distance_closed_form():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5, 20))
    same = hyper.curve_distance(ref, ref)
    assert same.distance == 0.0 and same.tolerance == 0.0
    noise = rng.normal(size=(5, 20))
    shifted = hyper.curve_distance(ref, ref + 0.3 + 0.01 * noise)
    assert shifted.distance == pytest.approx(np.abs(0.3 + 0.01 * noise.mean(axis=0)).mean())
    band = stats.t.ppf(0.975, 4) * (0.01 * noise).std(axis=0, ddof=1) / np.sqrt(5)
    assert shifted.tolerance == pytest.approx(band.mean())
    assert shifted.ratio > 1
    assert hyper.curve_distance(ref, np.where(ref > 2, np.inf, ref)).distance == (
        math.inf if np.any(ref > 2) else 0.0)
    with pytest.raises(ValueError, match="scaled"):
        hyper.curve_distance(ref, ref[:, :3])


def test_linear_task_exact_quantities():
    torch.manual_seed(1)
    x = torch.randn(30, 4, dtype=torch.float64)
    x[:, 3] = 0.0  # a blank input: rank-deficient like the digits' border pixels
    y = torch.randn(30, 2, dtype=torch.float64)
    task = hyper.LinearRegressionTask(x, y)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * ((x @ w.T - y) ** 2).sum(dim=1).mean()
    assert float(task.loss(w[None].detach())[0]) == pytest.approx(loss.item())
    hess = torch.autograd.functional.hessian(lambda v: 0.5 * ((x @ v.reshape(2, 4).T - y) ** 2).sum(1).mean(),
                                             w.detach().reshape(-1))
    torch.testing.assert_close(task.hessian(), hess)
    grads = torch.stack([torch.autograd.grad(0.5 * ((x[i] @ w.T - y[i]) ** 2).sum(), w)[0].reshape(-1)
                         for i in range(30)])
    torch.testing.assert_close(task.per_example_grads(w.detach()), grads)
    assert task.loss_star <= loss.item()
    assert float(task.loss(task.w_star[None])[0]) == pytest.approx(task.loss_star)


def _replay(task, w0, batch, steps, opt_factory, seed):
    """Single runs with torch.optim on the same minibatches train_linear draws (one stream)."""
    gen = torch.Generator().manual_seed(seed)
    w = w0.clone().requires_grad_(True)
    opt = opt_factory([w])
    losses = [float(task.loss(w.detach()[None])[0])]
    for _ in range(steps):
        idx = torch.randint(0, task.n, (1, batch), generator=gen)[0]
        opt.zero_grad()
        (0.5 * ((task.x[idx] @ w.T - task.y[idx]) ** 2).sum(dim=1).mean()).backward()
        opt.step()
        losses.append(float(task.loss(w.detach()[None])[0]))
    return np.array(losses)


def test_train_linear_matches_torch_optimizers():
    torch.manual_seed(2)
    task = hyper.LinearRegressionTask(torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64))
    w0 = torch.randn(3, 5, dtype=torch.float64)
    curves = hyper.train_linear(task, torch.stack([w0, w0]), [0.05, 1e-2], 4, 20, optimizer=["sgd", "adam"],
                                betas=[(0.9, 0.999), (0.8, 0.99)], eps=[1e-8, 1e-6], seed=3)
    sgd = _replay(task, w0, 4, 20, lambda p: torch.optim.SGD(p, lr=0.05), 3)
    adam = _replay(task, w0, 4, 20, lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6), 3)
    np.testing.assert_allclose(curves[0], sgd, rtol=1e-10)
    np.testing.assert_allclose(curves[1], adam, rtol=1e-10)


def test_train_linear_records_divergence_and_stops_with_patience():
    torch.manual_seed(3)
    task = hyper.LinearRegressionTask(torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 1, dtype=torch.float64))
    w0 = torch.zeros(3, 1, 5, dtype=torch.float64)
    lrs = np.array([0.5, 0.05, 5.0 / task.lambda_max * 10]) / task.lambda_max
    target = task.loss_star + 0.5 * (float(task.loss(w0[:1])[0]) - task.loss_star)
    curves = hyper.train_linear(task, w0, lrs, 64, 400, stop_below=target, patience=1.5, seed=0)
    assert curves.shape == (3, 401)
    assert np.isfinite(hyper.steps_to_target(curves[0], target))
    blown = hyper.train_linear(task, w0[:1], lrs[2:], 64, 40, seed=0)
    assert np.isinf(blown[0, -1]) and np.isfinite(blown[0, 0])  # blew up: inf from then on
    assert np.isnan(curves[1, -1])  # cut by the patience rule: padded with NaN
    assert hyper.steps_to_target(curves[1], target) == math.inf
    with pytest.raises(ValueError, match="w0"):
        hyper.train_linear(task, w0[0], lrs, 4, 3)
    with pytest.raises(ValueError, match="lr"):
        hyper.train_linear(task, w0, lrs[:2], 4, 3)


def test_parabolic_minimum_exact_on_parabola():
    x = np.arange(7.0)
    values = 2.0 + 0.5 * (x - 3.3) ** 2
    value, position = hyper.parabolic_minimum(values)
    assert position == pytest.approx(3.3)
    assert value == pytest.approx(2.0)
    assert hyper.parabolic_minimum([1.0, 2.0, 3.0]) == (1.0, 0.0)  # edge: the grid minimum
    assert hyper.parabolic_minimum([np.inf, 1.0, 2.0]) == (1.0, 1.0)  # non-finite neighbour
    assert hyper.parabolic_minimum([np.inf, np.inf])[0] == math.inf
