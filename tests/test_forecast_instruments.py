"""Instruments for repeated curvature measurements: warm-started tracking, per-block Hessians, Adam's
preconditioned sharpness and its threshold, against exact dense Hessians and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from curvature_problem import tanh_mlp_mse

from learnmech.observe import (
    Observer,
    SharpnessTracker,
    adam_preconditioner,
    adam_threshold,
    block_hessian,
    hessian_eigenvalues,
    preconditioned_sharpness,
    subspace_eigenvalues,
)


def _problem(seed: int = 0):
    return tanh_mlp_mse(hidden=10, n=48, seed=seed)


def _dense_hessian(model, loss_fn, batch) -> np.ndarray:
    params = [p for p in model.parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def loss_of(flat):
        pieces, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            pieces.append(flat[start : start + size].view(shape))
            start += size
        out = torch.func.functional_call(model, {n: t for (n, _), t in zip(model.named_parameters(), pieces,
                                                                             strict=True)}, (batch[0],))
        return loss_fn(out, batch[1])

    flat = torch.cat([p.detach().reshape(-1) for p in params]).double()
    model.double()
    batch = (batch[0].double(), batch[1].double())
    hessian = torch.autograd.functional.hessian(loss_of, flat).numpy()
    model.float()
    return hessian


def test_subspace_from_one_start_finds_the_top_eigenvalues():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    eig = np.concatenate([[10.0, 9.5, 7.0], rng.uniform(-1, 3, size=57)])
    matrix = torch.tensor(q @ np.diag(eig) @ q.T)
    result = subspace_eigenvalues(lambda v: matrix @ v, torch.randn(1, 60, dtype=torch.float64), k=2, rtol=1e-8)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, [10.0, 9.5], rtol=1e-7)
    assert result.eigenvectors.shape == (2, 60)


def test_warm_start_tracks_a_moving_matrix_with_fewer_products():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(80, 80)))
    eig = np.concatenate([[5.0, 4.0], rng.uniform(0, 3, size=78)])
    drift = rng.normal(size=(80, 80)) * 1e-3
    drift = drift + drift.T
    fresh_hvps = 0
    for t in range(6):
        matrix = torch.tensor(q @ np.diag(eig) @ q.T + t * drift)
        start = torch.randn(1, 80, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
        fresh = subspace_eigenvalues(lambda v, m=matrix: m @ v, start, rtol=1e-6)
        fresh_hvps += fresh.n_hvp
        assert fresh.eigenvalues[0] == pytest.approx(np.linalg.eigvalsh(matrix.numpy())[-1], rel=1e-6)
    # warm: each solve starts from the previous solve's top Ritz vector (what SharpnessTracker does)
    previous = None
    warm_hvps = 0
    for t in range(6):
        matrix = torch.tensor(q @ np.diag(eig) @ q.T + t * drift)
        exact = np.linalg.eigvalsh(matrix.numpy())[-1]
        start = torch.randn(1, 80, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
        result = subspace_eigenvalues(lambda v, m=matrix: m @ v, start if previous is None else previous, rtol=1e-6)
        previous = torch.as_tensor(result.eigenvectors)
        warm_hvps += result.n_hvp
        assert result.eigenvalues[0] == pytest.approx(exact, rel=1e-6)
    assert warm_hvps < fresh_hvps


def test_sharpness_tracker_on_a_training_run_matches_fresh_lanczos():
    model, loss_fn, batch = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = SharpnessTracker(rtol=1e-4)
    fresh_total = 0
    for step in range(40):
        if step % 5 == 0:
            tracked = tracker(model, loss_fn, batch)
            fresh = hessian_eigenvalues(model, loss_fn, batch, rtol=1e-4, seed=step)
            fresh_total += fresh.n_hvp
            assert tracked.converged
            assert tracked.eigenvalues[0] == pytest.approx(fresh.eigenvalues[0], rel=1e-3)
        opt.zero_grad()
        loss_fn(model(batch[0]), batch[1]).backward()
        opt.step()
    assert tracker.calls == 8
    assert tracker.n_hvp < fresh_total


def test_block_hessian_matches_the_dense_diagonal_blocks():
    model, loss_fn, batch = _problem(2)
    dense = _dense_hessian(model, loss_fn, batch)
    result = block_hessian(model, loss_fn, batch, k=2, rtol=1e-8, n_trace=400, seed=0)
    assert result.blocks == ["0", "2"]
    start = 0
    for block in result.blocks:
        size = result.sizes[block]
        sub = dense[start : start + size, start : start + size]
        start += size
        np.testing.assert_allclose(result.eigenvalues[block], np.linalg.eigvalsh(sub)[::-1][:2], rtol=1e-4,
                                   atol=1e-6)
        # Hutchinson with full-vector probes is unbiased per block: within 4 standard errors of the exact trace
        assert abs(result.trace[block] - np.trace(sub)) <= 4 * result.trace_stderr[block] + 1e-6
        assert result.eigenvalues[block][0] <= np.linalg.eigvalsh(dense)[-1] * (1 + 1e-6)  # interlacing
    with pytest.raises(ValueError, match="blocks"):
        block_hessian(model, loss_fn, batch, blocks={"x": ["nope.weight"]})


def test_preconditioned_sharpness_is_the_top_eigenvalue_of_p_h_p():
    model, loss_fn, batch = _problem(3)
    dense = _dense_hessian(model, loss_fn, batch)
    p = torch.rand(dense.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    scaled = np.diag(p.numpy() ** -0.5) @ dense @ np.diag(p.numpy() ** -0.5)
    value = preconditioned_sharpness(model, loss_fn, batch, p, rtol=1e-8, max_iter=200)
    assert value == pytest.approx(np.linalg.eigvalsh(scaled)[-1], rel=1e-5)
    with pytest.raises(ValueError, match="preconditioner"):
        preconditioned_sharpness(model, loss_fn, batch, -p)


def test_adam_preconditioner_reads_bias_corrected_second_moment():
    model, loss_fn, batch = _problem(4)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    with pytest.raises(ValueError, match="step"):
        adam_preconditioner(adam)
    grads = torch.autograd.grad(loss_fn(model(batch[0]), batch[1]), list(model.parameters()))
    adam.zero_grad()
    loss_fn(model(batch[0]), batch[1]).backward()
    adam.step()
    for p_hat, g in zip(adam_preconditioner(adam), grads, strict=True):
        # after one step v_hat = g^2 exactly, so P = |g| + eps
        torch.testing.assert_close(p_hat, g.abs() + 1e-8, rtol=1e-5, atol=1e-9)


def test_adam_threshold_separates_stable_from_unstable_frozen_adam():
    # Frozen-preconditioner Adam on a quadratic 0.5 x^T H x: stable iff lr * a < (2 + 2 beta1) / (1 - beta1)
    rng = np.random.default_rng(5)
    h = np.diag(rng.uniform(0.1, 1.0, size=6))
    h[0, 0] = 2.0
    p = rng.uniform(0.5, 2.0, size=6)
    a = np.linalg.eigvalsh(np.diag(p**-0.5) @ h @ np.diag(p**-0.5))[-1]
    beta1 = 0.9
    assert adam_threshold(1.0, beta1) == pytest.approx(38.0)
    for factor, stable in ((0.97, True), (1.03, False)):
        lr = factor * (2 + 2 * beta1) / ((1 - beta1) * a)
        x, m = np.ones(6), np.zeros(6)
        with np.errstate(all="ignore"):  # the unstable case overflows on purpose
            for _ in range(3000):
                m = beta1 * m + (1 - beta1) * (h @ x)
                x = x - lr * m / p
        assert (np.linalg.norm(x) < 1.0) == stable
    with pytest.raises(ValueError, match="beta1"):
        adam_threshold(0.1, 1.0)


def test_observer_measures_adam_and_block_curvature():
    model, loss_fn, batch = _problem(6)
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    obs = Observer(model, every=2, measure=["sharpness", "adam_sharpness", "block_sharpness", "block_trace"],
                   loss_fn=loss_fn, options={"adam_sharpness": {"optimizer": adam}, "block_trace": {"n_trace": 4}})
    for step in range(5):
        loss = loss_fn(model(batch[0]), batch[1])
        obs.step(loss, batch)
        if step == 4:
            break  # compare with the parameters the last measurement saw
        adam.zero_grad()
        loss.backward()
        adam.step()
    frame = obs.to_frame()
    first = frame[(frame.step == 0) & (frame.metric == "adam_sharpness")]
    assert first["error"].item().startswith("ValueError")  # no Adam state before the first step
    last = frame[(frame.step == 4) & (frame.metric == "adam_sharpness")]["value"].item()
    assert last == pytest.approx(preconditioned_sharpness(model, loss_fn, batch, adam), rel=1e-2)
    assert set(frame[frame.metric == "block_sharpness"]["layer"]) == {"0", "2"}
    assert set(frame[frame.metric == "block_trace"]["layer"]) == {"0", "2"}
    with pytest.raises(ValueError, match="loss_fn"):
        Observer(model, measure=["block_trace"])
