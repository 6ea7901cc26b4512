"""learnmech.laws.experiment: the power-law tasks, the random-feature MLP and the fully trained MLPs on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.laws.experiment import (
    make_task,
    make_teacher_task,
    mlp_parameter_count,
    train_mlps,
    train_random_feature_mlp,
)


@pytest.fixture(scope="module")
def task():
    return make_task(input_dim=100, spectrum_exponent=1.0, noise=0.1, max_width=64, max_train=256, n_test=500,
                     seed=0)


def test_task_is_seeded_and_has_a_power_law_spectrum(task):
    again = make_task(100, 1.0, 0.1, 64, 256, 500, seed=0)
    np.testing.assert_array_equal(task.hidden_test, again.hidden_test)
    other = make_task(100, 1.0, 0.1, 64, 256, 500, seed=1)
    assert not np.array_equal(task.y_train, other.y_train)
    k = np.arange(1, 101)
    np.testing.assert_allclose(task.spectrum * k**2, task.spectrum[0])  # lambda_k ~ k^-(1+a), a = 1
    assert task.spectrum.sum() == pytest.approx(1.0)
    assert task.hidden_train.shape == (256, 64) and (task.hidden_train >= 0).all()  # ReLU activations
    # target variance = sum(lambda) w_k^2 + noise^2 = 1.01 for w_k = +-1
    assert np.var(task.y_test) == pytest.approx(1.01, rel=0.15)


def test_training_reaches_the_ridge_solution(task):
    result = train_random_feature_mlp(task, width=32, n_train=128, ridge=1e-3)
    # first-order optimality of mean squared error + ridge: gradient of the objective vanishes at the solution
    phi = np.hstack([task.hidden_train[:128, :32] / np.sqrt(32), np.ones((128, 1))])
    y = task.y_train[:128]
    penalty = np.full(33, 1e-3 * 128)
    penalty[-1] = 0.0
    weights = np.linalg.solve(phi.T @ phi + np.diag(penalty), phi.T @ y)
    assert result["train_loss"] == pytest.approx(np.mean((phi @ weights - y) ** 2), rel=1e-8)
    assert result["train_loss"] < result["test_loss"]


def test_more_width_and_more_data_help(task):
    small = train_random_feature_mlp(task, width=8, n_train=256, ridge=1e-3)["test_loss"]
    wide = train_random_feature_mlp(task, width=64, n_train=256, ridge=1e-3)["test_loss"]
    few = train_random_feature_mlp(task, width=64, n_train=32, ridge=1e-3)["test_loss"]
    assert wide < small and wide < few
    assert wide > 0.01  # never below the noise floor noise^2 by much (n_test=500 sampling)
    # a huge ridge predicts the mean only: test loss ~ target variance
    flat = train_random_feature_mlp(task, width=64, n_train=256, ridge=1e6)["test_loss"]
    assert flat == pytest.approx(np.var(task.y_test), rel=0.05)


def test_bad_arguments(task):
    with pytest.raises(ValueError, match="exceed"):
        train_random_feature_mlp(task, width=128, n_train=10, ridge=1e-3)
    with pytest.raises(ValueError, match="ridge"):
        train_random_feature_mlp(task, width=8, n_train=10, ridge=0)
    with pytest.raises(ValueError, match="spectrum_exponent"):
        make_task(10, -1.0, 0.1, 8, 8, 8, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# fully trained MLPs on the power-law teacher
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher():
    return make_teacher_task(input_dim=8, teacher_width=32, spectrum_exponent=1.0, noise=0.1, max_train=512,
                             n_val=256, n_test=20000, seed=0)


def test_teacher_task_is_seeded_with_unit_variance_and_a_power_law_spectrum(teacher):
    again = make_teacher_task(8, 32, 1.0, 0.1, 512, 256, 20000, seed=0)
    assert torch.equal(teacher.x_train, again.x_train) and torch.equal(teacher.y_test, again.y_test)
    other = make_teacher_task(8, 32, 1.0, 0.1, 512, 256, 20000, seed=1)
    assert not torch.equal(teacher.y_train, other.y_train)
    k = np.arange(1, 33)
    np.testing.assert_allclose(teacher.coefficients**2 * k**2, teacher.coefficients[0] ** 2)  # a_k^2 ~ k^-(1+a)
    np.testing.assert_allclose(np.linalg.norm(teacher.directions, axis=1), 1.0)
    assert teacher.x_train.shape == (512, 8) and teacher.y_val.shape == (256,)
    # the closed-form normalisation: Var(y) = 1 + noise^2, mean ~0 (20000 samples: relative error ~1.5%)
    assert float(teacher.y_test.var()) == pytest.approx(1.01, rel=0.05)
    assert abs(float(teacher.y_test.mean())) < 0.05


@settings(max_examples=15, deadline=None)
@given(exponent=st.floats(0.2, 3.0), width=st.integers(2, 40), dim=st.integers(1, 6))
def test_teacher_normalisation_is_exact_for_any_spectrum(exponent, width, dim):
    task = make_teacher_task(dim, width, exponent, 0.0, 4, 4, 4, seed=3)
    ratios = task.coefficients[1:] / task.coefficients[:-1]
    expected = (np.arange(2, width + 1) / np.arange(1, width)) ** (-(1 + exponent) / 2)
    np.testing.assert_allclose(ratios, expected, rtol=1e-10)
    # Monte Carlo check of the arc-sine-kernel variance with fixed draws: 1 within 4 standard errors
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40000, dim))
    clean = (np.abs(x @ task.directions.T) - np.sqrt(2 / np.pi)) @ task.coefficients
    assert np.var(clean) == pytest.approx(1.0, abs=4 * np.sqrt(2 / 40000) * 2)


def test_widths_trained_together_equal_widths_trained_alone(teacher):
    together = train_mlps(teacher, [3, 6], 128, steps=60, lr=1e-2, seed=5)
    for width, joint in zip([3, 6], together, strict=True):
        (alone,) = train_mlps(teacher, [width], 128, steps=60, lr=1e-2, seed=5)
        for name in ("test_loss", "val_loss", "train_loss"):
            assert joint[name] == pytest.approx(alone[name], rel=1e-4)
        assert joint["best_step"] == alone["best_step"]


def test_training_learns_and_early_stopping_picks_the_best_validation_point(teacher):
    results = train_mlps(teacher, [2, 16], 512, steps=400, lr=1e-2, seed=0)
    start = float((teacher.y_val**2).mean())  # the zero-readout network predicts 0 at step 0
    for result in results:
        assert result["val_loss"] <= start
        assert 0 <= result["best_step"] <= 400 and result["best_step"] % 10 == 0
        assert result["diverged_at"] is None
    narrow, wide = results
    # 2 units can represent at most one teacher feature |w.x|; 16 units fit the leading ones: much lower loss
    assert wide["test_loss"] < 0.5 * narrow["test_loss"] and wide["test_loss"] < 0.3
    assert wide["test_loss"] > teacher.noise**2 * 0.8  # never meaningfully below the noise floor
    assert [r["parameters"] for r in results] == [2 * 10 + 1, 16 * 10 + 1]


def test_more_data_helps_a_trained_mlp(teacher):
    few = train_mlps(teacher, [16], 32, steps=300, lr=1e-2, seed=0)[0]["test_loss"]
    many = train_mlps(teacher, [16], 512, steps=300, lr=1e-2, seed=0)[0]["test_loss"]
    assert many < 0.5 * few


def test_divergence_is_reported_not_raised(teacher):
    (result,) = train_mlps(teacher, [4], 64, steps=50, lr=1e30, seed=0)
    assert result["diverged_at"] is not None and result["diverged_at"] <= 50
    assert np.isfinite(result["test_loss"])  # the best finite parameters are reported


def test_parameter_count_and_bad_arguments(teacher):
    assert mlp_parameter_count(64, 8) == 641
    with pytest.raises(ValueError, match="n_train"):
        train_mlps(teacher, [4], 10_000, steps=10, lr=1e-2)
    with pytest.raises(ValueError, match="widths"):
        train_mlps(teacher, [], 64, steps=10, lr=1e-2)
    with pytest.raises(ValueError, match="widths"):
        train_mlps(teacher, [0], 64, steps=10, lr=1e-2)
    with pytest.raises(ValueError, match="lr"):
        train_mlps(teacher, [4], 64, steps=10, lr=0.0)
    with pytest.raises(ValueError, match="steps"):
        train_mlps(teacher, [4], 64, steps=0, lr=1e-2)
    with pytest.raises(ValueError, match="teacher_width"):
        make_teacher_task(4, 0, 1.0, 0.1, 8, 8, 8, seed=0)
    with pytest.raises(ValueError, match="noise"):
        make_teacher_task(4, 4, 1.0, -0.1, 8, 8, 8, seed=0)
