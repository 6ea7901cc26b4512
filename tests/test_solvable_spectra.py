"""Sphere spectra of dot-product kernels: polynomials, multiplicities, exact eigenvalues, harmonic targets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from learnmech.solvable import kernel_eigensystem, make_harmonic_target, sphere_kernel_spectrum, uniform_sphere
from learnmech.solvable.spectra import gegenbauer_table, harmonic_multiplicity


@pytest.mark.parametrize("dim", [2, 3, 5, 10])
def test_gegenbauer_table_matches_scipy(dim):
    t = np.linspace(-1, 1, 11)
    table = gegenbauer_table(dim, 25, t)
    for k in range(26):
        if dim == 2:
            ref = special.eval_chebyt(k, t)
        else:
            alpha = (dim - 2) / 2
            ref = special.eval_gegenbauer(k, alpha, t) / special.eval_gegenbauer(k, alpha, 1.0)
        np.testing.assert_allclose(table[k], ref, atol=1e-12)


def test_harmonic_multiplicities():
    k = np.arange(6)
    np.testing.assert_array_equal(harmonic_multiplicity(3, k), 2 * k + 1)
    np.testing.assert_array_equal(harmonic_multiplicity(2, k), [1, 2, 2, 2, 2, 2])
    # d = 4: (k + 1)^2
    np.testing.assert_array_equal(harmonic_multiplicity(4, k), (k + 1) ** 2)


def test_polynomial_kernels_have_exact_spectra():
    # K(t) = t: only degree 1, lam_1 = E[t^2] = 1/d. K(t) = t^2 = 1/d P_0 + (1 - 1/d) P_2 for P_2 normalised.
    dim = 5
    linear = sphere_kernel_spectrum(lambda a, b: a @ b.T, dim, 6)
    np.testing.assert_allclose(linear.degree_eigenvalues, [0, 1 / dim, 0, 0, 0, 0, 0], atol=1e-14)
    square = sphere_kernel_spectrum(lambda a, b: (a @ b.T) ** 2, dim, 6)
    lam = square.degree_eigenvalues
    assert lam[0] == pytest.approx(1 / dim, rel=1e-12)
    assert lam[2] * harmonic_multiplicity(dim, 2) == pytest.approx(1 - 1 / dim, rel=1e-12)
    assert square.tail_mass == pytest.approx(0, abs=1e-12)


def test_relu_ntk_spectrum_trace_and_nystrom_agreement():
    from learnmech.kernels import mlp

    kernel_fn = mlp(1, "relu")
    spectrum = sphere_kernel_spectrum(lambda a, b: kernel_fn(a, b).ntk, 3, 200)
    lam = spectrum.degree_eigenvalues
    # Bias-free ReLU NTK: odd degrees >= 3 vanish; the trace identity sum N lam = K(1) holds up to the tail.
    assert np.all(lam[3::2] == 0) and np.all(lam[[0, 1, 2, 4]] > 0)
    assert 0 <= spectrum.tail_mass < 1e-3 * spectrum.trace
    # Nystrom estimate from a sample of the sphere agrees with the exact top eigenvalues.
    x = uniform_sphere(600, 3, np.random.default_rng(0))
    sample_lam, _ = kernel_eigensystem(kernel_fn(x).ntk, np.ones(600))
    flat = np.sort(np.repeat(lam, spectrum.multiplicities.astype(int)))[::-1]
    np.testing.assert_allclose(sample_lam[[0, 1, 4]], flat[[0, 1, 4]], rtol=0.15)


def test_harmonic_target_has_the_prescribed_power():
    power = np.array([0.0, 0.5, 0.3, 0.0, 0.2])
    target = make_harmonic_target(4, power, np.random.default_rng(2))
    x = uniform_sphere(40_000, 4, np.random.default_rng(3))
    f = target(x)
    assert np.mean(f**2) == pytest.approx(power.sum(), rel=0.03)
    # Degree-k parts are orthogonal to constants: the mean vanishes.
    assert abs(np.mean(f)) < 0.02


def test_spectrum_bad_inputs():
    with pytest.raises(ValueError, match="dim"):
        sphere_kernel_spectrum(lambda a, b: a @ b.T, 2, 3)
    with pytest.raises(ValueError, match="negative"):
        sphere_kernel_spectrum(lambda a, b: -(a @ b.T), 3, 3)
    with pytest.raises(ValueError, match="degree_power"):
        sphere_kernel_spectrum(lambda a, b: a @ b.T, 3, 3).grouped([1.0])
