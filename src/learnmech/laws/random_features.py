"""The solvable scaling model of Maloney, Roberts & Sully (2022): linear random features of power-law data.

Model ("A solvable model of neural scaling laws", 2022, sec. 2-3): latent inputs x in R^M with independent
Gaussian coordinates of variance lambda_k ~ k^-(1 + a) (normalised to sum 1), a linear teacher y = w . x + noise
with w_k = +-1 (so mode k carries target power lambda_k), and a learner that sees only N random projections
z = F^T x (F an M x N Gaussian matrix, entries N(0, 1)) and fits its readout by ridge regression on D examples.
Maloney et al. show that the test loss then scales as N^-a when data are plentiful and as D^-a when features are
(their eq. 1.3-1.4: the same exponent a in both, set by the data spectrum alone).

The prediction here is derived, not fitted: for a given draw of F the features are Gaussian with covariance
Sigma_F = F^T diag(lambda) F, the best linear readout of the target is beta* = Sigma_F^-1 F^T diag(lambda) w and
what it misses, w^T diag(lambda) w - beta*^T Sigma_F beta* (the approximation error, N-limited), is independent
Gaussian noise for the regression on z. Ridge regression on D Gaussian samples of z is then predicted by the
eigenlearning equations (Simon et al. 2021; Bordelon, Canatar & Pehlevan 2020; the deterministic equivalent that
Maloney et al. and Atanasov, Zavatone-Veth & Pehlevan 2023 average over F) with the eigenvalues of Sigma_F, the
target coefficients of beta* in its eigenbasis and noise variance noise^2 + approximation error. Nothing of the
training samples enters the prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._aliases import renamed
from .._checks import positive_float, positive_int
from ..seeding import rng as make_rng
from ..solvable import eigenlearning

__all__ = ["ProjectionTask", "power_spectrum", "make_projection_task", "projection_test_loss",
           "predict_projection_test_loss",
           "mrs_exponent"]


@dataclass(frozen=True)
class ProjectionTask:
    """One seed's draw: spectrum (M,), teacher (M,), projection F (M, N_max), the widest learner's features
    z = F^T x of the training stream (D_max, N_max) and of the test set (n_test, N_max), their targets (D_max,)
    and (n_test,), and the label-noise standard deviation. A width-N learner uses the first N columns."""

    spectrum: np.ndarray
    teacher: np.ndarray
    projection: np.ndarray
    z_train: np.ndarray
    y_train: np.ndarray
    z_test: np.ndarray
    y_test: np.ndarray
    noise: float


@renamed(input_dim="in_dim")
def power_spectrum(in_dim: int, spectrum_exponent: float) -> np.ndarray:
    """lambda_k = k^-(1 + a), k = 1..M, normalised to sum 1 (Maloney et al. 2022, eq. 2.3).
    ``input_dim`` is a deprecated keyword alias of ``in_dim``.
    """
    spectrum = np.arange(1, positive_int(in_dim, "in_dim (formerly input_dim)") + 1, dtype=float) ** -(
        1.0 + positive_float(spectrum_exponent, "spectrum_exponent"))
    return spectrum / spectrum.sum()


@renamed(input_dim="in_dim")
def make_projection_task(in_dim: int, spectrum_exponent: float, noise: float, max_width: int, max_train: int,
                         n_test: int, seed: int) -> ProjectionTask:
    """Draw the task of Maloney et al. (2022) for ``seed``: M = ``in_dim`` latent dimensions with spectrum
    exponent a, label noise ``noise`` (standard deviation; the irreducible loss is noise^2), a projection to
    ``max_width`` features (a width-N learner uses the first N columns), ``max_train`` training examples (a
    D-example run uses the first D) and ``n_test`` test examples.
    ``input_dim`` is a deprecated keyword alias of ``in_dim``.
    """
    spectrum = power_spectrum(in_dim, spectrum_exponent)
    noise = positive_float(noise, "noise", allow_zero=True)
    max_width, max_train = positive_int(max_width, "max_width"), positive_int(max_train, "max_train")
    n_test = positive_int(n_test, "n_test")
    generator = make_rng(seed)
    teacher = generator.choice([-1.0, 1.0], size=spectrum.size)
    projection = generator.normal(size=(spectrum.size, max_width))
    scale = np.sqrt(spectrum)
    x_train = generator.normal(size=(max_train, spectrum.size)) * scale
    x_test = generator.normal(size=(n_test, spectrum.size)) * scale
    y_train = x_train @ teacher + noise * generator.normal(size=max_train)
    y_test = x_test @ teacher + noise * generator.normal(size=n_test)
    return ProjectionTask(spectrum, teacher, projection, x_train @ projection, y_train, x_test @ projection, y_test,
                          float(noise))


def _check_run(task: ProjectionTask, width: int, n_train: int) -> tuple[int, int]:
    width, n_train = positive_int(width, "width"), positive_int(n_train, "n_train")
    if width > task.projection.shape[1] or n_train > task.z_train.shape[0]:
        raise ValueError(f"width {width} / n_train {n_train} exceed the task's {task.projection.shape[1]} / "
                         f"{task.z_train.shape[0]}")
    return width, n_train


def projection_test_loss(task: ProjectionTask, width: int, n_train: int, ridge: float) -> float:
    """Measured test MSE (against noisy test labels) of ridge regression on the first ``width`` projections of
    the first ``n_train`` examples: f(x) = k(x, X)(K + ridge I)^-1 y with k(x, x') = z(x) . z(x'), ridge added to
    the raw Gram matrix (the convention of :func:`learnmech.solvable.eigenlearning`)."""
    width, n_train = _check_run(task, width, n_train)
    ridge = positive_float(ridge, "ridge")
    z, y = task.z_train[:n_train, :width], task.y_train[:n_train]
    # primal form (Z^T Z + ridge I) beta = Z^T y, identical to the dual kernel form
    beta = np.linalg.solve(z.T @ z + ridge * np.eye(width), z.T @ y)
    return float(np.mean((task.z_test[:, :width] @ beta - task.y_test) ** 2))


def predict_projection_test_loss(task: ProjectionTask, width: int, n_train: int | Sequence[int], ridge: float,
                                 spectrum: np.ndarray | None = None) -> float | np.ndarray:
    """Derived test MSE of :func:`projection_test_loss` for this task's projection (module docstring).

    Uses the task's spectrum, teacher and projection, never its samples. ``n_train``: one training-set size
    (returns a float) or a sequence of them (returns an array; Sigma_F is diagonalised once). ``spectrum`` (M,)
    replaces the task's spectrum in the derivation (to evaluate a rival data law on the same projection).
    """
    sizes = [n_train] if np.isscalar(n_train) else list(n_train)
    for size in sizes:
        width, _ = _check_run(task, width, size)
    ridge = positive_float(ridge, "ridge")
    lam = task.spectrum if spectrum is None else np.asarray(spectrum, dtype=float)
    if lam.shape != task.spectrum.shape or np.any(lam <= 0):
        raise ValueError(f"spectrum must be positive with shape {task.spectrum.shape}, got {lam.shape}")
    f = task.projection[:, :width]
    cov = f.T @ (lam[:, None] * f)  # Sigma_F = F^T diag(lambda) F, (N, N)
    cross = f.T @ (lam * task.teacher)  # E[z y] = F^T diag(lambda) w
    s, u = np.linalg.eigh(cov)
    keep = s > s.max() * 1e-12
    s = s[keep]
    # beta* = Sigma_F^-1 E[z y]; the target's coefficient on the unit-variance eigenfeature j is (u_j . E[zy])/sqrt(s_j)
    coeffs = (u[:, keep].T @ cross) / np.sqrt(s)
    approximation = max(float(lam @ task.teacher**2 - np.sum(coeffs**2)), 0.0)  # what N features cannot express
    losses = np.array([eigenlearning(s, coeffs, size, ridge=ridge, noise=task.noise**2 + approximation).test_mse
                       for size in sizes])
    return float(losses[0]) if np.isscalar(n_train) else losses


def mrs_exponent(spectrum_exponent: float) -> float:
    """Loss exponent of Maloney et al. (2022, eq. 1.3-1.4): L - noise ~ N^-a (D large) and ~ D^-a (N large) for
    lambda_k ~ k^-(1 + a) and a teacher whose mode k carries power lambda_k."""
    return positive_float(spectrum_exponent, "spectrum_exponent")
