"""representation-universality: a reduced quick config agrees with every control rejected; the stacked trainer is
exactly the public nets; the figure draws the tolerance band."""

from __future__ import annotations

import pytest
import torch
from claim_checks import assert_band_holds_prediction, quick_result

from learnmech.claims.universal.representation_universality import _ntk_net, _Stack
from learnmech.observe.tasks import mlp


@pytest.fixture(scope="module")
def result():
    return quick_result("representation-universality", widths=[256, 512, 1024], n_train=600, n_test=300)


def test_verdict_and_controls(result):
    assert result.verdict == "agrees"
    assert {c.name for c in result.controls} == {"kernel-error rate", "no trend", "untrained nets (random features)",
                                                  "shuffled labels"}
    assert all(c.rejected for c in result.controls)
    # Theory's coefficient for random features vs the untrained nets' measured one at the widest width.
    measured = result.metrics["coefficient_measured_widest"]["untrained"]
    assert measured == pytest.approx(result.metrics["coefficient_theory_random_features"]["linear"], rel=0.25)
    assert set(result.metrics["slopes"]) >= {"trained", "trained_debiased"}


def test_figure_band_and_digits_title(result):
    assert_band_holds_prediction(result.figure[0])
    assert "digits" in result.figure[0].title


def test_stack_equals_the_public_constructors():
    x = torch.randn(5, 64)
    nets = [_ntk_net(16, s) for s in (0, 1)]
    stack = _Stack(nets, "ntk")
    for i, net in enumerate(nets):
        torch.testing.assert_close(stack(x)[i], net(x).detach())
    sp = [mlp(64, [16], 10, "relu", seed=s) for s in (0, 1)]
    stack = _Stack(sp, "sp")
    for i, net in enumerate(sp):
        torch.testing.assert_close(stack(x)[i], net(x).detach())
