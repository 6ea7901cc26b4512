"""laws.quanta: Zipf frequencies, predicted exponents, the quanta model's L(D), the multitask sparse parity task."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.laws import (
    multitask_sparse_parity,
    quanta_exponents,
    quanta_loss,
    sparse_parity_mlp,
    staircase_exponent,
    train_sparse_parity,
    zipf_frequencies,
)


def test_zipf_and_exponents():
    p = zipf_frequencies(5, 1.0)
    np.testing.assert_allclose(p, np.array([1, 1 / 4, 1 / 9, 1 / 16, 1 / 25]) / (1 + 1 / 4 + 1 / 9 + 1 / 16 + 1 / 25))
    assert p.sum() == pytest.approx(1.0)
    e = quanta_exponents(0.5)
    assert (e.parameters, e.data) == (0.5, pytest.approx(1 / 3))


def test_quanta_loss_brute_force_and_exponent():
    p = zipf_frequencies(4, 1.0)
    # tau = 10, D = 20: quanta with 20 p_k < 10 are unlearned
    expected = sum(pk for pk in p if 20 * pk < 10)
    assert quanta_loss(20, p, 10.0)[0] == pytest.approx(expected)
    assert quanta_loss(1e9, p, 10.0)[0] == 0.0
    # many quanta: log-log slope -> -alpha/(alpha+1) (Michaud et al. 2023, eq. 5)
    alpha = 0.5
    p = zipf_frequencies(10**6, alpha)
    d = np.geomspace(1e3, 1e6, 30)
    loss = quanta_loss(d, p, 20.0, unlearned_loss=0.5)
    slope = np.polyfit(np.log(d), np.log(loss), 1)[0]
    assert slope == pytest.approx(-quanta_exponents(alpha).data, abs=0.01)
    assert staircase_exponent(d, p, 20.0) == pytest.approx(-slope, rel=1e-9)
    # few quanta: the cut-off steepens the staircase beyond alpha/(alpha+1)
    assert staircase_exponent(d, zipf_frequencies(2000, alpha), 20.0) > quanta_exponents(alpha).data + 0.05


def test_sparse_parity_task_labels_and_frequencies():
    task = multitask_sparse_parity(6, 8, 3, 1.0, seed=1)
    assert task.subsets.shape == (6, 3) and task.n_tasks == 6
    assert all(len(set(s)) == 3 for s in task.subsets)
    tasks, bits, labels = task.sample(20000, seed=2)
    for i in range(50):  # brute force: parity of the chosen bits
        assert labels[i] == sum(bits[i, j] for j in task.subsets[tasks[i]]) % 2
    counts = np.bincount(tasks, minlength=6) / len(tasks)
    np.testing.assert_allclose(counts, task.frequencies, atol=0.01)


def test_training_learns_frequent_subtasks_only():
    task = multitask_sparse_parity(64, 6, 2, 0.5, seed=0)
    errors = train_sparse_parity(task, 2000, width=64, steps=300, seed=0)
    assert errors.shape == (64,) and np.all((errors >= 0) & (errors <= 1))
    assert errors[:2].max() < 0.05  # seen hundreds of times
    assert errors[-16:].mean() > 0.3  # seen about once: guessed
    model = sparse_parity_mlp(task, 8, seed=0)
    assert sum(p.numel() for p in model.parameters()) == (64 + 6) * 8 + 8 + 8 * 2 + 2


def test_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        zipf_frequencies(3, 0.0)
    with pytest.raises(ValueError, match="k must be"):
        multitask_sparse_parity(3, 2, 3, 1.0)
    with pytest.raises(ValueError, match="n_samples"):
        quanta_loss([0.0], [0.5, 0.5], 1.0)
    with pytest.raises(ValueError, match="n_samples"):
        staircase_exponent([1e9, 2e9], [0.5, 0.5], 1.0)
    with pytest.raises(ValueError, match="threshold"):
        quanta_loss([1.0], [0.5, 0.5], 0.0)
