"""Benchmark: learnmech.kernels.mlp against neural-tangents 0.6.5 (jitted kernel_fn) on 2048 x 784 inputs.

For each activation (relu, erf, gelu), 10 hidden layers, NNGP + NTK, x2 = None, float64 and float32:
agreement first (max |ours - nt| / max |nt|; the float64 target is 1e-5), then the median wall time of
REPEATS runs after a warm-up (jit compilation excluded for neural-tangents). Target: ours >= 2x faster.
neural-tangents runs in its own venv (benchmarks/_peers.py) in a subprocess; data goes through .npy files.

Also measured: how our time and memory grow with n (256..8192) and depth (1..100), saved as
benchmarks/kernels_scaling.png, and the fraction of this machine's flop/bandwidth bound we reach (the bound:
the x x^T Gram matrix at the measured dgemm rate plus writing both (n, n) outputs at the measured copy
bandwidth).

    .venv/bin/python benchmarks/bench_kernels_analytic.py [--quick]
"""

from __future__ import annotations

import json
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _measure import median_seconds, relative_error  # noqa: E402
from _peers import NT_KERNEL_TIMING, NT_REQUIREMENTS, run_peer  # noqa: E402

from learnmech.kernels import mlp  # noqa: E402

N, D, DEPTH, W_STD, B_STD = 2048, 784, 10, 1.4, 0.1
ACTIVATIONS = ("relu", "erf", "gelu")
REPEATS = 5
TARGET = 2.0
AGREE_F64 = 1e-5
# float32: both libraries are compared with our float64 result; arccos near correlation 1 costs sqrt(eps32) ~ 3e-4.
AGREE_F32 = 1e-3

NT_WORKER = NT_KERNEL_TIMING + r'''
from neural_tangents import stax

x_path, out_dir, depth, w_std, b_std, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), \
    float(sys.argv[5]), int(sys.argv[6])
acts = sys.argv[7].split(",")
x64 = np.load(x_path)
layers = {"relu": stax.Relu, "erf": stax.Erf, "gelu": lambda: stax.Gelu(approximate=False)}
report = {}
for act in acts:
    hidden = [stax.Dense(512, w_std, b_std), layers[act]()] * depth
    _, _, kernel_fn = stax.serial(*hidden, stax.Dense(1, w_std, b_std))
    fn = jax.jit(kernel_fn, static_argnames="get")
    for name, x in (("float64", x64), ("float32", x64.astype(np.float32))):
        jax.block_until_ready(fn(x, None, ("nngp", "ntk")))  # warm-up: compilation
        report[f"{act}_{name}"] = timed_kernels(fn, x, repeats, f"{out_dir}/{act}_{name}")
print(json.dumps(report))
'''


def _machine_bounds() -> tuple[float, float]:
    """(dgemm flop/s, copy bandwidth bytes/s) measured here with numpy, as the 'achievable peak'."""
    a = np.random.default_rng(0).standard_normal((2048, 2048))
    gemm = median_seconds(lambda: a @ a, 3)
    big = np.empty(2**25)
    dst = np.empty_like(big)
    copy = median_seconds(lambda: np.copyto(dst, big), 3)
    return 2 * 2048**3 / gemm, 2 * big.nbytes / copy


def _bound_seconds(n: int, d: int, flops: float, bandwidth: float) -> float:
    # Gram x x^T via syrk: n^2 d flops (half of a gemm); outputs: two (n, n) float64 arrays written once.
    return n * n * d / flops + 2 * n * n * 8 / bandwidth


def _run_nt(x: np.ndarray, workdir: Path, repeats: int) -> dict:
    (workdir / "worker.py").write_text(NT_WORKER)
    np.save(workdir / "x.npy", x)
    output = run_peer("nt", NT_REQUIREMENTS, workdir / "worker.py", str(workdir / "x.npy"), str(workdir), str(DEPTH),
                      str(W_STD), str(B_STD), str(repeats), ",".join(ACTIVATIONS), timeout=3600)
    return json.loads(output.strip().splitlines()[-1])


def _comparison_rows(quick: bool) -> list[dict]:
    n = 512 if quick else N
    repeats = 2 if quick else REPEATS
    x = np.random.default_rng(0).standard_normal((n, D))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        peer_times = _run_nt(x, workdir, repeats)
        for act in ACTIVATIONS:
            kernel_fn = mlp(DEPTH, act, W_STD, B_STD)
            exact = kernel_fn(x)
            for name, dtype in (("float64", np.float64), ("float32", np.float32)):
                ours = kernel_fn(x, dtype=dtype)
                nt_nngp = np.load(workdir / f"{act}_{name}_nngp.npy")
                nt_ntk = np.load(workdir / f"{act}_{name}_ntk.npy")
                err_nt_vs_ours64 = max(relative_error(nt_nngp, exact.nngp), relative_error(nt_ntk, exact.ntk))
                err_ours = max(relative_error(ours.nngp, exact.nngp), relative_error(ours.ntk, exact.ntk))
                if name == "float64":
                    agree_ok = err_nt_vs_ours64 <= AGREE_F64
                    agreement = f"max rel diff vs nt {err_nt_vs_ours64:.1e} (<= {AGREE_F64:g}: {agree_ok})"
                else:
                    agree_ok = err_ours <= AGREE_F32
                    agreement = (f"vs our float64: ours {err_ours:.1e}, nt {err_nt_vs_ours64:.1e} "
                                 f"(ours <= {AGREE_F32:g}: {agree_ok})")
                ours_s = median_seconds(lambda kernel_fn=kernel_fn, dtype=dtype: kernel_fn(x, dtype=dtype), repeats)
                peer_s = peer_times[f"{act}_{name}"]
                ratio = peer_s / ours_s
                rows.append(dict(
                    what=f"mlp {act} depth {DEPTH}, {n}x{n}, d={D}, nngp+ntk, {name}", peer="neural-tangents 0.6.5",
                    ours_s=ours_s, peer_s=peer_s, ratio=ratio, target=TARGET, met=bool(agree_ok and ratio >= TARGET),
                    agreement=agreement,
                ))
    return rows


def _scaling(quick: bool, flops: float, bandwidth: float) -> tuple[list[dict], dict]:
    sizes = [256, 512, 1024] if quick else [256, 512, 1024, 2048, 4096, 8192]
    depths = [1, 10, 30] if quick else [1, 3, 10, 30, 100]
    rng = np.random.default_rng(1)
    by_n, by_depth = [], []
    for n in sizes:
        x = rng.standard_normal((n, D))
        kernel_fn = mlp(DEPTH, "relu", W_STD, B_STD)
        seconds = median_seconds(lambda kernel_fn=kernel_fn, x=x: kernel_fn(x), 1 if n >= 4096 else 3)
        tracemalloc.start()
        kernel_fn(x)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        by_n.append(dict(n=n, seconds=seconds, peak_bytes=peak, output_bytes=2 * n * n * 8,
                         bound_fraction=_bound_seconds(n, D, flops, bandwidth) / seconds))
    x = rng.standard_normal((1024, D))
    for depth in depths:
        kernel_fn = mlp(depth, "relu", W_STD, B_STD)
        by_depth.append(dict(depth=depth, seconds=median_seconds(lambda kernel_fn=kernel_fn: kernel_fn(x), 3)))
    rows = [
        dict(what=f"scaling n={r['n']} (relu depth {DEPTH})", peer="-", ours_s=r["seconds"], peer_s=float("nan"),
             ratio=float("nan"), target=float("nan"), met=True,
             agreement=(f"peak numpy memory {r['peak_bytes'] / 2**20:.0f} MiB = "
                        f"{r['peak_bytes'] / r['output_bytes']:.2f} x outputs; "
                        f"{100 * r['bound_fraction']:.0f}% of flop+bandwidth bound"))
        for r in by_n
    ]
    rows += [dict(what=f"scaling depth={r['depth']} (relu, n=1024)", peer="-", ours_s=r["seconds"],
                  peer_s=float("nan"), ratio=float("nan"), target=float("nan"), met=True, agreement="-")
             for r in by_depth]
    return rows, dict(by_n=by_n, by_depth=by_depth)


def _plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ns = np.array([r["n"] for r in data["by_n"]], dtype=float)
    secs = np.array([r["seconds"] for r in data["by_n"]])
    axes[0].loglog(ns, secs, "o-", label="measured")
    axes[0].loglog(ns, secs[-1] * (ns / ns[-1]) ** 2, "--", color="grey", label="~ n^2")
    axes[0].set(xlabel="n (inputs)", ylabel="time (s)", title=f"time vs n (relu, depth {DEPTH}, d={D})")
    axes[0].legend()
    axes[1].loglog(ns, [r["peak_bytes"] / 2**20 for r in data["by_n"]], "o-", label="peak numpy memory")
    axes[1].loglog(ns, [r["output_bytes"] / 2**20 for r in data["by_n"]], "--", color="grey", label="2 n^2 float64")
    axes[1].set(xlabel="n (inputs)", ylabel="memory (MiB)", title="memory vs n")
    axes[1].legend()
    depths = [r["depth"] for r in data["by_depth"]]
    axes[2].plot(depths, [r["seconds"] for r in data["by_depth"]], "o-")
    axes[2].set(xlabel="hidden layers", ylabel="time (s)", title="time vs depth (relu, n=1024)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False) -> list[dict]:
    """Rows: what, peer, ours_s, peer_s, ratio (= peer_s / ours_s), target, met, agreement."""
    flops, bandwidth = _machine_bounds()
    rows = _comparison_rows(quick)
    n = 512 if quick else N
    for row in rows:
        if "float64" in row["what"]:
            row["agreement"] += f"; {100 * _bound_seconds(n, D, flops, bandwidth) / row['ours_s']:.0f}% of bound"
    scaling_rows, data = _scaling(quick, flops, bandwidth)
    _plot(data, HERE / "kernels_scaling.png")
    rows.append(dict(what=f"machine: dgemm {flops / 1e9:.1f} GFLOP/s, copy {bandwidth / 1e9:.1f} GB/s", peer="-",
                     ours_s=float("nan"), peer_s=float("nan"), ratio=float("nan"), target=float("nan"), met=True,
                     agreement="-"))
    return rows + scaling_rows


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    print(f"{'what':62s} {'ours_s':>8s} {'peer_s':>8s} {'ratio':>6s} {'met':>5s}  agreement")
    for row in result:
        print(f"{row['what']:62s} {row['ours_s']:8.3f} {row['peer_s']:8.3f} {row['ratio']:6.2f} {row['met']!s:>5s}"
              f"  {row['agreement']}")
