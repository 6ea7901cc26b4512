"""Neural collapse: the geometry of last-layer features and classifier in the terminal phase of training.

Papyan, Han & Donoho (2020, PNAS 117(40), figs. 2-7) observe four limits as training continues past zero
training error: (NC1) within-class variability collapses to the class means; (NC2) the centred class means
become equinorm and equiangular, a simplex equiangular tight frame (ETF); (NC3) the classifier's rows align
with the centred class means (self-duality); (NC4) the classifier acts as a nearest-class-centre rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._checks import as_array, positive_int

__all__ = ["NeuralCollapse", "neural_collapse", "simplex_etf", "etf_sampling_null"]


@dataclass
class NeuralCollapse:
    """The four neural-collapse statistics (all dimensionless, all -> 0 under collapse).

    nc1: Tr(Sigma_W Sigma_B^+) / C (Papyan et al. 2020, fig. 6).
    nc2_equinorm: std / mean of the centred class-mean norms ||mu_c - mu_G|| (fig. 2).
    nc2_equiangular: std of the cosines between distinct centred class means (fig. 3).
    nc2_maxangle: mean |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(C-1)|, the distance to the simplex ETF angle (fig. 4).
    nc3: || W / ||W||_F - M / ||M||_F ||_F^2, M the (C, d) matrix of centred class means (fig. 5).
    nc4: fraction of examples where the classifier's argmax differs from the nearest class mean (fig. 7).
    classifier_equinorm: std / mean of the classifier rows' norms (fig. 2, the W half).
    """

    nc1: float
    nc2_equinorm: float
    nc2_equiangular: float
    nc2_maxangle: float
    nc3: float
    nc4: float
    classifier_equinorm: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _coefficient_of_variation(values: np.ndarray) -> float:
    return float(np.std(values) / np.mean(values))


def neural_collapse(
    features: Any, labels: Any, classifier_weight: Any, classifier_bias: Any = None
) -> NeuralCollapse:
    """NC1-NC4 of penultimate-layer ``features`` (n, d) with integer ``labels`` (n,) in [0, C), for a linear
    classifier ``classifier_weight`` (C, d) (e.g. ``model[-1].weight``) and optional ``classifier_bias`` (C,).

    Every class must have at least one example; C >= 2. Torch tensors are accepted (and detached).
    """
    h = as_array(features, "features", ndim=2)
    weight = as_array(classifier_weight, "classifier_weight", ndim=2)
    n, d = h.shape
    num_classes = weight.shape[0]
    if weight.shape[1] != d:
        raise ValueError(f"classifier_weight must have shape (C, {d}) to match features, got {weight.shape}")
    if num_classes < 2:
        raise ValueError(f"classifier_weight must have at least 2 rows (classes), got {num_classes}")
    y = as_array(labels, "labels", ndim=1, dtype=np.float64)
    if len(y) != n:
        raise ValueError(f"labels must have one entry per feature row ({n}), got {len(y)}")
    if np.any(y != np.round(y)) or np.any(y < 0) or np.any(y >= num_classes):
        raise ValueError(f"labels must be integers in [0, {num_classes}) (rows of classifier_weight)")
    y = y.astype(np.int64)
    counts = np.bincount(y, minlength=num_classes)
    if np.any(counts == 0):
        raise ValueError(f"every class needs at least one example; classes {np.flatnonzero(counts == 0)} have none")
    bias = np.zeros(num_classes) if classifier_bias is None else as_array(classifier_bias, "classifier_bias", ndim=1)
    if len(bias) != num_classes:
        raise ValueError(f"classifier_bias must have shape ({num_classes},), got {bias.shape}")

    class_means = np.zeros((num_classes, d))
    np.add.at(class_means, y, h)
    class_means /= counts[:, None]
    # The global mean is the mean of the class means (balanced-class convention of Papyan et al. 2020).
    global_mean = class_means.mean(axis=0)
    centred = class_means - global_mean  # M, (C, d)

    # NC1: Sigma_W averages within-class scatter over examples; Sigma_B is the scatter of class means.
    within = h - class_means[y]
    sigma_w = within.T @ within / n
    sigma_b = centred.T @ centred / num_classes
    nc1 = float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, hermitian=True)) / num_classes)

    # NC2: norms and pairwise cosines of the centred means; the simplex ETF has cos = -1/(C-1).
    norms = np.linalg.norm(centred, axis=1)
    unit = centred / norms[:, None]
    cosines = (unit @ unit.T)[~np.eye(num_classes, dtype=bool)]
    nc2_equinorm = _coefficient_of_variation(norms)
    nc2_equiangular = float(np.std(cosines))
    nc2_maxangle = float(np.mean(np.abs(cosines + 1.0 / (num_classes - 1))))

    # NC3: self-duality between classifier rows and centred class means, both scaled to unit Frobenius norm.
    nc3 = float(np.sum((weight / np.linalg.norm(weight) - centred / np.linalg.norm(centred)) ** 2))

    # NC4: the network's decision vs the nearest-class-centre decision.
    network = np.argmax(h @ weight.T + bias, axis=1)
    # ||h - mu_c||^2 up to the per-row constant ||h||^2 (avoids an (n, C, d) temporary).
    distances = (class_means**2).sum(axis=1)[None, :] - 2.0 * h @ class_means.T
    nearest = np.argmin(distances, axis=1)
    nc4 = float(np.mean(network != nearest))

    return NeuralCollapse(
        nc1=nc1,
        nc2_equinorm=nc2_equinorm,
        nc2_equiangular=nc2_equiangular,
        nc2_maxangle=nc2_maxangle,
        nc3=nc3,
        nc4=nc4,
        classifier_equinorm=_coefficient_of_variation(np.linalg.norm(weight, axis=1)),
    )


def simplex_etf(num_classes: int) -> np.ndarray:
    """The (C, C) simplex equiangular tight frame: unit rows with pairwise cosine -1/(C-1), summing to 0.

    E = sqrt(C/(C-1)) (I - 11^T/C) (Papyan, Han & Donoho 2020, Definition 1), rank C-1.
    """
    num_classes = positive_int(num_classes, "num_classes", minimum=2)
    return np.sqrt(num_classes / (num_classes - 1)) * (np.eye(num_classes) - 1.0 / num_classes)


def _class_means(h: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    means = np.zeros((num_classes, h.shape[1]))
    np.add.at(means, y, h)
    return means / np.bincount(y, minlength=num_classes)[:, None]


def etf_sampling_null(
    features: Any, labels: Any, num_draws: int = 200, seed: int = 0
) -> dict[str, np.ndarray]:
    """NC2/NC3 statistics expected from the finite sample alone if the collapse limit held exactly.

    The null: the class means are an exact simplex ETF (equinorm, cosines -1/(C-1)) and the classifier is
    exactly self-dual (W proportional to the centred means), and each measured class mean is the average of the
    class's n_c examples around it, so it carries the sampling error of an average of n_c residuals. We build the
    ETF nearest the measured centred means M (orthogonal Procrustes, scaled to their mean norm), add to each
    class mean the mean of n_c of that class's measured within-class residuals h_i - mu_c drawn with replacement
    (a bootstrap of the class mean: Efron & Tibshirani 1993, ch. 6), and evaluate the statistics of
    :func:`neural_collapse` on the perturbed means, with the exact ETF as the classifier for NC3.

    features: (n, d) penultimate features; labels: (n,) integers in [0, C) with every class present, C >= 2
    taken as max(labels) + 1. Returns ``{"nc2_equinorm", "nc2_equiangular", "nc2_maxangle", "nc3"}``, each a
    (num_draws,) array of null draws (dimensionless); their upper quantiles are the thresholds a finite sample
    with this within-class variability cannot beat. Deterministic given ``seed``.
    """
    h = as_array(features, "features", ndim=2)
    y = as_array(labels, "labels", ndim=1, dtype=np.float64)
    if len(y) != h.shape[0]:
        raise ValueError(f"labels must have one entry per feature row ({h.shape[0]}), got {len(y)}")
    if np.any(y != np.round(y)) or np.any(y < 0):
        raise ValueError("labels must be non-negative integers")
    y = y.astype(np.int64)
    num_classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=num_classes)
    if num_classes < 2 or np.any(counts == 0):
        raise ValueError(f"labels must cover every class 0..C-1 with C >= 2, got counts {counts.tolist()}")
    num_draws = positive_int(num_draws, "num_draws", minimum=2)
    means = _class_means(h, y, num_classes)
    centred = means - means.mean(axis=0)
    residuals = h - means[y]
    # Nearest ETF: E Q with Q (C, d) from the SVD of E^T M (Schonemann 1966), scaled to the mean class-mean norm.
    etf = simplex_etf(num_classes)
    u, _, vt = np.linalg.svd(etf.T @ centred, full_matrices=False)
    target = np.linalg.norm(centred, axis=1).mean() * etf @ (u @ vt)
    generator = np.random.default_rng(seed)
    # (draws, C, d): per class, the mean of n_c residuals drawn with replacement from that class
    noise = np.stack([residuals[generator.choice(np.flatnonzero(y == c), size=(num_draws, counts[c]))].mean(axis=1)
                      for c in range(num_classes)], axis=1)
    sample = target[None] + noise
    sample -= sample.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(sample, axis=2)  # (draws, C)
    unit = sample / norms[:, :, None]
    cosines = np.einsum("bcd,bed->bce", unit, unit)[:, ~np.eye(num_classes, dtype=bool)]  # (draws, C(C-1))
    flat = sample.reshape(num_draws, -1)
    duality = target.reshape(-1) / np.linalg.norm(target) - flat / np.linalg.norm(flat, axis=1, keepdims=True)
    out = {
        "nc2_equinorm": norms.std(axis=1) / norms.mean(axis=1),
        "nc2_equiangular": cosines.std(axis=1),
        "nc2_maxangle": np.abs(cosines + 1.0 / (num_classes - 1)).mean(axis=1),
        "nc3": np.sum(duality**2, axis=1),
    }
    return out
