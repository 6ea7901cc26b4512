"""The solvable random-feature model (Maloney, Roberts & Sully 2022): the derived loss against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.laws.random_features import (
    make_projection_task,
    mrs_exponent,
    power_spectrum,
    predict_projection_test_loss,
    projection_test_loss,
)


def test_power_spectrum_is_normalised_and_decays():
    lam = power_spectrum(100, 1.0)
    assert lam.sum() == pytest.approx(1.0)
    assert lam[0] / lam[9] == pytest.approx(10.0**2)  # k^-(1 + a) with a = 1


def test_derived_loss_matches_the_average_over_draws():
    # brute force: 60 independent draws (data, teacher signs, projection); the derivation never sees the samples
    ratios = []
    for s in range(60):
        task = make_projection_task(256, 1.0, 0.1, 24, 48, 4000, seed=s)
        ratios.append(projection_test_loss(task, 24, 48, 0.1) / predict_projection_test_loss(task, 24, 48, 0.1))
    ratios = np.array(ratios)
    # measured / derived = 1 within 4 standard errors of the mean and within 5%
    assert abs(ratios.mean() - 1) < 4 * ratios.std(ddof=1) / np.sqrt(ratios.size)
    assert abs(ratios.mean() - 1) < 0.05
    assert task.z_train.shape == (48, 24) and task.z_test.shape == (4000, 24)


def test_full_rank_projection_learns_to_the_noise_floor():
    # N = M features span the data: no approximation error, and with D >> M the loss is the noise (+ O(M/D))
    task = make_projection_task(16, 1.0, 0.1, 16, 4000, 2000, seed=3)
    predicted = predict_projection_test_loss(task, 16, 4000, 1e-3)
    assert predicted == pytest.approx(0.01 * 4000 / (4000 - 16), rel=1e-2)
    assert projection_test_loss(task, 16, 4000, 1e-3) == pytest.approx(predicted, rel=0.1)


def test_loss_falls_with_width_and_data_and_sequences_match_scalars():
    task = make_projection_task(512, 1.0, 0.1, 128, 256, 500, seed=1)
    by_width = [predict_projection_test_loss(task, n, 256, 0.1) for n in (16, 32, 64)]
    assert by_width[0] > by_width[1] > by_width[2]
    curve = predict_projection_test_loss(task, 128, [32, 64, 128], 0.1)
    assert curve[0] > curve[1] > curve[2]
    assert curve[1] == pytest.approx(predict_projection_test_loss(task, 128, 64, 0.1))


def test_rival_spectrum_changes_the_prediction():
    task = make_projection_task(512, 1.0, 0.1, 64, 128, 200, seed=2)
    rival = predict_projection_test_loss(task, 64, 128, 0.1, spectrum=power_spectrum(512, 2.0))
    assert rival < 0.7 * predict_projection_test_loss(task, 64, 128, 0.1)


def test_bad_inputs_are_value_errors():
    task = make_projection_task(64, 1.0, 0.1, 8, 16, 10, seed=0)
    with pytest.raises(ValueError, match="exceed"):
        projection_test_loss(task, 9, 16, 0.1)
    with pytest.raises(ValueError, match="ridge"):
        projection_test_loss(task, 8, 16, -1.0)
    with pytest.raises(ValueError, match="spectrum"):
        predict_projection_test_loss(task, 8, 16, 0.1, spectrum=np.ones(3))
    with pytest.raises(ValueError, match="spectrum_exponent"):
        mrs_exponent(-1.0)
    with pytest.raises(ValueError, match="input_dim"):
        make_projection_task(0, 1.0, 0.1, 8, 16, 10, seed=0)
