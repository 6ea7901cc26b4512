"""Kernel learning curves: the eigenlearning estimate and the tools to feed it a real kernel.

Kernel (ridge) regression with n i.i.d. samples from a measure mu, kernel eigenvalues lam_i and target
coefficients v_i in the kernel's eigenbasis (f = sum_i v_i phi_i, with E_mu[phi_i phi_j] = delta_ij), has test
error predicted by one scalar, the effective regularization kappa (Simon et al. 2021, "The eigenlearning
framework", Sec. 3-4; equivalently Bordelon, Canatar & Pehlevan 2020 and Canatar, Bordelon & Pehlevan 2021):

    sum_i lam_i / (lam_i + kappa) + ridge / kappa = n                       (kappa)
    L_i = lam_i / (lam_i + kappa)                                           (learnability of mode i)
    E0 = n / (n - sum_i L_i^2)                                              (overfitting coefficient)
    test MSE = E0 * (sum_i (1 - L_i)^2 v_i^2 + noise)                       (vs. noisy test labels)
    train MSE = (ridge / (n kappa))^2 * test MSE

and the learnabilities obey the conservation law sum_i L_i = n - ridge / kappa <= n.

Conventions: ``ridge`` is added to the raw n x n Gram matrix, f_hat(x) = k(x, X) (K + ridge I)^-1 y, and the
eigenvalues are those of the integral operator (T f)(x) = E_mu[K(x, x') f(x')], i.e. of the Gram matrix of a
large sample divided by its size (:func:`kernel_eigensystem`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .._aliases import renamed
from .._checks import as_array, positive_float, positive_int
from ._linalg import eigh, matmul, single_threaded, solve_psd

__all__ = [
    "EigenlearningPrediction",
    "eigenlearning",
    "effective_regularization",
    "kernel_eigensystem",
    "kernel_regression",
    "power_law_spectrum",
    "learning_curve_exponent",
    "kernel_learning_curve",
    "gaussian_feature_learning_curve",
]


@dataclass(frozen=True)
class EigenlearningPrediction:
    """The eigenlearning estimate for one training-set size n.

    kappa: effective regularization (same units as the eigenvalues). learnabilities: ``(M,)`` L_i in [0, 1] (one
    per eigenvalue entry, i.e. per degenerate block when ``multiplicity`` was given).
    overfitting_coefficient: E0 >= 1. test_mse: expected MSE against noisy test labels (target units squared).
    clean_test_mse: the same against the noiseless target (test_mse - noise). train_mse: expected training MSE.
    learnability_sum: sum_i L_i, which the conservation law fixes to ``n_train - ridge / kappa``.
    n_train: training-set size n (``n`` is a deprecated alias).
    """

    n_train: float
    ridge: float
    noise: float
    kappa: float
    learnabilities: np.ndarray
    overfitting_coefficient: float
    test_mse: float
    clean_test_mse: float
    train_mse: float
    learnability_sum: float

    @property
    def n(self) -> float:
        """Alias of ``n_train`` (the papers' symbol)."""
        return self.n_train

    @property
    def E0(self) -> float:  # noqa: N802 - the papers' symbol
        """Alias of ``overfitting_coefficient`` (Simon et al. 2021 call it E0)."""
        return self.overfitting_coefficient

    @property
    def sum_rule_residual(self) -> float:
        """sum_i L_i + ridge/kappa - n: zero up to the root finder's precision (the conservation law)."""
        return self.learnability_sum + self.ridge / self.kappa - self.n


def _spectrum(eigenvalues: object) -> np.ndarray:
    lam = as_array(eigenvalues, "eigenvalues", ndim=1)
    if np.any(lam < 0):
        raise ValueError(f"eigenvalues must be >= 0 (a kernel is positive semi-definite), got min {lam.min():.3g}")
    if not np.any(lam > 0):
        raise ValueError("eigenvalues must contain at least one positive value")
    return lam


def _multiplicity(multiplicity: object | None, shape: tuple[int, ...]) -> np.ndarray:
    if multiplicity is None:
        return np.ones(shape)
    mult = as_array(multiplicity, "multiplicity", ndim=1)
    if mult.shape != shape or np.any(mult <= 0):
        raise ValueError(f"multiplicity must have shape {shape} like eigenvalues and be > 0, got {mult.shape}")
    return mult


@renamed(n="n_train")
def effective_regularization(
    eigenvalues: object, n_train: float, ridge: float = 0.0, multiplicity: object | None = None
) -> float:
    """kappa > 0 solving sum_i m_i lam_i/(lam_i + kappa) + ridge/kappa = n (Simon et al. 2021).

    eigenvalues: ``(M,)`` >= 0. n_train: training-set size n (> 0; real values allowed for smooth curves).
    ridge: >= 0, added to the Gram matrix. With ``ridge == 0`` a solution exists only if n is below the
    number of positive eigenvalues (the rank): at or above it ridgeless regression interpolates exactly and
    kappa -> 0, which is a ValueError here. multiplicity: optional ``(M,)`` counts m_i of degenerate eigenvalues
    (default 1 each), so spectra with billions of eigenvalues in a few degenerate blocks stay cheap.
    ``n`` is a deprecated keyword alias of ``n_train``.
    """
    lam = _spectrum(eigenvalues)
    mult = _multiplicity(multiplicity, lam.shape)
    n = positive_float(n_train, "n_train")
    ridge = positive_float(ridge, "ridge", allow_zero=True)
    rank = float(np.sum(mult[lam > 0]))
    if ridge == 0 and n >= rank:
        raise ValueError(
            f"n={n:g} must be below the spectrum's rank ({rank:g} positive eigenvalues) when ridge=0: "
            "ridgeless regression then interpolates (kappa -> 0); pass ridge > 0 or more eigenvalues"
        )

    def excess(log_kappa: float) -> float:
        # Decreasing in kappa; solved in log-space because kappa spans many decades across n.
        kappa = math.exp(log_kappa)
        return float(np.sum(mult * lam / (lam + kappa))) + ridge / kappa - n

    # Since lam/(lam+kappa) <= lam/kappa, kappa <= (sum m lam + ridge)/n: the root lies below this bound.
    hi = math.log((float(np.sum(mult * lam)) + ridge) / n) + 1.0
    lo = hi - 2.0
    while excess(lo) <= 0:  # walk down until the sum exceeds n (guaranteed by rank > n or ridge > 0)
        lo -= 2.0 * (hi - lo)
        if lo < -1400:  # below float64's range: n is numerically at the rank
            raise ValueError(f"n={n:g} is numerically at the spectrum's rank; pass ridge > 0")
    log_kappa = optimize.brentq(excess, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    return math.exp(log_kappa)


@renamed(n="n_train")
def eigenlearning(
    eigenvalues: object,
    target_coeffs: object,
    n_train: float,
    ridge: float = 0.0,
    noise: float = 0.0,
    multiplicity: object | None = None,
) -> EigenlearningPrediction:
    """Eigenlearning estimate of kernel regression's test and train MSE with n samples.

    eigenvalues: ``(M,)`` operator eigenvalues lam_i >= 0 (any order). target_coeffs: ``(M,)`` coefficients v_i
    of the target in the same eigenbasis (only v_i^2 matters). n_train: number of training samples n. ridge: >= 0,
    added to the raw Gram matrix. noise: variance of the label noise (target units squared).
    multiplicity: optional ``(M,)`` sizes m_i of degenerate eigenvalue blocks; then target_coeffs[i]^2 is the
    target's total power in block i and every sum over modes is weighted by m_i.
    Formulas: Simon et al. (2021), Sec. 3-4; Bordelon, Canatar & Pehlevan (2020).
    ``n`` is a deprecated keyword alias of ``n_train``.
    """
    lam = _spectrum(eigenvalues)
    coeffs = as_array(target_coeffs, "target_coeffs", ndim=1)
    if coeffs.shape != lam.shape:
        raise ValueError(f"target_coeffs must have shape {lam.shape} like eigenvalues, got {coeffs.shape}")
    noise = positive_float(noise, "noise", allow_zero=True)
    ridge = positive_float(ridge, "ridge", allow_zero=True)
    mult = _multiplicity(multiplicity, lam.shape)
    kappa = effective_regularization(lam, n_train, ridge, mult)
    n = float(n_train)
    learn = lam / (lam + kappa)
    # E0 = n/(n - sum L^2): finite because sum L^2 < sum L <= n (Simon et al. 2021).
    overfit = n / (n - float(np.sum(mult * learn**2)))
    clean_part = float(np.sum((1.0 - learn) ** 2 * coeffs**2))
    test = overfit * (clean_part + noise)
    # Training error = (ridge/(n kappa))^2 x test error (Simon et al. 2021; Canatar et al. 2021).
    train = (ridge / (n * kappa)) ** 2 * test
    return EigenlearningPrediction(
        n_train=n,
        ridge=ridge,
        noise=noise,
        kappa=kappa,
        learnabilities=learn,
        overfitting_coefficient=overfit,
        test_mse=test,
        clean_test_mse=test - noise,
        train_mse=train,
        learnability_sum=float(np.sum(mult * learn)),
    )


def kernel_eigensystem(gram: object, target: object) -> tuple[np.ndarray, np.ndarray]:
    """Operator eigenvalues and target coefficients of a kernel under the empirical measure of a sample.

    gram: ``(M, M)`` kernel matrix K(x_a, x_b) of M points (the measure is uniform over them, or a large sample
    of the data distribution: a Nystrom estimate of the continuum operator). target: ``(M,)`` target values
    f(x_a). Returns ``(eigenvalues (M,), coeffs (M,))`` sorted by decreasing eigenvalue, with eigenvalues of
    K/M clipped at 0 and coeffs v_i = <f, phi_i> where phi_i = sqrt(M) u_i is unit-norm under the measure, so
    sum_i v_i^2 = mean(f^2).
    """
    K = as_array(gram, "gram", ndim=2)
    M = K.shape[0]
    if K.shape != (M, M):
        raise ValueError(f"gram must be square, got shape {K.shape}")
    f = as_array(target, "target", ndim=1)
    if f.shape != (M,):
        raise ValueError(f"target must have shape ({M},) to match gram, got {f.shape}")
    if not np.allclose(K, K.T, rtol=1e-10, atol=1e-12 * float(np.abs(K).max() or 1.0)):
        raise ValueError("gram must be symmetric")
    values, vectors = eigh(0.5 * (K + K.T) / M)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    coeffs = vectors.T @ f / math.sqrt(M)  # <f, phi_i>_mu with phi_i = sqrt(M) u_i
    return np.clip(values, 0.0, None), coeffs


def kernel_regression(
    k_train_train: object, k_test_train: object, y_train: object, ridge: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel (ridge) regression: predictions k(x, X) (K + ridge I)^-1 y on test and train points.

    k_train_train: ``(n, n)``; k_test_train: ``(m, n)``; y_train: ``(n,)`` or ``(n, k)``; ridge >= 0 (on the raw
    Gram matrix). Returns ``(test_predictions (m,[k]), train_predictions (n,[k]))``. Uses a Cholesky solve and
    falls back to a least-squares (minimum-norm) solve when K + ridge I is numerically singular.
    """
    K = as_array(k_train_train, "k_train_train", ndim=2)
    n = K.shape[0]
    if K.shape != (n, n):
        raise ValueError(f"k_train_train must be square, got shape {K.shape}")
    K_test = as_array(k_test_train, "k_test_train", ndim=2)
    if K_test.shape[1] != n:
        raise ValueError(f"k_test_train must have {n} columns (one per training point), got shape {K_test.shape}")
    y = as_array(y_train, "y_train", ndim=(1, 2))
    if y.shape[0] != n:
        raise ValueError(f"y_train must have {n} rows (one per training point), got shape {y.shape}")
    ridge = positive_float(ridge, "ridge", allow_zero=True)
    alpha = _dual_coefficients(K, y, ridge)
    return K_test @ alpha, K @ alpha


def _dual_coefficients(K: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """alpha = (K + ridge I)^-1 y: Cholesky, or minimum-norm least squares if numerically singular."""
    return solve_psd(K + ridge * np.eye(K.shape[0]), y)


def power_law_spectrum(num_modes: int, exponent: float, scale: float = 1.0) -> np.ndarray:
    """``(num_modes,)`` values scale * k^-exponent for k = 1..num_modes (a power-law kernel or target spectrum)."""
    num_modes = positive_int(num_modes, "num_modes")
    exponent = positive_float(exponent, "exponent")
    scale = positive_float(scale, "scale")
    return scale * np.arange(1, num_modes + 1, dtype=float) ** (-exponent)


def learning_curve_exponent(spectrum_exponent: float, target_exponent: float) -> float:
    """Predicted exponent beta of the ridgeless learning curve test MSE ~ n^-beta.

    For lam_k ~ k^-a (a > 1) and target power v_k^2 ~ k^-b (b > 1): kappa ~ n^-a (the modes with lam_k > kappa
    number ~ n), the unlearned tail sum_{k > n} k^-b gives n^(1-b) and the partially learned head
    kappa^2 sum_{k < n} k^(2a-b) gives n^-2a, so beta = min(b - 1, 2a) (Bordelon, Canatar & Pehlevan 2020,
    Sec. 5; Spigler, Geiger & Wyart 2020, with their alpha_t = d b, alpha_s = d a).
    """
    a = positive_float(spectrum_exponent, "spectrum_exponent")
    b = positive_float(target_exponent, "target_exponent")
    if a <= 1:
        raise ValueError(f"spectrum_exponent must be > 1 (trace-class kernel), got {a}")
    if b <= 1:
        raise ValueError(f"target_exponent must be > 1 (finite target power), got {b}")
    return min(b - 1.0, 2.0 * a)


def _sizes(sizes: object) -> np.ndarray:
    arr = np.asarray(sizes)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise ValueError(f"sizes must be a non-empty 1-D list of positive integers, got {sizes!r}")
    return arr.astype(int)


def kernel_learning_curve(
    kernel: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    sample: Callable[[int, np.random.Generator], np.ndarray],
    target: Callable[[np.ndarray], np.ndarray],
    sizes: object,
    seeds: object,
    num_test: int = 1000,
    ridge: float = 0.0,
    noise: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Measured kernel-regression test MSE for each training-set size and seed: ``(S, G)`` array.

    kernel: ``kernel(x1, x2)`` -> ``(n1, n2)`` Gram (``x2=None`` means x1 with itself), e.g.
    ``lambda a, b=None: kernel_fn(a, b).ntk``. sample: ``sample(n, rng)`` -> ``(n, d)`` i.i.d. inputs.
    target: f(x) ``(n, d)`` -> ``(n,)``. sizes: ``(G,)`` training-set sizes. seeds: ``(S,)`` ints. Each run draws a
    fresh training set with labels f(x) + N(0, noise) and ``num_test`` fresh test points, and reports the
    mean squared error against the clean target (compare with ``EigenlearningPrediction.clean_test_mse``).
    progress: optional ``progress(done, total)`` callback.
    """
    ns = _sizes(sizes)
    seed_list = [int(s) for s in np.asarray(seeds).reshape(-1)]
    if not seed_list:
        raise ValueError("seeds must contain at least one seed")
    num_test = positive_int(num_test, "num_test")
    ridge = positive_float(ridge, "ridge", allow_zero=True)
    noise = positive_float(noise, "noise", allow_zero=True)
    out = np.empty((len(seed_list), ns.size))
    total = out.size
    for i, seed in enumerate(seed_list):
        for j, n in enumerate(ns):
            gen = np.random.default_rng([seed, int(n)])
            x_train, x_test = sample(int(n), gen), sample(num_test, gen)
            y_train = target(x_train) + math.sqrt(noise) * gen.standard_normal(int(n))
            with single_threaded():  # torch-based kernels on small blocks: threads only spin (see _linalg)
                k_train, k_test = kernel(x_train, None), kernel(x_test, x_train)
            pred, _ = kernel_regression(k_train, k_test, y_train, ridge)
            out[i, j] = float(np.mean((pred - target(x_test)) ** 2))
            if progress is not None:
                progress(i * ns.size + j + 1, total)
    return out


def gaussian_feature_learning_curve(
    eigenvalues: object,
    target_coeffs: object,
    sizes: object,
    seeds: object,
    ridge: float = 0.0,
    noise: float = 0.0,
) -> np.ndarray:
    """Measured test MSE of kernel regression with a kernel of *exactly* the given spectrum: ``(S, G)``.

    The kernel is K(x, x') = sum_k lam_k z_k z'_k on Gaussian features z ~ N(0, I_M) (eigenfunctions z_k,
    unit-norm, eigenvalues lam_k) and the target is f = sum_k v_k z_k -- the Gaussian-design model in which
    the eigenlearning equations are derived (Bordelon et al. 2020; Simon et al. 2021). For each seed the
    training sets are nested prefixes of one draw of max(sizes) points; the clean test MSE is computed
    exactly: for f_hat = sum_k w_k z_k, E[(f_hat - f)^2] = ||w - v||^2. eigenvalues, target_coeffs: ``(M,)``.
    """
    lam = _spectrum(eigenvalues)
    coeffs = as_array(target_coeffs, "target_coeffs", ndim=1)
    if coeffs.shape != lam.shape:
        raise ValueError(f"target_coeffs must have shape {lam.shape} like eigenvalues, got {coeffs.shape}")
    ns = _sizes(sizes)
    seed_list = [int(s) for s in np.asarray(seeds).reshape(-1)]
    if not seed_list:
        raise ValueError("seeds must contain at least one seed")
    ridge = positive_float(ridge, "ridge", allow_zero=True)
    noise = positive_float(noise, "noise", allow_zero=True)
    n_max = int(ns.max())
    out = np.empty((len(seed_list), ns.size))
    for i, seed in enumerate(seed_list):
        gen = np.random.default_rng(seed)
        Z = gen.standard_normal((n_max, lam.size))
        y = Z @ coeffs + math.sqrt(noise) * gen.standard_normal(n_max)
        gram = matmul(Z * lam, Z.T)
        for j, n in enumerate(ns):
            alpha = _dual_coefficients(gram[:n, :n], y[:n], ridge)
            weights = lam * matmul(Z[:n].T, alpha)  # f_hat = sum_k lam_k z_k sum_a alpha_a z_ak
            out[i, j] = float(np.sum((weights - coeffs) ** 2))
    return out
