"""Benchmark (issue 9): per-layer ESD power-law alpha, learnmech's ``layer_alphas`` vs WeightWatcher ``analyze()``.

Protocol, on a small MLP and a small CNN trained on seeded synthetic data:
1. agreement: alpha of every layer WeightWatcher reports, ours vs its, within 0.05;
2. cost: median wall time over repeats after a warm-up of the whole per-model call (``layer_alphas(model)``
   vs ``WeightWatcher(model=model).analyze()``, both with their defaults), single-threaded on both sides;
3. ratio ours / WeightWatcher; target <= 1/2 (at least 2x faster).

WeightWatcher runs in its own venv (benchmarks/.peers/weightwatcher) through ``_peers.run_peer``; the models
travel as state dicts. Convolutions: both pool the eigenvalues of the (out, in) slice of every kernel position.
Both fit the continuous power-law MLE with xmin chosen by the KS distance (Clauset, Shalizi & Newman 2009) with
the same empirical-CDF convention; ours vectorises the xmin scan. Layers with fewer than 20 eigenvalues (the
10-class output layers, the CNN's 1-channel first convolution) are left out of the comparison: ``layer_alphas``
skips them and WeightWatcher switches to a different, ad-hoc small-sample estimator there; rows list its values.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import run_peer  # noqa: E402

from learnmech.observe import layer_alphas  # noqa: E402

PEER = "weightwatcher"
# torch first, pinned to the CPU wheel on disk (WeightWatcher needs torch to read a torch model).
REQUIREMENTS = ["torch==2.13.0", "weightwatcher"]
TOLERANCE = 0.05
TARGET_RATIO = 1 / 2

ARCHITECTURES = """
import torch
from torch import nn

def build(name):
    torch.manual_seed(0)
    if name == "mlp":
        return nn.Sequential(nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 384), nn.ReLU(), nn.Linear(384, 256),
                             nn.ReLU(), nn.Linear(256, 10))
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 4 * 4, 10))
    raise ValueError(name)
"""
DESCRIPTIONS = {"mlp": "MLP 128-512-384-256-10", "cnn": "CNN conv 1-16-32-64 (3x3) + linear 1024-10"}

PEER_SCRIPT = """
import json, logging, sys, time, warnings
import torch
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import weightwatcher as ww

folder, warmup, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
namespace = {}
exec(open(folder + "/arch.py").read(), namespace)
out = {"version": ww.__version__}
for name in sys.argv[4:]:
    model = namespace["build"](name)
    model.load_state_dict(torch.load(folder + f"/{name}_state.pt"))
    seconds = []
    for r in range(warmup + repeats):
        start = time.perf_counter()
        details = ww.WeightWatcher(model=model).analyze()
        if r >= warmup:
            seconds.append(time.perf_counter() - start)
    out[name] = {"seconds": seconds, "layers": details["name"].astype(str).tolist(),
                 "alpha": details["alpha"].astype(float).tolist()}
print(json.dumps(out))
"""


def _build(name: str) -> torch.nn.Module:
    namespace: dict = {}
    exec(ARCHITECTURES, namespace)
    return namespace["build"](name)


def _trained(name: str, steps: int) -> torch.nn.Module:
    """The model after ``steps`` of SGD on seeded 10-class Gaussian-cluster data (enough to move the spectra)."""
    gen = torch.Generator().manual_seed(2)
    n = 2048
    shape = (128,) if name == "mlp" else (1, 16, 16)
    labels = torch.arange(n) % 10
    inputs = torch.randn(10, *shape, generator=gen)[labels] + 2.0 * torch.randn(n, *shape, generator=gen)
    model = _build(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    for step in range(steps):
        part = slice((step * 128) % n, (step * 128) % n + 128)
        optimizer.zero_grad()
        criterion(model(inputs[part]), labels[part]).backward()
        optimizer.step()
    return model


def _row(name: str, model: torch.nn.Module, peer: dict, version: str, warmup: int, repeats: int) -> dict:
    seconds = []
    for r in range(warmup + repeats):
        start = time.perf_counter()
        ours = layer_alphas(model)
        if r >= warmup:
            seconds.append(time.perf_counter() - start)
    # WeightWatcher names a layer by its module ("2"), we by its parameter ("2.weight").
    theirs = dict(zip(peer["layers"], peer["alpha"], strict=True))
    compared = {layer: (alpha, theirs[layer.removesuffix(".weight")]) for layer, alpha in ours.items()}
    skipped = {layer: alpha for layer, alpha in theirs.items() if f"{layer}.weight" not in ours}
    differences = [abs(a - b) for a, b in compared.values()]
    ours_s, peer_s = statistics.median(seconds), statistics.median(peer["seconds"])
    pairs = ", ".join(f"{layer} {a:.3f}/{b:.3f}" for layer, (a, b) in compared.items())
    if skipped:
        pairs += "; not compared (< 20 eigenvalues), WW alpha: " + ", ".join(
            f"{layer} {a:.3f}" for layer, a in skipped.items()
        )
    return {
        "what": f"ESD alpha of every layer, trained {DESCRIPTIONS[name]}",
        "peer": f"WeightWatcher {version} analyze()",
        "ours_s": ours_s,
        "peer_s": peer_s,
        "ratio": ours_s / peer_s,
        "target": "same alphas within 0.05, >= 2x faster",
        "met": bool(max(differences) <= TOLERANCE and ours_s / peer_s <= TARGET_RATIO),
        "agreement": f"max |alpha diff| {max(differences):.3g} over {len(compared)} layers (ours/WW: {pairs})",
        "alphas_ours": {layer: a for layer, (a, _) in compared.items()},
        "alphas_peer": theirs,
    }


def run(quick: bool = False) -> list[dict]:
    """One row per model: per-layer agreement with WeightWatcher and the median-time ratio."""
    names = ["mlp", "cnn"]
    warmup, repeats = (1, 3) if quick else (2, 7)
    steps = 300  # the same trained models either way: quick only repeats less
    torch.set_num_threads(1)
    models = {name: _trained(name, steps) for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "arch.py").write_text(ARCHITECTURES)
        (folder / "peer.py").write_text(PEER_SCRIPT)
        for name, model in models.items():
            torch.save(model.state_dict(), folder / f"{name}_state.pt")
        output = run_peer(PEER, REQUIREMENTS, folder / "peer.py", str(folder), str(warmup), str(repeats), *names)
        peer = json.loads(output.strip().splitlines()[-1])  # WeightWatcher prints its own banner first
    return [_row(name, models[name], peer[name], peer["version"], warmup, repeats) for name in names]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
