"""Empirical NTK: the structured (Novak et al. 2022) path equals the generic Jacobian contraction, the kernel
matches hand-derived cases, and the finite-width networks have stax's NTK-parameterization semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learnmech.kernels import empirical_ntk
from learnmech.kernels.empirical import ensemble_outputs, mlp_network

TOL = 1e-10




def _inputs(n: int, *shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _both(model: nn.Module, x1, x2=None, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    fast = empirical_ntk(model, x1, x2, implementation="structured", **kwargs)
    slow = empirical_ntk(model, x1, x2, implementation="jacobian", **kwargs)
    return fast, slow


def _mlp_with_biases(outputs: int) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.GELU(), nn.Linear(6, outputs)).double()


@pytest.mark.parametrize("mode", ["trace", "full"])
@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("cross", [False, True])
def test_structured_equals_jacobian_contraction_on_mlps(mode: str, outputs: int, cross: bool) -> None:
    model = _mlp_with_biases(outputs)
    x1, x2 = _inputs(7, 5), (_inputs(5, 5, seed=1) if cross else None)
    fast, slow = _both(model, x1, x2, mode=mode, batch_size=3)  # several chunks, uneven last one
    n2 = 5 if cross else 7
    expected = (7, n2, outputs, outputs) if (mode == "full" and outputs > 1) else (7, n2)
    assert fast.shape == slow.shape == expected
    assert fast.dtype == np.float64
    np.testing.assert_allclose(fast, slow, rtol=0, atol=TOL * np.abs(slow).max())


def test_conv_and_other_layers_use_the_fallback_and_agree() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv1d(2, 3, 3), nn.ReLU(), nn.LayerNorm(4), nn.Flatten(), nn.Linear(12, 4), nn.Tanh(), nn.Linear(4, 2)
    ).double()
    x = _inputs(5, 2, 6)
    for mode in ("trace", "full"):
        fast, slow = _both(model, x, mode=mode, batch_size=2)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=TOL * np.abs(slow).max())


class _Shared(nn.Module):
    """A Linear used twice (weight sharing) and one applied to a (batch, seq, features) input: both must fall
    back to the Jacobian contraction, since the structured rule assumes one (batch, features) call."""

    def __init__(self) -> None:
        super().__init__()
        self.twice = nn.Linear(4, 4)
        self.seq = nn.Linear(2, 3)
        self.head = nn.Linear(4 + 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.twice(torch.tanh(self.twice(x))))
        s = torch.tanh(self.seq(x.reshape(x.shape[0], 2, 2))).reshape(x.shape[0], -1)
        return self.head(torch.cat([h, s], dim=1))


def test_shared_and_sequence_linears_are_handled_exactly() -> None:
    torch.manual_seed(3)
    model = _Shared().double()
    fast, slow = _both(model, _inputs(6, 4), _inputs(3, 4, seed=2))
    np.testing.assert_allclose(fast, slow, rtol=0, atol=TOL * np.abs(slow).max())


def test_linear_model_kernel_is_inner_product_plus_one() -> None:
    # f(x) = w.x + b: df/dw = x, df/db = 1, so Theta(x, x') = x.x' + 1 exactly (Jacot et al. 2018, eq. 4).
    model = nn.Linear(3, 1).double()
    x1, x2 = _inputs(4, 3), _inputs(2, 3, seed=5)
    np.testing.assert_allclose(empirical_ntk(model, x1, x2), (x1 @ x2.T + 1).numpy(), atol=1e-12)


def test_frozen_parameters_are_not_part_of_the_kernel() -> None:
    model = nn.Linear(3, 1).double()
    model.bias.requires_grad_(False)
    x = _inputs(4, 3)
    np.testing.assert_allclose(empirical_ntk(model, x), (x @ x.T).numpy(), atol=1e-12)


def test_trace_mode_is_mean_of_the_full_kernel_diagonal() -> None:
    model = _mlp_with_biases(3)
    x = _inputs(4, 5)
    full = empirical_ntk(model, x, mode="full")
    np.testing.assert_allclose(empirical_ntk(model, x), np.einsum("ijaa->ij", full) / 3, atol=1e-12)


def test_float64_option_on_a_float32_model() -> None:
    model = _mlp_with_biases(1).float()
    x = _inputs(4, 5).float()
    k64 = empirical_ntk(model, x, dtype="float64")
    k32 = empirical_ntk(model, x)
    reference = empirical_ntk(_mlp_with_biases(1), x.double())  # same seed, same weights, float64 throughout
    np.testing.assert_allclose(k64, reference, rtol=1e-6)  # float32 weights rounded once
    np.testing.assert_allclose(k32, k64, rtol=1e-4)


@settings(max_examples=15, deadline=None)
@given(
    n1=st.integers(1, 6),
    n2=st.integers(1, 6),
    width=st.integers(1, 8),
    depth=st.integers(0, 2),
    batch=st.integers(1, 7),
    seed=st.integers(0, 1000),
)
def test_kernel_invariants(n1: int, n2: int, width: int, depth: int, batch: int, seed: int) -> None:
    net = mlp_network(3, depth, width, "tanh", W_std=1.3, b_std=0.2, seed=seed)
    x1, x2 = _inputs(n1, 3, seed=seed), _inputs(n2, 3, seed=seed + 1)
    joint = empirical_ntk(net, torch.cat([x1, x2]), batch_size=batch)
    # symmetric, PSD (a Gram matrix of Jacobians), and consistent blocks whatever the chunking
    np.testing.assert_allclose(joint, joint.T, atol=1e-12)
    assert np.linalg.eigvalsh(joint).min() >= -1e-10 * max(1.0, np.abs(joint).max())
    np.testing.assert_allclose(empirical_ntk(net, x1, x2, batch_size=batch), joint[:n1, n1:], atol=1e-11)


def test_mlp_network_has_stax_ntk_parameterization() -> None:
    W_std, b_std, width = 1.7, 0.3, 5
    net = mlp_network(3, 1, width, "erf", W_std=W_std, b_std=b_std, seed=4)
    x = _inputs(2, 3)
    first, _, readout = net[0], net[1], net[2]
    w1, b1 = first.weight_and_bias()
    w2, b2 = readout.weight_and_bias()
    hidden = torch.erf(W_std / math.sqrt(3) * x @ w1.T + b_std * b1)
    expected = W_std / math.sqrt(width) * hidden @ w2.T + b_std * b2
    torch.testing.assert_close(net(x), expected)
    # all parameters are N(0, 1) draws, reproducible from the seed
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), mlp_network(3, 1, width, "erf", W_std=W_std,
                                                                                b_std=b_std, seed=4).parameters(),
                                                  strict=True))
    assert sum(p.numel() for p in net.parameters()) == width * 4 + 1 * (width + 1)


def test_ensemble_outputs_of_a_linear_net_have_the_input_layer_covariance() -> None:
    # hidden_layers=0: f(x) = W_std/sqrt(d) w.x + b_std b, so E[f f'] = W_std^2 x.x'/d + b_std^2 exactly.
    net = mlp_network(4, 0, 1, W_std=1.5, b_std=0.5)
    x = _inputs(3, 4)
    outputs = ensemble_outputs(net, x, 20000, seed=1, chunk=4096)[:, :, 0]
    assert outputs.shape == (20000, 3)
    expected = 1.5**2 * (x @ x.T).numpy() / 4 + 0.25
    # Monte-Carlo error per entry ~ sqrt((K_ii K_jj + K_ij^2) / M); 5 standard errors.
    se = np.sqrt((np.outer(np.diag(expected), np.diag(expected)) + expected**2) / 20000)
    assert np.all(np.abs(outputs.T @ outputs / 20000 - expected) < 5 * se)
    np.testing.assert_array_equal(ensemble_outputs(net, x, 5, seed=3), ensemble_outputs(net, x, 5, seed=3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(model="not a module"), "model"),
        (dict(mode="diag"), "mode"),
        (dict(batch_size=0), "batch_size"),
        (dict(x1=[[float("nan"), 0.0, 0.0]]), "x1"),
        (dict(x2=np.zeros((2, 4))), "x2"),
        (dict(dtype="int8"), "dtype"),
        (dict(implementation="magic"), "implementation"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, match: str) -> None:
    args = dict(model=nn.Linear(3, 1), x1=np.zeros((2, 3)), x2=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        empirical_ntk(args.pop("model"), args.pop("x1"), args.pop("x2"), **args)


def test_model_without_trainable_parameters_is_refused() -> None:
    model = nn.Linear(3, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        empirical_ntk(model, np.zeros((2, 3)))


def test_mlp_network_bad_arguments() -> None:
    with pytest.raises(ValueError, match="activation"):
        mlp_network(3, 1, 4, "swishy")
    with pytest.raises(ValueError, match="width"):
        mlp_network(3, 1, 0)
