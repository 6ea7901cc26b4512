"""Tests for learnmech.kernels.stax and from_torch: agreement with neural-tangents 0.6.5, invariants, the finite
networks' empirical NTK converging to the analytic one, from_torch, devices and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learnmech.kernels import empirical_ntk, from_torch, mlp, stax

REFERENCE = json.loads((Path(__file__).parent / "data" / "stax_reference.json").read_text())
INPUTS = {k: (np.array(v["x1"]), np.array(v["x2"])) for k, v in REFERENCE["inputs"].items()}


def build(spec: list) -> stax.Layer:
    """A stax layer from make_stax_reference.py's JSON spec (the same spec built neural-tangents' network)."""
    name, kw = spec
    kw = dict(kw)
    if name in ("serial", "parallel"):
        return getattr(stax, name)(*[build(s) for s in kw["layers"]])
    for key in ("filter_shape", "window_shape", "strides", "axis"):
        if isinstance(kw.get(key), list):
            kw[key] = tuple(kw[key])
    return getattr(stax, name)(**kw)


def _rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=[c["name"] for c in REFERENCE["cases"]])
def test_matches_neural_tangents(case: dict) -> None:
    # Target 1e-7 of the largest entry in float64 (measured: <= 1e-14 everywhere except a ReLU NTK on a symmetric
    # kernel, 8.5e-10, where arccos near correlation 1 amplifies rounding to sqrt(eps); tanh <= 3e-12, where
    # neural-tangents' 400-point Gauss-Hermite and our graded quadrature differ).
    x1, x2 = INPUTS[case["inputs"]]
    net = stax.serial(*[build(s) for s in case["net"]])
    kern = net.kernel_fn(x1, x2 if case["cross"] else None)
    for field in ("nngp", "ntk"):
        ref = np.array(case[field])
        ours = getattr(kern, field)
        assert ours.shape == ref.shape and ours.dtype == np.float64
        assert _rel_err(ours, ref) < 1e-7, (case["name"], field, _rel_err(ours, ref))


def test_reference_covers_every_layer() -> None:
    names: set[str] = set()

    def walk(spec: list) -> None:
        names.add(spec[0])
        for sub in spec[1].get("layers", []):
            walk(sub)

    for case in REFERENCE["cases"]:
        for spec in case["net"]:
            walk(spec)
    assert names >= {"serial", "parallel", "FanOut", "FanInSum", "Identity", "Dense", "Conv", "AvgPool",
                     "GlobalAvgPool", "Flatten", "LayerNorm", "GlobalSelfAttention", "Relu", "Erf", "Gelu", "Tanh"}
    paddings = {s[1].get("padding") for c in REFERENCE["cases"] for s in c["net"] if s[0] == "Conv"}
    assert paddings >= {"VALID", "SAME", "CIRCULAR"}


def test_mlp_is_the_dense_special_case() -> None:
    # kernels.mlp and the stax serial network are the same recursion (two implementations).
    x = np.random.default_rng(0).normal(size=(6, 5))
    for act, layer in (("relu", stax.Relu), ("erf", stax.Erf), ("gelu", stax.Gelu)):
        ours = stax.serial(*[stax.Dense(32, 1.4, 0.2), layer()] * 3, stax.Dense(1, 1.4, 0.2)).kernel_fn(x)
        ref = mlp(3, act, 1.4, 0.2)(x)
        np.testing.assert_allclose(ours.nngp, ref.nngp, rtol=1e-12)
        np.testing.assert_allclose(ours.ntk, ref.ntk, rtol=1e-12)


# --------------------------------------------------------------------------------------------- properties
@st.composite
def cnns(draw: st.DrawFn) -> tuple[stax.Layer, tuple[int, ...]]:
    """Random small CNNs (1-D or 2-D, any padding/stride, optional pooling, residual or LayerNorm) and input shape."""
    dims = draw(st.sampled_from([1, 2]))
    size = draw(st.integers(4, 6))
    shape = (draw(st.integers(1, 3)),) + (size,) * dims
    layers = []
    act = draw(st.sampled_from([stax.Relu, stax.Erf, stax.Gelu]))
    for _ in range(draw(st.integers(1, 2))):
        pad = draw(st.sampled_from(["VALID", "SAME", "CIRCULAR"]))
        stride = draw(st.sampled_from([1, 2]))
        layers += [stax.Conv(4, (2,) * dims, (stride,) * dims, pad, W_std=draw(st.floats(0.5, 2.0)),
                             b_std=draw(st.sampled_from([None, 0.1]))), act()]
    kind = draw(st.sampled_from(["gap", "flatten", "pool", "residual", "layernorm"]))
    if kind == "pool":
        layers += [stax.AvgPool((2,) * dims, padding=draw(st.sampled_from(["SAME", "CIRCULAR"]))),
                   stax.Flatten()]
    elif kind == "residual":
        block = stax.serial(stax.Conv(4, (1,) * dims, padding="SAME"), act(), stax.Conv(4, (1,) * dims))
        layers += [stax.Conv(4, (1,) * dims), stax.FanOut(2), stax.parallel(block, stax.Identity()),
                   stax.FanInSum(), act(), stax.GlobalAvgPool()]
    elif kind == "layernorm":
        layers += [stax.Conv(4, (1,) * dims), stax.LayerNorm(), act(), stax.GlobalAvgPool()]
    else:
        layers.append(stax.GlobalAvgPool() if kind == "gap" else stax.Flatten())
    layers.append(stax.Dense(1, W_std=draw(st.floats(0.5, 2.0)), b_std=0.1))
    return stax.serial(*layers), shape


@settings(max_examples=15)
@given(cnns(), st.integers(0, 2**31 - 1))
def test_symmetric_psd_and_cross_consistent(net_shape: tuple, seed: int) -> None:
    net, shape = net_shape
    x = np.random.default_rng(seed).normal(size=(5, *shape))
    full = net.kernel_fn(x)
    cross = net.kernel_fn(x, x[:3])  # the cross path on the same inputs
    same = net.kernel_fn(x, x.copy())
    for field in ("nngp", "ntk"):
        k = getattr(full, field)
        assert np.all(np.isfinite(k))
        np.testing.assert_array_equal(k, k.T)
        eig = np.linalg.eigvalsh(k)
        assert eig.min() >= -1e-10 * eig.max()
        np.testing.assert_allclose(getattr(cross, field), k[:, :3], rtol=1e-9, atol=1e-12 * np.abs(k).max())
        np.testing.assert_array_equal(getattr(same, field), k)


def test_float32_close_to_float64() -> None:
    x = np.random.default_rng(1).normal(size=(6, 3, 5, 5))
    net = stax.serial(stax.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), stax.Relu(),
                      stax.AvgPool((2, 2)), stax.Conv(8, (2, 2)), stax.Gelu(), stax.GlobalAvgPool(), stax.Dense(1))
    k64, k32 = net.kernel_fn(x), net.kernel_fn(x, dtype=np.float32)
    assert k32.ntk.dtype == np.float64
    assert _rel_err(k32.ntk, k64.ntk) < 1e-5 and _rel_err(k32.nngp, k64.nngp) < 1e-5


def test_tiles_agree_with_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force tiny tiles: the blockwise computation (rows/columns carry their own covariances) changes nothing.
    x = np.random.default_rng(2).normal(size=(7, 2, 4, 4))
    net = stax.serial(stax.Conv(4, (2, 2), padding="CIRCULAR"), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1))
    whole = net.kernel_fn(x)
    cross_whole = net.kernel_fn(x, x[:5] + 0.5)
    monkeypatch.setattr(stax, "_TILE_BYTES", 1)
    tiled = net.kernel_fn(x)
    np.testing.assert_allclose(tiled.ntk, whole.ntk, rtol=1e-13)
    np.testing.assert_allclose(net.kernel_fn(x, x[:5] + 0.5).nngp, cross_whole.nngp, rtol=1e-13)


# --------------------------------------------------------------------------------- finite networks -> limit
def _ntk_error(net: stax.Layer, x: torch.Tensor, seeds: range) -> float:
    analytic = net.kernel_fn(x).ntk
    errs = [np.linalg.norm(empirical_ntk(net.module(tuple(x.shape[1:]), seed=s), x) - analytic)
            / np.linalg.norm(analytic) for s in seeds]
    return float(np.mean(errs))


def test_module_empirical_ntk_converges_cnn() -> None:
    # NTK parameterization (Jacot et al. 2018, thm. 1): the error of the empirical NTK shrinks like width^-1/2.
    # 16x the width: the mean error over 3 seeds must drop by more than 2x (4x expected) and be < 10%.
    x = torch.randn(5, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def net(width: int) -> stax.Layer:
        return stax.serial(stax.Conv(width, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(),
                           stax.Conv(width, (2, 2), strides=(2, 2), padding="CIRCULAR", W_std=1.4), stax.Relu(),
                           stax.AvgPool((2, 2), padding="SAME"), stax.Flatten(), stax.Dense(1, W_std=1.2, b_std=0.2))

    small, large = _ntk_error(net(16), x, range(3)), _ntk_error(net(256), x, range(3))
    assert large < 0.1 and large < small / 2, (small, large)


def test_module_empirical_ntk_converges_residual_layernorm_standard() -> None:
    x = torch.randn(5, 3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def net(width: int) -> stax.Layer:
        block = stax.serial(stax.Relu(), stax.Conv(width, (3,), padding="SAME", W_std=1.3, parameterization="standard"))
        return stax.serial(stax.Conv(width, (3,), W_std=1.2, b_std=0.1, parameterization="standard"),
                           stax.FanOut(2), stax.parallel(block, stax.Identity()), stax.FanInSum(),
                           stax.LayerNorm(), stax.Gelu(), stax.GlobalAvgPool(),
                           stax.Dense(1, b_std=0.1, parameterization="standard"))

    small, large = _ntk_error(net(16), x, range(3)), _ntk_error(net(512), x, range(3))
    assert large < 0.1 and large < small / 2, (small, large)


def test_module_empirical_ntk_converges_attention() -> None:
    x = torch.randn(4, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def net(width: int) -> stax.Layer:
        return stax.serial(stax.Conv(width, (1,), W_std=1.2, b_std=0.1),
                           stax.GlobalSelfAttention(width, width, width, 4, b_std=0.2), stax.Relu(),
                           stax.GlobalAvgPool(), stax.Dense(1))

    # 32x the width (measured 0.92 at width 16 and 0.15 at 256: pre-asymptotic; width^-1/2 from 256 gives 0.11).
    small, large = _ntk_error(net(16), x, range(3)), _ntk_error(net(512), x, range(3))
    assert large < 0.15 and large < small / 2, (small, large)


def test_module_shapes_and_seed() -> None:
    net = stax.serial(stax.Conv(6, (3, 3), strides=(2, 1), padding="SAME"), stax.Erf(), stax.Flatten(),
                      stax.Dense(3))
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    out = net.module((3, 7, 5), seed=4)(x)
    assert out.shape == (2, 3)
    torch.testing.assert_close(net.module((3, 7, 5), seed=4)(x), out)
    assert not torch.equal(net.module((3, 7, 5), seed=5)(x), out)
    assert net.module((3, 7, 5), dtype=torch.float32)(x.float()).dtype == torch.float32


def test_pooling_modules_match_kernel_layout() -> None:
    # SAME/CIRCULAR padding of the finite modules equals the kernel's: with a linear net (no activation) and
    # Dense readout, the NNGP is exactly the covariance of the output over Gaussian weights, which for one
    # Conv + pool is sum_{ij} A_i A_j K_ij -- compare to a Monte-Carlo-free exact computation with linearity:
    # the module applied to the identity-like basis gives the linear map, whose Gram is the NNGP / W_std^2.
    x = np.random.default_rng(3).normal(size=(3, 1, 5, 5))
    for pad in ("VALID", "SAME", "CIRCULAR"):
        pool = stax.AvgPool((3, 2), strides=(2, 1), padding=pad)
        net = stax.serial(pool, stax.Flatten(), stax.Dense(1))
        feats = pool.module((1, 5, 5))(torch.tensor(x)).flatten(1).numpy()
        np.testing.assert_allclose(net.kernel_fn(x).nngp, feats @ feats.T / feats.shape[1], rtol=1e-12)


# ------------------------------------------------------------------------------------------------- from_torch
def example_model(width: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1))


def test_from_torch_example_model() -> None:
    x = np.random.default_rng(4).normal(size=(4, 3, 5, 5))
    layer = from_torch(example_model())
    expected = stax.serial(
        stax.Conv(64, (3, 3), padding="SAME", W_std=3**-0.5, b_std=(3 * 27) ** -0.5, parameterization="standard"),
        stax.Relu(),
        stax.Conv(64, (3, 3), padding="SAME", W_std=3**-0.5, b_std=(3 * 576) ** -0.5, parameterization="standard"),
        stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, 3**-0.5, (3 * 64) ** -0.5, parameterization="standard"))
    ours, ref = layer.kernel_fn(x), expected.kernel_fn(x)
    np.testing.assert_allclose(ours.ntk, ref.ntk, rtol=1e-13)
    np.testing.assert_allclose(ours.nngp, ref.nngp, rtol=1e-13)


def test_from_torch_gaussian_model_converges() -> None:
    # The torch model itself, its weights re-drawn Gaussian with torch's default variances (1 / (3 fan_in)):
    # its empirical NTK tends to from_torch's kernel, including the affine LayerNorm's gain/bias terms.
    x = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    errs = []
    for width in (32, 1024):
        model = nn.Sequential(nn.Linear(5, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, width),
                              nn.GELU(), nn.Linear(width, 1)).double()
        analytic = from_torch(model).kernel_fn(x).ntk
        err = 0.0
        for seed in range(3):
            torch.manual_seed(seed)
            with torch.no_grad():
                for m in model:
                    if isinstance(m, nn.Linear):
                        std = (3.0 * m.in_features) ** -0.5
                        m.weight.normal_(0.0, std)
                        m.bias.normal_(0.0, std)
            err += np.linalg.norm(empirical_ntk(model, x) - analytic) / np.linalg.norm(analytic) / 3
        errs.append(err)
    assert errs[1] < 0.1 and errs[1] < errs[0] / 2, errs


def test_from_torch_init_weights_and_padding_forms() -> None:
    model = nn.Sequential(nn.Conv1d(2, 8, 3, padding="same", padding_mode="circular"), nn.Tanh(),
                          nn.AvgPool1d(2), nn.Conv1d(8, 8, 2, stride=2, padding=1), nn.GELU(), nn.Flatten(),
                          nn.Linear(8 * 2, 1, bias=False)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    x = np.random.default_rng(6).normal(size=(3, 2, 6))
    default, measured = from_torch(model).kernel_fn(x), from_torch(model, init="weights").kernel_fn(x)
    assert np.all(np.isfinite(default.ntk)) and not np.allclose(default.nngp, measured.nngp)
    net = from_torch(model).module((2, 6))
    assert net(torch.tensor(x)).shape == (3, 1)


@pytest.mark.parametrize("bad, name", [
    (nn.Sequential(nn.Linear(4, 4), nn.MaxPool1d(2)), "MaxPool1d"),
    (nn.Sequential(nn.Linear(4, 4), nn.GELU(approximate="tanh")), "GELU"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), "groups"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")), "reflect"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten()), "AdaptiveAvgPool2d"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), nn.AvgPool2d(2, ceil_mode=True)), "ceil_mode"),
    (nn.Sequential(nn.Dropout(0.1)), "Dropout"),
])
def test_from_torch_refuses(bad: nn.Sequential, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        from_torch(bad)


def test_from_torch_refuses_linear_on_spatial_activations() -> None:
    layer = from_torch(nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match="Linear"):
        layer.kernel_fn(np.ones((2, 2, 6)))
    with pytest.raises(ValueError, match="nn.Sequential"):
        from_torch(nn.Linear(3, 1))


# ------------------------------------------------------------------------------------------------ validation
def test_bad_inputs() -> None:
    net = stax.serial(stax.Conv(4, (2, 2)), stax.Relu(), stax.Flatten(), stax.Dense(1))
    x = np.ones((2, 3, 4, 4))
    with pytest.raises(ValueError, match="x1"):
        net.kernel_fn(np.ones(5))
    with pytest.raises(ValueError, match="x2"):
        net.kernel_fn(x, np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        net.kernel_fn(np.full((2, 3, 4, 4), np.nan))
    with pytest.raises(ValueError, match="spatial"):
        net.kernel_fn(np.ones((2, 6)))  # Conv on (N, D)
    with pytest.raises(ValueError, match="dtype"):
        net.kernel_fn(x, dtype=np.int32)
    with pytest.raises(ValueError, match="Gaussian"):
        stax.serial(stax.Dense(2), stax.Relu(), stax.Relu(), stax.Dense(1)).kernel_fn(np.ones((2, 3)))
    with pytest.raises(ValueError, match="spatial shape"):
        stax.serial(stax.Conv(4, (2, 2)), stax.Relu()).kernel_fn(x)
    with pytest.raises(ValueError, match="FanInSum"):
        stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(1), stax.Dense(1))).kernel_fn(np.ones((2, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        stax.serial(stax.Conv(4, (5, 5)), stax.Flatten(), stax.Dense(1)).kernel_fn(x)
    with pytest.raises(ValueError, match="in_shape"):
        net.module((0, 4))
    for make, match in [
        (lambda: stax.Dense(0), "out_dim"), (lambda: stax.Dense(3, W_std=-1.0), "W_std"),
        (lambda: stax.Dense(3, parameterization="mup"), "parameterization"),
        (lambda: stax.Conv(3, (2, 2), padding="FULL"), "padding"), (lambda: stax.Conv(3, (2, 2, 2)), "1-D or 2-D"),
        (lambda: stax.Conv(3, (2, 2), strides=(1,)), "strides"), (lambda: stax.LayerNorm(axis=0), "axis"),
        (lambda: stax.Gelu(approximate=True), "approximate"), (lambda: stax.serial(), "at least one"),
        (lambda: stax.serial(stax.Relu(), 3), "argument 1"), (lambda: stax.Elementwise(3), "fn"),
        (lambda: stax.GlobalSelfAttention(4, 4, 4, 1, linear_scaling=False), "linear_scaling"),
        (lambda: stax.GlobalSelfAttention(4, 4, 4, 1, pos_emb_type="SUM"), "pos_emb_type"),
        (lambda: stax.GlobalSelfAttention(4, 4, 4, 1, attention_mechanism="max"), "attention_mechanism"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()


def test_elementwise_callable_matches_closed_form() -> None:
    x = np.random.default_rng(7).normal(size=(4, 2, 5))
    closed = stax.serial(stax.Conv(4, (2,), W_std=1.3), stax.Erf(), stax.GlobalAvgPool(), stax.Dense(1))
    numeric = stax.serial(stax.Conv(4, (2,), W_std=1.3), stax.Elementwise(torch.erf), stax.GlobalAvgPool(),
                          stax.Dense(1))
    np.testing.assert_allclose(numeric.kernel_fn(x).ntk, closed.kernel_fn(x).ntk, rtol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x = np.random.default_rng(8).normal(size=(9, 3, 6, 6))
    net = stax.serial(stax.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), stax.Relu(),
                      stax.Conv(8, (3, 3), strides=(2, 2), padding="CIRCULAR"), stax.LayerNorm(), stax.Gelu(),
                      stax.Dense(8), stax.Erf(), stax.AvgPool((2, 2)), stax.Flatten(), stax.Dense(1))
    cpu = net.kernel_fn(x)
    gpu = net.kernel_fn(torch.tensor(x, device="cuda"))
    np.testing.assert_allclose(gpu.ntk, cpu.ntk, rtol=1e-10)
    np.testing.assert_allclose(gpu.nngp, cpu.nngp, rtol=1e-10)
    module = net.module((3, 6, 6)).cuda()
    assert module(torch.tensor(x, device="cuda")).device.type == "cuda"


def test_torch_dual_maps_match_numpy_maps() -> None:
    # The CUDA path's torch formulas, checked on the CPU against the numpy closed forms of kernels.mlp.
    from learnmech.kernels._stax_dual import _TORCH_PAIRS, DualMap

    rng = np.random.default_rng(9)
    q1, q2 = rng.uniform(0.1, 50.0, (6, 1)), rng.uniform(0.1, 50.0, (1, 5))
    c = rng.uniform(-0.99, 0.99, (6, 5)) * np.sqrt(q1 * q2)
    c[0, 0] = np.sqrt(q1[0, 0] * q2[0, 0])  # correlation exactly 1
    for name, pair in _TORCH_PAIRS.items():
        ours = pair(*(torch.tensor(a) for a in (c, q1, q2)))
        ref = DualMap(name).numpy_pair(c.copy(), q1, q2)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_allclose(a.numpy(), np.broadcast_to(b, c.shape), rtol=1e-12, atol=1e-14)


def test_same_position_mode_equals_full_covariance() -> None:
    # Without pooling/attention only K[s, s] reaches the output, and the kernel runs on (t1, t2, *X) blocks;
    # forcing the full (t1, t2, *X, *X) computation must give the same numbers.
    x = np.random.default_rng(10).normal(size=(5, 2, 6, 5))
    net = stax.serial(stax.Conv(4, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(),
                      stax.Conv(4, (2, 3), strides=(2, 1), padding="CIRCULAR", W_std=1.2), stax.LayerNorm(axis=(1, 2)),
                      stax.Gelu(), stax.FanOut(2), stax.parallel(stax.Conv(4, (1, 1)), stax.Dense(4)), stax.FanInSum(),
                      stax.Erf(), stax.Flatten(), stax.Dense(1, b_std=0.2))
    assert not net._full
    same_position = net.kernel_fn(x), net.kernel_fn(x, x[:2] + 1.0)
    net._full = True
    full = net.kernel_fn(x), net.kernel_fn(x, x[:2] + 1.0)
    for a, b in zip(same_position, full, strict=True):
        np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-13)
        np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-13)
