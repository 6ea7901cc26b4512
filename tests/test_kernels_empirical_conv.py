"""Empirical NTK of convolutions and LayerNorm: the structured rule (per-layer Jacobians contracted from input
patches / normalised inputs and output cotangents, Novak et al. 2022, sec. 4) equals the generic Jacobian
contraction to 1e-10 in float64, covers the layers it claims, falls back exactly where it does not, and runs on the
device of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech.kernels import empirical_ntk
from learnmech.kernels.empirical import _NTKComputer

TOL = 1e-10
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _inputs(n: int, *shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _assert_both_agree(model: nn.Module, x1, x2=None, **kwargs) -> np.ndarray:
    fast = empirical_ntk(model, x1, x2, implementation="structured", **kwargs)
    slow = empirical_ntk(model, x1, x2, implementation="jacobian", **kwargs)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, rtol=0, atol=TOL * np.abs(slow).max())
    return fast


def _tapped_kinds(model: nn.Module, x: torch.Tensor) -> dict[str, str]:
    computer = _NTKComputer(model, torch.float64, "structured", x[:2])
    return {name: kind for name, (_, _, kind, _) in computer.taps.items()}


def _cnn2d(out: int, **conv_kwargs) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, **conv_kwargs), nn.ReLU(),
        nn.Conv2d(4, 5, (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, out),
    ).double()


@pytest.mark.parametrize("mode", ["trace", "full"])
@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("cross", [False, True])
def test_conv2d_cnn_structured_equals_jacobian(mode: str, outputs: int, cross: bool) -> None:
    model = _cnn2d(outputs, padding=1)
    x1, x2 = _inputs(5, 3, 7, 6), (_inputs(4, 3, 7, 6, seed=1) if cross else None)
    kernel = _assert_both_agree(model, x1, x2, mode=mode, batch_size=2)
    n2 = 4 if cross else 5
    assert kernel.shape == ((5, n2, outputs, outputs) if (mode == "full" and outputs > 1) else (5, n2))
    assert set(_tapped_kinds(model, x1).values()) == {"conv", "dense"}


@pytest.mark.parametrize(
    "conv_kwargs",
    [
        dict(padding=0),
        dict(padding="same"),
        dict(padding="valid", stride=2),
        dict(padding=2, dilation=2, stride=(1, 2)),
        dict(padding=1, padding_mode="circular"),
        dict(padding=(1, 2), padding_mode="reflect"),
        dict(padding=1, padding_mode="replicate", bias=False),
    ],
)
def test_conv2d_padding_stride_dilation_variants(conv_kwargs: dict) -> None:
    model = _cnn2d(2, **conv_kwargs)
    _assert_both_agree(model, _inputs(4, 3, 11, 12), mode="full", batch_size=3)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_same_padding_with_an_even_kernel_pads_the_right_side() -> None:
    # torch puts the extra zero of an even kernel's "same" padding on the right/bottom.
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 3, (2, 4), padding="same", dilation=(1, 1)), nn.Tanh(), nn.Flatten(),
                          nn.Linear(3 * 5 * 6, 1)).double()
    _assert_both_agree(model, _inputs(4, 2, 5, 6))


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_conv1d_cnn_structured_equals_jacobian(padding_mode: str) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv1d(2, 6, 3, padding=1, padding_mode=padding_mode), nn.GELU(),
        nn.Conv1d(6, 4, 2, stride=2), nn.ReLU(),
        nn.Conv1d(4, 3, 3, padding="same", dilation=2), nn.Tanh(),
        nn.Flatten(), nn.Linear(3 * 5, 2),
    ).double()
    x = _inputs(6, 2, 10)
    for mode in ("trace", "full"):
        _assert_both_agree(model, x, _inputs(3, 2, 10, seed=3), mode=mode, batch_size=4)
    assert list(_tapped_kinds(model, x).values()).count("conv") == 3


@pytest.mark.parametrize("outputs", [1, 4])
def test_layernorm_mlp_structured_equals_jacobian(outputs: int) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Linear(5, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 6), nn.LayerNorm(6, eps=1e-3), nn.Tanh(),
        nn.Linear(6, outputs),
    ).double()
    # non-trivial gains and biases (the defaults 1 and 0 would hide a wrong factor)
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.LayerNorm):
                module.weight.normal_()
                module.bias.normal_()
    x = _inputs(7, 5)
    for mode in ("trace", "full"):
        _assert_both_agree(model, x, _inputs(4, 5, seed=2), mode=mode, batch_size=3)
    assert list(_tapped_kinds(model, x).values()).count("layernorm") == 2


def test_layernorm_over_several_axes_and_on_sequences() -> None:
    # LayerNorm over (C, L) after a conv, LayerNorm over the last axis of (n, L, C) tokens, and a Linear on
    # (n, L, C): the sums over leading positions in the rules.
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 3, 3)
            self.ln_all = nn.LayerNorm((3, 6))
            self.ln_tok = nn.LayerNorm(3)
            self.mix = nn.Linear(3, 4)
            self.head = nn.Linear(24, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.tanh(self.ln_all(self.conv(x)))  # (n, 3, 6)
            t = torch.relu(self.mix(self.ln_tok(h.transpose(1, 2))))  # (n, 6, 4)
            return self.head(t.reshape(x.shape[0], -1))

    torch.manual_seed(3)
    model = Tokens().double()
    with torch.no_grad():
        for ln in (model.ln_all, model.ln_tok):
            ln.weight.normal_()
            ln.bias.normal_()
    x = _inputs(5, 2, 8)
    kinds = _tapped_kinds(model, x)
    assert kinds == {"conv": "conv", "ln_all": "layernorm", "ln_tok": "layernorm", "mix": "dense_nd",
                     "head": "dense"}
    _assert_both_agree(model, x, mode="full", batch_size=2)


@pytest.mark.parametrize("outputs", [1, 3])
def test_position_gram_form_for_wide_layers_on_few_positions(outputs: int) -> None:
    # Wide convs on 2x2 / 1x3 maps and a Linear on 2 tokens: L^2 (k O + D) < k O D, so trace mode contracts
    # position-pair Grams instead of per-sample Jacobians; full mode keeps the Jacobian form. Both exact.
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 24, 3, padding=1)
            self.conv2 = nn.Conv2d(24, 32, 3, stride=2, padding=1, padding_mode="circular")  # 4x4 -> 2x2
            self.conv3 = nn.Conv1d(32, 40, 2, bias=False)  # the 2x2 map read as 1x4: 3 positions
            self.tokens = nn.Linear(40, 30)
            self.head = nn.Linear(2 * 30, outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            h = torch.tanh(self.conv3(h.reshape(x.shape[0], 32, 4)))  # (n, 40, 3)
            t = torch.tanh(self.tokens(h[:, :, :2].transpose(1, 2)))  # 2 tokens of 40 -> (n, 2, 30)
            return self.head(t.reshape(x.shape[0], -1))

    torch.manual_seed(8)
    model = Net().double()
    x = _inputs(5, 3, 4, 4)
    computer = _NTKComputer(model, torch.float64, "structured", x[:2])
    feats = computer.features(x)
    assert len(feats.positional) == 3  # conv2, conv3, tokens (conv1: 16 positions, D = 27 -> Jacobian form)
    assert len(_NTKComputer(model, torch.float64, "structured", x[:2], full=True).features(x).positional) == 0
    for mode in ("trace", "full"):
        _assert_both_agree(model, x, _inputs(3, 3, 4, 4, seed=4), mode=mode, batch_size=2)
    _assert_both_agree(model, x)


def test_grouped_conv_and_frozen_parameters_fall_back_exactly() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, groups=2), nn.ReLU(), nn.Conv2d(6, 3, 2), nn.ReLU(),
                          nn.LayerNorm([3, 3, 3], elementwise_affine=False), nn.Flatten(),
                          nn.Linear(27, 1)).double()
    model[2].weight.requires_grad_(False)  # only the bias of the second conv is trained
    x = _inputs(4, 4, 6, 6)
    kinds = _tapped_kinds(model, x)
    assert "0" not in kinds and kinds["2"] == "conv" and "4" not in kinds  # groups=2 and the affine-free LN
    _assert_both_agree(model, x, mode="trace")


def test_conv_kernel_of_a_single_linear_conv_is_a_patch_gram() -> None:
    # f(x) = sum_{o,l} (W P(x) + b)[o, l]: dF/dW[o, c] = sum_l P[c, l], dF/db[o] = L, so
    # Theta = O * (s(x1) . s(x2) + L^2) with s = patch sums (Jacot et al. 2018, eq. 4 for a linear model).
    torch.manual_seed(6)
    conv = nn.Conv2d(2, 3, 2, padding=1).double()

    class Summed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).sum(dim=(1, 2, 3))

    x = _inputs(3, 2, 4, 4)
    patches = torch.nn.functional.unfold(x, 2, padding=1)  # (n, 8, 25)
    sums = patches.sum(-1)
    expected = 3 * (sums @ sums.T + 25**2)
    np.testing.assert_allclose(empirical_ntk(Summed(), x), expected.numpy(), rtol=1e-12)


def test_float32_model_kernel_matches_float64() -> None:
    model = _cnn2d(1, padding=1)
    x = _inputs(4, 3, 6, 6)
    k64 = empirical_ntk(model, x)
    k32 = empirical_ntk(model.float(), x.float())
    np.testing.assert_allclose(k32, k64, rtol=1e-4, atol=1e-5 * np.abs(k64).max())


@CUDA
def test_conv_and_layernorm_kernel_on_cuda_equals_cpu() -> None:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LayerNorm(4 * 36),
                          nn.Linear(4 * 36, 2)).double()
    x = _inputs(5, 3, 6, 6)
    cpu = empirical_ntk(model, x, mode="full")
    gpu = empirical_ntk(model.cuda(), x.cuda(), mode="full")
    gpu_from_numpy = empirical_ntk(model, x.numpy(), mode="full", batch_size=2)  # inputs follow the model
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-10 * np.abs(cpu).max())
    np.testing.assert_allclose(gpu_from_numpy, cpu, rtol=0, atol=1e-10 * np.abs(cpu).max())
    np.testing.assert_allclose(empirical_ntk(model, x, implementation="jacobian", mode="full"), cpu, rtol=0,
                               atol=1e-10 * np.abs(cpu).max())
