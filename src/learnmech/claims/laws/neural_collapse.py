"""neural-collapse: past zero training error, last-layer features collapse to their class means (NC1) and the
class means, classifier and decision rule approach the simplex-ETF limits (NC2-NC4).

Theory (Papyan, Han & Donoho 2020, figs. 2-7; for the square loss with weight decay, Han, Papyan & Donoho 2022
and the unconstrained-features analyses of Tirer & Bruna 2022): in the terminal phase of training (TPT, from
the first step with 100% training accuracy on) the within-class variability of the penultimate features,
NC1 = Tr(Sigma_W Sigma_B^+)/C, keeps falling towards 0; the centred class means become equinorm and
equiangular (NC2), the classifier rows align with them (NC3) and the net's decision becomes the nearest class
mean (NC4).

Experiment: an MLP on Gaussian class clusters trained with the square loss on one-hot targets and AdamW weight
decay (the setting in which the collapse is fast: with cross-entropy and plain GD, NC1 falls only a few-fold
within a CPU budget). ``neural_collapse`` is measured on the training set every ``every`` steps.

Verdict: four criteria from the claim's sentence, measured from the TPT onset to the end of training:
(1) NC1 falls by at least an order of magnitude (the claim's own threshold); (2) both NC2 statistics
(equinorm, distance to the ETF angle) decrease; (3) NC3 decreases; (4) NC4 does not increase. A run that
never reaches 100% training accuracy has no TPT and fails all four. error = number of failed criteria,
tolerance = 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from learnmech.claims import Claim, Diverged, Panel, Result, Series, step
from learnmech.observe import neural_collapse
from learnmech.observe.tasks import gaussian_clusters, mlp, train

MIN_NC1_DROP = 10.0  # "by at least an order of magnitude"
NC2_NC3 = ("nc2_equinorm", "nc2_maxangle", "nc3")


def run(config: dict[str, Any], seed: int) -> Result:
    data = gaussian_clusters(config["num_classes"], config["per_class"], config["dim"], noise=config["noise"],
                             seed=seed)
    model = mlp(data.input_dim, config["hidden"], data.num_classes, "relu", seed=seed)
    features, classifier = model[:-1], model[-1]  # penultimate feature map and the linear classifier

    def measure(_step: int, net: torch.nn.Module) -> dict[str, float]:
        with torch.no_grad():
            h = features(data.x_train)
        return neural_collapse(h, data.y_train, classifier.weight, classifier.bias).as_dict()

    history = train(model, data, steps=config["steps"], lr=config["lr"], optimizer="adamw", loss="mse",
                    weight_decay=config["weight_decay"], every=config["every"], callback=measure, seed=seed,
                    progress=lambda done, total: step(done, total, "training"))
    if history.diverged_step is not None:
        raise Diverged(history.diverged_step)
    stats = {key: np.array([row[key] for row in history.extra]) for key in history.extra[0]}
    onset = history.first_step(history.train_acc, 1.0)
    if onset is None:
        at_onset = {key: math.nan for key in stats}
        failures = {"nc1": True, "nc2": True, "nc3": True, "nc4": True}
    else:
        index = history.steps.index(onset)
        at_onset = {key: float(values[index]) for key, values in stats.items()}
        failures = {
            "nc1": not (at_onset["nc1"] / stats["nc1"][-1] >= MIN_NC1_DROP),
            "nc2": not (stats["nc2_equinorm"][-1] < at_onset["nc2_equinorm"]
                        and stats["nc2_maxangle"][-1] < at_onset["nc2_maxangle"]),
            "nc3": not (stats["nc3"][-1] < at_onset["nc3"]),
            "nc4": not (stats["nc4"][-1] <= at_onset["nc4"]),
        }
    at_end = {key: float(values[-1]) for key, values in stats.items()}
    nc1_drop = at_onset["nc1"] / at_end["nc1"]

    steps = history.steps
    tpt = [s for s in steps if onset is not None and s >= onset]
    target = at_onset["nc1"] / MIN_NC1_DROP
    figure = [
        Panel("NC1: within-class variability collapse", "training step", "Tr(Sigma_W Sigma_B^+)/C", [
            Series("NC1", steps, stats["nc1"]),
            Series("onset NC1 / 10 (the claimed drop)", tpt, [target] * len(tpt), role="prediction"),
        ], yscale="log"),
        Panel("NC2 and NC3: towards the simplex ETF and self-duality", "training step", "statistic (-> 0)", [
            Series("NC2 equinorm (CV of class-mean norms)", steps, stats["nc2_equinorm"]),
            Series("NC2 angle (mean |cos + 1/(C-1)|)", steps, stats["nc2_maxangle"]),
            Series("NC3 ||W/||W|| - M/||M||||^2", steps, stats["nc3"]),
        ], yscale="log"),
        Panel("Training accuracy and NC4", "training step", "fraction", [
            Series("train accuracy", steps, history.train_acc),
            Series("NC4 (argmax != nearest class mean)", steps, stats["nc4"]),
        ], hlines=[(1.0, "zero training error")]),
    ]
    return Result(
        prediction={"nc1_drop_at_least": MIN_NC1_DROP, "nc2_equinorm_end_below_onset": at_onset["nc2_equinorm"],
                    "nc2_maxangle_end_below_onset": at_onset["nc2_maxangle"],
                    "nc3_end_below_onset": at_onset["nc3"], "nc4_end_at_most_onset": at_onset["nc4"]},
        measurement={"nc1_drop": nc1_drop, "nc2_equinorm": at_end["nc2_equinorm"],
                     "nc2_maxangle": at_end["nc2_maxangle"], "nc3": at_end["nc3"], "nc4": at_end["nc4"]},
        error=float(sum(failures.values())),
        tolerance=0.0,
        figure=figure,
        metrics={"tpt_onset_step": onset, "at_onset": at_onset, "at_end": at_end, "nc1_at_init": float(stats["nc1"][0]),
                 "final_train_loss": history.train_loss[-1],
                 "criteria_failed": [name for name, bad in failures.items() if bad]},
    )


CLAIM = Claim(
    name="neural-collapse",
    strand="laws",
    reference="Papyan, Han & Donoho (2020), figs. 2-7",
    statement=(
        "theory says that training past zero training error, NC1 = Tr(Sigma_W Sigma_B^+)/C falls by at least an "
        "order of magnitude while NC2 (equinorm, equiangular) and NC3 (self-duality) decrease and NC4 does not grow"
    ),
    quick={"num_classes": 10, "per_class": 50, "dim": 32, "noise": 1.0, "hidden": [128, 128, 64], "lr": 1e-3,
           "weight_decay": 0.5, "steps": 600, "every": 20},
    full={"num_classes": 10, "per_class": 100, "dim": 32, "noise": 1.0, "hidden": [256, 256, 128], "lr": 1e-3,
          "weight_decay": 0.5, "steps": 1500, "every": 25},
    run=run,
)
