"""Two functional forms of L(N, D) for a pre-registered comparison: additive vs interaction.

- additive (Hoffmann et al. 2022, eq. 2): L = E + A/N^alpha + B/D^beta (:func:`learnmech.laws.fit_scaling_law`);
  the N- and D-limited terms add, so the benefit of more data does not depend on the model size.
- interaction (Kaplan et al. 2020, eq. 1.5, with an irreducible floor E): L = E + ((A/N)^(alpha/beta) + B/D)^beta;
  the two limits combine inside one power, so the D-dependence at fixed N changes with N.

Both are empirical ansatzes, not derived laws; comparing their held-out error is how a sweep can tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .fit import check_scaling_data

__all__ = ["InteractionFit", "interaction_law", "fit_interaction_law"]


def interaction_law(N: np.ndarray, D: np.ndarray, E: float, A: float, B: float, alpha: float,
                    beta: float) -> np.ndarray:
    """L = E + ((A/N)^(alpha/beta) + B/D)^beta (Kaplan et al. 2020, eq. 1.5, plus a floor E); broadcasts."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return E + ((A / N) ** (alpha / beta) + B / D) ** beta


@dataclass(frozen=True)
class InteractionFit:
    """Least-squares fit of :func:`interaction_law` in log-loss: ``params`` (E, A, B, alpha, beta), ``rms_log``
    (root-mean-square log residual on the fitted points), ``n_points``."""

    params: dict[str, float]
    rms_log: float
    n_points: int

    def predict(self, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        return interaction_law(N, D, **self.params)


def _log_prediction(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    e, a, b, alpha, beta = theta
    # log((A/N)^(alpha/beta) + B/D) by logaddexp, then E added in log space: stable for any magnitudes
    inner = np.logaddexp((alpha / beta) * (a - log_n), b - log_d)
    return np.logaddexp(e, beta * inner)


def fit_interaction_law(N: object, D: object, loss: object, *, starts: int = 64, seed: int = 0) -> InteractionFit:
    """Fit :func:`interaction_law` to ``loss`` (n,) at ``N`` (n,) and ``D`` (n,) by least squares on log-loss.

    Parameters are fitted as (log E, log A, log B, alpha, beta) with 0.01 <= alpha, beta <= 5, from ``starts``
    random starts (deterministic given ``seed``); the best optimum is returned. All inputs must be finite and > 0.
    """
    n, d, loss = check_scaling_data(N, D, loss)
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    generator = np.random.default_rng(seed)
    lower = [log_loss.min() - 10, -20, -20, 0.01, 0.01]
    upper = [log_loss.max() + 1, 40, 40, 5.0, 5.0]
    best = None
    for _ in range(int(starts)):
        theta0 = [log_loss.min() + generator.uniform(-3, 0), generator.uniform(0, 10) + log_n.min(),
                  generator.uniform(0, 10) + log_d.min(), generator.uniform(0.1, 2), generator.uniform(0.1, 2)]
        result = optimize.least_squares(lambda t: _log_prediction(t, log_n, log_d) - log_loss, theta0,
                                        bounds=(lower, upper), method="trf")
        if best is None or result.cost < best.cost:
            best = result
    e, a, b, alpha, beta = best.x
    params = {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": float(alpha),
              "beta": float(beta)}
    return InteractionFit(params, float(np.sqrt(2 * best.cost / log_loss.size)), int(log_loss.size))
