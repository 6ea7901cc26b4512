"""heavy-tails: training makes the empirical spectral density (ESD) of weight matrices heavy-tailed.

Theory (Martin & Mahoney 2021, JMLR 22(165), sec. 5 and table 1): at initialisation a layer's W^T W has a
Marchenko-Pastur ESD (random-matrix theory), whose power-law fit gives a large, erratic alpha; as training
proceeds (more so with large learning rates and small batches) correlations build up, the ESD grows a power-law
tail and the fitted exponent alpha falls into 2..6 ("heavy-tailed self-regularisation"), decreasing with more
training.

Experiment: an MLP on Gaussian class clusters trained by small-batch SGD; ``layer_alphas`` (the CSN power-law
fit) every ``every`` steps, for the layers with at least ``min_eigenvalues`` nonzero eigenvalues (the MLE's
standard error is (alpha - 1)/sqrt(n_tail), so short spectra cannot resolve the 2..6 window). The random-matrix
reference is the distribution of ``esd_alpha`` over ``rmt_samples`` i.i.d. Gaussian matrices of each layer's
shape (MP universality makes the init distribution irrelevant).

Verdict, per tested layer, three criteria from the claim's sentence: (a) the trained alpha lies in [2, 6];
(b) alpha decreases with training: alpha(end) < alpha(mid-training) < alpha(init); (c) the trained alpha is
below the 5th percentile of the random-matrix alphas (it is not a value a random matrix of that shape would
give, which matters because CSN fits to MP spectra themselves scatter widely). error = the number of failed
(layer, criterion) pairs, tolerance = 0.

Caveat (what the fit sees): in this small setting the trained ESD differs from the init one mainly by about C
(= num_classes) outlier eigenvalues, the learned low-rank signal, on top of an MP-like bulk; the CSN tail
(n_tail ~ 50 of 256) spans those outliers and the bulk edge. In Martin & Mahoney's phase taxonomy that is nearer
"bulk + spikes" than a heavy-tailed bulk; the single exponent alpha does not tell the two apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learnmech.claims import Claim, Diverged, Panel, Result, Series, step
from learnmech.observe import esd_alpha, layer_alphas, snapshot, spectral_density
from learnmech.observe.tasks import gaussian_clusters, mlp, train
from learnmech.seeding import rng

ALPHA_RANGE = (2.0, 6.0)  # Martin & Mahoney (2021): well-trained layers
RMT_PERCENTILE = 5.0


def _random_matrix_alphas(shape: tuple[int, ...], samples: int, seed: int) -> np.ndarray:
    """esd_alpha of ``samples`` i.i.d. N(0, 1) matrices of ``shape`` (alpha is scale-free, so the variance is moot)."""
    generator = rng(seed)
    return np.array([esd_alpha(generator.standard_normal(shape)) for _ in range(samples)])


def _rank_plot(weight: Any) -> tuple[np.ndarray, np.ndarray]:
    """(rank 1..n, eigenvalues of W^T W in decreasing order): log-log, a tail p(x) ~ x^-alpha is a line of
    slope -1/(alpha - 1)."""
    eigenvalues = spectral_density(weight)[::-1]
    return np.arange(1, len(eigenvalues) + 1), eigenvalues


def run(config: dict[str, Any], seed: int) -> Result:
    data = gaussian_clusters(config["num_classes"], config["per_class"], config["dim"], noise=config["noise"],
                             seed=seed)
    model = mlp(data.input_dim, config["hidden"], data.num_classes, "relu", seed=seed)
    min_eigenvalues = config["min_eigenvalues"]
    initial = snapshot(model)  # init weights, for the ESD panel
    history = train(model, data, steps=config["steps"], lr=config["lr"], optimizer="sgd", loss="cross_entropy",
                    batch_size=config["batch_size"], every=config["every"], seed=seed,
                    callback=lambda _step, net: layer_alphas(net, min_eigenvalues=min_eigenvalues),
                    progress=lambda done, total: step(done, total, "training"))
    if history.diverged_step is not None:
        raise Diverged(history.diverged_step)
    layers = list(history.extra[0])
    if not layers:
        raise ValueError(f"no layer has >= {min_eigenvalues} nonzero eigenvalues; lower min_eigenvalues or widen")
    steps = np.array(history.steps)
    mid = int(np.argmin(np.abs(steps - steps[-1] / 2)))  # the recorded step nearest to half of training
    parameters = dict(model.named_parameters())

    alphas = {name: np.array([row[name] for row in history.extra]) for name in layers}
    rmt = {name: _random_matrix_alphas(tuple(parameters[name].shape), config["rmt_samples"], seed + 1 + i)
           for i, name in enumerate(layers)}
    rmt_cut = {name: float(np.percentile(rmt[name], RMT_PERCENTILE)) for name in layers}
    failed = []
    for name in layers:
        init, middle, end = alphas[name][0], alphas[name][mid], alphas[name][-1]
        if not ALPHA_RANGE[0] <= end <= ALPHA_RANGE[1]:
            failed.append(f"{name}: alpha {end:.2f} outside [2, 6]")
        if not end < middle < init:
            failed.append(f"{name}: alpha not decreasing ({init:.2f}, {middle:.2f}, {end:.2f})")
        if not end < rmt_cut[name]:
            failed.append(f"{name}: alpha {end:.2f} not below random-matrix 5th percentile {rmt_cut[name]:.2f}")

    figure = [
        Panel("ESD power-law exponent during training", "training step", "alpha (CSN fit)", [
            *[Series(name, history.steps, alphas[name]) for name in layers],
            *[Series(f"random-matrix median, {name}", [0, steps[-1]], [np.median(rmt[name])] * 2, role="reference",
                     lower=[rmt_cut[name]] * 2, upper=[float(np.percentile(rmt[name], 95))] * 2)
              for name in layers],
            Series("heavy-tailed window 2..6", [0, steps[-1]], [4.0, 4.0], role="prediction",
                   lower=[ALPHA_RANGE[0]] * 2, upper=[ALPHA_RANGE[1]] * 2),
        ], yscale="log"),
        Panel(f"ESD of {layers[-1]} (rank plot: a power-law tail is a straight line)", "rank",
              "eigenvalue of W^T W", [
                  Series("init", *_rank_plot(initial[layers[-1]])),
                  Series("trained", *_rank_plot(parameters[layers[-1]])),
              ], xscale="log", yscale="log"),
        Panel("Training accuracy", "training step", "accuracy", [
            Series("train", history.steps, history.train_acc),
        ]),
    ]
    return Result(
        prediction={"alpha_min": ALPHA_RANGE[0], "alpha_max": ALPHA_RANGE[1],
                    **{f"rmt_p5[{name}]": rmt_cut[name] for name in layers}},
        measurement={**{f"alpha_end[{name}]": float(alphas[name][-1]) for name in layers},
                     **{f"alpha_mid[{name}]": float(alphas[name][mid]) for name in layers},
                     **{f"alpha_init[{name}]": float(alphas[name][0]) for name in layers}},
        error=float(len(failed)),
        tolerance=0.0,
        figure=figure,
        metrics={"criteria_failed": failed, "mid_step": int(steps[mid]),
                 "rmt_median": {name: float(np.median(rmt[name])) for name in layers},
                 "final_train_acc": history.train_acc[-1]},
    )


CLAIM = Claim(
    name="heavy-tails",
    strand="universal",
    reference="Martin & Mahoney (2021), sec. 5, table 1",
    statement=(
        "theory says that SGD training turns the Marchenko-Pastur ESD of a layer at init into a power law whose "
        "exponent alpha falls into 2..6, decreases with more training and leaves the random-matrix range"
    ),
    quick={"num_classes": 10, "per_class": 200, "dim": 64, "noise": 1.5, "hidden": [256, 256], "lr": 0.1,
           "batch_size": 16, "steps": 2000, "every": 250, "min_eigenvalues": 128, "rmt_samples": 32},
    full={"num_classes": 10, "per_class": 300, "dim": 64, "noise": 1.5, "hidden": [256, 256, 256], "lr": 0.1,
          "batch_size": 16, "steps": 6000, "every": 500, "min_eigenvalues": 128, "rmt_samples": 64},
    run=run,
)
