"""Generate tests/data/stax_reference.json: neural-tangents 0.6.5 (x64) kernels of conv/pool/residual/LayerNorm/
attention networks, for tests/test_kernels_stax.py.

Run with the neural-tangents peer python (never learnmech's venv):

    python -c "import sys; sys.path.insert(0, 'benchmarks'); from _peers import NT_REQUIREMENTS, peer_python; \\
        print(peer_python('nt', NT_REQUIREMENTS))"      # creates benchmarks/.peers/nt once
    benchmarks/.peers/nt/bin/python tests/data/make_stax_reference.py tests/data/stax_reference.json

Each case is a network spec (JSON: a list of ``[name, kwargs]``, nested for ``serial``/``parallel``) that the
test turns into ``learnmech.kernels.stax`` layers and this script into ``neural_tangents.stax`` layers. Inputs are
drawn here from a fixed seed, stored channels-first (learnmech's convention) and transposed to channels-last for
neural-tangents. tanh has no closed form in neural-tangents: ``ElementwiseNumerical`` (Gauss-Hermite, ``TANH_DEG``
points) is used, on inputs of moderate variance where it is accurate to ~1e-9.
"""

from __future__ import annotations

import json
import sys
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

SEED = 20251125
TANH_DEG = 400
warnings.filterwarnings("ignore")

# Input sets: (n1, n2, per-input channels-first shape).
INPUTS = {
    "vec": (5, 4, (7,)),
    "img": (4, 3, (3, 6, 6)),
    "img_rect": (3, 2, (2, 5, 7)),
    "seq": (4, 3, (3, 9)),
}


def nt_layer(spec, ndim_spatial):
    name, kw = spec
    kw = dict(kw)
    if name == "serial":
        return stax.serial(*[nt_layer(s, ndim_spatial) for s in kw["layers"]])
    if name == "parallel":
        return stax.parallel(*[nt_layer(s, ndim_spatial) for s in kw["layers"]])
    if name == "FanOut":
        return stax.FanOut(kw["num"])
    if name == "FanInSum":
        return stax.FanInSum()
    if name == "Identity":
        return stax.Identity()
    if name == "Dense":
        return stax.Dense(**kw)
    if name == "Conv":
        return stax.Conv(**kw)
    if name == "AvgPool":
        return stax.AvgPool(**kw)
    if name == "GlobalAvgPool":
        return stax.GlobalAvgPool()
    if name == "Flatten":
        return stax.Flatten()
    if name == "LayerNorm":
        # channels-first axes (1 = channel, 2.. = spatial) -> channels-last axes of neural-tangents
        axes = kw.pop("axis", 1)
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        nt_axes = tuple(-1 if a == 1 else a - 1 for a in axes)
        return stax.LayerNorm(axis=nt_axes, **kw)
    if name == "GlobalSelfAttention":
        return stax.GlobalSelfAttention(**kw)
    if name == "Relu":
        return stax.Relu()
    if name == "Erf":
        return stax.Erf(**kw)
    if name == "Gelu":
        return stax.Gelu(approximate=False)
    if name == "Tanh":
        return stax.ElementwiseNumerical(jnp.tanh, deg=TANH_DEG, df=lambda x: 1.0 - jnp.tanh(x) ** 2)
    raise ValueError(name)


def L(name, **kw):  # noqa: N802 - a layer spec
    return [name, kw]


def serial(*layers):
    return L("serial", layers=list(layers))


def parallel(*layers):
    return L("parallel", layers=list(layers))


def residual(block, shortcut=None):
    return [L("FanOut", num=2), parallel(block, shortcut or L("Identity")), L("FanInSum")]


def cases():
    out = []

    def add(name, inputs, layers, cross=True):
        out.append(dict(name=name, inputs=inputs, net=list(layers), cross=cross))

    # --- dense / activations / MLPs
    for act in ("Relu", "Erf", "Gelu", "Tanh", "Identity"):
        add(f"mlp_{act}", "vec", [L("Dense", out_dim=16, W_std=1.5, b_std=0.2), L(act),
                                   L("Dense", out_dim=16, W_std=1.3, b_std=0.1), L(act), L("Dense", out_dim=1)])
    add("mlp_erf_abc", "vec", [L("Dense", out_dim=8, W_std=1.2, b_std=0.1), L("Erf", a=1.7, b=0.6, c=0.3),
                               L("Dense", out_dim=1, W_std=1.1)])
    add("mlp_gelu_large_variance", "vec",
        [L("Dense", out_dim=8, W_std=3.0, b_std=0.5)] + [L("Gelu"), L("Dense", out_dim=8, W_std=4.0, b_std=0.5)] * 4
        + [L("Gelu"), L("Dense", out_dim=1, W_std=2.0)])
    add("mlp_standard", "vec", [L("Dense", out_dim=32, W_std=1.4, b_std=0.3, parameterization="standard"), L("Relu"),
                                L("Dense", out_dim=64, W_std=1.2, b_std=0.3, parameterization="standard"), L("Erf"),
                                L("Dense", out_dim=1, W_std=1.0, b_std=0.3, parameterization="standard")])
    add("mlp_layernorm", "vec", [L("Dense", out_dim=16, W_std=1.5, b_std=0.4), L("LayerNorm"), L("Relu"),
                                 L("Dense", out_dim=16, W_std=2.0, b_std=0.1), L("LayerNorm", eps=0.3), L("Gelu"),
                                 L("Dense", out_dim=1, W_std=1.0, b_std=0.2)])
    add("mlp_residual", "vec", [L("Dense", out_dim=16, W_std=1.3, b_std=0.1),
                                *residual(serial(L("Relu"), L("Dense", out_dim=16, W_std=1.4, b_std=0.2))),
                                L("Relu"), L("Dense", out_dim=1, W_std=1.0)])
    # --- 2-D convolutions
    for pad in ("VALID", "SAME", "CIRCULAR"):
        add(f"cnn_gap_{pad}", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), padding=pad, W_std=1.5, b_std=0.1),
                                      L("Relu"), L("Conv", out_chan=8, filter_shape=(2, 3), padding=pad, W_std=1.3),
                                      L("Erf"), L("GlobalAvgPool"), L("Dense", out_dim=1, W_std=1.2, b_std=0.05)])
        add(f"cnn_flatten_{pad}", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), padding=pad, W_std=1.4,
                                            b_std=0.2), L("Gelu"),
                                          L("Conv", out_chan=8, filter_shape=(3, 2), padding=pad, W_std=1.1),
                                          L("Relu"), L("Flatten"), L("Dense", out_dim=1, W_std=1.3, b_std=0.1)])
    add("cnn_strides_same", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), strides=(2, 2), padding="SAME",
                                      W_std=1.5, b_std=0.1), L("Relu"),
                                    L("Conv", out_chan=8, filter_shape=(2, 2), strides=(1, 2), padding="SAME"),
                                    L("Relu"), L("GlobalAvgPool"), L("Dense", out_dim=1)])
    add("cnn_strides_valid_rect", "img_rect",
        [L("Conv", out_chan=8, filter_shape=(2, 3), strides=(2, 2), padding="VALID", W_std=1.2, b_std=0.3),
         L("Tanh"), L("Conv", out_chan=8, filter_shape=(2, 2), strides=(1, 2), padding="CIRCULAR", W_std=1.1),
         L("Relu"), L("Flatten"), L("Dense", out_dim=1, W_std=1.0, b_std=0.1)])
    add("cnn_strides_circular", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), strides=(2, 2),
                                          padding="CIRCULAR", W_std=1.5), L("Erf"), L("GlobalAvgPool"),
                                        L("Dense", out_dim=1)])
    for pad in ("VALID", "SAME", "CIRCULAR"):
        add(f"avgpool_{pad}", "img", [L("Conv", out_chan=8, filter_shape=(2, 2), padding="SAME", W_std=1.4,
                                        b_std=0.1), L("Relu"),
                                      L("AvgPool", window_shape=(2, 3), strides=(2, 1), padding=pad),
                                      L("Conv", out_chan=8, filter_shape=(2, 2), padding="VALID", W_std=1.3),
                                      L("Relu"), L("Flatten"), L("Dense", out_dim=1)])
    add("avgpool_same_normalize_edges", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), W_std=1.4, b_std=0.1),
                                                L("Relu"), L("AvgPool", window_shape=(3, 3), padding="SAME",
                                                             normalize_edges=True),
                                                L("GlobalAvgPool"), L("Dense", out_dim=1)])
    add("avgpool_default_stride", "img", [L("AvgPool", window_shape=(2, 2)), L("Conv", out_chan=4,
                                                                              filter_shape=(2, 2), W_std=1.5),
                                          L("Relu"), L("Flatten"), L("Dense", out_dim=1)])
    add("cnn_standard", "img", [L("Conv", out_chan=16, filter_shape=(3, 3), padding="SAME", W_std=1.4, b_std=0.2,
                                  parameterization="standard"), L("Relu"),
                                L("Conv", out_chan=32, filter_shape=(2, 2), W_std=1.2, b_std=0.1,
                                  parameterization="standard"), L("Relu"), L("GlobalAvgPool"),
                                L("Dense", out_dim=1, W_std=1.0, b_std=0.1, parameterization="standard")])
    add("cnn_standard_flatten", "img", [L("Conv", out_chan=16, filter_shape=(3, 3), W_std=1.4,
                                          parameterization="standard"), L("Erf"), L("Flatten"),
                                        L("Dense", out_dim=1, W_std=1.0, b_std=0.3, parameterization="standard")])
    add("cnn_dense_per_position", "img", [L("Dense", out_dim=8, W_std=1.3, b_std=0.2), L("Relu"),
                                          L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME", W_std=1.2),
                                          L("Relu"), L("GlobalAvgPool"), L("Dense", out_dim=1)])
    add("cnn_layernorm_channel", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME", W_std=1.5,
                                           b_std=0.3), L("LayerNorm"), L("Relu"),
                                         L("Conv", out_chan=8, filter_shape=(3, 3), W_std=1.3), L("Relu"),
                                         L("GlobalAvgPool"), L("Dense", out_dim=1)])
    add("cnn_layernorm_all", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME", W_std=1.5,
                                       b_std=0.3), L("LayerNorm", axis=[1, 2, 3]), L("Gelu"),
                                     L("Conv", out_chan=8, filter_shape=(3, 3), W_std=1.3), L("Relu"),
                                     L("Flatten"), L("Dense", out_dim=1)])
    # pre-activation residual blocks: the identity shortcut carries a Gaussian (FanInSum needs Gaussian branches)
    block = serial(L("Relu"), L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME", W_std=1.4, b_std=0.1),
                   L("Relu"), L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME", W_std=1.2))
    add("resnet_identity_shortcut", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME", W_std=1.3),
                                            *residual(block), *residual(block),
                                            L("Relu"), L("GlobalAvgPool"), L("Dense", out_dim=1, W_std=1.1)])
    add("resnet_conv_shortcut", "img", [L("Conv", out_chan=8, filter_shape=(3, 3), padding="CIRCULAR", W_std=1.3),
                                        L("Relu"), *residual(
                                            serial(L("Conv", out_chan=8, filter_shape=(3, 3), strides=(2, 2),
                                                     padding="SAME", W_std=1.4), L("Relu"),
                                                   L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME")),
                                            L("Conv", out_chan=8, filter_shape=(1, 1), strides=(2, 2),
                                              padding="SAME", W_std=0.7, b_std=0.1)),
                                        L("Relu"), L("AvgPool", window_shape=(2, 2)), L("Flatten"),
                                        L("Dense", out_dim=1)])
    # --- 1-D convolutions
    for pad in ("VALID", "SAME", "CIRCULAR"):
        add(f"conv1d_{pad}", "seq", [L("Conv", out_chan=8, filter_shape=(3,), padding=pad, W_std=1.5, b_std=0.2),
                                     L("Relu"), L("Conv", out_chan=8, filter_shape=(2,), strides=(2,), padding=pad,
                                                  W_std=1.2), L("Gelu"), L("AvgPool", window_shape=(2,),
                                                                          padding=pad),
                                     L("GlobalAvgPool"), L("Dense", out_dim=1, W_std=1.0, b_std=0.1)])
    add("conv1d_flatten_standard", "seq", [L("Conv", out_chan=16, filter_shape=(4,), strides=(2,), padding="SAME",
                                             W_std=1.3, b_std=0.1, parameterization="standard"), L("Tanh"),
                                           L("Flatten"), L("Dense", out_dim=1, parameterization="standard")])
    # --- attention
    for mech in ("SOFTMAX", "IDENTITY", "ABS", "RELU"):
        add(f"attention_{mech}", "seq", [L("Conv", out_chan=8, filter_shape=(1,), W_std=1.2, b_std=0.1),
                                         L("GlobalSelfAttention", n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2,
                                           W_key_std=1.3, W_value_std=1.1, W_query_std=0.9, W_out_std=1.2,
                                           b_std=0.2, attention_mechanism=mech),
                                         L("Relu"), L("GlobalAvgPool"), L("Dense", out_dim=1)])
    add("attention_default_2d", "img", [L("Conv", out_chan=8, filter_shape=(2, 2), W_std=1.3),
                                        L("GlobalSelfAttention", n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2),
                                        L("Relu"), L("Flatten"), L("Dense", out_dim=1)])
    add("transformer_block", "seq", [L("Conv", out_chan=8, filter_shape=(1,), W_std=1.0),
                                     *residual(serial(L("LayerNorm"), L("GlobalSelfAttention", n_chan_out=8,
                                                                         n_chan_key=8, n_chan_val=8, n_heads=2,
                                                                         b_std=0.1)), L("Identity")),
                                     L("Dense", out_dim=8, W_std=1.0, b_std=0.1), L("LayerNorm"), L("Relu"),
                                     L("Dense", out_dim=8), L("GlobalAvgPool"), L("Dense", out_dim=1)])
    # --- more combinations: deep, large variance, LayerNorm over positions, Identity activation, b_std = 0
    add("cnn_deep_erf_large_variance", "img",
        [L("Conv", out_chan=8, filter_shape=(3, 3), padding="SAME", W_std=2.0, b_std=0.5)]
        + [L("Erf"), L("Conv", out_chan=8, filter_shape=(3, 3), padding="CIRCULAR", W_std=2.5, b_std=0.5)] * 5
        + [L("Gelu"), L("GlobalAvgPool"), L("Dense", out_dim=1, W_std=2.0)])
    add("conv1d_layernorm_positions", "seq", [L("Conv", out_chan=8, filter_shape=(2,), W_std=1.5, b_std=0.2),
                                              L("LayerNorm", axis=[1, 2], eps=0.1), L("Relu"),
                                              L("AvgPool", window_shape=(3,), strides=(2,), padding="CIRCULAR"),
                                              L("Conv", out_chan=8, filter_shape=(2,), W_std=1.1), L("Erf"),
                                              L("Flatten"), L("Dense", out_dim=1, b_std=0.3)])
    add("cnn_identity_activation", "img_rect", [L("Conv", out_chan=8, filter_shape=(2, 2), W_std=1.3, b_std=0.2),
                                                L("Identity"), L("Conv", out_chan=8, filter_shape=(2, 2),
                                                                 padding="SAME", W_std=1.2),
                                                L("Relu"), L("GlobalAvgPool"), L("Dense", out_dim=1)])
    add("mlp_standard_zero_bias", "vec", [L("Dense", out_dim=16, W_std=1.2, b_std=0.0, parameterization="standard"),
                                          L("Gelu"), L("Dense", out_dim=1, W_std=1.0, b_std=0.0,
                                                       parameterization="standard")])
    add("attention_after_layernorm_2d", "img_rect",
        [L("Conv", out_chan=8, filter_shape=(2, 2), padding="SAME", W_std=1.4, b_std=0.1),
         L("LayerNorm", axis=[1, 2, 3]),
         L("GlobalSelfAttention", n_chan_out=8, n_chan_key=4, n_chan_val=4, n_heads=3, W_key_std=2.0,
           W_query_std=1.5, W_value_std=0.8, W_out_std=1.3, attention_mechanism="RELU"),
         L("Gelu"), L("AvgPool", window_shape=(2, 2), strides=(1, 2), padding="SAME"), L("Flatten"),
         L("Dense", out_dim=1, W_std=1.2, b_std=0.1)])
    add("resnet_1d_standard", "seq", [L("Conv", out_chan=16, filter_shape=(3,), padding="SAME", W_std=1.2,
                                        parameterization="standard"),
                                      *residual(serial(L("Relu"), L("Conv", out_chan=16, filter_shape=(3,),
                                                                    padding="CIRCULAR", W_std=1.3, b_std=0.1,
                                                                    parameterization="standard"))),
                                      L("Relu"), L("Flatten"), L("Dense", out_dim=1, parameterization="standard")])
    add("attention_sqrt_scaling_identity", "seq", [L("Conv", out_chan=8, filter_shape=(2,), W_std=1.2, b_std=0.1),
                                                   L("GlobalSelfAttention", n_chan_out=8, n_chan_key=8, n_chan_val=8,
                                                     n_heads=2, linear_scaling=False, W_key_std=0.7, W_query_std=0.5,
                                                     W_out_std=0.9, b_std=0.2, attention_mechanism="IDENTITY"),
                                                   L("Relu"), L("GlobalAvgPool"), L("Dense", out_dim=1)])
    # symmetric (x2 = None) versions of a few
    for case in list(out):
        if case["name"] in ("mlp_Relu", "cnn_gap_SAME", "cnn_flatten_CIRCULAR", "avgpool_SAME",
                            "resnet_identity_shortcut", "conv1d_SAME", "attention_SOFTMAX", "mlp_layernorm",
                            "cnn_standard", "cnn_deep_erf_large_variance", "attention_after_layernorm_2d",
                            "resnet_1d_standard", "attention_sqrt_scaling_identity"):
            out.append(dict(case, name=case["name"] + "_sym", cross=False))
    return out


def to_channels_last(x):
    return np.moveaxis(x, 1, -1) if x.ndim > 2 else x


def main(path: str) -> None:
    rng = np.random.default_rng(SEED)
    inputs = {}
    for key, (n1, n2, shape) in INPUTS.items():
        x1 = rng.standard_normal((n1, *shape))
        x2 = rng.standard_normal((n2, *shape))
        inputs[key] = (x1, x2)
    rows = []
    for case in cases():
        x1, x2 = inputs[case["inputs"]]
        nd = x1.ndim - 2
        _, _, kernel_fn = stax.serial(*[nt_layer(s, nd) for s in case["net"]])
        kern = kernel_fn(to_channels_last(x1), to_channels_last(x2) if case["cross"] else None, ("nngp", "ntk"))
        nngp, ntk = np.asarray(kern.nngp), np.asarray(kern.ntk)
        assert nngp.ndim == 2, (case["name"], nngp.shape)
        rows.append(dict(case, nngp=nngp.tolist(), ntk=ntk.tolist()))
        print(case["name"], float(np.abs(nngp).max()), float(np.abs(ntk).max()), file=sys.stderr)
    meta = dict(neural_tangents="0.6.5", seed=SEED, tanh_deg=TANH_DEG, x64=True)
    data = dict(meta=meta, inputs={k: dict(x1=v[0].tolist(), x2=v[1].tolist()) for k, v in inputs.items()},
                cases=rows)
    with open(path, "w") as handle:
        json.dump(data, handle)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "stax_reference.json")
