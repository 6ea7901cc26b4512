"""observe.tasks.digits: scikit-learn's digits as a seeded, standardized Dataset (real data shipped in a wheel)."""

from __future__ import annotations

import pytest
import torch

from learnmech.observe.tasks import digits


def test_split_shapes_labels_and_standardization():
    data = digits(300, 100, seed=1)
    assert data.x_train.shape == (300, 64) and data.x_test.shape == (100, 64) and data.num_classes == 10
    assert torch.allclose(data.x_train.mean(dim=0), torch.zeros(64), atol=1e-5)
    assert data.x_train.pow(2).sum(dim=1).mean().item() == pytest.approx(64, rel=1e-4)
    assert set(data.y_train.tolist()) == set(range(10))


def test_seed_drives_the_split_and_classes_are_relabelled():
    a, b = digits(50, 10, seed=0), digits(50, 10, seed=0)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, digits(50, 10, seed=1).x_train)
    pair = digits(100, 50, classes=[3, 8], seed=0)
    assert pair.num_classes == 2 and set(pair.y_train.tolist()) == {0, 1}


@pytest.mark.parametrize("kwargs, match", [
    ({"n_train": 2000, "n_test": 0}, "n_train \\+ n_test must be <= 1797"),
    ({"classes": [1]}, "classes must be at least two distinct digits"),
    ({"classes": [1, 1]}, "classes must be at least two distinct digits"),
    ({"n_train": 0}, "n_train"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        digits(**kwargs)
