"""learnmech.hyper dynamics: coordinate check slopes per scheme, the batched GD trainer against torch's SGD,
stability brackets on an exactly quadratic loss, optimum location and width extrapolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learnmech import hyper

WIDTHS = [64, 128, 256, 512]


def _factory(width: int) -> nn.Module:
    return hyper.mlp(8, width, 1, hidden_layers=2)


@pytest.fixture(scope="module")
def coords() -> dict[str, hyper.CoordCheck]:
    with hyper.single_threaded():
        return {s: hyper.coord_check(_factory, WIDTHS, scheme=s, lr=0.1, steps=4, seeds=(0, 1))
                for s in ("mup", "sp", "ntp")}


def test_mup_coordinates_stay_order_one_across_widths(coords):
    check = coords["mup"]
    assert check.size.shape == (len(WIDTHS), 3, 5) and check.layers == ["0", "2", "4"]
    # Decision rule: a slope closer to 0 than to +-1/2 (the sqrt(width) growth / decay of the failing schemes)
    # is O(1); what remains are finite-width corrections (e.g. muP's O(width^-1/2) output at init).
    for layer in check.layers:
        assert abs(check.size_slope[layer]) < 0.25, (layer, check.size_slope)
        assert abs(check.change_slope[layer]) < 0.25, (layer, check.change_slope)
    assert np.all(check.change[:, :, 0] == 0) and np.all(check.change[:, :, -1] > 0)


def test_sp_blows_up_and_ntp_freezes_features(coords):
    # SP with a fixed lr: the readout's update ~ width (Yang et al. 2022, fig. 5): the output change grows.
    assert coords["sp"].change_slope["4"] > 0.25 and coords["sp"].change_slope["2"] > 0.25
    # NTP: hidden features move ~ width^-1/2 (lazy regime); their size stays O(1).
    assert coords["ntp"].change_slope["0"] < -0.25 and coords["ntp"].change_slope["2"] < -0.25
    assert abs(coords["ntp"].size_slope["2"]) < 0.25
    panels = coords["mup"].figure()
    assert len(panels) == 2 and all(len(p.series) == 3 for p in panels)


def test_transformer_coordinates_under_mup_and_sp_with_adam():
    """muP keeps every transformer coordinate O(1) with Adam, where SP's attention/MLP updates blow up
    (Yang et al. 2022, fig. 5)."""
    tokens = torch.randint(0, 7, (4, 6), generator=torch.Generator().manual_seed(0))
    target = torch.nn.functional.one_hot(tokens, 7).float()
    checks = {
        scheme: hyper.coord_check(lambda w: hyper.TinyTransformer(7, w, n_heads=2, max_len=6), [32, 64, 128],
                                  scheme=scheme, lr=0.01, optimizer="adam", steps=2, data=(tokens, target),
                                  seeds=(0,))
        for scheme in ("mup", "sp")
    }
    mup, sp = checks["mup"], checks["sp"]
    assert "blocks.0.attn.qkv" in mup.layers and "readout" in mup.layers
    assert all(abs(s) < 0.25 for s in mup.size_slope.values()), mup.size_slope
    assert all(s < 0.25 for s in mup.change_slope.values()), mup.change_slope
    assert max(sp.change_slope.values()) > 0.5, sp.change_slope


def test_coord_check_bad_input():
    with pytest.raises(ValueError, match="widths"):
        hyper.coord_check(_factory, [64])
    with pytest.raises(ValueError, match="scheme"):
        hyper.coord_check(_factory, [64, 128], scheme="xp")
    with pytest.raises(ValueError, match="optimizer"):
        hyper.coord_check(_factory, [64, 128], optimizer="lion")


@pytest.mark.parametrize("scheme", ["sp", "mup"])
def test_batched_gd_equals_torch_sgd(scheme):
    x, y = hyper.synthetic_regression(24, 8, seed=0)
    models, params = [], []
    for seed in (0, 1):
        model = _factory(32)
        params.append(hyper.parametrize(model, scheme, 16, seed=seed))
        models.append(model)
    lrs = [0.01, 0.1]
    batched = hyper.gd_lr_grid(models, lrs, x, y, 6, lr_mult=params[0].lr_multipliers("sgd"))
    assert batched.shape == (2, 2, 7)
    for mi, seed in enumerate((0, 1)):
        for li, lr in enumerate(lrs):
            model = _factory(32)
            p = hyper.parametrize(model, scheme, 16, seed=seed)
            run = hyper.train(model, p.optimizer(torch.optim.SGD, lr), x, y, 6)
            np.testing.assert_allclose(batched[mi, li], run.losses, rtol=2e-4)
    blown = hyper.gd_lr_grid(models[:1], [1e3], x, y, 6)
    assert np.isinf(blown[0, 0, -1]) and np.isfinite(blown[0, 0, 0])


def test_spike_boundary_of_a_quadratic_is_two_over_lambda():
    """Linear regression with half-MSE is exactly quadratic: Hessian = [X 1]^T [X 1] / n, and GD's loss rises
    iff lr > 2 / lambda_max."""
    x, y = hyper.synthetic_regression(40, 5, seed=2)
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    design = torch.cat([x, torch.ones(40, 1)], dim=1).double()
    lam = torch.linalg.eigvalsh(design.T @ design / 40).max().item()
    (bracket,) = hyper.lr_boundary([model], x, y, hyper.spiked, 0.5 / lam, 8 / lam, steps=300, rounds=3)
    assert bracket.stable < bracket.unstable
    assert bracket.stable * lam <= 2.0 * 1.01 and bracket.unstable * lam >= 2.0 * 0.99
    assert bracket.estimate * lam == pytest.approx(2.0, rel=0.03)
    assert bracket.log2_halfwidth < 0.01


def test_stability_predicates_and_bad_input():
    assert hyper.spiked(np.array([1.0, 0.5, 1.2, 0.1])) and not hyper.spiked(np.array([1.0, 0.5, 0.2]))
    assert hyper.diverged(np.array([1.0, 2.0, np.inf])) and not hyper.diverged(np.array([1.0, 5.0, 0.5]))
    model = nn.Linear(2, 1)
    x, y = torch.randn(4, 2), torch.randn(4, 1)
    with pytest.raises(ValueError, match="lr_low"):
        hyper.lr_boundary([model], x, y, hyper.spiked, 1.0, 0.5)
    with pytest.raises(ValueError, match="lrs"):
        hyper.gd_lr_grid([model], [-1.0], x, y, 3)
    with pytest.raises(ValueError, match="lr_mult"):
        hyper.gd_lr_grid([model], [0.1], x, y, 3, lr_mult={"nope": 2.0})


@settings(max_examples=40, deadline=None)
@given(center=st.floats(-6.0, 2.0), curvature=st.floats(0.1, 5.0))
def test_optimal_log2_lr_recovers_a_parabola_vertex(center, curvature):
    grid = np.arange(-8.0, 4.01, 0.5)
    loss = np.exp(curvature * (grid - center) ** 2)  # log(loss) is an exact parabola
    found = hyper.optimal_log2_lr(grid, loss)
    assert found == pytest.approx(center, abs=1e-9)
    diverged = loss.copy()
    diverged[grid > center + 1.0] = np.inf  # diverged runs are never optimal and do not break the refinement
    assert hyper.optimal_log2_lr(grid, diverged) == pytest.approx(center, abs=1e-9)


def test_optimal_log2_lr_edges():
    grid = np.arange(0.0, 3.0, 1.0)
    assert np.isnan(hyper.optimal_log2_lr(grid, np.full(3, np.inf)))
    assert hyper.optimal_log2_lr(grid, np.array([1.0, 2.0, 3.0])) == 0.0
    with pytest.raises(ValueError, match="log2_lrs"):
        hyper.optimal_log2_lr([0.0, 1.0, 3.0], np.ones(3))


@settings(max_examples=25, deadline=None)
@given(limit=st.floats(0.5, 10.0), coeff=st.floats(-5.0, 5.0))
def test_extrapolate_width_is_exact_on_the_model(limit, coeff):
    widths = np.repeat([64.0, 256.0, 1024.0], 2)
    fit = hyper.extrapolate_width(widths, limit + coeff / np.sqrt(widths))
    assert fit.limit == pytest.approx(limit, abs=1e-9) and fit.coeff == pytest.approx(coeff, abs=1e-7)
    assert fit.limit_se < 1e-6


def test_extrapolate_width_bad_input():
    with pytest.raises(ValueError, match="distinct widths"):
        hyper.extrapolate_width([64, 64, 64], [1, 2, 3])
    with pytest.raises(ValueError, match="same length"):
        hyper.extrapolate_width([64, 128, 256], [1, 2])


def test_lr_sweep_and_drift_shapes():
    x, y = hyper.synthetic_regression(16, 4, seed=0)
    grid = np.arange(-6.0, -1.9, 1.0)
    sweep = hyper.lr_sweep(lambda w: hyper.mlp(4, w, 1), [16, 32], grid, x, y, scheme="mup", base_width=16,
                           steps=5, seeds=(0, 1), average_last=2)
    assert sweep.loss.shape == (2, 2, len(grid)) and sweep.curves.shape == (2, 2, len(grid), 6)
    drift = hyper.optimum_drift(sweep, n_boot=20)
    assert drift.optima.shape == (2,) and np.isfinite(drift.slope) and drift.slope_se > 0
    assert drift.grid_se == pytest.approx(1.0 / np.sqrt(12) / np.sqrt(0.5))


def test_lr_sweep_loss_panel_is_the_seed_geometric_mean_with_gaps_where_diverged():
    loss = np.array([[[1.0, 4.0, np.inf], [2.0, 2.0, 2.0]], [[4.0, 1.0, np.inf], [8.0, 2.0, 0.5]]])  # (2, 2, 3)
    sweep = hyper.LRSweep("mup", np.array([16.0, 32.0]), np.array([-3.0, -2.0, -1.0]), [0, 1], loss,
                          np.zeros((2, 2, 3, 1)))
    panel = sweep.loss_panel("muP sweep")
    assert (panel.title, panel.xlabel, panel.ylabel, panel.yscale) == (
        "muP sweep", "log2 learning rate", "training loss (1/2 MSE)", "log")
    assert [s.label for s in panel.series] == ["width 16", "width 32"]
    np.testing.assert_allclose(panel.series[0].x, [-3.0, -2.0, -1.0])
    np.testing.assert_allclose(panel.series[0].y, [2.0, 2.0, np.nan])
    np.testing.assert_allclose(panel.series[1].y, [4.0, 2.0, 1.0])
    assert [s.label for s in sweep.loss_panel("depth", label="L = {}").series] == ["L = 16", "L = 32"]
