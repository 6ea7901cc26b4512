"""Strand functions behind the stability claims: the exact uv-model recursion (Lewkowycz et al. 2020, eq. 3)
against real GD, t-intervals of ratios against scipy, freezing parameters, and lr_boundary's blow-up threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from learnmech import hyper


def _uv(width: int, seed: int) -> tuple[torch.nn.Module, dict[str, float]]:
    model = hyper.mlp(1, width, 1, hidden_layers=1, activation="identity")
    hyper.parametrize(model, "ntp", base_width=64, seed=seed)
    return model, hyper.freeze(model, ["0.bias", "2.bias"])


def _ntk_and_kappa(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(model(x).sum(), params)
    lam = float(sum((g.detach() ** 2).sum() for g in grads))
    readout = [p for n, p in model.named_parameters() if n.startswith("2.") and p.requires_grad][0]
    grad_v = torch.autograd.grad(model(x).sum(), readout)[0]
    return lam, float((grad_v**2).sum() / (model[0](x).detach() ** 2).sum())


@pytest.mark.parametrize("factor", [1.5, 3.0])
def test_uv_recursion_matches_real_gradient_descent(factor: float) -> None:
    torch.manual_seed(0)
    model, mult = _uv(256, seed=1)
    x, y = torch.ones(1, 1), torch.zeros(1, 1)
    lam, kappa = _ntk_and_kappa(model, x)
    lr = factor / lam
    f, _ = hyper.uv_catapult(float(model(x).detach()), lam, lr, kappa, 6)
    real = hyper.gd_lr_grid([model], [lr], x, y, 6, lr_multipliers=mult, blowup=1e15)[0, 0]
    np.testing.assert_allclose(real, f**2 / 2, rtol=2e-3)


def test_uv_recursion_ceiling_is_four_at_any_kappa() -> None:
    for kappa in (1e-1, 1e-3):
        _, lam_below = hyper.uv_catapult(1.0, 1.0, 3.9, kappa, 400)
        f_above, _ = hyper.uv_catapult(1.0, 1.0, 4.1, kappa, 400)
        assert lam_below[-1] < 2 / 3.9  # catapulted below 2/lr: converges
        assert not np.isfinite(f_above[-1]) or abs(f_above[-1]) > 1e100  # diverged


def test_ratio_interval_matches_scipy_t_interval() -> None:
    values = np.array([1.9, 2.05, 2.1, 1.98])
    iv = hyper.ratio_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert iv.mean == pytest.approx(values.mean())
    assert 2.0**iv.log2_halfwidth == pytest.approx(1 + (high - values.mean()) / values.mean())
    assert iv.log2_error(values.mean() * 2) == pytest.approx(1.0)
    assert hyper.ratio_interval([3.0]).log2_halfwidth == 0.0
    with pytest.raises(ValueError, match="values"):
        hyper.ratio_interval([1.0, -1.0])


def test_freeze_sets_requires_grad_and_returns_zero_multipliers() -> None:
    model = hyper.mlp(3, 8, 1, hidden_layers=2)
    mult = hyper.freeze(model, ["0.weight", "0.bias"])
    assert mult == {"0.weight": 0.0, "0.bias": 0.0}
    assert not model[0].weight.requires_grad and model[2].weight.requires_grad
    before = model[0].weight.detach().clone()
    x, y = torch.randn(4, 3), torch.randn(4, 1)
    losses = hyper.gd_lr_grid([model], [0.1], x, y, 3, lr_multipliers=mult)
    assert np.all(np.isfinite(losses))
    assert torch.equal(model[0].weight.detach(), before)
    with pytest.raises(ValueError, match="names"):
        hyper.freeze(model, ["nope"])


def test_uv_ceiling_bracket_is_four_over_lambda() -> None:
    x, y = torch.ones(1, 1), torch.zeros(1, 1)
    models, lams, mult = [], [], None
    for k in range(2):
        model, mult = _uv(1024, seed=k)
        models.append(model)
        lams.append(_ntk_and_kappa(model, x)[0])
    lam = float(np.mean(lams))
    brackets = hyper.lr_boundary(models, x, y, hyper.blew_up, 2 / lam, 8 / lam, steps=100, rounds=2,
                                 lr_multipliers=mult, blowup=1e15)
    for bracket, lam_k in zip(brackets, lams, strict=True):
        assert bracket.stable * lam_k <= 4.0 * (1 + 1e-3) and bracket.unstable * lam_k >= 4.0 * (1 - 1e-3)
