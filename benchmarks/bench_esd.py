"""Benchmark (issue 9): per-layer ESD power-law alpha, learnmech's ``layer_alphas`` vs WeightWatcher ``analyze()``.

Protocol, on a small MLP trained on seeded synthetic data:
1. agreement: alpha of every layer WeightWatcher reports, ours vs its, within 0.05;
2. cost: median wall time over repeats after a warm-up of the whole per-model call (``layer_alphas(model)``
   vs ``WeightWatcher(model=model).analyze()``, both with their defaults), single-threaded on both sides;
3. ratio ours / WeightWatcher; target <= 1/2 (at least 2x faster).

WeightWatcher runs in its own venv (benchmarks/.peers/weightwatcher) through ``_peers.run_peer``; the model
travels as a state dict. Both fit the continuous power-law MLE with xmin chosen by the KS distance (Clauset,
Shalizi & Newman 2009) with the same empirical-CDF convention; ours vectorises the xmin scan. Layers with fewer
than 20 eigenvalues (here the 10-class output layer) are left out of the comparison: ``layer_alphas`` skips them
and WeightWatcher switches to a different, ad-hoc small-sample estimator there; the row still lists its value.
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

ARCHITECTURE = """
import torch
from torch import nn

WIDTHS = [128, 512, 384, 256, 10]

def build():
    torch.manual_seed(0)
    layers = []
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])
"""

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
model = namespace["build"]()
model.load_state_dict(torch.load(folder + "/state.pt"))
seconds = []
for r in range(warmup + repeats):
    start = time.perf_counter()
    details = ww.WeightWatcher(model=model).analyze()
    if r >= warmup:
        seconds.append(time.perf_counter() - start)
print(json.dumps({"version": ww.__version__, "seconds": seconds,
                  "layers": details["name"].astype(str).tolist() if "name" in details else [],
                  "alpha": details["alpha"].astype(float).tolist()}))
"""


def _build() -> torch.nn.Module:
    namespace: dict = {}
    exec(ARCHITECTURE, namespace)
    return namespace["build"]()


def _trained(steps: int) -> torch.nn.Module:
    """The MLP after ``steps`` of SGD on seeded 10-class Gaussian-cluster data (enough to move the spectra)."""
    gen = torch.Generator().manual_seed(2)
    n = 2048
    labels = torch.arange(n) % 10
    inputs = torch.randn(10, 128, generator=gen)[labels] + 2.0 * torch.randn(n, 128, generator=gen)
    model = _build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    for step in range(steps):
        part = slice((step * 128) % n, (step * 128) % n + 128)
        optimizer.zero_grad()
        criterion(model(inputs[part]), labels[part]).backward()
        optimizer.step()
    return model


def run(quick: bool = False) -> list[dict]:
    """One row: per-layer agreement with WeightWatcher and the median-time ratio."""
    warmup, repeats, steps = (1, 3, 200) if quick else (2, 7, 1000)
    torch.set_num_threads(1)
    model = _trained(steps)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "arch.py").write_text(ARCHITECTURE)
        (folder / "peer.py").write_text(PEER_SCRIPT)
        torch.save(model.state_dict(), folder / "state.pt")
        output = run_peer(PEER, REQUIREMENTS, folder / "peer.py", str(folder), str(warmup), str(repeats))
        peer = json.loads(output.strip().splitlines()[-1])  # WeightWatcher prints its own banner first
    seconds = []
    for r in range(warmup + repeats):
        start = time.perf_counter()
        ours = layer_alphas(model)
        if r >= warmup:
            seconds.append(time.perf_counter() - start)
    # WeightWatcher lists the layers in model order, as we do; it also lists the small output layer.
    ours_alpha = list(ours.values())
    peer_alpha = peer["alpha"][: len(ours_alpha)]
    skipped = peer["alpha"][len(ours_alpha) :]
    differences = [abs(a - b) for a, b in zip(ours_alpha, peer_alpha, strict=True)]
    ours_s, peer_s = statistics.median(seconds), statistics.median(peer["seconds"])
    pairs = ", ".join(f"{name} {a:.3f}/{b:.3f}" for name, a, b in zip(ours, ours_alpha, peer_alpha, strict=True))
    if skipped:
        pairs += f"; not compared (< 20 eigenvalues): WW alpha {', '.join(f'{a:.3f}' for a in skipped)}"
    return [
        {
            "what": f"ESD alpha of every layer, trained MLP {' -> '.join(map(str, [128, 512, 384, 256, 10]))}",
            "peer": f"WeightWatcher {peer['version']} analyze()",
            "ours_s": ours_s,
            "peer_s": peer_s,
            "ratio": ours_s / peer_s,
            "target": "same alphas within 0.05, >= 2x faster",
            "met": bool(max(differences) <= TOLERANCE and ours_s / peer_s <= TARGET_RATIO),
            "agreement": f"max |alpha diff| {max(differences):.3g} (ours/WW: {pairs})",
            "alphas_ours": ours_alpha,
            "alphas_peer": peer["alpha"],
            "peer_layers": peer["layers"],
        }
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
