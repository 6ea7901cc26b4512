"""Benchmark: learnmech's ``empirical_ntk`` vs neural-tangents' ``empirical_ntk_fn`` on the same MLP and weights.

Protocol (ReLU MLP in the NTK parameterization, input dim 32, 3 hidden layers of width 1024 plus a scalar
readout, ``W_std = sqrt(2)``, ``b_std = 0.1``, float32, 512 inputs; 128 with ``--quick``):
1. the network is built by :func:`learnmech.kernels.empirical.mlp_network`; its weights are loaded into the
   equivalent ``stax.serial(Dense, Relu, ..., Dense)`` in the neural-tangents venv (benchmarks/.peers/nt) and
   the forward outputs are compared first;
2. agreement: our kernel vs each neural-tangents implementation's kernel, relative Frobenius difference
   (float32 on both sides: ~1e-6 expected);
3. cost: median wall time after a warm-up (for neural-tangents: of the ``jax.jit``-compiled kernel function,
   compile excluded), single-threaded on both sides (``torch.set_num_threads(1)``, XLA's Eigen pool off) so the
   shared CPU adds less noise;
4. rows: ours vs nt's best implementation (the faster of structured derivatives and NTK-vector products), and
   ours vs nt's Jacobian contraction. The Jacobian contraction materialises ``n x P`` Jacobians (P = 2.1M
   parameters) and takes ~30 s per call at 128 inputs single-threaded, so its row uses 128 inputs (512 would
   need ~9 GB) and one timed call after the compiling one; the row says how many inputs.
Target: ours at least as fast as nt's best (ratio ours/peer <= 1).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import NT_REQUIREMENTS, run_peer  # noqa: E402

from learnmech.kernels import empirical_ntk  # noqa: E402
from learnmech.kernels.empirical import mlp_network  # noqa: E402

PEER = "nt"
REQUIREMENTS = NT_REQUIREMENTS
IN_DIM, HIDDEN_LAYERS, WIDTH, W_STD, B_STD = 32, 3, 1024, math.sqrt(2.0), 0.1
TARGET_RATIO = 1.0
AGREEMENT_RTOL = 1e-5
JACOBIAN_MAX_INPUTS = 128

PEER_SCRIPT = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
import json, time
import numpy as np
import jax
import neural_tangents as nt
from neural_tangents import stax

folder, warmup, repeats, jac_inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = np.load(folder + "/net.npz")
layers = []
for _ in range(int(data["hidden_layers"])):
    layers += [stax.Dense(int(data["width"]), float(data["W_std"]), float(data["b_std"]), parameterization="ntk"),
               stax.Relu()]
layers.append(stax.Dense(1, float(data["W_std"]), float(data["b_std"]), parameterization="ntk"))
_, apply_fn, _ = stax.serial(*layers)
params = []
for i in range(int(data["hidden_layers"]) + 1):
    params.append((jax.numpy.asarray(data[f"W{i}"].T), jax.numpy.asarray(data[f"b{i}"])))
    if i < int(data["hidden_layers"]):
        params.append(())
x = jax.numpy.asarray(data["x"])
out = {"version": nt.__version__, "outputs": np.asarray(apply_fn(params, x)).ravel().tolist()}
impls = {"structured derivatives": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
         "NTK-vector products": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
         "Jacobian contraction": nt.NtkImplementation.JACOBIAN_CONTRACTION}
for name, impl in impls.items():
    inputs = x[:jac_inputs] if impl == nt.NtkImplementation.JACOBIAN_CONTRACTION else x
    fn = jax.jit(nt.empirical_ntk_fn(apply_fn, vmap_axes=0, implementation=impl))
    jacobian = impl == nt.NtkImplementation.JACOBIAN_CONTRACTION
    seconds = []
    for r in range(1 + 1 if jacobian else warmup + repeats):  # Jacobian contraction: compile run + 1 timed
        start = time.perf_counter()
        kernel = fn(inputs, None, params).block_until_ready()
        if r >= (1 if jacobian else warmup):
            seconds.append(time.perf_counter() - start)
    np.save(folder + "/" + name.replace(" ", "_") + ".npy", np.asarray(kernel))
    out[name] = {"seconds": seconds, "inputs": int(inputs.shape[0])}
print(json.dumps(out))
"""


def _time(fn, warmup: int, repeats: int) -> list[float]:
    seconds = []
    for r in range(warmup + repeats):
        start = time.perf_counter()
        fn()
        if r >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run(quick: bool = False) -> list[dict]:
    """Two rows: ours vs nt's best implementation, and ours vs nt's Jacobian contraction."""
    n, warmup, repeats = (128, 1, 3) if quick else (512, 2, 7)
    jac_inputs = min(n, JACOBIAN_MAX_INPUTS)
    torch.set_num_threads(1)
    net = mlp_network(IN_DIM, HIDDEN_LAYERS, WIDTH, "relu", W_STD, B_STD, seed=0, dtype=torch.float32)
    x = torch.randn((n, IN_DIM), generator=torch.Generator().manual_seed(1))
    weights = {}
    for i, layer in enumerate(m for m in net if hasattr(m, "weight_and_bias")):
        w, b = layer.weight_and_bias()
        weights[f"W{i}"], weights[f"b{i}"] = w.detach().numpy(), b.detach().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.savez(folder / "net.npz", x=x.numpy(), hidden_layers=HIDDEN_LAYERS, width=WIDTH, W_std=W_STD,
                 b_std=B_STD, **weights)
        (folder / "peer.py").write_text(PEER_SCRIPT)
        output = run_peer(PEER, REQUIREMENTS, folder / "peer.py", str(folder), str(warmup), str(repeats),
                          str(jac_inputs))
        peer = json.loads(output.strip().splitlines()[-1])
        peer_kernels = {name: np.load(folder / (name.replace(" ", "_") + ".npy"))
                        for name in ("structured derivatives", "NTK-vector products", "Jacobian contraction")}

    with torch.no_grad():
        forward_diff = _relative(net(x).numpy().ravel(), np.asarray(peer["outputs"]))
    ours = empirical_ntk(net, x)
    ours_seconds = _time(lambda: empirical_ntk(net, x), warmup, repeats)
    ours_jac = empirical_ntk(net, x[:jac_inputs])
    ours_jac_seconds = ours_seconds if jac_inputs == n else _time(lambda: empirical_ntk(net, x[:jac_inputs]),
                                                                   warmup, repeats)
    ours_s = statistics.median(ours_seconds)
    best = min(("structured derivatives", "NTK-vector products"),
               key=lambda name: statistics.median(peer[name]["seconds"]))
    rows = []
    for name, ours_kernel, ours_time in ((best, ours, ours_s),
                                         ("Jacobian contraction", ours_jac, statistics.median(ours_jac_seconds))):
        peer_s = statistics.median(peer[name]["seconds"])
        difference = _relative(ours_kernel, peer_kernels[name].reshape(ours_kernel.shape))
        inputs = peer[name]["inputs"]
        rows.append({
            "what": f"empirical NTK, ReLU MLP {IN_DIM}-{'-'.join([str(WIDTH)] * HIDDEN_LAYERS)}-1 (NTK param.), "
                    f"{inputs} inputs, float32, 1 thread",
            "peer": f"neural-tangents {peer['version']} empirical_ntk_fn ({name}, jit)",
            "ours_s": ours_time,
            "peer_s": peer_s,
            "ratio": ours_time / peer_s,
            "target": ">= 1x nt's best (ratio <= 1)" if name == best else "(reference: nt's generic path)",
            "met": bool(difference <= AGREEMENT_RTOL and (name != best or ours_time / peer_s <= TARGET_RATIO)),
            "agreement": f"kernel rel. Frobenius diff {difference:.2e}; forward outputs {forward_diff:.2e}",
        })
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
