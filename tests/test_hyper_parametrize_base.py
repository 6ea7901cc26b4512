"""learnmech.hyper.parametrize with base= (base shapes, as in Yang et al.'s ``mup`` package): classification of any
model's parameters into input/hidden/output/vector/finite, the exact 1/d_head rule inside nn.MultiheadAttention,
Depth-muP branch multipliers, coordinate checks on a CNN and on an nn.MultiheadAttention transformer (muP O(1),
SP blowing up), equality with base_width= on proportional models, and refusals naming the parameter."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnmech import hyper

# These tests read ParamRule's deprecated aliases (init_std, lr_mult) on purpose: their assertions predate the rename.
# The aliases' warnings are checked in test_rule_fields_use_the_glossary_names_and_the_old_ones_warn.
pytestmark = pytest.mark.filterwarnings("ignore:ParamRule.(init_std|lr_mult) is deprecated:DeprecationWarning")


def _pair(factory, width: int, base_width: int, seed: int = 0):
    torch.manual_seed(seed)
    return factory(width), factory(base_width)


def _by_name(p: hyper.Parametrization) -> dict[tuple[str, str], hyper.ParamRule]:
    return {(r.name, r.tensor): r for r in p.rules}


# ---------------------------------------------------------------------------------------------------------------
# base= agrees with base_width= where both apply
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", hyper.SCHEMES)
def test_base_and_base_width_identical_on_a_proportional_mlp(scheme):
    torch.manual_seed(0)
    a = hyper.mlp(16, 256, 3, hidden_layers=3)
    torch.manual_seed(0)
    b = hyper.mlp(16, 256, 3, hidden_layers=3)
    pa = hyper.parametrize(a, scheme, 64, seed=5)
    pb = hyper.parametrize(b, scheme, base=hyper.mlp(16, 64, 3, hidden_layers=3), seed=5)
    assert (pa.width, pa.base_width, pa.width_mult) == (pb.width, pb.base_width, pb.width_mult) == (256, 64, 4.0)
    assert pa.table() == pb.table()
    for (na, xa), (nb, xb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(xa, xb)
    for kind in hyper.OPTIMIZERS:
        assert pa.lr_multipliers(kind) == pb.lr_multipliers(kind)


def test_base_and_base_width_identical_on_the_package_transformer():
    rules = []
    for use_base in (False, True):
        model, base = _pair(lambda w: hyper.TinyTransformer(11, w, n_heads=2, max_len=8), 64, 16)
        p = hyper.parametrize(model, "mup", base=base) if use_base else hyper.parametrize(model, "mup", 16)
        rules.append(({k: (r.role, r.init_std, r.multiplier, r.lr_mult) for k, r in _by_name(p).items()},
                      p.attention_scale, p.width_mult))
    assert rules[0] == rules[1]


# ---------------------------------------------------------------------------------------------------------------
# Classification and rules (Yang et al. 2022, Table 3 / Table 8 relative to the base), written out independently
# ---------------------------------------------------------------------------------------------------------------

def test_cnn_roles_and_rules_from_base_shapes():
    model, base = _pair(lambda w: hyper.cnn(3, w, 10, hidden_layers=2), 64, 16)
    p = hyper.parametrize(model, "mup", base=base, seed=1)
    rules = _by_name(p)
    kinds = {key: rule.kind for key, rule in rules.items()}
    assert kinds == {("0", "weight"): "input", ("0", "bias"): "vector", ("2", "weight"): "hidden",
                     ("2", "bias"): "vector", ("6", "weight"): "output", ("6", "bias"): "finite"}
    assert (p.width, p.base_width, p.width_mult) == (64, 16, 4.0)
    m = 4.0
    # (fan_in, init std, multiplier, sgd lr, adam lr): input fan_in = 3*3*3, hidden = 64*3*3, readout = 64.
    expected = {
        ("0", "weight"): (27, 27**-0.5, 1.0, m, 1.0),
        ("2", "weight"): (576, 576**-0.5, 1.0, 1.0, 1 / m),
        ("6", "weight"): (64, (64 / m) ** -0.5, 1 / m, m, 1.0),
    }
    for key, (fan_in, std, mult, sgd, adam) in expected.items():
        rule = rules[key]
        assert rule.fan_in == fan_in and rule.init_std == pytest.approx(std) and rule.multiplier == pytest.approx(mult)
        assert rule.lr_mult == pytest.approx({"sgd": sgd, "adam": adam})
        sample = rule.parameter.detach().double()  # >= 640 entries: std within 5/sqrt(2n) relative
        assert sample.std().item() == pytest.approx(std, rel=5 / math.sqrt(2 * sample.numel()))
    assert rules[("0", "bias")].lr_mult == {"sgd": m, "adam": 1.0}  # Table 3 "biases": SGD LR fan_out
    assert rules[("6", "bias")].lr_mult == {"sgd": 1.0, "adam": 1.0}
    torch.testing.assert_close(model[6].weight, rules[("6", "weight")].parameter / m)
    assert model(torch.randn(2, 3, 5, 5)).shape == (2, 10)


def test_non_proportional_hidden_widths_use_fan_out_over_fan_in():
    """A hidden weight whose fan-in grows 4x and fan-out 8x: SGD lr m_out/m_in = 2, Adam lr 1/m_in = 1/4
    (Table 3's hidden entries fan_out/fan_in and 1/fan_in, relative to the base)."""
    def net(a: int, b: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(16, a), nn.ReLU(), nn.Linear(a, b), nn.ReLU(), nn.Linear(b, 3))

    model, base = net(64, 256), net(16, 32)
    rules = _by_name(hyper.parametrize(model, "mup", base=base))
    hidden = rules[("2", "weight")]
    assert (hidden.kind, hidden.fan_in_mult, hidden.fan_out_mult) == ("hidden", 4.0, 8.0)
    assert hidden.lr_mult == pytest.approx({"sgd": 2.0, "adam": 0.25})
    assert rules[("4", "weight")].multiplier == pytest.approx(1 / 8)
    assert rules[("0", "weight")].lr_mult == pytest.approx({"sgd": 4.0, "adam": 1.0})


def test_finite_layers_stay_standard():
    """A layer whose shape does not change with width is SP under every scheme (all schemes = SP at m = 1)."""
    def net(w: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, w), nn.ReLU(), nn.Linear(w, 2))

    rules = _by_name(hyper.parametrize(net(40), "mf", base=net(10)))
    assert rules[("0", "weight")].kind == "finite" and rules[("0", "bias")].kind == "finite"
    assert rules[("0", "weight")].lr_mult == {"sgd": 1.0, "adam": 1.0}
    assert rules[("0", "weight")].init_std == pytest.approx(5**-0.5)
    assert rules[("2", "weight")].kind == "input" and rules[("4", "weight")].kind == "output"


def test_embedding_padding_row_stays_zero():
    def net(w: int) -> nn.Sequential:
        return nn.Sequential(nn.Embedding(9, w, padding_idx=0), nn.Linear(w, 2))

    p = hyper.parametrize(net(32), "mup", base=net(8))
    table = _by_name(p)[("0", "weight")].parameter
    assert torch.count_nonzero(table[0]) == 0 and table[1:].std().item() == pytest.approx(1.0, rel=0.2)


def _manual_attention(mha: nn.MultiheadAttention, x: torch.Tensor, scale: float, w_in: torch.Tensor,
                      b_in: torch.Tensor) -> torch.Tensor:
    """Causal multi-head attention written out with logit ``scale`` on the unmultiplied projections."""
    batch, seq, d = x.shape
    heads, d_head = mha.num_heads, mha.head_dim
    q, k, v = (x @ w_in.T + b_in).split(d, dim=-1)
    q, k, v = (t.view(batch, seq, heads, d_head).transpose(1, 2) for t in (q, k, v))
    logits = (q @ k.transpose(-1, -2)) * scale
    logits = logits.masked_fill(torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1), float("-inf"))
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, d)
    return out @ mha.out_proj.weight.T + mha.out_proj.bias


@pytest.mark.parametrize("scheme", ["mup", "sp"])
def test_multihead_attention_logits_use_one_over_d_head_exactly(scheme):
    """nn.MultiheadAttention applies 1/sqrt(d_head); the query multiplier sqrt(base_d_head/d_head) turns it into
    muP's sqrt(base_d_head)/d_head on the same trainable weights (Yang et al. 2022, sec. 4)."""
    model, base = _pair(lambda w: hyper.MHATransformer(11, w, n_heads=2, max_len=8), 64, 16)
    p = hyper.parametrize(model, scheme, base=base, seed=2)
    mha = model.blocks[0].attn
    rule = _by_name(p)[("blocks.0.attn", "in_proj_weight")]
    d_head, base_d_head = 32, 8
    scale = math.sqrt(base_d_head) / d_head if scheme == "mup" else d_head**-0.5
    assert p.attention_scale["blocks.0.attn"] == pytest.approx(scale)
    assert rule.kind == "hidden" and rule.fan_in == 64 and rule.init_std == pytest.approx(64**-0.5)
    assert rule.query_multiplier == pytest.approx(0.5 if scheme == "mup" else 1.0)
    assert rule.lr_mult["adam"] == pytest.approx(0.25 if scheme == "mup" else 1.0)
    w_in = rule.parameter.detach()
    b_in = _by_name(p)[("blocks.0.attn", "in_proj_bias")].parameter.detach()
    with torch.no_grad():
        b_in.normal_()  # a non-zero bias: the query bias must be scaled along with the query weights
        x = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(0))
        causal = torch.triu(torch.ones(8, 8, dtype=torch.bool), 1)
        got = mha(x, x, x, attn_mask=causal, need_weights=False)[0]
        torch.testing.assert_close(got, _manual_attention(mha, x, scale, w_in, b_in), rtol=1e-5, atol=1e-5)


def test_multihead_transformer_equals_the_package_transformer_under_mup():
    """Same weights, same muP rules: the nn.MultiheadAttention model and the package's SelfAttention model (which
    sets the 1/d_head scale directly) compute the same logits and take the same Adam steps."""
    torch.manual_seed(0)
    mha_model, mha_base = hyper.MHATransformer(7, 64, n_heads=2, max_len=6), hyper.MHATransformer(7, 16, 2, 1, 6)
    own_model, own_base = hyper.TinyTransformer(7, 64, n_heads=2, max_len=6), hyper.TinyTransformer(7, 16, 2, 1, 6)
    p_mha = hyper.parametrize(mha_model, "mup", base=mha_base, seed=3)
    p_own = hyper.parametrize(own_model, "mup", base=own_base, seed=3)
    assert [r.lr_mult for r in p_mha.rules] == [r.lr_mult for r in p_own.rules]
    tokens = torch.randint(0, 7, (3, 6), generator=torch.Generator().manual_seed(1))
    target = F.one_hot(tokens, 7).float()
    opts = [p.optimizer(torch.optim.Adam, 0.01) for p in (p_mha, p_own)]
    for _ in range(2):
        outs = [m(tokens) for m in (mha_model, own_model)]
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
        for out, opt in zip(outs, opts, strict=True):
            opt.zero_grad()
            hyper.half_mse(out, target).backward()
            opt.step()


def test_depth_branch_multipliers():
    """Depth-muP: each named residual branch's output is scaled by sqrt(base_L/L); Adam lr of block parameters
    x sqrt(base_L/L) (Yang et al. 2023), SGD lr unchanged."""
    def factory(w: int) -> nn.Module:
        return hyper.MHATransformer(11, w, n_heads=2, n_layers=4, max_len=8)

    branches = [f"blocks.{i}.{part}" for i in range(4) for part in ("attn", "mlp")]
    model, base = _pair(factory, 32, 8)
    p = hyper.parametrize(model, "mup", base=base, depth=(4, 1), branches=branches)
    plain_model, plain_base = _pair(factory, 32, 8)
    plain = hyper.parametrize(plain_model, "mup", base=plain_base)
    assert p.depth_multiplier == pytest.approx(0.5) and p.branches == tuple(branches)
    block = model.blocks[1]
    h = torch.randn(2, 8, 32)
    with torch.no_grad():
        torch.testing.assert_close(block.mlp(h), 0.5 * block.mlp.forward(h))  # forward(): bypasses the hook
        torch.testing.assert_close(block.attn(h, h, h)[0], 0.5 * block.attn.forward(h, h, h)[0])
    for rule, ref in zip(p.rules, plain.rules, strict=True):
        inside = rule.name.startswith("blocks.") and not rule.name.endswith(("ln1", "ln2"))
        assert rule.lr_mult["sgd"] == ref.lr_mult["sgd"]
        assert rule.lr_mult["adam"] == pytest.approx(ref.lr_mult["adam"] * (0.5 if inside else 1.0)), rule.name


def _residual_stream(n_layers: int, depth_mup: bool) -> tuple[float, float]:
    """Mean |x| of the residual stream entering ln_f at init, and its change after 3 Adam steps (width 32)."""
    tokens = torch.randint(0, 7, (8, 6), generator=torch.Generator().manual_seed(0))
    target = F.one_hot(tokens, 7).float()
    model, base = _pair(lambda w: hyper.MHATransformer(7, w, n_heads=2, n_layers=n_layers, max_len=6), 32, 8)
    branches = [f"blocks.{i}.{part}" for i in range(n_layers) for part in ("attn", "mlp")]
    options = {"depth": (n_layers, 1), "branches": branches} if depth_mup else {}
    p = hyper.parametrize(model, "mup", base=base, **options)
    seen = {}
    model.ln_f.register_forward_hook(lambda _m, inputs, _o: seen.__setitem__("x", inputs[0].detach().clone()))
    with torch.no_grad():
        model(tokens)
    x0 = seen["x"]
    opt = p.optimizer(torch.optim.Adam, 0.01)
    for _ in range(3):
        opt.zero_grad()
        hyper.half_mse(model(tokens), target).backward()
        opt.step()
    with torch.no_grad():
        model(tokens)
    return x0.abs().mean().item(), (seen["x"] - x0).abs().mean().item()


def test_depth_mup_keeps_the_residual_stream_order_one_across_depth():
    """Theory (Yang et al. 2023; Bordelon et al. 2023): with sqrt(base_L/L) branches (and Adam lr x the same), the
    residual stream and its change after a few steps are O(1) in L (slope 0 against log L); without them each
    block adds O(1), so the size grows ~ L^1/2 and the (correlated) Adam updates ~ L. Decision rule: |slope| < 1/4
    is 0; the rival's slopes must pass the midpoints 1/4 (size) and 1/2 (change)."""
    depths = [2, 4, 8, 16]
    with hyper.single_threaded():
        slopes = {}
        for depth_mup in (True, False):
            sizes, changes = zip(*(_residual_stream(n, depth_mup) for n in depths), strict=True)
            slopes[depth_mup] = (hyper.log_slope(depths, sizes), hyper.log_slope(depths, changes))
    assert abs(slopes[True][0]) < 0.25 and abs(slopes[True][1]) < 0.25, slopes
    assert slopes[False][0] > 0.25 and slopes[False][1] > 0.5, slopes


# ---------------------------------------------------------------------------------------------------------------
# Coordinate checks (Yang et al. 2022, sec. 7): muP keeps activation updates O(1), SP's blow up
# ---------------------------------------------------------------------------------------------------------------
# Decision rule (fixed before measuring): the base-width form makes every scheme SP at the base, and the SP-like
# terms it leaves (e.g. the readout's init W_out h ~ (base/width)^1/2) decay only as sqrt(base/width); so the
# base width is 8x below the smallest measured width (those terms < 35%). Theory's slopes of the change of each
# layer's output against width after a few steps: muP 0 for every layer; SP with Adam +1 for hidden layers and
# the readout (each of n inputs moves by ~lr in a correlated direction), 0 for the input layer; SP with SGD
# +1/2 for hidden layers (dW ~ lr * (1/sqrt(n)) * x, summed over n inputs), +1 for the readout. A slope is
# called 0 when it is closer to 0 than to the nearest rival's 1/2 (|s| < 1/4), and "blows up" when it is
# past the midpoint to its predicted rate (> 1/2 for rate 1, > 1/4 for rate 1/2).
WIDTHS, BASE = [64, 128, 256, 512], 8


def _cnn_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 4, 4, generator=gen), torch.randn(16, 4, generator=gen)


@pytest.fixture(scope="module")
def cnn_checks() -> dict[tuple[str, str], hyper.CoordCheck]:
    lrs = {"sgd": 0.5, "adam": 0.01}
    with hyper.single_threaded():
        return {(scheme, opt): hyper.coord_check(lambda w: hyper.cnn(3, w, 4, hidden_layers=2), WIDTHS,
                                                 scheme=scheme, base_width=BASE, lr=lrs[opt], optimizer=opt,
                                                 steps=3, data=_cnn_data(), seeds=(0,))
                for scheme in ("mup", "sp") for opt in ("sgd", "adam")}


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_cnn_coordinates_order_one_under_mup(cnn_checks, opt):
    check = cnn_checks[("mup", opt)]
    assert check.layers == ["0", "2", "6"]
    for layer in check.layers:
        assert abs(check.size_slope[layer]) < 0.25, (layer, check.size_slope)
        assert abs(check.change_slope[layer]) < 0.25, (layer, check.change_slope)


def test_cnn_coordinates_blow_up_under_sp(cnn_checks):
    adam, sgd = cnn_checks[("sp", "adam")].change_slope, cnn_checks[("sp", "sgd")].change_slope
    assert adam["2"] > 0.5 and adam["6"] > 0.5, adam
    assert abs(adam["0"]) < 0.25, adam  # the input layer's update does not grow with width even in SP
    assert sgd["2"] > 0.25, sgd


@pytest.fixture(scope="module")
def transformer_checks() -> dict[str, hyper.CoordCheck]:
    tokens = torch.randint(0, 7, (8, 6), generator=torch.Generator().manual_seed(0))
    target = F.one_hot(tokens, 7).float()
    with hyper.single_threaded():
        return {scheme: hyper.coord_check(lambda w: hyper.MHATransformer(7, w, n_heads=2, max_len=6), WIDTHS,
                                          scheme=scheme, base_width=BASE, lr=0.01, optimizer="adam", steps=3,
                                          data=(tokens, target), seeds=(0,))
                for scheme in ("mup", "sp")}


def test_multihead_transformer_coordinates_mup_vs_sp(transformer_checks):
    mup, sp = transformer_checks["mup"], transformer_checks["sp"]
    assert "blocks.0.attn" in mup.layers and "blocks.0.attn.out_proj" not in mup.layers  # MHA never calls it
    for layer in mup.layers:
        assert abs(mup.size_slope[layer]) < 0.25, (layer, mup.size_slope)
        assert abs(mup.change_slope[layer]) < 0.25, (layer, mup.change_slope)
    for layer in ("blocks.0.attn", "blocks.0.mlp.0", "blocks.0.mlp.2", "readout"):
        assert sp.change_slope[layer] > 0.5, (layer, sp.change_slope)
    panels = mup.figure()
    assert len(panels) == 2 and len(panels[0].series) == len(mup.layers)


def test_coord_check_needs_data_for_a_cnn():
    with pytest.raises(ValueError, match="data"):
        hyper.coord_check(lambda w: hyper.cnn(3, w), [8, 16])
    with pytest.raises(ValueError, match="options"):
        hyper.coord_check(lambda w: hyper.mlp(3, w), [8, 16], options={"base": None})


# ---------------------------------------------------------------------------------------------------------------
# Refusals name the parameter
# ---------------------------------------------------------------------------------------------------------------

def test_mismatched_architectures_are_refused_naming_the_parameter():
    with pytest.raises(ValueError, match=r"'4\.weight'"):  # one more conv layer than the base
        hyper.parametrize(hyper.cnn(3, 32, 2, hidden_layers=3), "mup", base=hyper.cnn(3, 8, 2, hidden_layers=2))
    with pytest.raises(ValueError, match=r"'0\.weight'.*axis 2"):  # kernel size is not a width
        hyper.parametrize(nn.Sequential(nn.Conv2d(3, 32, 5)), "mup", base=nn.Sequential(nn.Conv2d(3, 8, 3)))
    with pytest.raises(ValueError, match=r"'tok\.weight'"):  # the vocabulary must not scale
        hyper.parametrize(hyper.MHATransformer(11, 32), "mup", base=hyper.MHATransformer(13, 8))
    with pytest.raises(ValueError, match="'1' is LayerNorm in model but BatchNorm1d in base"):
        hyper.parametrize(nn.Sequential(nn.Linear(4, 32), nn.LayerNorm(32), nn.Linear(32, 1)), "mup",
                          base=nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1)))
    with pytest.raises(ValueError, match=r"'0\.weight'.*2 axes"):  # a gain with two infinite axes
        hyper.parametrize(nn.Sequential(nn.LayerNorm((16, 16))), "mup", base=nn.Sequential(nn.LayerNorm((4, 4))))


class _Recurrent(nn.Module):
    def __init__(self, w: int) -> None:
        super().__init__()
        self.rnn, self.out = nn.GRU(3, w), nn.Linear(w, 1)


class _Tempered(nn.Module):
    def __init__(self, w: int) -> None:
        super().__init__()
        self.body = hyper.mlp(3, w)
        self.temperature = nn.Parameter(torch.ones(()))


def test_unclassifiable_parameters_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"'0\.weight' of Conv3d"):
        hyper.parametrize(nn.Sequential(nn.Conv3d(2, 16, 3)), "mup", base=nn.Sequential(nn.Conv3d(2, 4, 3)))
    with pytest.raises(ValueError, match=r"'rnn\.weight_ih_l0' of GRU"):
        hyper.parametrize(_Recurrent(16), "mup", base=_Recurrent(4))
    with pytest.raises(ValueError, match="'temperature' of _Tempered"):
        hyper.parametrize(_Tempered(16), "mup", base=_Tempered(4))


def test_tied_weights_are_refused_naming_both():
    def tied(w: int) -> hyper.MHATransformer:
        model = hyper.MHATransformer(7, w, n_heads=2, max_len=6)
        model.readout.weight = model.tok.weight  # (7, w): the embedding reused as the readout
        return model

    with pytest.raises(ValueError, match=r"'readout\.weight' is the same tensor as 'tok\.weight'"):
        hyper.parametrize(tied(32), "mup", base=tied(8))


def test_bad_arguments_are_refused():
    model, base = _pair(lambda w: hyper.mlp(3, w), 16, 4)
    with pytest.raises(ValueError, match="exactly one of base_width"):
        hyper.parametrize(model, "mup")
    with pytest.raises(ValueError, match="exactly one of base_width"):
        hyper.parametrize(model, "mup", 4, base=base)
    with pytest.raises(ValueError, match="base must be a torch.nn.Module"):
        hyper.parametrize(model, "mup", base="small")
    with pytest.raises(ValueError, match="input_layers applies with base_width only"):
        hyper.parametrize(model, "mup", base=base, input_layers=["0"])
    with pytest.raises(ValueError, match="branches needs depth"):
        hyper.parametrize(model, "mup", base=base, branches=["1"])
    with pytest.raises(ValueError, match="branches must name"):
        hyper.parametrize(model, "mup", base=base, depth=(4, 1))
    with pytest.raises(ValueError, match=r"branches: 'nope'"):
        hyper.parametrize(model, "mup", base=base, depth=(4, 1), branches=["nope"])
    with pytest.raises(ValueError, match=r"depth\[0\]"):
        hyper.parametrize(model, "mup", base=base, depth=(0, 1), branches=["1"])
    with pytest.raises(ValueError, match="Conv2d"):  # base_width keeps its layer set; the message points to base=
        hyper.parametrize(hyper.cnn(3, 16), "mup", 4)
