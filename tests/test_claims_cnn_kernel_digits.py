"""cnn-kernel-digits: the quick config agrees with every rival predictor rejected; the figure draws the tolerance
band and says it runs on digits; the centred training is exactly GD of f - f0 on Y."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from claim_checks import assert_band_holds_prediction, quick_result

from learnmech.claims.limits.cnn_kernel_digits import cnn_gap_strided


@pytest.fixture(scope="module")
def result():
    return quick_result("cnn-kernel-digits")


def test_verdict_and_controls(result):
    assert result.verdict == "agrees"
    assert {c.name for c in result.controls} == {"mlp-ntk", "nngp-posterior", "converged-ntk", "initial-function"}
    assert all(c.rejected for c in result.controls)
    assert result.metrics["rival_test_mse"]["initial-function"] == pytest.approx(0.09)
    # The prediction moved away from the initial function: the claim is informative.
    assert result.prediction < 0.09 - 2 * result.tolerance
    assert (len(result.metrics["test_mse_wide"]), len(result.metrics["test_mse_small"])) == (3, 8)


def test_figure_band_and_digits_title(result):
    for panel in result.figure:
        assert "digits" in panel.title
        assert_band_holds_prediction(panel)


def test_network_shape():
    net = cnn_gap_strided(8, 2).module((1, 8, 8), seed=0)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8))
    assert net(torch.as_tensor(x)).shape == (4, 10)
