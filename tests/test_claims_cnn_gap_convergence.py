"""cnn-gap-convergence: the quick config agrees with both rival slopes rejected; the figure draws the tolerance band
and says it runs on digits; the claim's network is one stax description (kernel_fn and module)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from claim_checks import assert_band_holds_prediction, quick_result

from learnmech.claims.limits.cnn_gap_convergence import cnn_gap
from learnmech.kernels import empirical_ntk


@pytest.fixture(scope="module")
def result():
    return quick_result("cnn-gap-convergence")


def test_verdict_and_controls(result):
    assert result.verdict == "agrees"
    assert {c.name for c in result.controls} == {"slope-zero", "slope-minus-one"}
    assert all(c.rejected for c in result.controls)
    assert result.error <= result.tolerance < 0.5  # the rivals sit 0.5 away: the interval must be narrower
    assert len(result.metrics["mean_relative_error"]) == len(result.metrics["widths"])


def test_figure_band_and_digits_title(result):
    assert_band_holds_prediction(result.figure[0])
    assert "digits" in result.figure[0].title


def test_network_is_the_stax_description():
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8))
    layer = cnn_gap(16, 2, "relu")
    net = layer.module((1, 8, 8), seed=1)
    assert net(torch.as_tensor(x)).shape == (3, 1)
    analytic = cnn_gap(1, 2, "relu").kernel_fn(x).ntk
    # The NTK-parameterized limit does not depend on the widths; a wide net's empirical NTK is close to it.
    assert np.allclose(layer.kernel_fn(x).ntk, analytic)
    wide = empirical_ntk(cnn_gap(256, 2, "relu").module((1, 8, 8), seed=2), x)
    assert np.linalg.norm(wide - analytic) / np.linalg.norm(analytic) < 0.3
