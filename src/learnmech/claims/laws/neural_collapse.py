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

Verdict (pre-registered, all at the end of training; error = the largest measured / threshold ratio, tolerance 1):
(NC1) NC1 has fallen by at least 10x since the TPT onset. The 10 is not derived from theory (which only says
NC1 -> 0); it is this claim's reading of "collapse" as at least one decade on the log axis of Papyan et al.'s fig.
6, fixed before the run. Ratio: 10 / (NC1 at onset / NC1 at the end).
(NC2) the simplex-ETF targets: equal class-mean norms (nc2_equinorm = CV of the norms -> 0) and pairwise cosines
-1/(C-1) (nc2_maxangle = mean |cos + 1/(C-1)| -> 0). (NC3) self-duality: nc3 = ||W/||W|| - M/||M||||^2 -> 0.
The thresholds are the finite-sample expectation (:func:`learnmech.observe.etf_sampling_null`): the values these
statistics take if the class means were an exact ETF and W exactly self-dual, and the only deviation were the
sampling error of each class mean (the mean of n_c examples with the measured within-class residuals), taken
at the 1 - 0.01/3 quantile of 600 null draws (99% familywise over the three statistics, Bonferroni). The theory
gives no finite-time rate, so a finite-time allowance cannot be derived; the distance left at the end of
training is exactly what this verdict measures. A run that never reaches 100% training accuracy has no TPT and
disagrees (error inf). NC4 (nearest-class-mean agreement) is 0 already at the onset here, so it cannot
discriminate; it is reported in the metrics, not judged.

Control (rejected): the same NC2/NC3 judgement on the features at initialisation (no training, hence no
collapse), with the null built from those features: a random network's class means are far from an ETF.

Choices fixed after a first look: a first design counted four qualitative criteria (NC2 and NC3 only had to
"decrease", NC4 not to grow, although it starts at 0). NC2 and NC3 are judged against the ETF targets with
thresholds from the finite-sample expectation, the 10x is stated as the claim's own choice, NC4 is reported but not
judged, and the untrained-network control is coded. Measured (quick seeds 0-9 and full seeds 0-2): NC1 collapses
(13-100x since the TPT onset in the quick config, 75-330x in the full one), but at the end the NC2 statistics are
7-70x and NC3 900-7000x above their finite-sample thresholds (NC2 angle ~0.05, NC3 ~0.3-0.45): the class means
settle into a geometry that is not the simplex ETF, and the classifier is not self-dual, so the claim disagrees.
This is not only AdamW's doing: an exploratory run (seed 0) with full-batch gradient descent on the L2-regularised
square loss (the setting of Han, Papyan & Donoho 2022; weight decay 1e-2, lr 0.2, 3000 steps) plateaus at NC2
angle 0.031 and NC3 0.026, still ~4x and ~17x above the same kind of threshold. The first design's qualitative
criteria ("decreases since the onset") are reported as a labelled boundary metric.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from learnmech.claims import Claim, Control, Diverged, Panel, Result, Series, step
from learnmech.observe import etf_sampling_null, neural_collapse
from learnmech.observe.tasks import gaussian_clusters, mlp, train

MIN_NC1_DROP = 10.0  # "by at least an order of magnitude": the claim's own reading of Papyan et al. fig. 6
ETF_STATS = ("nc2_equinorm", "nc2_maxangle", "nc3")
NULL_DRAWS = 600
NULL_QUANTILE = 1.0 - 0.01 / len(ETF_STATS)  # 99% familywise over the three statistics (Bonferroni)


def _etf_ratios(features: torch.Tensor, labels: torch.Tensor, stats: dict[str, float], seed: int
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Finite-sample thresholds of the ETF statistics and measured / threshold for each."""
    null = etf_sampling_null(features, labels, num_draws=NULL_DRAWS, seed=seed)
    thresholds = {key: float(np.quantile(null[key], NULL_QUANTILE)) for key in ETF_STATS}
    return thresholds, {key: stats[key] / thresholds[key] for key in ETF_STATS}


def run(config: dict[str, Any], seed: int) -> Result:
    data = gaussian_clusters(config["num_classes"], config["per_class"], config["in_dim"], noise=config["noise"],
                             seed=seed)
    model = mlp(data.input_dim, config["hidden"], data.num_classes, "relu", seed=seed)
    features, classifier = model[:-1], model[-1]  # penultimate feature map and the linear classifier

    def measure(_step: int, net: torch.nn.Module) -> dict[str, float]:
        with torch.no_grad():
            h = features(data.x_train)
        return neural_collapse(h, data.y_train, classifier.weight, classifier.bias).as_dict()

    with torch.no_grad():
        init_features = features(data.x_train)
    history = train(model, data, steps=config["steps"], lr=config["lr"], optimizer="adamw", loss="mse",
                    weight_decay=config["weight_decay"], every=config["every"], callback=measure, seed=seed,
                    progress=lambda done, total: step(done, total, "training"))
    if history.diverged_step is not None:
        raise Diverged(history.diverged_step)
    stats = {key: np.array([row[key] for row in history.extra]) for key in history.extra[0]}
    at_init = {key: float(values[0]) for key, values in stats.items()}
    at_end = {key: float(values[-1]) for key, values in stats.items()}
    with torch.no_grad():
        end_features = features(data.x_train)
    thresholds, end_ratios = _etf_ratios(end_features, data.y_train, at_end, seed)
    init_thresholds, init_ratios = _etf_ratios(init_features, data.y_train, at_init, seed)
    onset = history.first_step(history.train_acc, 1.0)
    if onset is None:
        at_onset = {key: math.nan for key in stats}
        nc1_drop, ratios = math.nan, {"nc1": math.inf, **end_ratios}
    else:
        at_onset = {key: float(values[history.steps.index(onset)]) for key, values in stats.items()}
        nc1_drop = at_onset["nc1"] / at_end["nc1"]
        ratios = {"nc1": MIN_NC1_DROP / nc1_drop, **end_ratios}
    error = max(ratios.values())
    control = Control(
        name="etf-at-init",
        statement=("rival: the untrained network's class means already form the simplex ETF and W is self-dual "
                   "(same NC2/NC3 thresholds, from the init features' own finite-sample null)"),
        prediction={key: init_thresholds[key] for key in ETF_STATS},
        measurement={key: at_init[key] for key in ETF_STATS},
        error=max(init_ratios.values()), tolerance=1.0,
    )
    decreased = {key: bool(onset is not None and at_end[key] < at_onset[key]) for key in ETF_STATS}

    steps = history.steps
    tpt = [s for s in steps if onset is not None and s >= onset]
    target = at_onset["nc1"] / MIN_NC1_DROP
    ctl = "rejected" if control.rejected else "NOT rejected"
    names = list(ETF_STATS)
    index = np.arange(len(names), dtype=float)
    figure = [
        Panel("NC1: within-class variability collapse", "training step", "Tr(Sigma_W Sigma_B^+)/C", [
            Series("NC1", steps, stats["nc1"]),
            *([Series("onset NC1 / 10 (the claimed drop; band: anything below)", tpt, [target] * len(tpt),
                      role="prediction", lower=[min(stats["nc1"].min(), target) / 10] * len(tpt),
                      upper=[target] * len(tpt))] if tpt else []),
        ], yscale="log"),
        Panel("NC2 and NC3: towards the simplex ETF and self-duality", "training step", "statistic (-> 0)", [
            Series("NC2 equinorm (CV of class-mean norms)", steps, stats["nc2_equinorm"], group="nc2_equinorm"),
            Series("NC2 angle (mean |cos + 1/(C-1)|)", steps, stats["nc2_maxangle"], group="nc2_maxangle"),
            Series("NC3 ||W/||W|| - M/||M||||^2", steps, stats["nc3"], group="nc3"),
            # each threshold as a marker at the final step, in its statistic's colour (judged at the end only)
            *[Series(f"{key}: finite-sample threshold at the end", [steps[-1]], [thresholds[key]],
                     role="prediction", connect=False, group=key) for key in names],
        ], yscale="log"),
        Panel("At the end vs the ETF's finite-sample expectation", "statistic", "value (dimensionless)", [
            Series("ETF + sampling noise (prediction; band: up to the threshold)", index,
                   [thresholds[k] for k in names], role="prediction", connect=False,
                   lower=[0.0] * len(names), upper=[thresholds[k] for k in names]),
            Series("measured at the end of training", index, [at_end[k] for k in names], connect=False),
            Series(f"control: untrained network ({ctl})", index, [at_init[k] for k in names], role="reference",
                   connect=False),
        ], yscale="log", xticks=[(float(i), k) for i, k in enumerate(names)]),
        Panel("Training accuracy and NC4", "training step", "fraction", [
            Series("train accuracy", steps, history.train_acc),
            Series("NC4 (argmax != nearest class mean)", steps, stats["nc4"]),
        ], hlines=[(1.0, "zero training error")]),
    ]
    return Result(
        prediction={"nc1_drop_at_least": MIN_NC1_DROP, **{f"{k}_at_most": thresholds[k] for k in names}},
        measurement={"nc1_drop": nc1_drop, **{k: at_end[k] for k in names}},
        error=error,
        tolerance=1.0,
        units="measured / threshold, max over NC1 (10 / drop), NC2 equinorm, NC2 angle, NC3",
        controls=[control],
        figure=figure,
        metrics={"tpt_onset_step": onset, "at_onset": at_onset, "at_end": at_end, "at_init": at_init,
                 "nc1_at_init": at_init["nc1"], "ratio_to_threshold": ratios, "etf_thresholds": thresholds,
                 "init_ratio_to_threshold": init_ratios, "final_train_loss": history.train_loss[-1],
                 "criteria_failed": [k for k, v in ratios.items() if not v <= 1.0],
                 "boundary_decreased_since_onset": decreased, "nc4_at_end": at_end["nc4"]},
        note=(f"NC1 fell {nc1_drop:.3g}x since the TPT onset; at the end NC2/NC3 are "
              + ", ".join(f"{k} {end_ratios[k]:.3g}x" for k in names)
              + " their finite-sample ETF thresholds"),
    )


CLAIM = Claim(
    name="neural-collapse",
    strand="laws",
    reference="Papyan, Han & Donoho (2020), figs. 2-7",
    statement=(
        "theory says that training past zero training error, NC1 = Tr(Sigma_W Sigma_B^+)/C falls by at least an "
        "order of magnitude and the class means reach the simplex ETF (equal norms, cosines -1/(C-1)) with a "
        "self-dual classifier, within the finite-sample expectation"
    ),
    quick={"num_classes": 10, "per_class": 50, "in_dim": 32, "noise": 1.0, "hidden": [128, 128, 64], "lr": 1e-3,
           "weight_decay": 0.5, "steps": 600, "every": 20},
    full={"num_classes": 10, "per_class": 100, "in_dim": 32, "noise": 1.0, "hidden": [256, 256, 128], "lr": 1e-3,
          "weight_decay": 0.5, "steps": 1500, "every": 25},
    run=run,
)
