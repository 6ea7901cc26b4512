"""The bad-input table: public functions x bad inputs, each expected to raise ValueError naming the argument.

One row per case: (function, argument, bad input, call, the text the message must contain). Shared by
tests/test_bad_input.py (one test each) and the generator of docs/bad-inputs.md, so the table and the tests
cannot drift apart. ``KNOWN_GAPS`` lists the cases the strand modules do not handle yet (reported to their owners;
their tests are xfail(strict=False) so a fix turns them green without an edit here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Case:
    function: str
    argument: str
    bad: str
    call: Callable[[], Any]
    names: str  # the message must contain this (the argument's name)

    @property
    def id(self) -> str:
        return f"{self.function}[{self.argument}: {self.bad}]"


def _x(n: int = 5, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _with_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flat[0] = np.nan
    return a


def _net(d: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _batch(n: int = 6, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randn(n, 1, generator=g)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).mean()


def _gram(n: int = 5) -> np.ndarray:
    x = _x(n, 3)
    return x @ x.T + np.eye(n)


def _kernel_cases() -> list[Case]:
    from learnmech import kernels

    relu = kernels.mlp(1, "relu")
    k, y = _gram(5), np.ones(5)
    return [
        Case("kernels.mlp", "hidden_layers", "-1", lambda: kernels.mlp(-1, "relu"), "hidden_layers"),
        Case("kernels.mlp", "hidden_layers", "1.5 (not an int)", lambda: kernels.mlp(1.5, "relu"), "hidden_layers"),
        Case("kernels.mlp", "activation", "unknown name 'softsignz'", lambda: kernels.mlp(1, "softsignz"),
             "activation"),
        Case("kernels.mlp", "W_std", "NaN", lambda: kernels.mlp(1, "relu", W_std=NAN), "W_std"),
        Case("kernels.mlp", "W_std", "-1", lambda: kernels.mlp(1, "relu", W_std=-1.0), "W_std"),
        Case("kernels.mlp", "b_std", "inf", lambda: kernels.mlp(1, "relu", b_std=INF), "b_std"),
        Case("kernels.mlp", "parameterization", "unknown 'bogus'",
             lambda: kernels.mlp(1, "relu", parameterization="bogus"), "parameterization"),
        Case("kernels.mlp", "width", "missing with parameterization='standard'",
             lambda: kernels.mlp(1, "relu", parameterization="standard"), "width"),
        Case("kernels.mlp", "width", "0", lambda: kernels.mlp(1, "relu", parameterization="standard", width=0),
             "width"),
        Case("kernel_fn", "x1", "NaN entry", lambda: relu(_with_nan(_x())), "x1"),
        Case("kernel_fn", "x1", "empty (0, 3)", lambda: relu(np.zeros((0, 3))), "x1"),
        Case("kernel_fn", "x1", "strings", lambda: relu(np.array([["a", "b"]])), "x1"),
        Case("kernel_fn", "x2", "feature count 4 != x1's 3", lambda: relu(_x(5, 3), _x(2, 4)), "x2"),
        Case("kernels.empirical_ntk", "model", "not a torch.nn.Module",
             lambda: kernels.empirical_ntk("net", _x()), "model"),
        Case("kernels.empirical_ntk", "x1", "NaN entry", lambda: kernels.empirical_ntk(_net(), _with_nan(_x())), "x1"),
        Case("kernels.empirical_ntk", "x1", "empty (0, 3)", lambda: kernels.empirical_ntk(_net(), np.zeros((0, 3))),
             "x1"),
        Case("kernels.empirical_ntk", "x1", "5 features for a 3-input net",
             lambda: kernels.empirical_ntk(_net(), _x(4, 5)), "x1"),
        Case("kernels.empirical_ntk", "mode", "unknown 'bogus'",
             lambda: kernels.empirical_ntk(_net(), _x(), mode="bogus"), "mode"),
        Case("kernels.empirical_ntk", "batch_size", "0",
             lambda: kernels.empirical_ntk(_net(), _x(), batch_size=0), "batch_size"),
        Case("kernels.gradient_flow", "k_train_train", "not square (5, 4)",
             lambda: kernels.gradient_flow(k[:, :4], k[:2], y, 1.0), "k_train_train"),
        Case("kernels.gradient_flow", "k_train_train", "NaN entry",
             lambda: kernels.gradient_flow(_with_nan(k), k[:2], y, 1.0), "k_train_train"),
        Case("kernels.gradient_flow", "k_test_train", "3 columns for 5 training points",
             lambda: kernels.gradient_flow(k, k[:2, :3], y, 1.0), "k_test_train"),
        Case("kernels.gradient_flow", "y_train", "4 targets for 5 training points",
             lambda: kernels.gradient_flow(k, k[:2], y[:4], 1.0), "y_train"),
        Case("kernels.gradient_flow", "t", "-1", lambda: kernels.gradient_flow(k, k[:2], y, -1.0), "t"),
        Case("kernels.gradient_flow", "t", "NaN", lambda: kernels.gradient_flow(k, k[:2], y, NAN), "t"),
        Case("kernels.gradient_flow", "lr", "0", lambda: kernels.gradient_flow(k, k[:2], y, 1.0, lr=0.0), "lr"),
        Case("kernels.nngp_posterior", "noise", "-1",
             lambda: kernels.nngp_posterior(k, k[:2], k[:2, :2], y, noise=-1.0), "noise"),
        Case("kernels.nngp_posterior", "k_test_test", "(3, 3) for 2 test points",
             lambda: kernels.nngp_posterior(k, k[:2], k[:3, :3], y), "k_test_test"),
    ]


def _solvable_cases() -> list[Case]:
    from learnmech import solvable

    lam, coeffs = np.array([1.0, 0.5, 0.25]), np.array([1.0, 1.0, 1.0])
    return [
        Case("solvable.eigenlearning", "eigenvalues", "empty",
             lambda: solvable.eigenlearning(np.array([]), np.array([]), 10), "eigenvalues"),
        Case("solvable.eigenlearning", "eigenvalues", "negative entry",
             lambda: solvable.eigenlearning(np.array([1.0, -0.5, 0.25]), coeffs, 10), "eigenvalues"),
        Case("solvable.eigenlearning", "eigenvalues", "NaN entry",
             lambda: solvable.eigenlearning(np.array([1.0, NAN, 0.25]), coeffs, 10), "eigenvalues"),
        Case("solvable.eigenlearning", "target_coeffs", "2 coefficients for 3 eigenvalues",
             lambda: solvable.eigenlearning(lam, coeffs[:2], 10), "target_coeffs"),
        Case("solvable.eigenlearning", "n", "0", lambda: solvable.eigenlearning(lam, coeffs, 0), "n"),
        Case("solvable.eigenlearning", "ridge", "-1", lambda: solvable.eigenlearning(lam, coeffs, 10, ridge=-1.0),
             "ridge"),
        Case("solvable.eigenlearning", "noise", "NaN", lambda: solvable.eigenlearning(lam, coeffs, 10, noise=NAN),
             "noise"),
        Case("solvable.kernel_regression", "y_train", "4 targets for 5 points",
             lambda: solvable.kernel_regression(_gram(), _gram()[:2], np.ones(4)), "y_train"),
        Case("solvable.power_law_spectrum", "num_modes", "0", lambda: solvable.power_law_spectrum(0, 1.5),
             "num_modes"),
        Case("solvable.ridge_risk", "ridge", "-1", lambda: solvable.ridge_risk(0.5, ridge=-1.0), "ridge"),
    ]


def _laws_cases() -> list[Case]:
    from learnmech import laws

    rng = np.random.default_rng(0)
    N = np.repeat([1e6, 3e6, 1e7, 3e7], 3)
    D = np.tile([1e8, 3e8, 1e9], 4)
    loss = 1.8 + 400 / N**0.34 + 2000 / D**0.37 + rng.normal(0, 1e-3, N.size)
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    y = 3.0 * x**-0.5
    return [
        Case("laws.fit_scaling_law", "N", "negative entry",
             lambda: laws.fit_scaling_law(-N, D, loss, n_bootstrap=0), "N"),
        Case("laws.fit_scaling_law", "D", "11 values for 12 runs",
             lambda: laws.fit_scaling_law(N, D[:-1], loss, n_bootstrap=0), "D"),
        Case("laws.fit_scaling_law", "loss", "NaN entry",
             lambda: laws.fit_scaling_law(N, D, _with_nan(loss), n_bootstrap=0), "loss"),
        Case("laws.fit_scaling_law", "N", "3 runs for 5 parameters",
             lambda: laws.fit_scaling_law(N[:3], D[:3], loss[:3], n_bootstrap=0), "points"),
        Case("laws.fit_scaling_law", "huber_delta", "0",
             lambda: laws.fit_scaling_law(N, D, loss, huber_delta=0.0, n_bootstrap=0), "huber_delta"),
        Case("laws.fit_scaling_law", "n_bootstrap", "-1",
             lambda: laws.fit_scaling_law(N, D, loss, n_bootstrap=-1), "n_bootstrap"),
        Case("laws.fit_power_law", "x", "zero entry (log of 0)",
             lambda: laws.fit_power_law(np.array([0.0, 1.0, 2.0, 3.0]), np.ones(4), n_bootstrap=0), "x"),
        Case("laws.fit_power_law", "y", "4 values for 5 x",
             lambda: laws.fit_power_law(x, y[:4], n_bootstrap=0), "y"),
        Case("laws.fit_power_law", "y", "inf entry",
             lambda: laws.fit_power_law(x, np.r_[y[:4], INF], n_bootstrap=0), "y"),
        Case("laws.fit_power_law", "x", "strings",
             lambda: laws.fit_power_law(np.array(["a", "b", "c"]), np.ones(3), n_bootstrap=0), "x"),
        Case("laws.fit_power_law", "x", "a single point",
             lambda: laws.fit_power_law(x[:1], y[:1], n_bootstrap=0), "points"),
    ]


def _observe_cases() -> list[Case]:
    from learnmech import observe

    feats = _x(12, 4)
    labels = np.repeat([0, 1, 2], 4)
    W = _x(3, 4, seed=1)
    x_batch, y_batch = _batch()
    frozen = _net()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return [
        Case("observe.sharpness", "batch", "not an (inputs, targets) pair",
             lambda: observe.sharpness(_net(), _mse, x_batch), "batch"),
        Case("observe.sharpness", "model", "no trainable parameters",
             lambda: observe.sharpness(frozen, _mse, (x_batch, y_batch)), "model"),
        Case("observe.sharpness", "max_iter", "0",
             lambda: observe.sharpness(_net(), _mse, (x_batch, y_batch), max_iter=0), "max_iter"),
        Case("observe.sharpness", "batch", "NaN inputs",
             lambda: observe.sharpness(_net(), _mse, (x_batch * NAN, y_batch)), "batch"),
        Case("observe.esd_alpha", "weight", "1-D", lambda: observe.esd_alpha(np.ones(10)), "weight"),
        Case("observe.esd_alpha", "weight", "NaN entry", lambda: observe.esd_alpha(_with_nan(_x(40, 30))), "weight"),
        Case("observe.esd_alpha", "weight", "empty (0, 5)", lambda: observe.esd_alpha(np.zeros((0, 5))), "weight"),
        Case("observe.neural_collapse", "labels", "11 labels for 12 features",
             lambda: observe.neural_collapse(feats, labels[:11], W), "labels"),
        Case("observe.neural_collapse", "labels", "a single class",
             lambda: observe.neural_collapse(feats, np.zeros(12, dtype=int), W), "class"),
        Case("observe.neural_collapse", "classifier_weight", "(3, 5) for 4-dim features",
             lambda: observe.neural_collapse(feats, labels, _x(3, 5)), "classifier_weight"),
        Case("observe.neural_collapse", "features", "NaN entry",
             lambda: observe.neural_collapse(_with_nan(feats), labels, W), "features"),
    ]


def _hyper_cases() -> list[Case]:
    from learnmech import hyper

    def model() -> torch.nn.Module:
        return hyper.mlp(3, 16)

    return [
        Case("hyper.parametrize", "scheme", "unknown 'xyz'", lambda: hyper.parametrize(model(), "xyz", 16), "scheme"),
        Case("hyper.parametrize", "base_width", "0", lambda: hyper.parametrize(model(), "mup", 0), "base_width"),
        Case("hyper.parametrize", "model", "not a torch.nn.Module", lambda: hyper.parametrize("net", "mup", 16),
             "model"),
        Case("hyper.parametrize", "output_layer", "no such layer 'nope'",
             lambda: hyper.parametrize(model(), "mup", 16, output_layer="nope"), "output_layer"),
    ]


def _run_cases() -> list[Case]:
    from learnmech import run

    return [
        Case("run.run_jobs", "backend", "unknown 'slurm'",
             lambda: run.run_jobs([], "/nonexistent/never-created.db", backend="slurm"), "backend"),
        Case("run.run_jobs", "workers", "0", lambda: run.run_jobs([], "/nonexistent/never.db", workers=0), "workers"),
        Case("run.sweep_jobs", "seeds", "0", lambda: run.sweep_jobs("toy-coin", {"samples": [10]}, 0), "seeds"),
        Case("run.sweep_jobs", "grid", "a key with no values", lambda: run.sweep_jobs("toy-coin", {"samples": []}),
             "samples"),
        Case("run.sweep_jobs", "grid", "unknown config key", lambda: run.sweep_jobs("toy-coin", {"nokey": [1]}),
             "nokey"),
        Case("run.sweep_jobs", "claim_name", "unknown claim", lambda: run.sweep_jobs("nope", {"samples": [1]}),
             "unknown claim"),
        Case("run.reproduce", "names", "unknown claim", lambda: run.reproduce(["nope"], db="/nonexistent/x.db"),
             "unknown claim"),
    ]


def all_cases() -> list[Case]:
    """Every case, grouped by module; a module that fails to import contributes no cases (reported elsewhere)."""
    return [*_kernel_cases(), *_solvable_cases(), *_laws_cases(), *_observe_cases(), *_hyper_cases(), *_run_cases()]


#: id -> what happens instead of a ValueError naming the argument (reported to the strand owners, see the report).
KNOWN_GAPS: dict[str, str] = {
    "kernels.empirical_ntk[x1: 5 features for a 3-input net]":
        "torch's RuntimeError 'mat1 and mat2 shapes cannot be multiplied (2x5 and 3x8)' escapes; it names no argument",
}
