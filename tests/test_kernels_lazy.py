"""kernels.lazy: the centred scaled model of Chizat et al. (2019), the leading-exponent fit, GD with the NTK tracked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from learnmech.kernels import empirical_ntk, mlp_network
from learnmech.kernels.lazy import asymptotic_exponent, centered_scaled, train_tracking_ntk
from learnmech.observe import target_alignment


def test_centered_scaled_starts_at_zero_and_scales_the_ntk_by_alpha_squared() -> None:
    net = mlp_network(3, 1, 32, "gelu", seed=0)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    reference = empirical_ntk(net, x)
    wrapped = centered_scaled(net, 7.0)
    assert torch.all(wrapped(x) == 0)
    # Only the live copy's parameters count: the frozen reference adds nothing to the NTK.
    np.testing.assert_allclose(empirical_ntk(wrapped, x), 49.0 * reference, rtol=1e-10)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1)
    expected = 7.0 * (net(x) - wrapped.initial(x))
    torch.testing.assert_close(wrapped(x), expected)


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_centered_scaled_refuses_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        centered_scaled(torch.nn.Linear(2, 1), alpha)
    with pytest.raises(ValueError, match="model"):
        centered_scaled("not a module", 1.0)  # type: ignore[arg-type]


def test_exponent_of_an_exact_power_law_and_of_one_with_a_correction() -> None:
    x = np.array([4.0, 8, 16, 32, 64])
    exact = asymptotic_exponent(x, 3.0 * x**-1.5, corrections=0)
    assert exact.exponent == pytest.approx(-1.5, abs=1e-12) and exact.se < 1e-10
    assert math.exp(exact.intercept) == pytest.approx(3.0)
    corrected = 2.0 * x**-1.0 * (1.0 + 0.7 / x)
    plain = asymptotic_exponent(x, corrected, corrections=0)
    fit = asymptotic_exponent(x, corrected, corrections=1)
    assert abs(plain.exponent + 1.0) > 0.02  # the local slope is biased by the correction ...
    assert fit.exponent == pytest.approx(-1.0, abs=1e-8)  # ... the corrected fit recovers the leading order
    assert fit.corrections[0] == pytest.approx(0.7, abs=1e-6)
    assert fit.df == 2 and fit.t95 == pytest.approx(stats.t.ppf(0.975, 2))


def test_plain_exponent_matches_ordinary_least_squares() -> None:
    gen = np.random.default_rng(0)
    x = np.repeat([1.0, 2, 4, 8, 16], 3)
    y = 5 * x**-0.5 * np.exp(0.1 * gen.standard_normal(x.size))
    fit = asymptotic_exponent(x, y, corrections=0)
    ols = stats.linregress(np.log(x), np.log(y))
    assert fit.exponent == pytest.approx(ols.slope) and fit.se == pytest.approx(ols.stderr)
    lo, hi = fit.interval
    assert lo < fit.exponent < hi and hi - lo == pytest.approx(2 * stats.t.ppf(0.975, x.size - 2) * ols.stderr)


def test_exponent_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="> 0"):
        asymptotic_exponent([1.0, 2, 3], [1.0, -1, 2])
    with pytest.raises(ValueError, match="at least"):
        asymptotic_exponent([1.0, 2, 3], [1.0, 2, 3], corrections=1)
    with pytest.raises(ValueError, match="same shape"):
        asymptotic_exponent([1.0, 2, 3], [1.0, 2])


def test_train_tracking_ntk_on_a_linear_model_matches_closed_form_gd() -> None:
    gen = np.random.default_rng(1)
    x = gen.standard_normal((6, 4))
    y = gen.standard_normal(6)
    model = torch.nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(gen.standard_normal((1, 4))))
    w0 = model.weight.detach().numpy()[0].copy()
    lr, steps = 0.1, 20
    run = train_tracking_ntk(model, x, y, lr, steps, [0, 5, 20], x_test=x[:2])
    # f = x w: the NTK is X X^T, constant; GD on 1/2 mean (f - y)^2 moves the residual by (I - lr/N X X^T).
    kernel = x @ x.T
    residual = x @ w0 - y
    losses = []
    for _ in range(steps + 1):
        losses.append(0.5 * np.mean(residual**2))
        residual = residual - lr / y.size * kernel @ residual
    np.testing.assert_allclose(run.loss, losses, rtol=1e-10)
    np.testing.assert_allclose(run.ntk, np.broadcast_to(kernel, (3, 6, 6)), rtol=1e-10)
    np.testing.assert_allclose(run.alignment, target_alignment(kernel, y), rtol=1e-10)
    assert run.record_steps.tolist() == [0, 5, 20] and run.test.shape == (3, 2, 1) and run.diverged_at is None


def test_train_tracking_ntk_refuses_bad_records() -> None:
    with pytest.raises(ValueError, match="record_steps"):
        train_tracking_ntk(torch.nn.Linear(2, 1), np.ones((3, 2)), np.ones(3), 0.1, 5, [6])
    with pytest.raises(ValueError, match="lr"):
        train_tracking_ntk(torch.nn.Linear(2, 1), np.ones((3, 2)), np.ones(3), 0.0, 5, [1])
