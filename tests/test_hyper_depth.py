"""hyper.depth and hyper.ResMLP: residual-stream variance recursion vs closed form and Monte Carlo; Depth-muP
branch multipliers through parametrize; lr_sweep over depth with parametrize_kwargs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnmech import hyper


def test_variance_ratio_closed_form() -> None:
    L = np.array([1, 2, 4, 8])
    np.testing.assert_allclose(hyper.residual_variance_ratio(L, "standard", gain=1.0), 1.5**L)
    np.testing.assert_allclose(hyper.residual_variance_ratio(L, "depth-mup", base_depth=2, gain=1.0),
                               (1 + 1.0 / L) ** L)
    np.testing.assert_allclose(hyper.residual_variance_ratio(L, 0.5, activation="identity"), 1.25**L)
    # Depth-muP's limit: (1 + base g^2 c / L)^L -> exp(base g^2 c).
    deep = hyper.residual_variance_ratio([10**6], "depth-mup", base_depth=4, gain=0.5)
    assert deep[0] == pytest.approx(math.exp(4 * 0.25 * 0.5), rel=1e-5)


def test_variance_ratio_linear_is_a_deprecated_identity() -> None:
    L = np.array([1, 2, 4, 8])
    with pytest.warns(DeprecationWarning, match='"linear" is deprecated, use "identity"') as record:
        old = hyper.residual_variance_ratio(L, 0.5, activation="linear")
    assert record[0].filename == __file__  # the warning points at the caller
    np.testing.assert_array_equal(old, hyper.residual_variance_ratio(L, 0.5, activation="identity"))


def test_variance_ratio_bad_input() -> None:
    with pytest.raises(ValueError, match="depths"):
        hyper.residual_variance_ratio([0, 2])
    with pytest.raises(ValueError, match="branch_multiplier"):
        hyper.residual_variance_ratio([2], "sp")
    with pytest.raises(ValueError, match="activation"):
        hyper.residual_variance_ratio([2], activation="tanh")


@pytest.mark.parametrize("arm", ["standard", "depth-mup"])
def test_stream_variance_matches_recursion(arm: str) -> None:
    # Monte Carlo over wide nets at init: the mean stream ratio is the mean-field recursion's within a few %.
    x = torch.randn(128, 16, generator=torch.Generator().manual_seed(0))
    depth, ratios = 8, []
    for seed in range(8):
        model = hyper.resmlp(16, 256, depth)
        options = {"depth": (depth, 1), "branches": model.branches} if arm == "depth-mup" else {}
        hyper.parametrize(model, "mup", 256, seed=seed, **options)
        with torch.no_grad():
            stream = model.residual_stream(x)
        assert len(stream) == depth + 1
        ratios.append(float(stream[-1].pow(2).mean() / stream[0].pow(2).mean()))
    expected = hyper.residual_variance_ratio([depth], arm, base_depth=1)[0]
    assert np.mean(ratios) == pytest.approx(expected, rel=0.05)


def test_resmlp_branch_multiplier() -> None:
    x = torch.randn(4, 3)
    plain, scaled = hyper.resmlp(3, 8, 4), hyper.resmlp(3, 8, 4)
    assert plain.branches == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    hyper.parametrize(plain, "mup", 8, seed=1)
    p = hyper.parametrize(scaled, "mup", 8, seed=1, depth=(4, 1), branches=scaled.branches)
    assert p.depth_multiplier == pytest.approx(0.5)
    with torch.no_grad():
        a, b = plain.residual_stream(x), scaled.residual_stream(x)
        torch.testing.assert_close(b[1] - b[0], 0.5 * (a[1] - a[0]))  # same weights, branch x sqrt(1/4)
        torch.testing.assert_close(scaled(x), scaled.readout(b[-1]))
    with pytest.raises(ValueError, match="depth"):
        hyper.resmlp(3, 8, 0)


def test_lr_sweep_over_depth_uses_parametrize_kwargs() -> None:
    x, y = hyper.synthetic_regression(16, 4, seed=0)
    grid = np.array([-4.0, -3.0, -2.0])
    kwargs = lambda L: {"depth": (L, 1), "branches": [f"blocks.{i}" for i in range(L)]}  # noqa: E731
    sweep = hyper.lr_sweep(lambda L: hyper.resmlp(4, 8, L), [1, 4], grid, x, y, scheme="mup", base_width=8,
                           steps=5, seeds=[0], average_last=2, parametrize_kwargs=kwargs)
    assert sweep.loss.shape == (1, 2, 3)
    model = hyper.resmlp(4, 8, 4)
    mults = hyper.parametrize(model, "mup", 8, seed=0, **kwargs(4)).lr_multipliers("sgd")
    manual = hyper.gd_lr_grid([model], 2.0**grid, x, y, 5, lr_multipliers=mults)[0, :, -2:].mean(axis=-1)
    np.testing.assert_allclose(sweep.loss[0, 1], manual, rtol=1e-6)
