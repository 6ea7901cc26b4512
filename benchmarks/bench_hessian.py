"""Benchmark (issue 9): top Hessian eigenvalue to 1e-3 relative, learnmech's Lanczos vs PyHessian's power iteration.

Protocol, for a small MLP and a small CNN (cross-entropy, one fixed batch, seeded synthetic 10-class data) at three
stages, each a row: ``init`` (untrained), ``early`` (200 full-batch GD steps at lr 0.1: loss ~0.07 MLP / ~0.006
CNN) and ``trained`` (30 epochs of minibatch SGD, batch 64, lr 0.05, momentum 0.9: training loss < 0.01). Which
stage clusters the top of the spectrum is measured, not assumed: here it is ``init`` (lambda_2 / lambda_1 about
0.99 MLP, 0.94 CNN: the softmax is uniform, so the 10 classes' Gauss-Newton outliers are nearly degenerate);
training splits the top eigenvalue off (ratio 0.56-0.74), where power iteration needs only 5-10 HVPs.
1. agreement: a reference eigenvalue from our Lanczos run to a 1e-10 error bound; each method's estimate (at
   rtol/tol = 1e-3, several random starts) must be within 1e-3 relative of it;
2. cost: median HVP count and median wall time (after a warm-up) of the whole call, building the gradient
   graph included, single-threaded on both sides so the shared CPU adds less noise. The peer's time is for
   reaching 1e-3 (its graph time plus its measured per-HVP time times the HVPs it needs); the time of its own
   tol=1e-3 stop is in the agreement column, with that stop's error. Ours stops on a certified
   bound (Ritz residual <= 1e-3 |theta|); for PyHessian we count, from its full trajectory from the same kind of
   start, the HVPs it needs to actually be within 1e-3 of the reference (an oracle stopping rule, its best
   case: ``met`` compares our certified count with this, the harshest pairing for us) and to reach the same
   residual certificate; our own oracle count is reported too (oracle vs oracle compares the methods). The
   peer's trajectory ends once it carries the certificate and has stayed within 1e-3 for 30 HVPs (its Rayleigh
   quotient creeps up monotonically on these spectra), or after 1000 HVPs;
3. ratio ours / PyHessian; target <= 1/3 for both HVPs and time to reach 1e-3 (``met`` per row). Where
   PyHessian's own tol=1e-3 rule stops short (on a clustered top its Rayleigh quotient changes by < 1e-3 per
   step long before it is within 1e-3), the time of that stop is the time of an inaccurate answer: the row's
   peer error says so.

Findings on the shared 2-core CPU (full run, 7 starts; timings noisy, HVP counts not): the target is missed on
every row. Only the clustered ``init`` MLP meets the HVP half (ours 33 certified vs 105 for power iteration to
reach 1e-3: 0.31); its time ratio came out 0.37-0.54 over runs although both sides cost ~2 ms per HVP here (by HVP
counts ~0.31), so that half is within this machine's timing noise: a quiet rerun decides it. ``init`` CNN: 14
vs 31 (0.45). After training the top eigenvalue stands out (lambda_2 / lambda_1 0.56-0.74) and power
iteration needs only 7-16 HVPs, which no certified Krylov method beats 3x: Lanczos itself needs 5-6 just to be
within 1e-3 (oracle), 7-8 to certify it (ratios 0.5-1.0). PyHessian's own tol=1e-3 stop is the cheaper call on
every row but wrong by more than 1e-3 (up to 7% at ``init``); power iteration needs 1.7-7x our HVPs to carry
the same residual certificate.
Each row's ``why`` says which half of the target it misses.

PyHessian runs in its own venv (benchmarks/.peers/pyhessian) through ``_peers.run_peer``; models and data are
exchanged as files. Its HVPs are counted by wrapping its ``hessian_vector_product``. If PyHessian cannot be
installed or imported, the baseline falls back to :func:`learnmech.observe.power_iteration`, a reproduction
of its method and stopping rule (Yao et al. 2020, alg. 1), and the row says so.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import run_peer  # noqa: E402

from learnmech.observe import HessianOperator, hessian_eigenvalues, lanczos, power_iteration  # noqa: E402

PEER = "pyhessian"
# torch first, pinned to the CPU wheel on disk: a bare torch requirement would pull a multi-GB CUDA build.
REQUIREMENTS = ["torch==2.13.0", "pyhessian"]
RTOL = 1e-3
TARGET_RATIO = 1 / 3

# The architectures, as source both processes execute (the peer venv cannot import learnmech).
ARCHITECTURES = """
import torch
from torch import nn

def build(name):
    torch.manual_seed(0)
    if name == "mlp":
        return nn.Sequential(nn.Linear(32, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 10))
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
        )
    raise ValueError(name)
"""

PEER_SCRIPT = """
import importlib, json, sys, time
import torch
ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports a class of that name)

folder, warmup, repeats, tol = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
references = json.loads(open(folder + "/references.json").read())
STAY, CAP = 30, 1000
class Stayed(Exception):
    pass
watch = {"reference": None}  # set: trace the trajectory (untimed run), cut it once it has served its purpose
torch.set_num_threads(1)
namespace = {}
exec(open(folder + "/arch.py").read(), namespace)
quotients = []  # (theta = v^T H v, |H v - theta v|) after each HVP: PyHessian's estimate and its residual
original = ph.hessian_vector_product
def counted(gradsH, params, v):
    hv = original(gradsH, params, v)
    ref = watch["reference"]
    if ref is None:  # a timed run: count only, add no work to PyHessian's time
        quotients.append(None)
        return hv
    theta = float(sum((a * b).sum() for a, b in zip(hv, v)))
    # The residual straight from the vectors: sqrt(|Hv|^2 - theta^2) cancels catastrophically in float32.
    residual = float(sum(((a - theta * b) ** 2).sum() for a, b in zip(hv, v))) ** 0.5
    quotients.append((theta, residual))
    certified = any(res <= tol * abs(q) for q, res in quotients)
    if certified and len(quotients) >= STAY and all(abs(q - ref) <= tol * abs(ref) for q, _ in quotients[-STAY:]):
        raise Stayed
    return hv
ph.hessian_vector_product = counted
out = {"version": getattr(importlib.import_module("pyhessian"), "__version__", "")}
for name in sys.argv[5:]:
    model = namespace["build"](name.split("_")[0])
    model.load_state_dict(torch.load(folder + f"/{name}_state.pt"))
    x, y = torch.load(folder + f"/{name}_data.pt")
    criterion = torch.nn.CrossEntropyLoss()
    runs = []
    for r in range(warmup + repeats):
        torch.manual_seed(r)
        quotients.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        h = ph.hessian(model, criterion, data=(x, y), cuda=False)
        # The gradient graph, built once whatever the number of HVPs.
        setup, cpu_setup = time.perf_counter() - start, time.process_time() - cpu_start
        eigenvalues, _ = h.eigenvalues(maxIter=100, tol=tol)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        hvp = len(quotients)
        if r >= warmup:
            # The same start run much longer: its whole trajectory, to count the HVPs it needs for real accuracy.
            torch.manual_seed(r)
            quotients.clear()
            watch["reference"] = references[name]
            try:
                ph.hessian(model, criterion, data=(x, y), cuda=False).eigenvalues(maxIter=CAP, tol=1e-12)
            except Stayed:
                pass
            watch["reference"] = None
            runs.append({"eigenvalue": float(eigenvalues[0]), "hvp": hvp, "seconds": seconds,
                         "setup_seconds": setup, "cpu_seconds": cpu_seconds, "cpu_setup_seconds": cpu_setup,
                         "trajectory": list(quotients)})
    out[name] = runs
print(json.dumps(out))
"""


def _build(name: str) -> torch.nn.Module:
    namespace: dict = {}
    exec(ARCHITECTURES, namespace)
    return namespace["build"](name)


STAGES = ("init", "early", "trained")


def _trained(name: str, stage: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The model at ``stage`` (see the module docstring) on seeded synthetic 10-class data (Gaussian clusters),
    and the batch its Hessian is taken on (the whole training set)."""
    gen = torch.Generator().manual_seed(1)
    n = 512 if name == "mlp" else 256
    shape = (32,) if name == "mlp" else (1, 16, 16)
    labels = torch.arange(n) % 10
    centres = torch.randn(10, *shape, generator=gen)
    inputs = centres[labels] + 1.5 * torch.randn(n, *shape, generator=gen)
    model = _build(name)
    criterion = torch.nn.CrossEntropyLoss()
    if stage == "early":  # full-batch GD
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(200):
            optimizer.zero_grad()
            criterion(model(inputs), labels).backward()
            optimizer.step()
    elif stage == "trained":  # what practitioners run: minibatch SGD with momentum, to near-zero training loss
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        order = torch.Generator().manual_seed(2)
        for _ in range(30):
            for chunk in torch.randperm(n, generator=order).split(64):
                optimizer.zero_grad()
                criterion(model(inputs[chunk]), labels[chunk]).backward()
                optimizer.step()
    elif stage != "init":
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return model, (inputs, labels)


def _ours(model: torch.nn.Module, batch: tuple, warmup: int, repeats: int) -> list[dict]:
    criterion = torch.nn.CrossEntropyLoss()
    runs = []
    for r in range(warmup + repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = hessian_eigenvalues(model, criterion, batch, k=1, rtol=RTOL, seed=r)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        if r >= warmup:
            runs.append(
                {
                    "eigenvalue": float(result.eigenvalues[0]),
                    "hvp": result.n_hvp,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                }
            )
    return runs


def _ours_hvps_to_accuracy(model: torch.nn.Module, batch: tuple, reference: float, seeds: range) -> float:
    """Median over random starts of the HVPs after which our top Ritz value stays within RTOL of the reference:
    the same oracle stopping rule as the peer's count, to compare the methods rather than the stopping rules."""
    counts = []
    for seed in seeds:
        operator = HessianOperator(model, torch.nn.CrossEntropyLoss(), batch)
        start = torch.randn(operator.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        alphas, betas, _ = lanczos(operator.matvec, start, 100)
        tops = []
        for m in range(1, len(alphas) + 1):
            tridiagonal = np.diag(alphas[:m]) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
            tops.append(np.linalg.eigvalsh(tridiagonal)[-1])
        within = [abs(t - reference) <= RTOL * abs(reference) for t in tops]
        counts.append(next((i + 1 for i in range(len(within)) if all(within[i:])), float("inf")))
    return float(statistics.median(counts))


def _reproduced_power_iteration(model: torch.nn.Module, batch: tuple, warmup: int, repeats: int) -> list[dict]:
    criterion = torch.nn.CrossEntropyLoss()
    runs = []
    for r in range(warmup + repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        eigenvalue, hvp = power_iteration(model, criterion, batch, rtol=RTOL, seed=r)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        if r >= warmup:
            runs.append(
                {
                    "eigenvalue": eigenvalue,
                    "hvp": hvp,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "trajectory": None,
                }
            )
    return runs


def _hvps_to_accuracy(run: dict, reference: float) -> float:
    """HVPs after which the peer's running estimate stays within RTOL of the reference (an oracle stopping
    rule: the fewest HVPs power iteration could possibly stop at); its own count if no trajectory was kept."""
    trajectory = run.get("trajectory")
    if not trajectory:
        return float(run["hvp"])
    for i in range(len(trajectory)):
        if all(abs(q - reference) <= RTOL * abs(reference) for q, _ in trajectory[i:]):
            return float(i + 1)
    return float("inf")


def _seconds_to_accuracy(run: dict, hvps: float, clock: str = "") -> float:
    """The peer's time to reach 1e-3: its graph-building time plus ``hvps`` times its measured per-HVP time in
    the timed tol=1e-3 run (the traced run carries extra bookkeeping, so it is not timed). ``clock`` "" is wall
    time, "cpu_" the process's CPU time."""
    setup = run.get(f"{clock}setup_seconds", 0.0)
    return setup + (run[f"{clock}seconds"] - setup) / run["hvp"] * hvps


def _hvps_to_certificate(run: dict) -> float:
    """HVPs until the peer's iterate carries the certificate ours stops on: residual |Hv - theta v| <= RTOL
    |theta| for the unit vector v (then some eigenvalue is within RTOL of theta; Parlett 1980, thm 4.5.1)."""
    trajectory = run.get("trajectory")
    if not trajectory:
        return float("nan")
    for i, (theta, residual) in enumerate(trajectory):
        if residual <= RTOL * abs(theta):
            return float(i + 1)
    return float("inf")


def _reference(model: torch.nn.Module, batch: tuple) -> tuple[float, float, float]:
    """The true top eigenvalue: Lanczos to a 1e-10 residual bound, from two starts (their relative difference is
    returned with the value and its bound, a check that neither missed the top eigenvector)."""
    criterion = torch.nn.CrossEntropyLoss()
    first, second = (
        hessian_eigenvalues(model, criterion, batch, rtol=1e-10, max_iter=400, seed=seed) for seed in (12345, 54321)
    )
    value = float(first.eigenvalues[0])
    return value, float(first.error_bounds[0]), abs(float(second.eigenvalues[0]) - value) / abs(value)


def _why(hvp_ratio: float, time_ratio: float, error: float) -> str:
    """Which parts of the target a row meets, in words."""
    parts = [
        f"HVPs {hvp_ratio:.2f} {'<=' if hvp_ratio <= TARGET_RATIO else '>'} 1/3",
        f"time {time_ratio:.2f} {'<=' if time_ratio <= TARGET_RATIO else '>'} 1/3",
        f"our error {error:.0e} {'<=' if error <= RTOL else '>'} 1e-3",
    ]
    return "; ".join(parts)


def run(quick: bool = False) -> list[dict]:
    """One row per model and stage: agreement with the reference, median HVPs and seconds, ratios, target met."""
    keys = [f"{name}_{stage}" for stage in STAGES for name in ("mlp", "cnn")]
    warmup, repeats = (1, 3) if quick else (2, 7)  # the same models either way: quick only repeats less
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "arch.py").write_text(ARCHITECTURES)
        (folder / "peer.py").write_text(PEER_SCRIPT)
        problems, references = {}, {}
        for key in keys:
            name, stage = key.split("_")
            model, batch = _trained(name, stage)
            torch.save(model.state_dict(), folder / f"{key}_state.pt")
            torch.save(batch, folder / f"{key}_data.pt")
            problems[key] = (model, batch)
            references[key] = _reference(model, batch)
        (folder / "references.json").write_text(json.dumps({key: ref[0] for key, ref in references.items()}))
        try:
            peer_out = json.loads(
                run_peer(
                    PEER, REQUIREMENTS, folder / "peer.py", str(folder), str(warmup), str(repeats), str(RTOL), *keys
                )
            )
            peer_label = f"PyHessian {peer_out.get('version', '')} power iteration".replace("  ", " ")
        except Exception as exc:  # no PyHessian: reproduce its method here and say so
            print(f"PyHessian unavailable ({type(exc).__name__}); reproducing its power iteration", file=sys.stderr)
            peer_out = {key: _reproduced_power_iteration(*problems[key], warmup, repeats) for key in keys}
            peer_label = "power iteration, PyHessian's method reproduced (PyHessian unavailable)"
        for key in keys:
            model, batch = problems[key]
            name, stage = key.split("_")
            ref, ref_bound, ref_spread = references[key]
            ours = _ours(model, batch, warmup, repeats)
            peer = peer_out[key]
            ours_err = max(abs(r["eigenvalue"] - ref) / abs(ref) for r in ours)
            peer_err = max(abs(r["eigenvalue"] - ref) / abs(ref) for r in peer)
            ours_s = statistics.median(r["seconds"] for r in ours)
            own_stop_s = statistics.median(r["seconds"] for r in peer)
            peer_s = statistics.median(_seconds_to_accuracy(r, _hvps_to_accuracy(r, ref)) for r in peer)
            # CPU time as well: single-threaded on both sides, it is what other jobs on a shared CPU disturb least.
            ours_cpu_s = statistics.median(r["cpu_seconds"] for r in ours)
            peer_cpu_s = statistics.median(_seconds_to_accuracy(r, _hvps_to_accuracy(r, ref), "cpu_") for r in peer)
            ours_hvp = statistics.median(r["hvp"] for r in ours)
            ours_hvp_to_accuracy = _ours_hvps_to_accuracy(model, batch, ref, range(warmup, warmup + repeats))
            peer_hvp = statistics.median(r["hvp"] for r in peer)
            peer_hvp_to_accuracy = statistics.median(_hvps_to_accuracy(r, ref) for r in peer)
            peer_hvp_certified = statistics.median(_hvps_to_certificate(r) for r in peer)
            dim = sum(p.numel() for p in model.parameters())
            hvp_ratio = ours_hvp / peer_hvp_to_accuracy
            rows.append(
                {
                    "what": f"top Hessian eigenvalue to 1e-3 rel., {name.upper()} '{stage}' ({dim} params, CE)",
                    "peer": peer_label,
                    "ours_s": ours_s,
                    "peer_s": peer_s,
                    "ratio": ours_s / peer_s,
                    "target": "<= 1/3 of peer HVPs and time to reach 1e-3, ours stopping on its certificate",
                    "met": bool(ours_s / peer_s <= TARGET_RATIO and hvp_ratio <= TARGET_RATIO and ours_err <= RTOL),
                    "agreement": (
                        f"reference {ref:.6g} (Lanczos, bound {ref_bound:.1e}; a second start agrees to "
                        f"{ref_spread:.0e}); max rel. err over {repeats} starts: ours {ours_err:.1e}, "
                        f"peer at tol=1e-3 {peer_err:.1e} in {own_stop_s:.3g} s; "
                        f"median HVPs: ours {ours_hvp:g} (certified stop), "
                        f"ours to actually reach 1e-3 {ours_hvp_to_accuracy:g}, "
                        f"peer's tol=1e-3 stop {peer_hvp:g}, "
                        f"peer to actually reach 1e-3 {peer_hvp_to_accuracy:g}, "
                        f"peer to the same residual certificate as ours {peer_hvp_certified:g}; "
                        f"CPU seconds (to 1e-3): ours {ours_cpu_s:.3g}, peer {peer_cpu_s:.3g}"
                    ),
                    "why": _why(hvp_ratio, ours_s / peer_s, ours_err),
                    "stage": stage,
                    "peer_s_own_stop": own_stop_s,
                    "ours_cpu_s": ours_cpu_s,
                    "peer_cpu_s": peer_cpu_s,
                    "cpu_ratio": ours_cpu_s / peer_cpu_s,
                    "ours_hvp": ours_hvp,
                    "peer_hvp": peer_hvp,
                    "ours_hvp_to_accuracy": ours_hvp_to_accuracy,
                    "peer_hvp_to_accuracy": peer_hvp_to_accuracy,
                    "peer_hvp_certified": peer_hvp_certified,
                    "hvp_ratio": hvp_ratio,
                    "ours_rel_error": ours_err,
                    "peer_rel_error": peer_err,
                }
            )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
