"""learnmech.laws.experiment: the power-law task and the width-N MLP trained to convergence on it."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.laws.experiment import make_task, train_random_feature_mlp


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
