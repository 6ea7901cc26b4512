"""Exact eigensystems of dot-product kernels on the sphere, to feed :func:`eigenlearning` with a real kernel.

For x uniform on the unit sphere S^(d-1) a dot-product kernel K(x.x') -- every ``learnmech.kernels.mlp`` kernel
restricted to the sphere is one -- is diagonalised by spherical harmonics: degree k has eigenvalue
lam_k = E_t[K(t) P_k(t)], with multiplicity N(d, k), where P_k is the Gegenbauer polynomial C_k^((d-2)/2)
normalised to P_k(1) = 1 and t = x.x' has density proportional to (1 - t^2)^((d-3)/2) (Schoenberg 1942;
Smola, Ovari & Williamson 2001; used for NTK learning curves by Bordelon, Canatar & Pehlevan 2020, Sec. 4).
The normalisation makes the eigenfunctions unit-norm under the uniform probability measure, matching
:func:`eigenlearning`'s convention, and the trace identity sum_k N(d, k) lam_k = K(1) holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from .._aliases import renamed
from .._checks import as_array, positive_int

__all__ = [
    "SphereSpectrum",
    "harmonic_multiplicity",
    "gegenbauer_normalized",
    "gegenbauer_table",
    "sphere_kernel_spectrum",
    "uniform_sphere",
    "HarmonicTarget",
    "make_harmonic_target",
]


def harmonic_multiplicity(dim: int, degree: object) -> np.ndarray:
    """N(d, k): the number of linearly independent degree-k spherical harmonics on S^(d-1) (d >= 2).

    N(d, 0) = 1 and N(d, k) = (2k + d - 2)/k * binom(k + d - 3, k - 1) for k >= 1. degree: int array; returns
    float64 of the same shape (floats so that huge multiplicities do not overflow).
    """
    dim = positive_int(dim, "dim", minimum=2)
    k = np.asarray(degree)
    if not np.issubdtype(k.dtype, np.integer) or np.any(k < 0):
        raise ValueError(f"degree must be non-negative integers, got {degree!r}")
    kf = k.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mult = (2 * kf + dim - 2) / kf * special.binom(kf + dim - 3, kf - 1)
    return np.where(k == 0, 1.0, mult)


def gegenbauer_table(dim: int, max_degree: int, t: object) -> np.ndarray:
    """``(K+1, m)`` normalised Gegenbauer polynomials P_k(t) = C_k^(a)(t) / C_k^(a)(1), a = (d-2)/2, k = 0..K.

    Legendre polynomials for d = 3, Chebyshev T_k for d = 2. Uses the three-term recurrence
    (k+1) C_(k+1) = 2 (k+a) t C_k - (k+2a-1) C_(k-1) (Abramowitz & Stegun 22.7.3), run at t and at 1.
    t: ``(m,)`` points in [-1, 1].
    """
    dim = positive_int(dim, "dim", minimum=2)
    max_degree = positive_int(max_degree, "max_degree", minimum=0)
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    grid = np.concatenate([t_arr, [1.0]])
    table = np.empty((max_degree + 1, grid.size))
    table[0] = 1.0
    if dim == 2:  # a = 0: the normalised limit is Chebyshev's T_k, T_(k+1) = 2 t T_k - T_(k-1)
        if max_degree >= 1:
            table[1] = grid
        for k in range(1, max_degree):
            table[k + 1] = 2 * grid * table[k] - table[k - 1]
        return table[:, :-1]
    a = (dim - 2) / 2.0
    if max_degree >= 1:
        table[1] = 2 * a * grid
    for k in range(1, max_degree):
        table[k + 1] = (2 * (k + a) * grid * table[k] - (k + 2 * a - 1) * table[k - 1]) / (k + 1)
    return table[:, :-1] / table[:, -1:]


def gegenbauer_normalized(dim: int, degree: int, t: object) -> np.ndarray:
    """P_k(t) for one degree, shaped like ``t`` (see :func:`gegenbauer_table`)."""
    degree = positive_int(degree, "degree", minimum=0)
    t_arr = np.asarray(t, dtype=float)
    return gegenbauer_table(dim, degree, t_arr.reshape(-1))[degree].reshape(t_arr.shape)


@dataclass(frozen=True)
class SphereSpectrum:
    """Eigenvalues of a dot-product kernel on S^(d-1), per degree.

    degree_eigenvalues: ``(K+1,)`` lam_k for k = 0..K (tiny quadrature residues of exactly-vanishing degrees are
    set to 0). multiplicities: ``(K+1,)`` N(d, k). trace: K(1) = E[K(x, x)], so ``trace - sum(mult * lam)`` is
    the spectral mass above degree K.
    """

    dim: int
    degree_eigenvalues: np.ndarray
    multiplicities: np.ndarray
    trace: float

    @property
    def tail_mass(self) -> float:
        """Trace not carried by degrees 0..K (>= 0 up to quadrature error)."""
        return max(self.trace - float(np.sum(self.multiplicities * self.degree_eigenvalues)), 0.0)

    def grouped(self, degree_power: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-degree inputs for ``eigenlearning(..., multiplicity=...)``: ``(lam_k, sqrt(p_k), N(d, k))``, each
        ``(K+1,)``, with p_k the target's total power in degree k. Cheap even when sum N(d, k) is astronomical."""
        power = as_array(degree_power, "degree_power", ndim=1)
        if power.shape != self.degree_eigenvalues.shape or np.any(power < 0):
            raise ValueError(f"degree_power must be {self.degree_eigenvalues.shape} and >= 0, got {power.shape}")
        return self.degree_eigenvalues, np.sqrt(power), self.multiplicities

    def expanded(self, degree_power: object | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Flat spectrum for :func:`eigenlearning`: each lam_k repeated N(d, k) times, ``(sum N,)``.

        degree_power: optional ``(K+1,)`` target power per degree, placed on one eigenfunction of that degree
        (all degree-k eigenfunctions share lam_k, so only the per-degree power matters).
        Returns ``(eigenvalues, target_coeffs)`` with coeffs = sqrt(power).
        """
        counts = self.multiplicities.astype(np.int64)
        eigenvalues = np.repeat(self.degree_eigenvalues, counts)
        coeffs = np.zeros_like(eigenvalues)
        if degree_power is not None:
            power = as_array(degree_power, "degree_power", ndim=1)
            if power.shape != self.degree_eigenvalues.shape or np.any(power < 0):
                raise ValueError(f"degree_power must be {self.degree_eigenvalues.shape} and >= 0, got {power.shape}")
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            coeffs[first] = np.sqrt(power)
        return eigenvalues, coeffs


@renamed(dim="in_dim")
def sphere_kernel_spectrum(
    kernel: Callable[[np.ndarray, np.ndarray], np.ndarray], in_dim: int, max_degree: int, quadrature_points: int = 0
) -> SphereSpectrum:
    """Degree-wise eigenvalues of a dot-product kernel on the unit sphere S^(in_dim-1) by Gauss-Jacobi quadrature.

    in_dim: the input dimension d >= 3 (``dim`` is a deprecated keyword alias).
    kernel: ``kernel(x1 (m, in_dim), x2 (1, in_dim)) -> (m, 1)`` array (e.g. ``lambda a, b: kernel_fn(a, b).ntk``);
    it is evaluated on unit vectors at angles t = x.x'. max_degree: K. quadrature_points: default 4K + 200
    (the kernels of ReLU nets are not analytic at t = +-1, so the rule needs more nodes than degrees).
    lam_k = E_t[K(t) P_k(t)] with t ~ (1 - t^2)^((d-3)/2) (Smola et al. 2001; Bordelon et al. 2020, Sec. 4).
    """
    dim = positive_int(in_dim, "in_dim", minimum=3)
    max_degree = positive_int(max_degree, "max_degree", minimum=0)
    nodes_count = positive_int(quadrature_points or 4 * max_degree + 200, "quadrature_points")
    alpha = (dim - 3) / 2.0
    t, weights = special.roots_jacobi(nodes_count, alpha, alpha)
    weights = weights / weights.sum()  # expectation under the normalised density of t
    anchor = np.zeros((1, dim))
    anchor[0, 0] = 1.0
    points = np.zeros((nodes_count, dim))
    points[:, 0] = t
    points[:, 1] = np.sqrt(np.clip(1.0 - t * t, 0.0, None))
    values = np.asarray(kernel(points, anchor), dtype=float).reshape(-1)
    trace = float(np.asarray(kernel(anchor, anchor), dtype=float).reshape(-1)[0])
    lam = gegenbauer_table(dim, max_degree, t) @ (weights * values)
    # Degrees whose eigenvalue vanishes exactly (e.g. odd k >= 3 for bias-free ReLU NTKs) come out as
    # +-1e-17 quadrature residue; a PSD kernel has no negative eigenvalues, so zero them.
    lam[np.abs(lam) < 1e-12 * np.abs(lam).max()] = 0.0
    if np.any(lam < 0):
        raise ValueError(f"kernel has negative degree eigenvalues (min {lam.min():.3g}): not PSD on the sphere?")
    return SphereSpectrum(dim=dim, degree_eigenvalues=lam, multiplicities=harmonic_multiplicity(dim, np.arange(
        max_degree + 1)), trace=trace)


@renamed(num_points="n_samples", dim="in_dim", rng="seed")
def uniform_sphere(n_samples: int, in_dim: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``(n_samples, in_dim)`` points uniform on the unit sphere S^(in_dim-1) (normalised Gaussians).

    seed: an int, or a ``numpy.random.Generator`` to draw from (advanced in place, for a shared stream).
    ``num_points``, ``dim`` and ``rng`` are deprecated keyword aliases of ``n_samples``, ``in_dim`` and ``seed``.
    """
    n_samples = positive_int(n_samples, "n_samples")
    dim = positive_int(in_dim, "in_dim", minimum=2)
    # default_rng returns a Generator unchanged, so a caller's shared stream draws exactly as before.
    x = np.random.default_rng(seed).standard_normal((n_samples, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@dataclass(frozen=True)
class HarmonicTarget:
    """A random target function on S^(d-1) with prescribed power per harmonic degree.

    f(x) = sum_k sqrt(p_k) g_k(x), with g_k(x) = sum_j w_kj P_k(x.z_j) a random unit-norm degree-k harmonic
    (a combination of zonal harmonics around ``centers`` z_j, so it is not spiky like a single zonal one).
    degree_power: ``(K+1,)`` p_k; centers: ``(J, d)``; weights: ``(K+1, J)``. E[f^2] = sum_k p_k.
    """

    dim: int
    degree_power: np.ndarray
    centers: np.ndarray
    weights: np.ndarray

    def __call__(self, x: object) -> np.ndarray:
        """f at ``(m, d)`` unit vectors -> ``(m,)``."""
        pts = as_array(x, "x", ndim=2)
        if pts.shape[1] != self.dim:
            raise ValueError(f"x must have {self.dim} columns, got shape {pts.shape}")
        cosines = np.clip(pts @ self.centers.T, -1.0, 1.0)  # (m, J)
        table = gegenbauer_table(self.dim, self.degree_power.size - 1, cosines.ravel())
        table = table.reshape(self.degree_power.size, *cosines.shape)  # (K+1, m, J)
        return np.einsum("kmj,kj->m", table, self.weights * np.sqrt(self.degree_power)[:, None])


@renamed(dim="in_dim", rng="seed")
def make_harmonic_target(
    in_dim: int, degree_power: object, seed: int | np.random.Generator = 0, num_centers: int = 16
) -> HarmonicTarget:
    """Draw a :class:`HarmonicTarget` whose degree-k component has power exactly ``degree_power[k]``.

    Normalisation by the addition theorem: E_x[P_k(x.z) P_k(x.z')] = P_k(z.z') / N(d, k), so
    E[g_k^2] = c^T G_k c / N(d, k) with G_k = [P_k(z_j.z_j')] (Atkinson & Han 2012, Thm. 2.9), and c is
    rescaled to make it 1.

    in_dim: the input dimension d. seed: an int, or a ``numpy.random.Generator`` to draw from (advanced in place).
    ``dim`` and ``rng`` are deprecated keyword aliases of ``in_dim`` and ``seed``.
    """
    dim = positive_int(in_dim, "in_dim", minimum=2)
    rng = np.random.default_rng(seed)  # a Generator passes through unchanged
    power = as_array(degree_power, "degree_power", ndim=1)
    if np.any(power < 0):
        raise ValueError("degree_power must be >= 0")
    num_centers = positive_int(num_centers, "num_centers")
    max_degree = power.size - 1
    centers = uniform_sphere(num_centers, dim, rng)
    coeffs = rng.standard_normal((max_degree + 1, num_centers))
    cosines = np.clip(centers @ centers.T, -1.0, 1.0)
    gram = gegenbauer_table(dim, max_degree, cosines.ravel()).reshape(max_degree + 1, num_centers, num_centers)
    norms2 = np.einsum("kj,kjl,kl->k", coeffs, gram, coeffs) / harmonic_multiplicity(dim, np.arange(max_degree + 1))
    return HarmonicTarget(dim=dim, degree_power=power, centers=centers, weights=coeffs / np.sqrt(norms2)[:, None])
