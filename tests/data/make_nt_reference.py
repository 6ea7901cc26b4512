"""Generate tests/data/nt_reference.json: neural-tangents 0.6.5 kernels for a grid of MLPs.

Run with the neural-tangents peer python (never learnmech's venv):

    python -c "import sys; sys.path.insert(0, 'benchmarks'); from _peers import NT_REQUIREMENTS, peer_python; \\
        print(peer_python('nt', NT_REQUIREMENTS))"      # creates benchmarks/.peers/nt once
    benchmarks/.peers/nt/bin/python tests/data/make_nt_reference.py tests/data/nt_reference.json

Inputs are drawn here from a fixed seed and stored in the JSON next to the kernels, so the test needs neither
jax nor this script. jax runs in float64 (``jax_enable_x64``): neural-tangents' float32 default would limit
the comparison to ~1e-6. tanh has no closed form in neural-tangents; it uses ``stax.ElementwiseNumerical``
(Gauss-Hermite) with ``TANH_DEG`` points and the analytic derivative.
"""

from __future__ import annotations

import itertools
import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

SEED = 20240601
N1, N2, D = 5, 4, 7
WIDTH = 64  # hidden width for parameterization="standard"
TANH_DEG = 1500  # 200 points leave a 2e-2 error on the q = 20 inputs; 1500 about 1e-7


def activation_layer(name: str):
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()
    if name == "gelu":
        return stax.Gelu(approximate=False)
    if name == "identity":
        return stax.Identity()
    if name == "tanh":
        return stax.ElementwiseNumerical(jnp.tanh, deg=TANH_DEG, df=lambda x: 1.0 - jnp.tanh(x) ** 2)
    raise ValueError(name)


def cases():
    for act, depth, w_std, b_std, param, cross in itertools.product(
        ("relu", "erf", "gelu", "tanh", "identity"), (1, 3, 10), (1.0, 2.0, 1.4), (0.0, 0.3),
        ("ntk", "standard"), (False, True),
    ):
        if act == "tanh" and depth == 10 and (b_std, cross) != (0.3, True):
            continue  # deg-1500 Gauss-Hermite costs minutes per deep case: keep a few
        yield dict(activation=act, depth=depth, W_std=w_std, b_std=b_std, parameterization=param, cross=cross)
    for act, depth, w_std in itertools.product(("relu", "erf", "gelu"), (50, 100), (1.0, 2.0, 1.4)):
        yield dict(activation=act, depth=depth, W_std=w_std, b_std=0.3, parameterization="ntk", cross=True)
    for depth in (0, 2):
        yield dict(activation="relu", depth=depth, W_std=1.4, b_std=0.3, parameterization="standard", cross=False)


def main(path: str) -> None:
    rng = np.random.default_rng(SEED)
    x1 = rng.standard_normal((N1, D))
    x2 = rng.standard_normal((N2, D))
    x1[1] = 2.5 * x1[0]  # a parallel pair (correlation exactly 1): the hardest case for arccos-type formulas
    rows = []
    for case in cases():
        layer = stax.Dense(WIDTH, case["W_std"], case["b_std"], parameterization=case["parameterization"])
        act = activation_layer(case["activation"])
        readout = stax.Dense(1, case["W_std"], case["b_std"], parameterization=case["parameterization"])
        _, _, kernel_fn = stax.serial(*([layer, act] * case["depth"]), readout)
        kern = kernel_fn(x1, x2 if case["cross"] else None, ("nngp", "ntk"))
        rows.append(dict(case, nngp=np.asarray(kern.nngp).tolist(), ntk=np.asarray(kern.ntk).tolist()))
        print(case, file=sys.stderr)
    meta = dict(neural_tangents="0.6.5", seed=SEED, width=WIDTH, tanh_deg=TANH_DEG, x64=True)
    with open(path, "w") as handle:
        json.dump(dict(meta=meta, x1=x1.tolist(), x2=x2.tolist(), cases=rows), handle)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nt_reference.json")
