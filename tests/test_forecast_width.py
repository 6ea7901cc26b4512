"""learnmech.forecast width transfer (issue 17): the muP coordinate check runs in muP's domain (widths 8-32x the
proxy = base width, three seeds, SGD lr capped at 1/lambda of the base model), the user's own widths are an
unscored boundary, and the card scores the in-domain slopes against SP as the control."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from learnmech import hyper
from learnmech.forecast import stability
from learnmech.forecast.card import SLOPE_TOL, Forecast
from learnmech.forecast.width import CHECK_FACTORS, CHECK_SEEDS, coordinate_check

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn.py"


def _digits_module():
    spec = importlib.util.spec_from_file_location("digits_cnn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits_checks():
    """The forecast's own coordinate checks of the example CNN (muP and the SP control) at the example's lr."""
    m = _digits_module()
    x, y = m.data()["train"]
    with hyper.single_threaded():
        return m, {scheme: coordinate_check(m.model, m.widths, (x[:256], y[:256]), loss_fn=m.loss_fn,
                                            scheme=scheme, lr=m.STABLE_LR, seed=0) for scheme in ("mup", "sp")}


def test_check_runs_in_mups_domain(digits_checks):
    m, checks = digits_checks
    mup = checks["mup"]
    base = m.widths[0]
    assert mup.base_width == base
    assert list(mup.widths) == [base * f for f in CHECK_FACTORS]
    assert mup.seeds == tuple(range(CHECK_SEEDS))
    # the SGD lr is the user's, capped at 1/lambda of the base-width model (monotone decay of every mode)
    assert mup.user_lr == m.STABLE_LR and math.isfinite(mup.lambda_base)
    assert mup.lr == pytest.approx(min(m.STABLE_LR, 1.0 / mup.lambda_base))
    # the boundary is the same check at the user's own widths and lr, base = proxy
    assert list(mup.boundary.widths) == list(m.widths) and mup.boundary.scheme == "mup"


def test_digits_cnn_coordinates_order_one_under_mup_and_sp_blows_up(digits_checks):
    """Yang et al. (2022, sec. 7): under muP each layer's change from init after a few steps is width-independent
    (slope 0 +- SLOPE_TOL); SP at the same lr is the control and must leave the band."""
    _, checks = digits_checks
    mup, sp = checks["mup"], checks["sp"]
    assert mup.layers == ["0", "3", "6"]  # input conv, hidden conv, flatten readout
    for layer, slope in mup.change_slope.items():
        assert abs(slope) <= SLOPE_TOL, (layer, mup.change_slope)
    finite = [abs(v) for v in sp.change_slope.values() if math.isfinite(v)]
    assert max(finite) > SLOPE_TOL, sp.change_slope


def test_card_scores_the_in_domain_check_and_reports_the_boundary(digits_checks):
    _, checks = digits_checks
    fc = Forecast(lr=0.14, optimizer="gd")
    fc.coord = dict(checks)
    item = fc._score_width()
    assert item.verdict == "agrees"
    assert "boundary (not scored)" in item.note and "base 8" in item.note


def test_adam_check_keeps_the_users_lr():
    def factory(w):
        return hyper.cnn(1, w, 3, hidden_layers=2)

    gen = torch.Generator().manual_seed(0)
    data = (torch.randn(8, 1, 4, 4, generator=gen), torch.randn(8, 3, generator=gen))
    with hyper.single_threaded():
        check = coordinate_check(factory, [2, 4], data, scheme="mup", lr=0.01, optimizer="adam", steps=2)
    assert check.lr == 0.01 and math.isnan(check.lambda_base)
    assert list(check.widths) == [2 * f for f in CHECK_FACTORS]


def test_sgd_check_below_the_cap_uses_the_users_lr():
    def factory(w):
        return hyper.cnn(1, w, 3, hidden_layers=2)

    gen = torch.Generator().manual_seed(1)
    data = (torch.randn(8, 1, 4, 4, generator=gen), torch.randn(8, 3, generator=gen))
    torch.manual_seed(0)
    probe = factory(2)
    hyper.parametrize(probe, "mup", base=factory(2), seed=0)
    lam = stability(probe, hyper.half_mse, data, optimizer="gd").sharpness
    lr = 0.5 / lam  # below 1/lambda: nothing to cap
    with hyper.single_threaded():
        check = coordinate_check(factory, [2, 4], data, scheme="mup", lr=lr, steps=2)
    assert check.lr == pytest.approx(lr) and check.lambda_base == pytest.approx(lam, rel=1e-3)


def test_overflowing_sp_counts_as_blown_up():
    def check(scheme, slopes, change):
        size = np.ones_like(change)
        return hyper.CoordCheck(scheme, np.array([64.0, 128.0, 256.0]), list(slopes), size, change, dict(slopes),
                                dict(slopes))

    fc = Forecast(lr=0.1, optimizer="gd")
    layers = {"0": 0.05, "3": -0.1}
    fc.coord = {"mup": check("mup", layers, np.ones((3, 2, 5))),
                "sp": check("sp", {"0": float("nan"), "3": float("nan")}, np.full((3, 2, 5), np.inf))}
    assert fc._score_width().verdict == "agrees"
    fc.coord["sp"] = check("sp", {"0": 0.1, "3": 0.2}, np.ones((3, 2, 5)))  # finite and flat: no power
    assert fc._score_width().verdict == "inconclusive"
