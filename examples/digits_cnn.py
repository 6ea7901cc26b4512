"""A small CNN on scikit-learn's digits (8x8 images, 10 classes), as a `learnmech forecast` training script.

    learnmech forecast --script examples/digits_cnn.py --run --out /tmp/fc

forecasts the run (stability at init, edge of stability, critical batch size, muP width transfer, final test loss
from a sweep over training-set sizes), trains it by full-batch gradient descent with Observers and writes a scored
report card. Set ``DIGITS_LR`` to try another learning rate, e.g. the deliberately unstable one::

    DIGITS_LR=unstable learnmech forecast --script examples/digits_cnn.py --run --out /tmp/fc-unstable

(``unstable`` means ``UNSTABLE_LR`` below, about 1.9x the forecast lr_stable; any number works too.) Runs in well
under a minute on one core. The data ship inside scikit-learn's wheel: nothing is downloaded.
"""

from __future__ import annotations

import os

import torch
from sklearn.datasets import load_digits
from torch import nn

STABLE_LR = 0.14  # ~0.93 x lr_stable at init: sharpens into the edge of stability within the run
UNSTABLE_LR = 0.3  # ~1.9 x lr_stable at init: the quadratic model says the top direction grows
N_TRAIN = 1200
STEPS = 400

_lr = os.environ.get("DIGITS_LR", "stable")
LR = STABLE_LR if _lr == "stable" else UNSTABLE_LR if _lr == "unstable" else float(_lr)

optimizer = {"name": "gd", "lr": LR, "steps": STEPS, "every": 10, "seed": 0}
widths = [8, 16, 32]  # muP: lr tuned at width 8 (the proxy), transferred to 32 (proxy first, target last)
# (the forecast's coordinate check runs at 8-32x the proxy, i.e. widths 64-256 with base 8: forecast/width.py)
target = {"D": N_TRAIN}


def model(width: int = 16) -> nn.Module:
    """conv(1 -> w) - tanh - avgpool 2 - conv(w -> w) - tanh - linear(16 w -> 10); ~5k parameters at w = 16."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(width * 16, 10),
    )


def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Half squared error on one-hot targets, summed over classes, mean over examples (as in Cohen et al. 2021)."""
    return 0.5 * ((outputs - targets) ** 2).sum(dim=1).mean()


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = nn.functional.one_hot(torch.tensor(digits.target), 10).float()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[order], y[order]


def data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The first N_TRAIN shuffled digits for training, the remaining 597 for testing."""
    x, y = _digits()
    return {"train": (x[:N_TRAIN], y[:N_TRAIN]), "test": (x[N_TRAIN:], y[N_TRAIN:])}


def runs() -> list[dict[str, float]]:
    """The sweep the loss forecast extrapolates from: the same recipe (this LR) on fewer training examples (D),
    each row the final test loss; runs that diverged are left out (no loss forecast without three finished runs).
    A user would read these from earlier runs (a CSV works too)."""
    (x, y), (xt, yt) = data()["train"], data()["test"]
    rows = []
    for d in (100, 200, 400):
        torch.manual_seed(0)
        net = model()
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        for _ in range(STEPS):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[:d]), y[:d])
            if not torch.isfinite(loss):
                break
            loss.backward()
            opt.step()
        with torch.no_grad():
            test = float(loss_fn(net(xt), yt))
        if torch.isfinite(loss) and test == test and test < float("inf"):
            rows.append({"D": d, "loss": test})
    return rows if len(rows) >= 3 else []
