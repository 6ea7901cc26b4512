"""Our own scaling experiment on CPU: MLPs of width N trained on D examples of a task with a power-law spectrum.

Two experiments live here.

*Fully trained MLPs* (:func:`make_teacher_task`, :func:`train_mlps`): every layer of a two-layer ReLU MLP is trained
by full-batch Adam with early stopping on a held-out validation set, on a teacher with a power-law spectrum: a
wide two-layer teacher y = sum_k a_k (|w_k . x| - E|z|) whose output weights decay as a_k^2 ~ k^-(1 + a), so the
teacher's "features" are ranked by importance, as in the quantization picture of Michaud et al. (2023) and the
spectral models of Maloney et al. (2022) and Bahri et al. (2021). |z| = relu(z) + relu(-z) has no linear part, so
a width-N student has to spend units on teacher features (two per feature): N bounds how many it can represent and
D how many it can resolve above the noise, which is what makes both terms of L(N, D) visible.

*Random-feature MLPs* (:func:`make_task`, :func:`train_random_feature_mlp`): the solvable model itself.
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

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._aliases import renamed
from .._checks import positive_float, positive_int
from .._threads import single_threaded
from ..seeding import rng as make_rng

__all__ = ["PowerLawTask", "TeacherTask", "make_task", "make_teacher_task", "mlp_parameter_count", "train_mlps",
           "train_random_feature_mlp"]


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


@renamed(input_dim="in_dim")
def make_task(in_dim: int, spectrum_exponent: float, noise: float, max_width: int, max_train: int,
              n_test: int, seed: int) -> PowerLawTask:
    """Draw the power-law task of Maloney et al. (2022) for ``seed``.

    in_dim M: latent dimensions; spectrum_exponent a: lambda_k = k^-(1+a) normalised to sum 1 (so the target
    variance is ~1); noise: label-noise standard deviation (the irreducible loss is noise^2, in train and test);
    max_width / max_train: the largest N and D the sweep will use; n_test: held-out examples for the test loss.
    ``input_dim`` is a deprecated keyword alias of ``in_dim``.
    """
    in_dim = positive_int(in_dim, "in_dim")
    spectrum_exponent = positive_float(spectrum_exponent, "spectrum_exponent")
    noise = positive_float(noise, "noise", allow_zero=True)
    max_width, max_train = positive_int(max_width, "max_width"), positive_int(max_train, "max_train")
    n_test = positive_int(n_test, "n_test")
    generator = make_rng(seed)
    spectrum = np.arange(1, in_dim + 1, dtype=float) ** -(1.0 + spectrum_exponent)
    spectrum /= spectrum.sum()
    teacher = generator.choice([-1.0, 1.0], size=in_dim)
    scale = np.sqrt(spectrum)
    x_test = generator.normal(size=(n_test, in_dim)) * scale
    x_train = generator.normal(size=(max_train, in_dim)) * scale
    y_test = x_test @ teacher + noise * generator.normal(size=n_test)
    y_train = x_train @ teacher + noise * generator.normal(size=max_train)
    # He-style first layer for inputs of total variance sum(lambda) = 1: pre-activations have unit variance
    first_layer = generator.normal(size=(in_dim, max_width))
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


# --------------------------------------------------------------------------------------------------------------
# Fully trained MLPs on a power-law teacher
# --------------------------------------------------------------------------------------------------------------

#: E|z| for z ~ N(0, 1): the mean of each teacher unit |w.x|, subtracted so the target has mean ~0.
_MEAN_ABS_GAUSSIAN = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class TeacherTask:
    """One seed's draw of the power-law teacher task (float32 torch tensors).

    x_train (max_train, d) / y_train (max_train,): the training stream (a size-D run uses the first D rows);
    x_val (n_val, d) / y_val: the early-stopping set; x_test (n_test, d) / y_test: the test set. coefficients (K,):
    the teacher's output weights a_k (scaled so the clean target has unit variance); directions (K, d): its unit
    input weights. noise: label-noise standard deviation, so the irreducible test loss is noise^2.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    coefficients: np.ndarray
    directions: np.ndarray
    noise: float


def _abs_unit_covariance(correlation: np.ndarray) -> np.ndarray:
    """Cov(|z1|, |z2|) for standard Gaussians with correlation rho: (2/pi)(sqrt(1 - rho^2) + rho arcsin rho - 1)
    (the arc-sine kernel of the absolute value, e.g. Cho & Saul 2009 for relu(z) + relu(-z))."""
    rho = np.clip(correlation, -1.0, 1.0)
    return (2.0 / np.pi) * (np.sqrt(1.0 - rho**2) + rho * np.arcsin(rho) - 1.0)


@renamed(input_dim="in_dim")
def make_teacher_task(in_dim: int, teacher_width: int, spectrum_exponent: float, noise: float, max_train: int,
                      n_val: int, n_test: int, seed: int) -> TeacherTask:
    """Draw the power-law teacher task for ``seed``.

    Inputs x ~ N(0, I_d) (d = ``in_dim``); target y = sum_k a_k (|w_k . x| - sqrt(2/pi)) + noise * eps with K =
    ``teacher_width`` random unit directions w_k and a_k^2 proportional to k^-(1 + a), a = ``spectrum_exponent``
    (the power-law spectrum of Maloney et al. 2022, on nonlinear features). The a_k are scaled so the clean target
    has variance exactly 1 (computed in closed form from the arc-sine kernel, not estimated), so losses are in
    units of the target variance and the noise floor is noise^2. Sizes: ``max_train`` training examples (the
    largest D of the sweep), ``n_val`` for early stopping, ``n_test`` for the test loss.
    ``input_dim`` is a deprecated keyword alias of ``in_dim``.
    """
    in_dim = positive_int(in_dim, "in_dim")
    teacher_width = positive_int(teacher_width, "teacher_width")
    spectrum_exponent = positive_float(spectrum_exponent, "spectrum_exponent")
    noise = positive_float(noise, "noise", allow_zero=True)
    max_train, n_val, n_test = (positive_int(max_train, "max_train"), positive_int(n_val, "n_val"),
                                positive_int(n_test, "n_test"))
    generator = make_rng(seed)
    directions = generator.normal(size=(teacher_width, in_dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    coefficients = np.arange(1, teacher_width + 1, dtype=float) ** (-(1.0 + spectrum_exponent) / 2)
    # Var(sum a_k |w_k.x|) = a' C a with C_kl = Cov(|z_k|, |z_l|), corr(z_k, z_l) = w_k . w_l
    variance = coefficients @ _abs_unit_covariance(directions @ directions.T) @ coefficients
    coefficients /= np.sqrt(variance)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = generator.normal(size=(n, in_dim))
        y = (np.abs(x @ directions.T) - _MEAN_ABS_GAUSSIAN) @ coefficients + noise * generator.normal(size=n)
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)

    x_train, y_train = sample(max_train)
    x_val, y_val = sample(n_val)
    x_test, y_test = sample(n_test)
    return TeacherTask(x_train, y_train, x_val, y_val, x_test, y_test, coefficients, directions, float(noise))


@renamed(input_dim="in_dim")
def mlp_parameter_count(width: int, in_dim: int) -> int:
    """Trainable parameters of the two-layer MLP of :func:`train_mlps`: width * (in_dim + 2) + 1
    (first-layer weights and biases, readout weights, readout bias): the N of L(N, D).
    ``input_dim`` is a deprecated keyword alias of ``in_dim``.
    """
    return positive_int(width, "width") * (positive_int(in_dim, "in_dim") + 2) + 1


def train_mlps(task: TeacherTask, widths: Sequence[int], n_train: int, *, steps: int, lr: float,
               eval_every: int = 10, seed: int = 0) -> list[dict[str, float]]:
    """Train two-layer ReLU MLPs of each width in ``widths``, all layers, on the first ``n_train`` examples.

    Model: f(x) = sum_j v_j relu(u_j . x + b_j) + c with u_j ~ N(0, I/d) (He-style fan-in init), b = 0 and a zero
    readout v = 0, c = 0 (the function starts at 0, so a wide net does not start with a large random output that
    a small training set cannot remove). Training: full-batch Adam (Kingma & Ba 2015) on the mean squared error
    for ``steps`` steps, learning rate ``lr`` decayed linearly to 0; every ``eval_every`` steps the validation
    loss is measured and each width keeps its best-validation parameters (early stopping), whose test loss is
    reported. A width-N net uses the first N first-layer columns of one standard-normal draw for ``seed``, so wider
    nets extend narrower ones.

    All widths train at once as one block network: the units of every width side by side share one matmul with
    the inputs, and each width's output sums only its own block, so the runs are independent (Adam is elementwise)
    but cost one pass. Returns one dict per width: ``test_loss``, ``val_loss``, ``train_loss`` (MSE at the chosen
    parameters, in units of the target variance), ``best_step``, ``parameters`` (:func:`mlp_parameter_count`) and
    ``diverged_step`` (None, or the step at which a validation loss was NaN/inf: training stops there and the best
    parameters so far are reported; ``diverged_at`` is a deprecated key holding the same value).
    """
    widths = [positive_int(w, "widths") for w in widths]
    if not widths:
        raise ValueError("widths must list at least one width")
    n_train = positive_int(n_train, "n_train")
    steps, eval_every = positive_int(steps, "steps"), positive_int(eval_every, "eval_every")
    lr = positive_float(lr, "lr")
    if n_train > task.x_train.shape[0]:
        raise ValueError(f"n_train {n_train} exceeds the task's {task.x_train.shape[0]} training examples")
    # many small matrix products: one torch thread is faster than a pool waiting on a shared CPU (see _threads)
    with single_threaded():
        return _train_mlps(task, widths, n_train, steps, lr, eval_every, seed)


def _train_mlps(task: TeacherTask, widths: list[int], n_train: int, steps: int, lr: float, eval_every: int,
                seed: int) -> list[dict[str, float]]:
    """The body of :func:`train_mlps` (arguments already checked)."""
    input_dim = task.x_train.shape[1]
    x, y = task.x_train[:n_train], task.y_train[:n_train]

    offsets = np.concatenate([[0], np.cumsum(widths)])
    total_units = int(offsets[-1])
    # block[i, j] = 1 iff unit i belongs to the j-th width's network
    block = torch.zeros(total_units, len(widths))
    for j in range(len(widths)):
        block[offsets[j]:offsets[j + 1], j] = 1.0
    # one row per unit from numpy's sequential stream, so the first N units are the same whatever the widest width
    # is (torch.randn's vectorised path does not have that prefix property)
    rows = make_rng(seed).normal(size=(max(widths), input_dim))
    shared_init = torch.tensor(rows.T / math.sqrt(input_dim), dtype=torch.float32)
    # one row per unit: [first-layer weights (d), bias, readout]; few large tensors keep the per-step overhead low
    units = torch.zeros(total_units, input_dim + 2)
    units[:, :input_dim] = torch.cat([shared_init[:, :w] for w in widths], dim=1).T
    units.requires_grad_()
    offset = torch.zeros(len(widths), requires_grad=True)

    def outputs(inputs: torch.Tensor) -> torch.Tensor:
        """(n, len(widths)) predictions of every width's network."""
        hidden = torch.relu(inputs @ units[:, :input_dim].T + units[:, input_dim])
        return (hidden * units[:, input_dim + 1]) @ block + offset

    def mse(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs(inputs) - targets[:, None]) ** 2).mean(dim=0)

    optimizer = torch.optim.Adam([units, offset], lr=lr)
    best_val = torch.full((len(widths),), float("inf"))
    best_step = torch.zeros(len(widths))
    best_units, best_offset = units.detach().clone(), offset.detach().clone()
    unit_of = block.argmax(dim=1)  # the width each unit belongs to
    diverged_at = None
    for k in range(steps + 1):
        if k % eval_every == 0 or k == steps:
            with torch.no_grad():
                val = mse(task.x_val, task.y_val)
                if not torch.isfinite(val).all():
                    diverged_at = k  # stop: the caller decides (a claim raises Diverged)
                    break
                improved = val < best_val
                best_val = torch.where(improved, val, best_val)
                best_step = torch.where(improved, torch.tensor(float(k)), best_step)
                best_units = torch.where(improved[unit_of][:, None], units, best_units)
                best_offset = torch.where(improved, offset, best_offset)
        if k == steps:
            break
        optimizer.param_groups[0]["lr"] = lr * (1.0 - k / steps)  # linear decay to 0
        optimizer.zero_grad(set_to_none=True)
        # sum over widths: the blocks share no parameters, so each width gets its own loss's gradient
        mse(x, y).sum().backward()
        optimizer.step()
    with torch.no_grad():
        units.copy_(best_units)
        offset.copy_(best_offset)
        test, train = mse(task.x_test, task.y_test), mse(x, y)
    return [
        {"test_loss": float(test[j]), "val_loss": float(best_val[j]), "train_loss": float(train[j]),
         "best_step": int(best_step[j]), "parameters": mlp_parameter_count(w, input_dim),
         "diverged_step": diverged_at, "diverged_at": diverged_at}
        for j, w in enumerate(widths)
    ]
