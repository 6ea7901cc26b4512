"""Our own scaling experiment on CPU: MLPs of width N trained on D examples of a task with a power-law spectrum.

The task is the solvable model of Maloney, Roberts & Sully (2022, "A solvable model of neural scaling laws"):
latent inputs x in R^M with independent Gaussian coordinates of variance lambda_k ~ k^-(1 + a) (a power-law
spectrum), a linear teacher y = w.x + noise with w_k ~ N(0, 1), so each mode carries target power lambda_k. The
learner is a two-layer ReLU MLP of width N, f(x) = v . relu(U x) / sqrt(N) + c, with the first layer at its random
initialisation and the readout (v, c) trained to convergence with weight decay, i.e. ridge regression, the
random-feature regime in which Bahri et al. (2021, "Explaining neural scaling laws") and Maloney et al. (2022)
derive L(N, D) ~ E + A N^-alpha + B D^-beta. Training to convergence in closed form takes milliseconds, so a
whole (N, D, seed) grid runs in seconds and every point is an exactly reproducible function of its seed.

Sweeps are nested as in real scaling studies: for a seed, the width-N model uses the first N hidden units of the
widest one and the D-example training set is the first D examples of one stream, so larger runs extend smaller ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import positive_float, positive_int
from .._seed import rng as make_rng

__all__ = ["PowerLawTask", "make_task", "train_random_feature_mlp"]


@dataclass(frozen=True)
class PowerLawTask:
    """One seed's draw of the task: spectrum (M,), teacher weights (M,), test targets (n_test,), training targets
    (n_train_max,), and the widest network's hidden ReLU activations relu(U x) on the test inputs
    (n_test, N_max) and on the training stream (n_train_max, N_max). A width-N network is the first N hidden
    units, so its activations are the first N columns (computed once per seed, not once per run)."""

    spectrum: np.ndarray
    teacher: np.ndarray
    y_test: np.ndarray
    y_train: np.ndarray
    hidden_test: np.ndarray
    hidden_train: np.ndarray
    noise: float


def make_task(input_dim: int, spectrum_exponent: float, noise: float, max_width: int, max_train: int,
              n_test: int, seed: int) -> PowerLawTask:
    """Draw the power-law task of Maloney et al. (2022) for ``seed``.

    input_dim M: latent dimensions; spectrum_exponent a: lambda_k = k^-(1+a) normalised to sum 1 (so the target
    variance is ~1); noise: label-noise standard deviation (the irreducible loss is noise^2, in train and test);
    max_width / max_train: the largest N and D the sweep will use; n_test: held-out examples for the test loss.
    """
    input_dim = positive_int(input_dim, "input_dim")
    spectrum_exponent = positive_float(spectrum_exponent, "spectrum_exponent")
    noise = positive_float(noise, "noise", allow_zero=True)
    max_width, max_train = positive_int(max_width, "max_width"), positive_int(max_train, "max_train")
    n_test = positive_int(n_test, "n_test")
    generator = make_rng(seed)
    spectrum = np.arange(1, input_dim + 1, dtype=float) ** -(1.0 + spectrum_exponent)
    spectrum /= spectrum.sum()
    teacher = generator.choice([-1.0, 1.0], size=input_dim)
    scale = np.sqrt(spectrum)
    x_test = generator.normal(size=(n_test, input_dim)) * scale
    x_train = generator.normal(size=(max_train, input_dim)) * scale
    y_test = x_test @ teacher + noise * generator.normal(size=n_test)
    y_train = x_train @ teacher + noise * generator.normal(size=max_train)
    # He-style first layer for inputs of total variance sum(lambda) = 1: pre-activations have unit variance
    first_layer = generator.normal(size=(input_dim, max_width))
    hidden_test = np.maximum(x_test @ first_layer, 0.0)
    hidden_train = np.maximum(x_train @ first_layer, 0.0)
    return PowerLawTask(spectrum, teacher, y_test, y_train, hidden_test, hidden_train, float(noise))


def train_random_feature_mlp(task: PowerLawTask, width: int, n_train: int, ridge: float) -> dict[str, float]:
    """Train the width-N MLP's readout on the first ``n_train`` examples to convergence and measure it.

    Ridge regression on the features relu(U x)/sqrt(N) plus a bias: the fixed point of gradient descent on the
    mean squared error + ridge/2 |v|^2 (the bias is not decayed). Returns ``test_loss`` and ``train_loss``
    (mean squared error, in units of the target variance ~1; the noise floor is noise^2).
    """
    width = positive_int(width, "width")
    n_train = positive_int(n_train, "n_train")
    ridge = positive_float(ridge, "ridge")
    max_train, max_width = task.hidden_train.shape
    if width > max_width or n_train > max_train:
        raise ValueError(f"width {width} / n_train {n_train} exceed the task's {max_width} / {max_train}")

    def features(hidden: np.ndarray) -> np.ndarray:
        # 1/sqrt(N) readout scaling (mean-field/NTK-style) keeps the ridge's meaning the same at every width
        return np.hstack([hidden[:, :width] / np.sqrt(width), np.ones((hidden.shape[0], 1))])

    phi, y = features(task.hidden_train[:n_train]), task.y_train[:n_train]
    penalty = np.full(width + 1, ridge * n_train)
    penalty[-1] = 0.0
    # normal equations of mean-squared error + ridge: (Phi'Phi + n ridge I) v = Phi'y
    gram = phi.T @ phi + np.diag(penalty)
    weights = np.linalg.solve(gram + 1e-12 * np.eye(width + 1), phi.T @ y)
    test = features(task.hidden_test) @ weights - task.y_test
    train = phi @ weights - y
    return {"test_loss": float(np.mean(test**2)), "train_loss": float(np.mean(train**2))}
