"""Benchmark: learnmech.kernels.stax against neural-tangents 0.6.5 (jitted, batched kernel_fn) on a CNN-GAP.

Network (both libraries): 3 x [Conv(64, (3, 3), SAME, W_std=1.4, b_std=0.1), Relu], GlobalAvgPool, Dense(1),
NNGP + NTK, x2 = None, inputs (n, 3, 8, 8) (channels-last for neural-tangents), float64 and float32. The full
position-position covariance (64 x 64 per pair of inputs) is what makes this kernel expensive: n^2 S^2 numbers
per layer (Novak et al. 2019). neural-tangents runs ``nt.batch(jax.jit(kernel_fn), BATCH)``, its memory-bounded
mode (unbatched it needs ~4 n^2 S^2 x 8 bytes: 8.6 GB at n = 256, more than this machine has free); ours tiles
internally (about 2 n^2 x 8 bytes + threads x 32 MiB).

Agreement first (max |ours - nt| / max |nt|, NTK and NNGP; float64 target 1e-7, float32 compared with our float64:
1e-3), then the median wall time of REPEATS runs after a warm-up (jit compilation excluded for neural-tangents).
Target: ours >= 2x faster. Also reported: the fraction of a bandwidth bound, one read and one write of the
float64 (n^2 / 2) S^2 NNGP and NTK per layer at this machine's measured copy bandwidth (our conv needs ~3 passes
per spatial dimension and the ReLU map a dozen in cache, so a few % is expected).

    .venv/bin/python benchmarks/bench_stax.py [--quick] [--sizes 256,512,1024]

Run it without OMP_NUM_THREADS=1: our tiles run on torch.get_num_threads() threads, and XLA uses every core.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _measure import median_seconds, relative_error  # noqa: E402
from _peers import NT_KERNEL_TIMING, NT_REQUIREMENTS, run_peer  # noqa: E402

from learnmech.kernels import stax  # noqa: E402

# neural-tangents needs ~1.5-3 ms per pair of inputs here (~10 min for both precisions at n = 256 with the
# warm-up and repeats, 16x that at 1024): the default full run stops at 256; ``--sizes 256,512,1024`` for more.
SIZES, QUICK_SIZES = (256,), (64,)
SIDE, CHANNELS, DEPTH, W_STD, B_STD = 8, 3, 3, 1.4, 0.1
BATCH = 64
REPEATS, QUICK_REPEATS = 2, 1
TARGET = 2.0
AGREE_F64, AGREE_F32 = 1e-7, 1e-3

NT_WORKER = NT_KERNEL_TIMING + r'''
import neural_tangents as nt
from neural_tangents import stax

x_path, out_dir, depth, w_std, b_std, repeats, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
x64 = np.moveaxis(np.load(x_path), 1, -1)  # channels-last
layers = []
for _ in range(depth):
    layers += [stax.Conv(64, (3, 3), padding="SAME", W_std=w_std, b_std=b_std), stax.Relu()]
_, _, kernel_fn = stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(1, w_std, b_std))
fn = nt.batch(jax.jit(kernel_fn, static_argnames="get"), batch_size=batch, store_on_device=False)
report = {}
for name, x in (("float64", x64), ("float32", x64.astype(np.float32))):
    warm = fn(x[:batch], None, ("nngp", "ntk"))  # compilation
    jax.block_until_ready(warm)
    report[name] = timed_kernels(fn, x, repeats, f"{out_dir}/{name}")
print(json.dumps(report))
'''


def network() -> stax.Layer:
    layers = []
    for _ in range(DEPTH):
        layers += [stax.Conv(64, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD), stax.Relu()]
    return stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(1, W_STD, B_STD))


def _copy_bandwidth() -> float:
    big = np.empty(2**25)
    dst = np.empty_like(big)
    return 2 * big.nbytes / median_seconds(lambda: np.copyto(dst, big), 3)


def _bound_seconds(n: int, bandwidth: float) -> float:
    s2 = (SIDE * SIDE) ** 2
    return DEPTH * 2 * 2 * (n * (n + 1) / 2) * s2 * 8 / bandwidth


def _run_nt(x: np.ndarray, workdir: Path, repeats: int) -> dict:
    (workdir / "worker.py").write_text(NT_WORKER)
    np.save(workdir / "x.npy", x)
    output = run_peer("nt", NT_REQUIREMENTS, workdir / "worker.py", str(workdir / "x.npy"), str(workdir), str(DEPTH),
                      str(W_STD), str(B_STD), str(repeats), str(BATCH), timeout=7200)
    return json.loads(output.strip().splitlines()[-1])


def run(quick: bool = False, sizes: tuple[int, ...] | None = None) -> list[dict]:
    """Rows: what, peer, ours_s, peer_s, ratio (= peer_s / ours_s), target, met, agreement."""
    bandwidth = _copy_bandwidth()
    net = network()
    repeats = QUICK_REPEATS if quick else REPEATS
    rows = []
    for n in sizes or (QUICK_SIZES if quick else SIZES):
        x = np.random.default_rng(n).standard_normal((n, CHANNELS, SIDE, SIDE))
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            peer_times = _run_nt(x, workdir, repeats)
            exact = net.kernel_fn(x)  # float64, also the warm-up
            for name, dtype in (("float64", np.float64), ("float32", np.float32)):
                ours = net.kernel_fn(x, dtype=dtype)
                errs = []
                for field in ("ntk", "nngp"):
                    peer = np.load(workdir / f"{name}_{field}.npy")
                    if name == "float64":
                        errs.append(relative_error(getattr(ours, field), peer))
                    else:  # both libraries' float32 against our float64 (itself checked against theirs)
                        errs += [relative_error(getattr(ours, field), getattr(exact, field)),
                                 relative_error(peer, getattr(exact, field))]
                err = max(errs)
                agree = err < (AGREE_F64 if name == "float64" else AGREE_F32)
                ours_s = median_seconds(lambda x=x, dtype=dtype: net.kernel_fn(x, dtype=dtype), repeats,
                                        warmup=False)  # warm: `ours` was just computed on this x
                peer_s = peer_times[name]
                ratio = peer_s / ours_s
                note = f"max rel. err {err:.1e}"
                if name == "float64":
                    note += f"; {100 * _bound_seconds(n, bandwidth) / ours_s:.1f}% of bandwidth bound"
                rows.append(dict(what=f"stax CNN-GAP kernel (3 conv, 8x8x3, n={n}, NNGP+NTK, {name})",
                                 peer="neural-tangents 0.6.5 (jit, nt.batch 64)", ours_s=ours_s, peer_s=peer_s,
                                 ratio=ratio, target=TARGET, met=bool(agree and ratio >= TARGET),
                                 agreement=note if agree else f"DISAGREES: {note}"))
                print(f"n={n} {name}: ours {ours_s:.2f} s, neural-tangents {peer_s:.2f} s, ratio {ratio:.2f}, "
                      f"{note}", flush=True)
    return rows


if __name__ == "__main__":
    chosen = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--sizes=")), None)
    if "--sizes" in sys.argv:
        chosen = sys.argv[sys.argv.index("--sizes") + 1]
    result = run(quick="--quick" in sys.argv, sizes=tuple(int(v) for v in chosen.split(",")) if chosen else None)
    print(f"{'what':70s} {'ours_s':>8s} {'peer_s':>8s} {'ratio':>6s} {'met':>5s}  agreement")
    for row in result:
        print(f"{row['what']:70s} {row['ours_s']:8.3f} {row['peer_s']:8.3f} {row['ratio']:6.2f} {row['met']!s:>5s}"
              f"  {row['agreement']}")
