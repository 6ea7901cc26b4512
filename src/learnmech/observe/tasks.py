"""Small, seeded training tasks for experiments about universal behaviours of training.

Everything here runs in seconds on a CPU: tiny synthetic data sets (Gaussian class clusters, modular
arithmetic), small MLPs, and one training loop (full-batch GD, minibatch SGD or AdamW) with hooks for
instruments (an ``Observer`` from :mod:`learnmech.observe` or any callback). The claims of the "universal"
strand (edge of stability, neural collapse, grokking, heavy tails) are built from these pieces.

Conventions: inputs are float32 torch tensors ``(n, d)``, labels int64 ``(n,)`` in ``[0, num_classes)``;
losses are per-example means, so the learning rate has the same meaning whatever ``n`` is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._aliases import renamed
from .._checks import one_of, positive_float, positive_int
from ..seeding import torch_generator

__all__ = [
    "Dataset",
    "TrainHistory",
    "modular_addition",
    "gaussian_clusters",
    "digits",
    "mlp",
    "loss_function",
    "accuracy",
    "train",
    "LOSSES",
    "OPTIMIZERS",
    "ACTIVATIONS",
]

LOSSES = ("cross_entropy", "mse")
OPTIMIZERS = ("gd", "sgd", "adamw")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "identity": nn.Identity,
}


@dataclass(frozen=True)
class Dataset:
    """A classification task split into train and test.

    x_train ``(n_train, d)`` float32, y_train ``(n_train,)`` int64 labels in ``[0, num_classes)``; likewise the
    test split (which may be empty, ``n_test = 0``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not (isinstance(x, torch.Tensor) and x.ndim == 2 and x.is_floating_point()):
                raise ValueError(f"x_{split} must be a 2-D floating-point tensor (n, d), got {getattr(x, 'shape', x)}")
            if not (isinstance(y, torch.Tensor) and y.ndim == 1 and y.dtype == torch.int64 and len(y) == len(x)):
                raise ValueError(f"y_{split} must be an int64 tensor of {len(x)} labels, got {getattr(y, 'shape', y)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"y_{split} labels must lie in [0, num_classes={self.num_classes})")
        if len(self.y_train) == 0:
            raise ValueError("x_train must not be empty")
        if self.x_test.shape[1] != self.x_train.shape[1]:
            raise ValueError(f"x_test must have {self.x_train.shape[1]} columns like x_train, got {self.x_test.shape}")

    @property
    def in_dim(self) -> int:
        """Columns of ``x_train`` (the input dimension)."""
        return int(self.x_train.shape[1])

    @property
    def input_dim(self) -> int:
        """Alias of ``in_dim`` (kept for callers written before the glossary)."""
        return self.in_dim

    @property
    def train_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole training set as one ``(x, y)`` batch (what full-batch GD and the instruments consume)."""
        return self.x_train, self.y_train


def modular_addition(p: int, train_fraction: float = 0.5, seed: int = 0) -> Dataset:
    """All ``p**2`` pairs ``(a, b)`` labelled ``(a + b) mod p``, randomly split (Power et al. 2022).

    Each input is the concatenation of the one-hot codes of ``a`` and ``b``: shape ``(n, 2p)``, so an MLP on it
    is the "one-hot pairs" model of Liu et al. (2022, "Towards understanding grokking"). ``train_fraction`` of
    the pairs (rounded, at least one, and at least one left for test) go to the training split.
    """
    p = positive_int(p, "p", minimum=2)
    fraction = positive_float(train_fraction, "train_fraction")
    if fraction >= 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    eye = torch.eye(p)
    x = torch.cat([eye[a], eye[b]], dim=1)
    y = (a + b) % p
    order = torch.randperm(p * p, generator=torch_generator(seed))
    n_train = min(max(1, round(fraction * p * p)), p * p - 1)
    train, test = order[:n_train], order[n_train:]
    return Dataset(x[train], y[train], x[test], y[test], p)


@renamed(dim="in_dim")
def gaussian_clusters(
    num_classes: int,
    per_class: int,
    in_dim: int,
    *,
    test_per_class: int = 0,
    noise: float = 1.0,
    seed: int = 0,
) -> Dataset:
    """Balanced Gaussian class clusters: class ``c`` is ``mu_c + noise * z`` with ``z ~ N(0, I_in_dim)``.

    The class means ``mu_c`` are i.i.d. ``N(0, I_in_dim)`` (so classes are separated by ``~ sqrt(2 in_dim)`` and each
    cluster has radius ``~ noise * sqrt(in_dim)``). Returns ``per_class * num_classes`` training points (ordered by
    class then shuffled) and ``test_per_class * num_classes`` test points from the same distribution.
    ``dim`` is a deprecated keyword alias of ``in_dim``.
    """
    num_classes = positive_int(num_classes, "num_classes", minimum=2)
    per_class = positive_int(per_class, "per_class")
    dim = positive_int(in_dim, "in_dim")
    test_per_class = positive_int(test_per_class, "test_per_class", minimum=0)
    noise = positive_float(noise, "noise", allow_zero=True)
    gen = torch_generator(seed)
    means = torch.randn(num_classes, dim, generator=gen)

    def sample(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(num_classes).repeat_interleave(count)
        points = means[labels] + noise * torch.randn(len(labels), dim, generator=gen)
        order = torch.randperm(len(labels), generator=gen)
        return points[order], labels[order]

    x_train, y_train = sample(per_class)
    x_test, y_test = sample(test_per_class) if test_per_class else (torch.zeros(0, dim), torch.zeros(0).long())
    return Dataset(x_train, y_train, x_test, y_test, num_classes)


def digits(
    n_train: int = 1000,
    n_test: int = 500,
    *,
    classes: Sequence[int] | None = None,
    standardize: bool = True,
    seed: int = 0,
) -> Dataset:
    """scikit-learn's handwritten digits (Alpaydin & Kaynak 1998; 1797 8x8 images, 16 grey levels), real data that
    ships inside scikit-learn's wheel, so nothing is downloaded at run time.

    Parameters
    ----------
    n_train, n_test : int
        Sizes of a seeded random split (``n_train + n_test <= `` the number of images of the chosen classes).
    classes : sequence of int, optional
        Keep only these digits, relabelled ``0..len(classes)-1`` in the given order (default: all ten).
    standardize : bool
        Centre each pixel with the training mean and scale the images so the average squared norm of a training
        input equals its dimension (64), i.e. O(1) per coordinate as for ``N(0, I)`` inputs; else raw grey levels / 16.
    seed : int
        Drives the split.

    Returns
    -------
    Dataset
        ``x_* (n, 64)`` float32 (row-major flattened 8x8 images; reshape to ``(n, 1, 8, 8)`` for a CNN), labels int64.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("digits() needs scikit-learn (pip install scikit-learn)") from exc
    n_train = positive_int(n_train, "n_train")
    n_test = positive_int(n_test, "n_test", minimum=0)
    bunch = load_digits()
    images = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    if classes is not None:
        chosen = [int(c) for c in classes]
        if len(chosen) < 2 or len(set(chosen)) != len(chosen) or not all(0 <= c <= 9 for c in chosen):
            raise ValueError(f"classes must be at least two distinct digits in 0..9, got {list(classes)}")
        keep = torch.isin(labels, torch.tensor(chosen))
        images, labels = images[keep], labels[keep]
        relabel = torch.full((10,), -1, dtype=torch.int64)
        relabel[torch.tensor(chosen)] = torch.arange(len(chosen))
        labels = relabel[labels]
    available = len(labels)
    if n_train + n_test > available:
        raise ValueError(f"n_train + n_test must be <= {available} (the digits of the chosen classes), "
                         f"got {n_train} + {n_test}")
    order = torch.randperm(available, generator=torch_generator(seed))
    train_idx, test_idx = order[:n_train], order[n_train:n_train + n_test]
    x_train, x_test = images[train_idx], images[test_idx]
    if standardize:
        mean = x_train.mean(dim=0)
        x_train, x_test = x_train - mean, x_test - mean
        scale = torch.sqrt(x_train.pow(2).sum(dim=1).mean() / x_train.shape[1])
        x_train, x_test = x_train / scale, x_test / scale
    num_classes = int(labels.max()) + 1
    return Dataset(x_train, labels[train_idx], x_test, labels[test_idx], num_classes)


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "relu",
    *,
    bias: bool = True,
    seed: int | None = 0,
) -> nn.Sequential:
    """A fully connected net ``Linear -> act -> ... -> Linear`` with torch's default (Kaiming-uniform) init.

    ``hidden`` lists the widths of the hidden layers (may be empty: a linear model). The last ``Linear`` is the
    classifier; the output of the module just before it (``model[:-1]``) is the penultimate feature map that
    neural-collapse measurements use. Initialised from ``seed`` without touching torch's global generator state;
    ``seed=None`` draws from (and advances) torch's global generator instead, as a bare ``nn.Linear`` stack does
    (what :func:`learnmech.hyper.mlp`, whose init :func:`learnmech.hyper.parametrize` redraws, builds on).
    """
    in_dim = positive_int(in_dim, "in_dim")
    out_dim = positive_int(out_dim, "out_dim")
    widths = [positive_int(w, f"hidden[{i}]") for i, w in enumerate(hidden)]
    one_of(activation, "activation", ACTIVATIONS)
    if seed is None:
        return _linear_stack(in_dim, widths, out_dim, ACTIVATIONS[activation], bias)
    # Building the layers draws their init from torch's global generator; fork_rng seeds a private stream for
    # that and restores the caller's generator state afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _linear_stack(in_dim, widths, out_dim, ACTIVATIONS[activation], bias)


def _linear_stack(in_dim: int, widths: list[int], out_dim: int, act: Callable[[], nn.Module],
                  bias: bool) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear`` initialised from torch's global generator, layer by layer."""
    layers: list[nn.Module] = []
    previous = in_dim
    for width in widths:
        layers += [nn.Linear(previous, width, bias=bias), act()]
        previous = width
    layers.append(nn.Linear(previous, out_dim, bias=bias))
    return nn.Sequential(*layers)


def loss_function(name: str, num_classes: int | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(outputs (n, k), labels (n,)) -> scalar`` averaged over examples.

    "cross_entropy": softmax cross-entropy. "mse": ``(1/n) sum_i 0.5 ||f(x_i) - e_{y_i}||^2`` against one-hot
    targets, the square loss of Cohen et al. (2021) for classification (``num_classes`` = k is required).
    """
    one_of(name, "loss", LOSSES)
    if name == "cross_entropy":
        return nn.functional.cross_entropy
    classes = positive_int(num_classes, "num_classes", minimum=2) if num_classes is not None else None
    if classes is None:
        raise ValueError("num_classes must be given for the 'mse' loss (the one-hot target dimension)")

    def mse(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = nn.functional.one_hot(labels, classes).to(outputs.dtype)
        return 0.5 * (outputs - targets).pow(2).sum(dim=1).mean()

    return mse


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``x`` whose arg-max output equals the label (NaN for an empty set)."""
    if len(y) == 0:
        return math.nan
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


@dataclass
class TrainHistory:
    """What :func:`train` recorded every ``every`` steps (and at the last step).

    steps: step index at which the row was recorded (0 = before any update); train/test loss and accuracy there
    (test values are NaN without a test split); ``extra``: the callback's return values, one per row (``None``
    when there is no callback). ``diverged_step``: the first step with a non-finite loss, else ``None``.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    diverged_step: int | None = None

    def first_step(self, values: Sequence[float], threshold: float) -> int | None:
        """The first recorded step at which ``values`` (one of the recorded lists) is ``>= threshold``."""
        for step, value in zip(self.steps, values, strict=False):
            if value >= threshold:
                return step
        return None


def _make_optimizer(name: str, params: Any, lr: float, weight_decay: float, betas: tuple[float, float]):
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    # "gd" and "sgd" are the same update; they differ in the batch (full vs minibatch). Weight decay is L2 here.
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


def _check_batch_size(batch_size: int | None, optimizer: str, n_train: int) -> int | None:
    """``batch_size`` checked against the optimizer (None for "gd", required for "sgd") and ``n_train``."""
    if optimizer == "gd" and batch_size is not None:
        raise ValueError("batch_size must be None for optimizer='gd' (full batch); use optimizer='sgd'")
    if optimizer == "sgd" and batch_size is None:
        raise ValueError("batch_size must be given for optimizer='sgd'")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
        if batch_size > n_train:
            raise ValueError(f"batch_size must be <= the {n_train} training examples, got {batch_size}")
    return batch_size


class _Minibatches:
    """The training set in batches of ``batch_size`` drawn without replacement, reshuffled each epoch; the whole
    set every time when ``batch_size`` is None. The first permutation is drawn at construction either way, so a
    seed leaves the generator in the same state whatever the batch size."""

    def __init__(self, data: Dataset, batch_size: int | None, gen: torch.Generator) -> None:
        self.data, self.batch_size, self.gen = data, batch_size, gen
        self.n_train = len(data.y_train)
        self.order = torch.randperm(self.n_train, generator=gen)
        self.cursor = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(x, y)`` batch."""
        if self.batch_size is None:
            return self.data.x_train, self.data.y_train
        if self.cursor + self.batch_size > self.n_train:  # new epoch: reshuffle
            self.order, self.cursor = torch.randperm(self.n_train, generator=self.gen), 0
        index = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return self.data.x_train[index], self.data.y_train[index]


def _record(history: TrainHistory, model: nn.Module, data: Dataset, loss_fn: Callable[..., torch.Tensor],
            step: int) -> None:
    """Append the full train/test loss and accuracy at ``step`` to ``history`` (test loss NaN without test data)."""
    with torch.no_grad():
        history.steps.append(step)
        history.train_loss.append(float(loss_fn(model(data.x_train), data.y_train)))
        history.train_acc.append(accuracy(model, data.x_train, data.y_train))
        has_test = len(data.y_test) > 0
        history.test_loss.append(float(loss_fn(model(data.x_test), data.y_test)) if has_test else math.nan)
        history.test_acc.append(accuracy(model, data.x_test, data.y_test))


def train(
    model: nn.Module,
    data: Dataset,
    *,
    steps: int,
    lr: float,
    optimizer: str = "gd",
    loss: str = "cross_entropy",
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    betas: tuple[float, float] = (0.9, 0.98),
    every: int = 1,
    callback: Callable[[int, nn.Module], Any] | None = None,
    observer: Any = None,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
) -> TrainHistory:
    """Train ``model`` in place on ``data`` for ``steps`` updates; returns the recorded :class:`TrainHistory`.

    optimizer: "gd" (full-batch gradient descent; ``batch_size`` must be None), "sgd" (plain SGD on minibatches
    of ``batch_size`` drawn without replacement each epoch) or "adamw" (full batch unless ``batch_size``; the
    decoupled weight decay of Loshchilov & Hutter 2019). loss: "cross_entropy" or "mse" (see
    :func:`loss_function`). Every ``every`` steps (and at step 0 and the last step) the full train/test loss and
    accuracy are recorded and ``callback(step, model)`` is called (its return value goes to ``history.extra``).
    ``observer``: anything with a ``step(loss, batch)`` method (e.g. :class:`learnmech.observe.Observer`), called
    once per iteration after ``backward`` and before the update, with that iteration's loss and ``(x, y)`` batch
    (so an Observer's step ``t`` is measured after ``t`` updates, like ``history.steps``).
    ``progress(done, total)`` is called at each recording. A non-finite loss stops training and sets
    ``history.diverged_step`` (no exception), so callers decide how to report it.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have trainable parameters, it has none")
    steps = positive_int(steps, "steps", minimum=0)
    lr = positive_float(lr, "lr")
    weight_decay = positive_float(weight_decay, "weight_decay", allow_zero=True)
    every = positive_int(every, "every")
    one_of(optimizer, "optimizer", OPTIMIZERS)
    batch_size = _check_batch_size(batch_size, optimizer, len(data.y_train))
    loss_fn = loss_function(loss, data.num_classes)
    opt = _make_optimizer(optimizer, params, lr, weight_decay, betas)
    batches = _Minibatches(data, batch_size, torch_generator(seed))
    history = TrainHistory()

    def record(step: int) -> None:
        _record(history, model, data, loss_fn, step)
        history.extra.append(callback(step, model) if callback is not None else None)
        if progress is not None:
            progress(step, steps)

    record(0)
    for step in range(1, steps + 1):
        x, y = batches.next()
        opt.zero_grad(set_to_none=True)
        value = loss_fn(model(x), y)
        if not torch.isfinite(value):
            history.diverged_step = step
            return history
        value.backward()
        if observer is not None:
            # Before the update, after backward: the observer sees the parameters the loss and .grad belong to,
            # and its own iteration counter (starting at 0) equals the number of updates done so far.
            observer.step(value.detach(), (x, y))
        opt.step()
        if step % every == 0 or step == steps:
            record(step)
            if not math.isfinite(history.train_loss[-1]):
                history.diverged_step = step
                return history
    return history
