"""Deep linear networks: the closed form against numerical integration and against a trained torch net."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.solvable import deep_linear as dl

S = np.array([3.0, 1.5, 0.5])
A0 = 1e-3


def test_closed_form_matches_ode_integration_for_depth_two():
    t = np.linspace(0, 15, 80)
    closed = dl.mode_strength(t, S, A0, tau=1.3)
    numeric = dl.mode_strength_ode(t, S, A0, tau=1.3, depth=2)
    np.testing.assert_allclose(closed, numeric, rtol=1e-7)


def test_closed_form_solves_the_mode_ode():
    # Central differences of a(t) must equal tau da/dt = 2 a (s - a) (Saxe et al. 2014).
    t = np.linspace(0.1, 10, 200)
    h = 1e-5
    a = dl.mode_strength(t, S, A0, tau=2.0)
    derivative = (dl.mode_strength(t + h, S, A0, tau=2.0) - dl.mode_strength(t - h, S, A0, tau=2.0)) / (2 * h)
    np.testing.assert_allclose(derivative, dl.mode_velocity(a, S, depth=2, tau=2.0), rtol=1e-5, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    s=st.floats(0.1, 10.0),
    ratio=st.floats(1e-6, 0.5),
    tau=st.floats(0.1, 5.0),
)
def test_mode_strength_is_a_monotone_sigmoid_from_a0_to_s(s, ratio, tau):
    a0 = ratio * s
    t = np.linspace(0, 50 * tau / s * (1 + np.log(1 / ratio)), 400)
    a = dl.mode_strength(t, [s], a0, tau)[:, 0]
    assert a[0] == pytest.approx(a0, rel=1e-12)
    assert np.all(np.diff(a) >= 0)
    assert np.all(a <= s * (1 + 1e-12))
    assert a[-1] == pytest.approx(s, rel=1e-6)


def test_learning_time_is_where_the_strength_crosses_half():
    t_half = dl.learning_time(S, A0, tau=0.7)
    a = dl.mode_strength(t_half, S, A0, tau=0.7)
    np.testing.assert_allclose(np.diag(a), S / 2, rtol=1e-10)
    # Strongest first, ~ 1/s.
    assert np.all(np.diff(t_half) > 0)


@pytest.mark.parametrize("depth", [3, 4])
def test_deep_learning_time_matches_ode_and_its_scaling(depth):
    s, a0 = np.array([2.0, 1.0]), 1e-4
    t_half = dl.learning_time(s, a0, depth=depth)
    strengths = dl.mode_strength_ode(t_half, s, a0, depth=depth)
    np.testing.assert_allclose(np.diag(strengths), s / 2, rtol=1e-6)
    # Small-a0 scaling: t ~ tau a0^-(1-2/N) / (s (N-2)), exact as a0 -> 0 up to O(1) corrections.
    asymptotic = a0 ** (-(1 - 2 / depth)) / (s * (depth - 2))
    np.testing.assert_allclose(t_half, asymptotic, rtol=0.3)
    assert t_half[1] / t_half[0] == pytest.approx(2.0, rel=0.05)  # ~ 1/s


def test_balanced_torch_net_follows_closed_form_within_the_euler_bound():
    lr = 0.01
    run = dl.simulate(S, 12.0, lr, a0=A0, seed=3)
    assert run.strengths.shape == (run.times.size, S.size)
    np.testing.assert_allclose(run.initial_strengths, A0, rtol=1e-9)
    error = np.max(np.abs(run.strengths - dl.mode_strength(run.times, S, A0)), axis=0) / S
    bound = lr * S * np.log(S / A0) / 2
    assert np.all(error <= bound)
    assert error.max() > 1e-4  # GD really is a discretisation: the check is not vacuous
    assert run.loss[-1] < 1e-3 * run.loss[0]


def test_depth_three_torch_net_follows_the_ode():
    s, a0 = np.array([2.0, 1.0]), 0.05
    run = dl.simulate(s, 20.0, 0.005, depth=3, a0=a0, seed=0, num_records=60)
    predicted = dl.mode_strength_ode(run.times, s, a0, depth=3)
    assert np.max(np.abs(run.strengths - predicted) / s) < 0.02


def test_random_init_learns_modes_in_order_but_not_exactly():
    run = dl.simulate(S, 15.0, 0.01, a0=A0, init="random", hidden=12, seed=1)
    t_half = dl.half_times(run.times, run.strengths, S)
    assert np.all(np.isfinite(t_half)) and np.all(np.diff(t_half) > 0)
    np.testing.assert_allclose(run.strengths[-1], S, rtol=1e-2)


def test_half_times_interpolates():
    t = np.array([0.0, 1.0, 2.0])
    a = np.array([[0.0, 0.0], [1.0, 0.2], [2.0, 0.4]])
    np.testing.assert_allclose(dl.half_times(t, a, [2.0, 2.0]), [1.0, np.nan])


def test_teacher_and_whitening():
    teacher = dl.make_teacher(6, 5, [3.0, 1.0], seed=0)
    np.testing.assert_allclose(np.linalg.svd(teacher.matrix, compute_uv=False)[:2], [3.0, 1.0])
    X = dl.whitened_inputs(20, 6, np.random.default_rng(0))
    np.testing.assert_allclose(X.T @ X / 20, np.eye(6), atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: dl.mode_strength([0.0, 1.0], [1.0], 2.0), "a0"),
        (lambda: dl.mode_strength([-1.0], [1.0], 0.1), "t"),
        (lambda: dl.mode_strength([1.0], [-1.0], 0.1), "s"),
        (lambda: dl.mode_strength_ode([1.0], [1.0], 0.1, depth=1), "depth"),
        (lambda: dl.learning_time([1.0], 0.1, fraction=1.5), "fraction"),
        (lambda: dl.simulate([1.0], 1.0, 0.1, init="orthogonal"), "init"),
        (lambda: dl.simulate([1.0, 0.5], 1.0, 0.1, hidden=1), "hidden"),
        (lambda: dl.simulate([1.0], 1.0, -0.1), "lr"),
        (lambda: dl.make_teacher(2, 2, [1.0, 1.0, 1.0]), "singular_values"),
        (lambda: dl.whitened_inputs(2, 3, np.random.default_rng(0)), "num_samples"),
    ],
)
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
