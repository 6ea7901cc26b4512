"""The quantization model of neural scaling (Michaud, Liu, Girit & Tegmark 2023) and its multitask sparse parity task.

The model: a task is a sum of discrete skills ("quanta") used with Zipf frequencies ``p_k ∝ k^-(alpha+1)``, and a
net either has learned a quantum (its loss there ~0) or not (the loss of a guess). If a net learns a quantum once it
has seen ``tau`` examples of it, a training set of ``D`` samples teaches the quanta with ``D p_k >= tau``, i.e. the
first ``k* ∝ D^(1/(alpha+1))``, and the loss is the frequency mass left over,
``L(D) ∝ sum_{k > k*} p_k ∝ k*^-alpha ∝ D^(-alpha/(alpha+1))`` (Michaud et al. 2023, Sec. 2, eq. 4-5); if instead a
net of N parameters has room for ``k* ∝ N`` quanta, ``L(N) - L_inf ∝ N^-alpha`` (eq. 3). The exponents are fixed by
the data's Zipf exponent before any training.

- :func:`zipf_frequencies`: ``p_k``, normalised over ``n_tasks`` quanta.
- :func:`quanta_exponents`: the predicted exponents of ``L(N)`` and ``L(D)`` for a given ``alpha``.
- :func:`quanta_loss`: the model's ``L(D)`` for a learning threshold ``tau`` (finite number of quanta included).
- :func:`staircase_exponent`: the log-log slope of that ``L(D)`` over a finite grid of ``D`` (what a finite experiment
  with finitely many quanta should measure; it tends to ``alpha/(alpha+1)`` as the grid and the number of quanta grow).
- :func:`multitask_sparse_parity`: the paper's task (Sec. 3): a one-hot control index ``t`` picks subtask ``t`` with
  probability ``p_t``; the label is the parity of a fixed random subset of ``k`` of the ``n_bits`` data bits.
- :func:`sparse_parity_mlp` / :func:`train_sparse_parity`: a one-hidden-layer MLP on ``[one-hot(t), bits]`` trained
  full-batch on ``D`` samples, returning its exact test error on every subtask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import as_array, positive_float, positive_int
from ..seeding import rng as make_rng

__all__ = [
    "QuantaExponents",
    "SparseParityTask",
    "zipf_frequencies",
    "quanta_exponents",
    "quanta_loss",
    "staircase_exponent",
    "multitask_sparse_parity",
    "sparse_parity_mlp",
    "train_sparse_parity",
]


def zipf_frequencies(n_tasks: int, alpha: float) -> np.ndarray:
    """Subtask frequencies ``p_k = k^-(alpha+1) / sum_j j^-(alpha+1)``, ``k = 1..n_tasks`` (Michaud et al. 2023, eq. 2).

    Parameters
    ----------
    n_tasks : int
        Number of quanta (>= 1). alpha : float > 0, the scaling exponent the frequencies imply.

    Returns
    -------
    numpy.ndarray
        ``(n_tasks,)`` decreasing, summing to 1.
    """
    n_tasks = positive_int(n_tasks, "n_tasks")
    alpha = positive_float(alpha, "alpha")
    weights = np.arange(1, n_tasks + 1, dtype=float) ** -(alpha + 1)
    return weights / weights.sum()


@dataclass(frozen=True)
class QuantaExponents:
    """Exponents the quantization model predicts from the Zipf exponent ``alpha`` (Michaud et al. 2023, Sec. 2).

    parameters: ``alpha`` in ``L(N) - L_inf ∝ N^-alpha`` (eq. 3); data: ``alpha/(alpha+1)`` in ``L(D) ∝ D^-(...)``
    (eq. 5; the same for training steps in the multi-epoch regime, eq. 6).
    """

    alpha: float
    parameters: float
    data: float


def quanta_exponents(alpha: float) -> QuantaExponents:
    """The predicted scaling exponents for Zipf exponent ``alpha > 0``: ``N^-alpha`` and ``D^-alpha/(alpha+1)``."""
    alpha = positive_float(alpha, "alpha")
    return QuantaExponents(alpha=alpha, parameters=alpha, data=alpha / (alpha + 1))


def quanta_loss(
    n_samples: Any,
    frequencies: Any,
    threshold: float,
    *,
    unlearned_loss: float = 1.0,
) -> np.ndarray:
    """The quantization model's loss after training on ``D`` samples: quanta seen >= ``threshold`` times are learned.

    ``L(D) = unlearned_loss * sum_k p_k [D p_k < threshold]`` (expected counts ``D p_k``; Michaud et al. 2023, Sec. 2),
    so for Zipf ``p_k`` and many quanta ``L ∝ D^(-alpha/(alpha+1))`` until all quanta are learned (then 0).

    Parameters
    ----------
    n_samples : float or array, shape (m,)
        Training-set sizes ``D > 0``.
    frequencies : array, shape (n_tasks,)
        ``p_k`` (e.g. :func:`zipf_frequencies`), non-negative.
    threshold : float
        ``tau > 0``, examples needed to learn a quantum.
    unlearned_loss : float
        Loss on an unlearned quantum (e.g. ``ln 2`` for a guessed bit in cross-entropy, 1/2 for its error rate).

    Returns
    -------
    numpy.ndarray
        ``(m,)`` predicted loss (0-d input gives shape ``(1,)``).
    """
    d = as_array(np.atleast_1d(n_samples), "n_samples", ndim=1)
    if np.any(d <= 0):
        raise ValueError("n_samples must be positive")
    p = as_array(frequencies, "frequencies", ndim=1)
    if np.any(p < 0):
        raise ValueError("frequencies must be non-negative")
    threshold = positive_float(threshold, "threshold")
    unlearned_loss = positive_float(unlearned_loss, "unlearned_loss", allow_zero=True)
    unlearned = d[:, None] * p[None, :] < threshold
    return unlearned_loss * (unlearned * p[None, :]).sum(axis=1)


def staircase_exponent(n_samples: Any, frequencies: Any, threshold: float) -> float:
    """Minus the least-squares slope of ``log L(D)`` against ``log D`` for the quanta model's :func:`quanta_loss`.

    On a finite grid of ``D`` with finitely many quanta, ``L(D)`` is a staircase (one step per quantum learned) cut
    off at the last quantum, so its fitted exponent differs from the asymptotic ``alpha/(alpha+1)`` by a few
    hundredths; this is the exponent the model predicts for that experiment, computed from the data alone (plus
    ``threshold``). Grid points where every quantum is learned (``L = 0``) are dropped.

    Parameters
    ----------
    n_samples : array, shape (m,)
        The grid of training-set sizes (at least 2 with ``L > 0``).
    frequencies : array, shape (n_tasks,)
        ``p_k``. threshold: ``tau``, examples needed per quantum.

    Returns
    -------
    float
        The fitted exponent (positive when ``L`` falls with ``D``).
    """
    d = as_array(n_samples, "n_samples", ndim=1)
    loss = quanta_loss(d, frequencies, threshold)
    keep = loss > 0
    if keep.sum() < 2 or np.unique(d[keep]).size < 2:
        raise ValueError("n_samples must give at least 2 distinct sizes with unlearned quanta (L(D) > 0)")
    return float(-np.polyfit(np.log(d[keep]), np.log(loss[keep]), 1)[0])


@dataclass(frozen=True)
class SparseParityTask:
    """Multitask sparse parity (Michaud et al. 2023, Sec. 3).

    subsets: ``(n_tasks, k)`` the data-bit indices whose parity is subtask ``t``'s label; frequencies: ``(n_tasks,)``
    ``p_t``; n_bits: data bits per input. Inputs are ``(task index t, bits in {0, 1}^n_bits)``; a net sees them as
    ``[one-hot(t), 2 bits - 1]`` (the paper's control bits followed by the data bits).
    """

    subsets: np.ndarray
    frequencies: np.ndarray
    n_bits: int

    @property
    def n_tasks(self) -> int:
        return int(self.subsets.shape[0])

    def labels(self, tasks: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Parity of each row's subset bits: ``tasks (m,)`` int, ``bits (m, n_bits)`` in {0, 1} -> ``(m,)`` int64."""
        tasks = np.asarray(tasks, dtype=np.int64)
        bits = np.asarray(bits, dtype=np.int64)
        return (np.take_along_axis(bits, self.subsets[tasks], axis=1).sum(axis=1) % 2).astype(np.int64)

    def sample(self, n_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n_samples`` i.i.d. draws: tasks ``(m,)`` from ``p_t``, uniform bits ``(m, n_bits)``, labels ``(m,)``."""
        n_samples = positive_int(n_samples, "n_samples")
        gen = make_rng(seed)
        tasks = gen.choice(self.n_tasks, size=n_samples, p=self.frequencies)
        bits = gen.integers(0, 2, size=(n_samples, self.n_bits))
        return tasks, bits, self.labels(tasks, bits)


def multitask_sparse_parity(n_tasks: int, n_bits: int, k: int, alpha: float, seed: int = 0) -> SparseParityTask:
    """A multitask sparse parity task: ``n_tasks`` random ``k``-subsets of ``n_bits`` bits, Zipf(alpha) frequencies.

    Michaud et al. (2023, Sec. 3) use ``n_tasks = 500``, ``n_bits = 100``, ``k = 3``; smaller ``n_bits`` and ``k``
    make each subtask learnable from fewer examples (the quanta model only needs each to be learnable).
    """
    n_tasks = positive_int(n_tasks, "n_tasks")
    n_bits = positive_int(n_bits, "n_bits")
    k = positive_int(k, "k")
    if k > n_bits:
        raise ValueError(f"k must be <= n_bits={n_bits}, got {k}")
    gen = make_rng(seed)
    subsets = np.stack([np.sort(gen.choice(n_bits, size=k, replace=False)) for _ in range(n_tasks)])
    return SparseParityTask(subsets=subsets, frequencies=zipf_frequencies(n_tasks, alpha), n_bits=n_bits)


class _ParityMLP(nn.Module):
    """``Linear([one-hot(t), x]) -> ReLU -> Linear(2)``, with the one-hot columns stored as an embedding table."""

    def __init__(self, n_tasks: int, n_bits: int, width: int) -> None:
        super().__init__()
        full = nn.Linear(n_tasks + n_bits, width)  # torch's default init of the equivalent dense layer
        self.control = nn.Parameter(full.weight[:, :n_tasks].T.detach().clone())  # (n_tasks, width)
        self.data = nn.Parameter(full.weight[:, n_tasks:].detach().clone())  # (width, n_bits)
        self.bias = nn.Parameter(full.bias.detach().clone())
        self.out = nn.Linear(width, 2)

    def forward(self, tasks: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        hidden = nn.functional.embedding(tasks, self.control) + bits @ self.data.T + self.bias
        return self.out(torch.relu(hidden))


def sparse_parity_mlp(task: SparseParityTask, width: int, seed: int = 0) -> nn.Module:
    """A one-hidden-layer ReLU MLP on ``[one-hot(t), 2 bits - 1]`` (torch's default init), called as
    ``model(tasks (m,) int64, signs (m, n_bits) float32) -> logits (m, 2)``; the one-hot part is an index lookup."""
    width = positive_int(width, "width")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _ParityMLP(task.n_tasks, task.n_bits, width)


def train_sparse_parity(
    task: SparseParityTask,
    n_samples: int,
    *,
    width: int = 128,
    steps: int = 600,
    lr: float = 1e-2,
    weight_decay: float = 1e-2,
    seed: int = 0,
    eval_tasks: int | None = None,
) -> np.ndarray:
    """Train :func:`sparse_parity_mlp` on ``n_samples`` draws of ``task`` and return its exact error on each subtask.

    Full-batch AdamW on the cross-entropy of the ``D = n_samples`` training samples for ``steps`` updates (repeated
    samples are merged with their counts as weights: the same loss and gradient, less work). The error on subtask
    ``t`` is measured exactly, on all ``2^n_bits`` bit strings.

    Parameters
    ----------
    task : SparseParityTask
    n_samples : int
        Training-set size D.
    width, steps, lr, weight_decay : model width and optimiser settings.
    seed : int
        Drives the training sample and the init.
    eval_tasks : int, optional
        Evaluate only the first ``eval_tasks`` subtasks (the rest are reported as NaN); default all.

    Returns
    -------
    numpy.ndarray
        ``(n_tasks,)`` error rate per subtask in [0, 1] (1/2 = guessing).
    """
    n_samples = positive_int(n_samples, "n_samples")
    steps = positive_int(steps, "steps", minimum=0)
    lr = positive_float(lr, "lr")
    weight_decay = positive_float(weight_decay, "weight_decay", allow_zero=True)
    if task.n_bits > 16:
        raise ValueError(f"task.n_bits must be <= 16 for the exact evaluation over all bit strings, got {task.n_bits}")
    n_eval = task.n_tasks if eval_tasks is None else min(positive_int(eval_tasks, "eval_tasks"), task.n_tasks)
    tasks, bits, labels = task.sample(n_samples, seed)
    # Merge repeated (task, bit string) pairs: the full-batch loss is a count-weighted mean over unique inputs.
    codes = tasks.astype(np.int64) * (1 << task.n_bits) + bits @ (1 << np.arange(task.n_bits))
    _, first, counts = np.unique(codes, return_index=True, return_counts=True)
    # Only the control rows of subtasks in the sample get gradients. For the others AdamW's moments stay 0, so its
    # update is the decoupled weight decay alone, row *= (1 - lr weight_decay) per step (Loshchilov & Hutter 2019):
    # train the seen rows only and apply that factor to the rest afterwards (the same result, less work).
    seen, compact = np.unique(tasks[first], return_inverse=True)
    t_train = torch.as_tensor(compact.reshape(-1))
    x_train = torch.as_tensor(2.0 * bits[first] - 1.0, dtype=torch.float32)
    y_train = torch.as_tensor(labels[first])
    w_train = torch.as_tensor(counts / n_samples, dtype=torch.float32)
    model = sparse_parity_mlp(task, width, seed=seed)
    initial = model.control.detach().clone()
    model.control = nn.Parameter(initial[torch.as_tensor(seen)].clone())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = (nn.functional.cross_entropy(model(t_train, x_train), y_train, reduction="none") * w_train).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        full = initial * (1 - lr * weight_decay) ** steps
        full[torch.as_tensor(seen)] = model.control.detach()
    model.control = nn.Parameter(full)
    all_bits = (np.arange(1 << task.n_bits)[:, None] >> np.arange(task.n_bits)) & 1  # (2^n, n_bits)
    errors = np.full(task.n_tasks, np.nan)
    signs = torch.as_tensor(2.0 * all_bits - 1.0, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, n_eval, 256):
            block = np.arange(start, min(start + 256, n_eval))
            t_eval = np.repeat(block, len(all_bits))
            b_eval = np.tile(all_bits, (len(block), 1))
            pred = model(torch.as_tensor(t_eval), signs.repeat(len(block), 1)).argmax(dim=1).numpy()
            wrong = (pred != task.labels(t_eval, b_eval)).reshape(len(block), -1)
            errors[block] = wrong.mean(axis=1)
    return errors
