"""learnmech.hyper.parametrize: per-layer init variances, multipliers and lr multipliers against the formulas of
Yang et al. (2022) Table 3/8 (relative to the base width), the abc-symmetry between muP and mean-field, and the
refusals at the boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learnmech import hyper

# These tests read ParamRule's deprecated aliases (init_std, lr_mult) on purpose: their assertions predate the rename.
# The aliases' warnings are checked in test_rule_fields_use_the_glossary_names_and_the_old_ones_warn.
pytestmark = pytest.mark.filterwarnings("ignore:ParamRule.(init_std|lr_mult) is deprecated:DeprecationWarning")

IN, OUT, BASE, WIDTH = 16, 3, 64, 512
M = WIDTH / BASE

# (role, scheme) -> (init std of w, multiplier, sgd lr mult, adam lr mult) for a layer with fan_in F (gain 1):
# written out from the table of Yang et al. (2022) independently of the implementation's branches.
EXPECTED = {
    ("input", "sp"): (lambda f: f**-0.5, 1.0, 1.0, 1.0),
    ("input", "ntp"): (lambda f: f**-0.5, 1.0, 1.0, 1.0),
    ("input", "mup"): (lambda f: f**-0.5, 1.0, M, 1.0),
    ("input", "mf"): (lambda f: f**-0.5, 1.0, M, 1.0),
    ("hidden", "sp"): (lambda f: f**-0.5, 1.0, 1.0, 1.0),
    ("hidden", "ntp"): (lambda f: (f / M) ** -0.5, M**-0.5, 1.0, 1.0),
    ("hidden", "mup"): (lambda f: f**-0.5, 1.0, 1.0, 1 / M),
    ("hidden", "mf"): (lambda f: (f / M) ** -0.5, M**-0.5, M, M**-0.5),
    ("output", "sp"): (lambda f: f**-0.5, 1.0, 1.0, 1.0),
    ("output", "ntp"): (lambda f: (f / M) ** -0.5, M**-0.5, 1.0, 1.0),
    ("output", "mup"): (lambda f: (f / M) ** -0.5, 1 / M, M, 1.0),
    ("output", "mf"): (lambda f: (f / M) ** -0.5, 1 / M, M, 1.0),
}


def _model(width: int = WIDTH) -> nn.Sequential:
    torch.manual_seed(0)
    return hyper.mlp(IN, width, OUT, hidden_layers=2)


@pytest.mark.parametrize("scheme", hyper.SCHEMES)
def test_rules_match_the_table_layer_by_layer(scheme):
    model = _model()
    p = hyper.parametrize(model, scheme, BASE)
    assert p.width == WIDTH and p.width_mult == pytest.approx(M)
    weights = [r for r in p.rules if r.tensor == "weight"]
    assert [r.role for r in weights] == ["input", "hidden", "output"]
    for rule in weights:
        std, mult, sgd, adam = EXPECTED[(rule.role, scheme)]
        assert rule.init_std == pytest.approx(std(rule.fan_in))
        assert rule.multiplier == pytest.approx(mult)
        assert rule.lr_mult == pytest.approx({"sgd": sgd, "adam": adam})
        # The sampled tensor has the stated std (n >= 8192 entries: relative error ~ 1/sqrt(2n) < 1%, 5 sigma).
        sample = rule.parameter.detach().double()
        assert sample.std().item() == pytest.approx(rule.init_std, rel=5 / math.sqrt(2 * sample.numel()))
        assert abs(sample.mean().item()) < 5 * rule.init_std / math.sqrt(sample.numel())
    biases = {r.role: r for r in p.rules if r.tensor == "bias"}
    for role, rule in biases.items():
        assert torch.count_nonzero(rule.parameter) == 0
        width_sized = role != "output"
        expected_sgd = M if (scheme in ("mup", "mf") and width_sized) else 1.0
        assert rule.lr_mult == pytest.approx({"sgd": expected_sgd, "adam": 1.0})


@pytest.mark.parametrize("scheme", hyper.SCHEMES)
def test_effective_weights_carry_the_multiplier(scheme):
    model = _model()
    p = hyper.parametrize(model, scheme, BASE)
    for rule, layer in zip([r for r in p.rules if r.tensor == "weight"], [model[0], model[2], model[4]], strict=True):
        torch.testing.assert_close(layer.weight, rule.multiplier * rule.parameter)
    # Effective init (multiplier x std): SP's 1/sqrt(fan_in) everywhere except muP/mf's readout, ~ 1/width.
    readout = p.rules[-2]
    effective = readout.multiplier * readout.init_std
    expected = 1 / math.sqrt(WIDTH) if scheme in ("sp", "ntp") else 1 / (M * math.sqrt(BASE))
    assert effective == pytest.approx(expected)


@pytest.mark.parametrize("scheme", hyper.SCHEMES)
@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW])
def test_optimizer_factory_sets_per_layer_lr(scheme, optimizer_class):
    model = _model()
    p = hyper.parametrize(model, scheme, BASE)
    opt = p.optimizer(optimizer_class, 0.01)
    kind = "sgd" if optimizer_class is torch.optim.SGD else "adam"
    assert len(opt.param_groups) == len(p.rules) == len(list(model.parameters()))
    for group, rule in zip(opt.param_groups, p.rules, strict=True):
        assert group["params"][0] is rule.parameter
        assert group["lr"] == pytest.approx(0.01 * rule.lr_mult[kind])
    assert p.lr_multipliers(kind) == {r.param_name: r.lr_mult[kind] for r in p.rules}
    assert set(p.lr_multipliers()) == {name for name, _ in model.named_parameters()}


@pytest.mark.parametrize("scheme", hyper.SCHEMES)
def test_rule_fields_use_the_glossary_names_and_the_old_ones_warn(scheme):
    """``std``/``lr_multiplier`` are the glossary's names; ``init_std``/``lr_mult`` are deprecated read-only aliases
    that warn and return the same values; the table's rows carry ``std``."""
    p = hyper.parametrize(_model(), scheme, BASE)
    for rule in p.rules:
        if rule.tensor == "weight":
            std, _, sgd, adam = EXPECTED[(rule.role, scheme)]
            assert rule.std == pytest.approx(std(rule.fan_in))
            assert rule.lr_multiplier == pytest.approx({"sgd": sgd, "adam": adam})
        with pytest.warns(DeprecationWarning, match="ParamRule.init_std is deprecated, use ParamRule.std"):
            assert rule.init_std == rule.std
        with pytest.warns(DeprecationWarning, match="ParamRule.lr_mult is deprecated, use ParamRule.lr_multiplier"):
            assert rule.lr_mult is rule.lr_multiplier
        with pytest.raises(AttributeError):
            rule.init_std = 1.0
    for row, rule in zip(p.table(), p.rules, strict=True):
        assert "init_std" not in row and row["std"] == rule.std
        assert (row["lr_sgd"], row["lr_adam"]) == (rule.lr_multiplier["sgd"], rule.lr_multiplier["adam"])


def test_models_take_the_one_activation_table_and_linear_is_a_deprecated_identity():
    """hyper's builders use observe.tasks.ACTIVATIONS (one table); "linear" is the same nn.Identity, and warns."""
    from learnmech.observe import tasks

    for name, module in tasks.ACTIVATIONS.items():
        assert isinstance(hyper.mlp(3, 8, 2, hidden_layers=2, activation=name)[1], module)
        assert isinstance(hyper.cnn(1, 4, activation=name)[1], module)
        assert isinstance(hyper.resmlp(3, 8, 2, activation=name).blocks[0][0], module)
    torch.manual_seed(0)
    new = hyper.mlp(3, 8, 2, hidden_layers=1, activation="identity")
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match='"linear" is deprecated, use "identity"') as record:
        old = hyper.mlp(3, 8, 2, hidden_layers=1, activation="linear")
    assert record[0].filename == __file__  # the warning points at the caller
    assert [type(m) for m in old] == [type(m) for m in new] == [nn.Linear, nn.Identity, nn.Linear]
    assert all(torch.equal(p, q) for p, q in zip(old.parameters(), new.parameters(), strict=True))
    with pytest.warns(DeprecationWarning, match='"linear"'):
        assert isinstance(hyper.cnn(1, 4, activation="linear")[1], nn.Identity)
    with pytest.warns(DeprecationWarning, match='"linear"'):
        assert isinstance(hyper.resmlp(3, 8, 2, activation="linear").blocks[0][0], nn.Identity)
    with pytest.raises(ValueError, match="activation"):
        hyper.mlp(3, 8, activation="sigmoid")


@settings(max_examples=30, deadline=None)
@given(base=st.integers(2, 64), factor=st.floats(0.25, 16), fan=st.integers(1, 300),
       scheme=st.sampled_from(hyper.SCHEMES), role=st.sampled_from(["input", "hidden", "output"]))
def test_abc_symmetry_and_base_width_identity(base, factor, fan, scheme, role):
    """muP and mf differ by W = A w -> (A theta) (w / theta): effective init std A*std, SGD step A^2*lr and Adam
    step A*lr must agree (Yang & Hu 2021); and at m = 1 every scheme is SP."""
    m = factor
    std, mult, lr = hyper.weight_rule(scheme, role, fan, m)
    ref_std, ref_mult, ref_lr = hyper.weight_rule("mup" if scheme in ("mup", "mf") else "sp", role, fan, m)
    if scheme in ("mup", "mf"):
        assert mult * std == pytest.approx(ref_mult * ref_std)
        assert mult**2 * lr["sgd"] == pytest.approx(ref_mult**2 * ref_lr["sgd"])
        assert mult * lr["adam"] == pytest.approx(ref_mult * ref_lr["adam"])
    if scheme == "ntp":  # NTP = SP function at init, with SGD steps 1/m smaller outside the input layer
        assert mult * std == pytest.approx(ref_std)
        assert mult**2 * lr["sgd"] == pytest.approx(1.0 if role == "input" else 1.0 / m)
    at_base = hyper.weight_rule(scheme, role, fan, 1.0)
    assert at_base == (pytest.approx(fan**-0.5), 1.0, {"sgd": 1.0, "adam": 1.0})
    assert hyper.vector_rule(scheme, True, 1.0) == {"sgd": 1.0, "adam": 1.0}


def test_mf_and_mup_train_identically_under_sgd():
    """Same seed, same base lr: the abc-symmetry makes mean-field and muP the same function at every SGD step."""
    x, y = hyper.synthetic_regression(32, IN, seed=3)
    y = y.repeat(1, OUT)
    outputs = {}
    for scheme in ("mup", "mf"):
        model = _model(256)
        p = hyper.parametrize(model, scheme, BASE, seed=7)
        run = hyper.train(model, p.optimizer(torch.optim.SGD, 0.05), x, y, 5)
        outputs[scheme] = (model(x).detach(), run.losses)
    torch.testing.assert_close(outputs["mup"][0], outputs["mf"][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["mup"][1], outputs["mf"][1], rtol=1e-4)


def test_ntp_equals_sp_with_scaled_lr():
    """NTP trains like SP with lr/m on hidden and readout weights (Jacot et al. 2018 vs the standard form)."""
    x, y = hyper.synthetic_regression(32, IN, seed=4)
    y = y.repeat(1, OUT)
    ntp, sp = _model(256), _model(256)
    p_ntp = hyper.parametrize(ntp, "ntp", BASE, seed=1)
    p_sp = hyper.parametrize(sp, "sp", BASE, seed=1)
    m = 256 / BASE
    groups = p_sp.param_groups(0.1)
    for group, rule in zip(groups, p_sp.rules, strict=True):
        if rule.tensor == "weight" and rule.role != "input":
            group["lr"] /= m
    hyper.train(ntp, p_ntp.optimizer(torch.optim.SGD, 0.1), x, y, 5)
    hyper.train(sp, torch.optim.SGD(groups, lr=0.1), x, y, 5)
    torch.testing.assert_close(ntp(x), sp(x), rtol=1e-4, atol=1e-5)


def test_transformer_roles_and_attention_scale():
    torch.manual_seed(0)
    model = hyper.TinyTransformer(vocab=11, d_model=64, n_heads=2, n_layers=1, max_len=8)
    p = hyper.parametrize(model, "mup", base_width=16)
    roles = {(r.name, r.tensor): r.role for r in p.rules}
    assert roles[("tok", "weight")] == roles[("pos", "weight")] == "input"
    assert roles[("readout", "weight")] == "output"
    assert roles[("blocks.0.attn.qkv", "weight")] == roles[("blocks.0.fc2", "weight")] == "hidden"
    assert p.width_mult == 4
    # d_head = 32 at width 64, 8 at the base width 16: scale sqrt(base_d_head) / d_head, SP's 1/sqrt(8) at base.
    assert p.attention_scale["blocks.0.attn"] == pytest.approx(math.sqrt(8) / 32)
    assert model.blocks[0].attn.scale == p.attention_scale["blocks.0.attn"]
    ln = [r for r in p.rules if r.name == "blocks.0.ln1"]
    assert [r.lr_mult["sgd"] for r in ln] == [4.0, 4.0]
    fc2 = next(r for r in p.rules if r.name == "blocks.0.fc2" and r.tensor == "weight")
    assert fc2.fan_in == 256 and fc2.init_std == pytest.approx(256**-0.5)
    assert fc2.lr_mult["adam"] == pytest.approx(0.25)
    logits = model(torch.randint(0, 11, (2, 8)))
    assert logits.shape == (2, 8, 11) and torch.isfinite(logits).all()
    sp_model = hyper.TinyTransformer(vocab=11, d_model=64, n_heads=2)
    assert hyper.parametrize(sp_model, "sp", 16).attention_scale["blocks.0.attn"] == pytest.approx(32**-0.5)


def test_refusals_name_the_problem():
    with pytest.raises(ValueError, match="scheme"):
        hyper.parametrize(_model(), "abc", BASE)
    with pytest.raises(ValueError, match="base_width"):
        hyper.parametrize(_model(), "mup", -4)
    with pytest.raises(ValueError, match="no identifiable input and output"):
        hyper.parametrize(nn.Sequential(nn.Linear(4, 1)), "mup", 4)
    with pytest.raises(ValueError, match="no identifiable output"):
        hyper.parametrize(nn.Sequential(nn.Embedding(5, 4)), "mup", 4)
    with pytest.raises(ValueError, match="Conv2d"):
        hyper.parametrize(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 1)), "mup", 4)

    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = hyper.mlp(3, 8)
            self.temperature = nn.Parameter(torch.ones(()))

    with pytest.raises(ValueError, match="Bare"):
        hyper.parametrize(Bare(), "mup", 4)
    model = _model()
    hyper.parametrize(model, "mup", BASE)
    with pytest.raises(ValueError, match="already parametrized"):
        hyper.parametrize(model, "sp", BASE)
    assert hyper.parameter_rules(model).scheme == "mup"
    with pytest.raises(ValueError, match="not parametrized"):
        hyper.parameter_rules(_model())
    with pytest.raises(ValueError, match="optimizer_class"):
        hyper.parametrize(_model(), "mup", BASE).optimizer(torch.optim.RMSprop, 0.1)
    with pytest.raises(ValueError, match="optimizer"):
        hyper.parametrize(_model(), "mup", BASE).param_groups(0.1, "lion")
    with pytest.raises(ValueError, match="input_layers"):
        hyper.parametrize(_model(), "mup", BASE, input_layers=["1"])
