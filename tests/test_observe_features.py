"""observe.features (AGOP, matrix correlation, PSD power, eigenspace overlap) and the debiased CKA / unbiased HSIC
of observe.similarity, each against brute force or a closed form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from learnmech.observe import agop, cka, eigenspace_overlap, matrix_correlation, psd_power, unbiased_hsic


def _net(d: int = 5, k: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 7), torch.nn.Tanh(), torch.nn.Linear(7, k)).double()


def test_agop_matches_central_finite_differences():
    model = _net()
    x = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    eps = 1e-6
    brute = np.zeros((5, 5))
    for row in x:
        jac = np.zeros((3, 5))  # (k, d) Jacobian by central differences
        for j in range(5):
            step = torch.zeros(5, dtype=torch.float64)
            step[j] = eps
            with torch.no_grad():
                jac[:, j] = ((model(row + step) - model(row - step)) / (2 * eps)).numpy()
        brute += jac.T @ jac
    brute /= len(x)
    np.testing.assert_allclose(agop(model, x, chunk_size=4), brute, rtol=1e-6, atol=1e-9)


def test_agop_of_linear_map_is_w_transpose_w_and_scalar_output_and_image_inputs():
    w = torch.randn(2, 12, dtype=torch.float64)
    lin = torch.nn.Linear(12, 2, bias=True).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    x = torch.randn(6, 3, 4, dtype=torch.float64)  # (n, *in_shape): flattened to d = 12
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    np.testing.assert_allclose(agop(model, x), (w.T @ w).numpy(), rtol=1e-12, atol=1e-12)
    scalar = torch.nn.Sequential(torch.nn.Flatten(), lin, torch.nn.Flatten(0))  # (n, 2) -> (2n,) is not per-row
    with pytest.raises(ValueError, match="model must map"):
        agop(scalar, x)
    first = torch.nn.Sequential(torch.nn.Flatten(), lin)
    np.testing.assert_allclose(agop(lambda b: first(b)[:, 0], x), np.outer(w[0], w[0]), atol=1e-12)


def test_agop_bad_input():
    with pytest.raises(ValueError, match="x must be a batch"):
        agop(_net(), torch.zeros(5))
    with pytest.raises(ValueError, match="model must be"):
        agop(3, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="chunk_size"):
        agop(_net(), torch.zeros(2, 5), chunk_size=0)


def test_matrix_correlation_pearson_and_cosine_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    assert matrix_correlation(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    cos = np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)
    assert matrix_correlation(a, b, kind="cosine") == pytest.approx(cos, abs=1e-12)
    assert matrix_correlation(a, 3 * a + 2) == pytest.approx(1.0)
    assert matrix_correlation(a, 3 * a, kind="cosine") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        matrix_correlation(a, b[:3])
    with pytest.raises(ValueError, match="kind"):
        matrix_correlation(a, b, kind="spearman")
    with pytest.raises(ValueError, match="all entries equal"):
        matrix_correlation(np.ones((3, 3)), a[:3, :3])


def test_psd_power_square_root_and_clipping():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(6, 3))
    m = g @ g.T  # rank 3, PSD
    root = psd_power(m, 0.5)
    np.testing.assert_allclose(root @ root, m, atol=1e-10)
    np.testing.assert_allclose(psd_power(m, 1.0), m, atol=1e-10)
    assert np.all(np.linalg.eigvalsh(psd_power(m - 1e-9 * np.eye(6), 0.5)) >= -1e-12)
    with pytest.raises(ValueError, match="alpha"):
        psd_power(m, 0)


def test_eigenspace_overlap_limits():
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(8, 8)))
    a = q @ np.diag(np.arange(1.0, 9.0)) @ q.T
    b = q @ np.diag([8.0, 7, 6, 5, 4, 3, 2, 1]) @ q.T  # top-2 of a are bottom-2 of b
    assert eigenspace_overlap(a, a * 5, 3) == pytest.approx(1.0)
    assert eigenspace_overlap(a, b, 2) == pytest.approx(0.0, abs=1e-12)
    # A uniformly random subspace overlaps k/d on average.
    rng = np.random.default_rng(3)
    draws = []
    for _ in range(300):
        r = rng.normal(size=(8, 8))
        draws.append(eigenspace_overlap(a, r + r.T, 2))
    assert np.mean(draws) == pytest.approx(2 / 8, abs=0.03)
    with pytest.raises(ValueError, match="k must be"):
        eigenspace_overlap(a, b, 9)


def test_unbiased_hsic_equals_u_statistic_brute_force():
    rng = np.random.default_rng(4)
    n = 7
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    k, l = x @ x.T, np.tanh(y @ y.T)
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q]
        count += 1
    assert unbiased_hsic(k, l) == pytest.approx(total / count, rel=1e-10, abs=1e-12)
    with pytest.raises(ValueError, match="n >= 4"):
        unbiased_hsic(k[:3, :3], l[:3, :3])


def test_debiased_cka_properties():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 10))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert cka(x, 2.0 * x @ q, debiased=True) == pytest.approx(1.0)
    # Independent random features: plain linear CKA is biased upwards (~ p/n), the debiased one is near 0.
    plain, debiased = [], []
    for _ in range(20):
        a, b = rng.normal(size=(50, 30)), rng.normal(size=(50, 30))
        plain.append(cka(a, b))
        debiased.append(cka(a, b, debiased=True))
    assert np.mean(plain) > 0.3
    assert abs(np.mean(debiased)) < 0.05
    with pytest.raises(ValueError, match="undefined"):
        cka(np.ones((6, 2)), x[:6], debiased=True)
