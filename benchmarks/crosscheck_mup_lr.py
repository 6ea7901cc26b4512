"""Cross-check: ``learnmech.hyper.parametrize(model, "mup", base=...)`` learning-rate multipliers against the ``mup``
package's ``MuAdam`` / ``MuSGD`` param groups (Yang et al. 2022's reference implementation, mup 1.0.0).

Not a timing benchmark: an agreement check on four architectures (a CNN, an nn.MultiheadAttention transformer, the
package's transformer and an MLP whose hidden widths scale 4x and 8x). ``mup`` insists that every layer with an
infinite fan-in and finite fan-out is its ``MuReadout``; the readouts here stay ``nn.Linear`` (learnmech puts the
1/width readout multiplier on the weight instead), so that assertion is switched off: only the learning rates are
compared. Setup (the peer venv reuses the project's torch, nothing else is installed into it)::

    python3 -m venv benchmarks/.peers/mup
    benchmarks/.peers/mup/bin/pip install --no-deps mup==1.0.0 pyyaml
    echo "$(ls -d $PWD/.venv/lib/python3*/site-packages)" > benchmarks/.peers/mup/lib/python3.11/site-packages/p.pth
    benchmarks/.peers/mup/bin/python benchmarks/crosscheck_mup_lr.py

Prints one line per (architecture, optimizer) and exits 1 on any mismatch.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import mup  # noqa: E402
import mup.shape  # noqa: E402
from torch import nn  # noqa: E402

from learnmech import hyper  # noqa: E402

mup.shape.assert_hidden_size_inf = lambda model: None  # readouts stay nn.Linear (module docstring)


def _mup_lr_mults(factory, width: int, base_width: int, optimizer_class) -> dict[str, float]:
    model, base = factory(width), factory(base_width)
    mup.set_base_shapes(model, base, rescale_params=False)
    groups = optimizer_class(model.parameters(), lr=1.0).param_groups
    by_id = {id(p): group["lr"] for group in groups for p in group["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def _our_lr_mults(factory, width: int, base_width: int, kind: str) -> dict[str, float]:
    model, base = factory(width), factory(base_width)
    p = hyper.parametrize(model, "mup", base=base)
    plain = {r.param_name.replace(".parametrizations.", ".").replace(".original", ""): r for r in p.rules}
    return {name: rule.lr_mult[kind] for name, rule in plain.items()}


def _non_proportional(w: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(16, w), nn.ReLU(), nn.Linear(w, 2 * w), nn.ReLU(), nn.Linear(2 * w, 3))


CASES = {
    "cnn (Conv2d)": lambda w: hyper.cnn(3, w, 10, hidden_layers=3),
    "transformer (nn.MultiheadAttention)": lambda w: hyper.MHATransformer(11, w, n_heads=2, n_layers=2, max_len=8),
    "transformer (hyper.SelfAttention)": lambda w: hyper.TinyTransformer(11, w, n_heads=2, n_layers=2, max_len=8),
    "mlp, hidden widths x4 and x8": _non_proportional,
}


def main() -> int:
    failures = 0
    for name, factory in CASES.items():
        for kind, optimizer_class in (("adam", mup.MuAdam), ("sgd", mup.MuSGD)):
            ours, theirs = _our_lr_mults(factory, 64, 16, kind), _mup_lr_mults(factory, 64, 16, optimizer_class)
            diffs = [(p, ours[p], theirs[p]) for p in theirs if abs(ours[p] - theirs[p]) > 1e-12]
            failures += len(diffs)
            print(f"{name:38s} {kind:4s} {len(theirs):3d} parameters, {len(diffs)} mismatches {diffs[:3]}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
