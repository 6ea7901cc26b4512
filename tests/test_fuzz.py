"""Hypothesis fuzzing of the kernels' and fits' inputs: whatever goes in (NaN, inf, empty, odd shapes, negative or
zero sizes, unknown names), the only acceptable exception is ValueError, and whatever comes out is finite, has the
documented shape, and is symmetric where it is a kernel.

Derandomized (fixed example sequence) so the suite is deterministic; small example counts keep it fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from learnmech import kernels, laws, solvable

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Moderate magnitudes plus the special values; huge finite values overflow float64 products legitimately.
ELEMENTS = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))
CLEAN = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
SHAPES = st.tuples(st.integers(0, 5), st.integers(0, 4))
VALID_ACTIVATIONS = ["relu", "erf", "gelu", "tanh", "identity"]
ACTIVATIONS = st.sampled_from([*VALID_ACTIVATIONS, "sigmoid", "", "RELU"])
SCALES = st.one_of(st.floats(0.1, 3.0), st.sampled_from([0.0, -1.0, np.nan, np.inf]))


def _maybe_garbage(clean: bool):
    return arrays(np.float64, SHAPES, elements=CLEAN if clean else ELEMENTS)


def _finite(*values: np.ndarray) -> None:
    for value in values:
        assert np.all(np.isfinite(np.asarray(value, dtype=float))), value


@FUZZ
@given(clean=st.booleans(), data=st.data())
def test_analytic_kernel_is_valueerror_or_finite_symmetric(clean, data):
    """clean: valid arguments and finite inputs (must compute); otherwise anything (ValueError allowed)."""
    depth = data.draw(st.integers(0, 3) if clean else st.integers(-1, 3), label="hidden_layers")
    activation = data.draw(st.sampled_from(VALID_ACTIVATIONS) if clean else ACTIVATIONS, label="activation")
    w_std = data.draw(st.floats(0.1, 3.0) if clean else SCALES, label="W_std")
    b_std = data.draw(st.floats(0.0, 1.0) if clean else SCALES, label="b_std")
    parameterization = data.draw(st.sampled_from(["ntk", "standard"] if clean else ["ntk", "standard", "mup"]),
                                 label="parameterization")
    width = data.draw(st.sampled_from(([1, 64] if parameterization == "standard" else [None, 1, 64]) if clean
                                      else [None, 0, 1, 64]),
                      label="width")
    x1 = data.draw(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 4)), elements=CLEAN) if clean
                   else _maybe_garbage(False), label="x1")
    try:
        kernel_fn = kernels.mlp(depth, activation, W_std=w_std, b_std=b_std, parameterization=parameterization,
                                width=width)
        kernel = kernel_fn(x1)
    except ValueError:
        assert not clean, "valid arguments were refused"
        event("ValueError")
        return
    event("computed")
    n = x1.shape[0]
    for k in (kernel.nngp, kernel.ntk):
        k = np.asarray(k)
        assert k.shape == (n, n)
        _finite(k)
        np.testing.assert_allclose(k, k.T, rtol=1e-10, atol=1e-12)
        assert np.all(np.diag(k) >= -1e-12)  # a variance


@FUZZ
@given(clean=st.booleans(), data=st.data(), mode=st.sampled_from(["trace", "full", "diagonal"]))
def test_empirical_ntk_is_valueerror_or_finite_symmetric(clean, data, mode):
    import torch

    torch.manual_seed(0)
    d = data.draw(st.integers(1, 3), label="d")
    model = torch.nn.Sequential(torch.nn.Linear(d, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()
    x1 = data.draw(arrays(np.float64, st.tuples(st.integers(0, 4), st.just(d)),
                          elements=CLEAN if clean else ELEMENTS), label="x1")
    try:
        k = kernels.empirical_ntk(model, x1, mode=mode)
    except ValueError:
        event("ValueError")
        return
    event("computed")
    k = np.asarray(k)
    assert k.shape[:2] == (x1.shape[0], x1.shape[0])
    _finite(k)
    np.testing.assert_allclose(k, np.swapaxes(k, 0, 1), rtol=1e-6, atol=1e-9)


def _psd(n: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, n))
    return a @ a.T / n + 0.1 * np.eye(n)


@FUZZ
@given(n=st.integers(1, 5), seed=st.integers(0, 3), t=st.one_of(st.floats(0, 1e4), st.sampled_from(
    [np.inf, -1.0, np.nan, 0.0])), lr=SCALES, poison=st.sampled_from([None, None, None, "k", "y", "shape"]))
def test_gradient_flow_is_valueerror_or_finite(n, seed, t, lr, poison):
    if poison is None:  # otherwise valid: t and lr are the only fuzzed arguments
        t, lr = (t if t >= 0 else 1.0), (lr if np.isfinite(lr) and lr > 0 else 0.5)
    k = _psd(n + 2, seed)
    k_train, k_test_train = k[:n, :n], k[n:, :n]
    y = np.random.default_rng(seed).normal(size=n)
    if poison == "k":
        k_train = k_train.copy()
        k_train[0, 0] = np.nan
    elif poison == "y":
        y = np.r_[y, 1.0]
    elif poison == "shape":
        k_test_train = k_test_train[:, :-1] if n > 1 else k_test_train.T
    try:
        flow = kernels.gradient_flow(k_train, k_test_train, y, t, lr=lr)
    except ValueError:
        assert poison is not None, "valid arguments were refused"
        event("ValueError")
        return
    event("computed")
    assert poison is None or (poison == "shape" and n == 1)
    assert np.asarray(flow.test).shape[0] == 2 and np.asarray(flow.train).shape[0] == n
    _finite(flow.test, flow.train)


@FUZZ
@given(eigenvalues=arrays(np.float64, st.integers(0, 6), elements=st.one_of(st.floats(0, 10), st.floats(1e-3, 10),
    st.sampled_from([-1.0, np.nan, np.inf, 0.0]))), n=st.one_of(st.floats(0.5, 100), st.floats(0.5, 5),
    st.sampled_from([0.0, -3.0, np.nan, np.inf])), ridge=st.one_of(st.floats(1e-3, 10), st.floats(0, 10),
    st.sampled_from([-1.0, np.nan])), noise=st.floats(0, 1), data=st.data())
def test_eigenlearning_is_valueerror_or_finite_learnabilities(eigenvalues, n, ridge, noise, data):
    coeffs = data.draw(arrays(np.float64, eigenvalues.shape, elements=CLEAN), label="target_coeffs")
    try:
        prediction = solvable.eigenlearning(eigenvalues, coeffs, n, ridge=ridge, noise=noise)
    except ValueError:
        event("ValueError")
        return
    event("computed")
    _finite(prediction.learnabilities, prediction.kappa, prediction.test_mse, prediction.train_mse)
    assert np.all((prediction.learnabilities >= -1e-12) & (prediction.learnabilities <= 1 + 1e-12))
    assert prediction.test_mse >= -1e-12 and prediction.train_mse >= -1e-12


@FUZZ
@given(x=arrays(np.float64, st.integers(0, 8), elements=st.one_of(st.floats(1e-3, 1e6), st.floats(1e-3, 1e6),
    st.floats(1e-3, 1e6), st.sampled_from([0.0, -1.0, np.nan, np.inf]))), exponent=st.floats(0.1, 2.0),
    noise=st.floats(0, 0.2), irreducible=st.booleans(), data=st.data())
def test_fit_power_law_is_valueerror_or_finite(x, exponent, noise, irreducible, data):
    with np.errstate(all="ignore"):
        y = 2.0 * np.abs(x) ** -exponent * np.exp(noise * np.random.default_rng(0).normal(size=x.shape))
    if data.draw(st.booleans(), label="truncate y"):
        y = y[:-1]
    try:
        fit = laws.fit_power_law(x, y, irreducible=irreducible, n_bootstrap=0)
    except ValueError:
        event("ValueError")
        return
    event("computed")
    _finite(list(fit.params.values()), fit.rmse_log)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(points=st.sampled_from([0, 3, 8, 12, 12]),
       poison=st.sampled_from([None, None, None, "nan", "negative", "zero", "length"]),
       huber=st.sampled_from([1e-3, 1e-3, 1e-2, 0.0, -1.0, np.nan]))
def test_fit_scaling_law_is_valueerror_or_finite(points, poison, huber):
    rng = np.random.default_rng(points)
    N = 10 ** rng.uniform(6, 8, points)
    D = 10 ** rng.uniform(8, 10, points)
    loss = 1.8 + 400 / N**0.34 + 2000 / D**0.37 + rng.normal(0, 1e-3, points)
    if points and poison == "nan":
        loss[0] = np.nan
    elif points and poison == "negative":
        N[0] = -N[0]
    elif points and poison == "zero":
        D[0] = 0.0
    elif poison == "length":
        loss = loss[:-1] if points else np.ones(1)
    try:
        fit = laws.fit_scaling_law(N, D, loss, huber_delta=huber, n_bootstrap=0, starts=laws.default_start_grid(3))
    except ValueError:
        event("ValueError")
        return
    event("computed")
    assert poison is None and points > 5 and huber > 0
    _finite(list(fit.params.values()))


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "gelu", "identity"])
def test_kernel_of_x_with_itself_matches_cross_kernel_blocks(activation):
    """A deterministic property: k(x1, x2) is the off-diagonal block of k([x1; x2])."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    kernel_fn = kernels.mlp(2, activation, W_std=1.3, b_std=0.2)
    joint, cross = kernel_fn(np.vstack([x1, x2])), kernel_fn(x1, x2)
    np.testing.assert_allclose(np.asarray(cross.ntk), np.asarray(joint.ntk)[:3, 3:], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(cross.nngp), np.asarray(joint.nngp)[:3, 3:], rtol=1e-8, atol=1e-10)
