"""stax.MLP is the one description of a fully connected net: its finite module (what kernels.mlp_network returns)
and its kernels (kernels.mlp's closed forms) come from it; stax.Activation is the one activation vocabulary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnmech import kernels
from learnmech.kernels import stax
from learnmech.kernels.stax import Layer
from learnmech.seeding import torch_generator

NAMES = ["relu", "erf", "gelu", "tanh", "identity"]
TORCH_FNS = {"relu": torch.relu, "erf": torch.erf, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh,
             "identity": lambda z: z}


def _by_hand(x: torch.Tensor, hidden_layers: int, width: int, activation: str, w_std: float, b_std: float,
             out_dim: int, seed: int) -> torch.Tensor:
    """The documented network, written out: per layer one N(0, 1) matrix [W, b] (bias column last, absent when
    b_std = 0) drawn in layer order from the seed's generator; y = W_std/sqrt(fan_in) W x + b_std b."""
    gen = torch_generator(seed)
    h = x
    sizes = [width] * hidden_layers + [out_dim]
    for i, out in enumerate(sizes):
        fan_in = h.shape[1]
        wb = torch.randn(out, fan_in + (1 if b_std else 0), generator=gen, dtype=torch.float64)
        h = w_std / math.sqrt(fan_in) * h @ wb[:, :fan_in].T + (b_std * wb[:, fan_in] if b_std else 0.0)
        if i < hidden_layers:
            h = TORCH_FNS[activation](h)
    return h


@pytest.mark.parametrize("activation", NAMES)
@pytest.mark.parametrize("b_std", [0.0, 0.2])
def test_mlp_module_is_the_documented_network_and_mlp_network_is_it(activation: str, b_std: float) -> None:
    x = torch.randn(5, 3, generator=torch_generator(1), dtype=torch.float64)
    description = stax.MLP(2, 16, activation, 1.4, b_std, out_dim=2)
    net = description.module((3,), seed=7)
    expected = _by_hand(x, 2, 16, activation, 1.4, b_std, 2, seed=7)
    torch.testing.assert_close(net(x), expected, rtol=1e-12, atol=1e-12)
    same = kernels.mlp_network(3, 2, 16, activation, 1.4, b_std, 2, seed=7)
    assert torch.equal(same(x), net(x))
    assert [n for n, _ in same.named_parameters()] == [n for n, _ in net.named_parameters()]


@pytest.mark.parametrize("activation", NAMES)
@pytest.mark.parametrize("b_std", [0.0, 0.3])
def test_mlp_closed_form_kernel_equals_the_layer_rules(activation: str, b_std: float) -> None:
    x = np.random.default_rng(0).standard_normal((6, 4))
    description = stax.MLP(3, 64, activation, 1.3, b_std)
    fast = description.kernel_fn(x)
    rules = Layer.kernel_fn(description, x)  # the generic layer-by-layer path
    for a, b in ((fast.nngp, rules.nngp), (fast.ntk, rules.ntk)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
    ref = kernels.mlp(3, activation, 1.3, b_std)(x)
    np.testing.assert_array_equal(fast.ntk, ref.ntk)
    np.testing.assert_array_equal(fast.nngp, ref.nngp)


def test_standard_mlp_matches_kernels_mlp_with_a_bias() -> None:
    x = np.random.default_rng(1).standard_normal((5, 3))
    got = stax.MLP(2, 32, "erf", 1.2, 0.4, parameterization="standard").kernel_fn(x)
    ref = kernels.mlp(2, "erf", 1.2, 0.4, parameterization="standard", width=32)(x)
    np.testing.assert_allclose(got.ntk, ref.ntk, rtol=1e-12)
    np.testing.assert_allclose(got.nngp, ref.nngp, rtol=1e-12)


def test_mlp_composes_and_keeps_its_spec() -> None:
    description = stax.MLP(1, 8, "RELU", 1.5, 0.1, out_dim=4)
    assert description.spec == stax.MLPSpec(1, 8, "relu", 1.5, 0.1, 4, "ntk")
    x = np.random.default_rng(2).standard_normal((4, 3))
    composed = stax.serial(description, stax.Erf(), stax.Dense(1, 1.0, 0.1))
    by_layers = stax.serial(stax.Dense(8, 1.5, 0.1), stax.Relu(), stax.Dense(4, 1.5, 0.1), stax.Erf(),
                            stax.Dense(1, 1.0, 0.1))
    np.testing.assert_allclose(composed.kernel_fn(x).ntk, by_layers.kernel_fn(x).ntk, rtol=1e-13)


def test_ntk_dense_acts_per_position_on_spatial_inputs() -> None:
    layer = stax.Dense(3, 1.3, 0.2)
    net = layer.module((4, 5), seed=0)
    x = torch.randn(2, 4, 5, generator=torch_generator(3), dtype=torch.float64)
    flat = layer.module((4,), seed=0)
    per_position = torch.stack([flat(x[:, :, s]) for s in range(5)], dim=-1)
    torch.testing.assert_close(net(x), per_position, rtol=0, atol=0)


def test_one_activation_vocabulary() -> None:
    x = np.random.default_rng(3).standard_normal((3, 2))
    for name in NAMES:
        upper = name.upper()
        assert repr(stax.Activation(upper)) == repr(stax.Activation(name))
        np.testing.assert_array_equal(kernels.mlp(1, upper)(x).ntk, kernels.mlp(1, name)(x).ntk)
        assert torch.equal(kernels.mlp_network(2, 1, 4, upper)(torch.ones(1, 2, dtype=torch.float64)),
                           kernels.mlp_network(2, 1, 4, name)(torch.ones(1, 2, dtype=torch.float64)))
    assert "Elementwise" in repr(stax.Activation(torch.sin))
    for bad in ("softplus", 3, None):
        for build in (stax.Activation, lambda a: kernels.mlp(1, a), lambda a: kernels.mlp_network(2, 1, 4, a),
                      lambda a: stax.MLP(1, 4, a)):
            with pytest.raises(ValueError, match="activation"):
                build(bad)


@pytest.mark.parametrize("bad", [dict(hidden_layers=-1), dict(width=0), dict(W_std=float("nan")),
                                 dict(b_std=-0.1), dict(out_dim=0), dict(parameterization="mup")])
def test_mlp_refuses_bad_arguments_by_name(bad: dict) -> None:
    args = dict(hidden_layers=1, width=4, activation="relu", W_std=1.0, b_std=0.0, out_dim=1, parameterization="ntk")
    args.update(bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        stax.MLP(**args)
