"""neural-feature-ansatz: after training, the first-layer Gram W^T W is proportional to a power of the AGOP.

Theory (Radhakrishnan, Beaglehole, Pandit & Belkin 2024, Science, "Mechanism for feature learning in neural networks
and backpropagation-free machine learning models", the Neural Feature Ansatz, eq. 3 of the seed paper):
``W_1^T W_1 ∝ AGOP^alpha`` with ``AGOP = (1/n) sum_i J(x_i)^T J(x_i)``, ``J = df/dx`` the input Jacobian of the
trained net. For a two-layer *linear* net ``f = W_2 W_1 x`` trained by gradient flow from balanced initialisation
it is a theorem with ``alpha = 1/2``: ``W_1 W_1^T - W_2^T W_2`` is conserved (= 0), so ``AGOP = W_1^T W_2^T W_2
W_1 = (W_1^T W_1)^2`` (Radhakrishnan et al. 2024; ``alpha = 1/L`` for depth L, Tansley, Massart & Cartis 2025).
For nonlinear nets it is an ansatz, stated with the AGOP itself (alpha = 1); we report alpha = 1/2 beside it.

Experiment, two settings, each trained from the seed:
- ``linear`` (the theory's own setting, synthetic): ``f = W_2 W_1 x``, Gaussian inputs, a rank-r linear teacher
  with distinct singular values, small i.i.d. init N(0, linear_init_scale^2) (nearly balanced: the imbalance is
  O(linear_init_scale^2)), full-batch GD on the square loss. Judged at alpha = 1/2 (the theorem).
- ``digits`` (real data: scikit-learn's handwritten digits, ``observe.tasks.digits``): a one-hidden-layer ReLU MLP
  64 -> width -> 10, minibatch SGD on cross-entropy. Judged at alpha = 1 (the ansatz as stated); alpha = 1/2 is
  reported in the metrics and figure.
Measurement: Pearson correlation rho of the flattened matrices (``observe.matrix_correlation``, the statistic of
Radhakrishnan et al. 2024) between ``W_1^T W_1`` and ``observe.psd_power(observe.agop(net, x_train), alpha)``.

Verdict: error = max over settings of max(0, 0.9 - rho); tolerance 0 (a definition). Where 0.9 comes from (fixed
before any run): the paper gives no threshold; "near 1" is operationalised as rho >= 0.9, i.e. the ansatz explains
>= 81% of the variance of the Gram's entries. It is not a statistic, so no seed-based interval applies; the linear
setting, where the theorem is exact, shows how far above the threshold an exact law lands (1 - rho ~ 1e-4).
Also reported (metrics, not judged): the overlap of the top-k eigenvector subspaces of W^T W and the AGOP
(``observe.eigenspace_overlap``; chance level k/d; k = teacher rank, resp. 9 = classes - 1 for digits), cosine
similarities, and the relative change ||G - G_0||_F / ||G_0||_F (how much of the Gram was learned).

Controls (rejected when rho < 0.9, judged like the claim):
- ``holds-at-init (<setting>)``: "the NFA holds already at initialisation: rho(W_0^T W_0, AGOP_0) >= 0.9". At init
  both matrices are random (W_0^T W_0 a Wishart matrix, AGOP_0 = W_0^T M W_0 with a random M), so rho_0 is a
  random-matrix value, well above 0 because both share the diagonal structure of W_0^T W_0, but not near 1.
- ``initial-gram (<setting>)``: "the trained AGOP is explained by the initial weights: rho(W_0^T W_0, AGOP_T) >=
  0.9" (the check of Radhakrishnan et al. 2024 that the correlation is produced by training, not inherited).

Domain (a written rule, fixed after the first look at the data, see below): the ansatz is about *learned* features,
so the run must be in the feature-learning regime, where W_1^T W_1 is dominated by what training added. We scale the
first layer's default (Kaiming-uniform) init by ``init_scale = 0.1``; the boundary run with the default init
(``init_scale = 1``), where W_1^T W_1 stays closer to its random start, is reported as a labelled boundary metric,
not judged. First look (digits, 1000 images, width 256, seeds 0-1): full-batch GD at lr 0.1 from the default init
gave rho = 0.72 (W barely moved: lazy), Adam or a 0.1-scaled init gave rho = 0.92-0.98; the rule "shrink the
first-layer init until the learned part dominates (relative Gram change > 1)" picks init_scale = 0.1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from learnmech.claims import Claim, Control, Diverged, Panel, Result, Series, step
from learnmech.observe import agop, eigenspace_overlap, matrix_correlation, psd_power
from learnmech.observe.tasks import digits, mlp, train
from learnmech.seeding import torch_generator

#: config keys renamed to the glossary's words (docs/architecture.md): an old key is refused with the new one's name
CONFIG_RENAMED = {"linear_dim": "linear_in_dim", "linear_out": "linear_out_dim", "linear_n": "linear_n_samples",
                  "linear_init_std": "linear_init_scale"}

THRESHOLD = 0.9  # "near 1": rho >= 0.9 (see the module docstring)


def _gram(layer: torch.nn.Linear) -> np.ndarray:
    w = layer.weight.detach().to(torch.float64).cpu().numpy()
    return w.T @ w


def _linear_setting(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """Two-layer linear net on a rank-r linear teacher, full-batch GD on 0.5 * mean ||f(x) - y||^2."""
    d, width, k = config["linear_in_dim"], config["linear_width"], config["linear_out_dim"]
    rank = config["linear_rank"]
    gen = torch_generator(seed)
    x = torch.randn(config["linear_n_samples"], d, generator=gen, dtype=torch.float64)
    # Teacher W* = U diag(s) V^T with distinct singular values s = rank, rank-1, ..., 1 (so W^T W is not flat).
    u = torch.linalg.qr(torch.randn(k, rank, generator=gen, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(d, rank, generator=gen, dtype=torch.float64))[0]
    teacher = u @ torch.diag(torch.arange(rank, 0, -1, dtype=torch.float64)) @ v.T
    y = x @ teacher.T
    net = torch.nn.Sequential(torch.nn.Linear(d, width, bias=False), torch.nn.Linear(width, k, bias=False)).double()
    with torch.no_grad():
        for layer in net:
            layer.weight.copy_(config["linear_init_scale"] * torch.randn(layer.weight.shape, generator=gen,
                                                                          dtype=torch.float64))
    g0, a0 = _gram(net[0]), agop(net, x)
    opt = torch.optim.SGD(net.parameters(), lr=config["linear_lr"])
    for it in range(config["linear_steps"]):
        opt.zero_grad()
        loss = 0.5 * (net(x) - y).pow(2).sum(dim=1).mean()
        if not torch.isfinite(loss):
            raise Diverged(it, f"linear setting: non-finite loss at step {it}")
        loss.backward()
        opt.step()
    with torch.no_grad():
        final_loss = float(0.5 * (net(x) - y).pow(2).sum(dim=1).mean())
    return {"g0": g0, "a0": a0, "g": _gram(net[0]), "a": agop(net, x), "alpha": 0.5, "k": rank,
            "final_loss": final_loss}


def _digits_setting(config: dict[str, Any], seed: int, init_scale: float, label: str) -> dict[str, Any]:
    data = digits(config["n_train"], config["n_test"], seed=seed)
    net = mlp(data.input_dim, [config["width"]], data.num_classes, "relu", seed=seed)
    with torch.no_grad():
        net[0].weight.mul_(init_scale)
    g0, a0 = _gram(net[0]), agop(net, data.x_train)
    history = train(net, data, steps=config["steps"], lr=config["lr"], optimizer="sgd",
                    batch_size=config["batch_size"], loss="cross_entropy", every=config["steps"], seed=seed,
                    progress=lambda done, total: step(done, total, label))
    if history.diverged_step is not None:
        raise Diverged(history.diverged_step, f"{label}: non-finite loss at step {history.diverged_step}")
    return {"g0": g0, "a0": a0, "g": _gram(net[0]), "a": agop(net, data.x_train), "alpha": 1.0,
            "k": data.num_classes - 1, "train_acc": history.train_acc[-1], "test_acc": history.test_acc[-1]}


def _summary(s: dict[str, Any]) -> dict[str, float]:
    g0, a0, g, a, alpha, k = s["g0"], s["a0"], s["g"], s["a"], s["alpha"], s["k"]
    return {
        "rho": matrix_correlation(g, psd_power(a, alpha)),
        "rho_alpha_1": matrix_correlation(g, a),
        "rho_alpha_half": matrix_correlation(g, psd_power(a, 0.5)),
        "cosine": matrix_correlation(g, psd_power(a, alpha), kind="cosine"),
        "rho_init": matrix_correlation(g0, psd_power(a0, alpha)),
        "rho_init_alpha_half": matrix_correlation(g0, psd_power(a0, 0.5)),
        "rho_initial_gram": matrix_correlation(g0, psd_power(a, alpha)),
        "top_k_overlap": eigenspace_overlap(g, a, k),
        "top_k_overlap_init": eigenspace_overlap(g0, a0, k),
        "top_k_chance": k / g.shape[0],
        "k": k,
        "alpha": alpha,
        "gram_relative_change": float(np.linalg.norm(g - g0) / np.linalg.norm(g0)),
    }


def _spectrum(m: np.ndarray) -> list[float]:
    values = np.clip(np.linalg.eigvalsh(m)[::-1], 0, None)
    return list(values / values[0])


def run(config: dict[str, Any], seed: int) -> Result:
    lin = _linear_setting(config, seed)
    dig = _digits_setting(config, seed, config["init_scale"], "digits")
    boundary = _digits_setting(config, seed, 1.0, "digits, default init (boundary)")
    stats = {"linear": _summary(lin), "digits": _summary(dig)}
    bound = _summary(boundary)
    error = max(max(0.0, THRESHOLD - s["rho"]) for s in stats.values())

    controls = []
    for name, s in stats.items():
        a_label = "AGOP^(1/2)" if s["alpha"] == 0.5 else "AGOP"
        controls.append(Control(
            f"holds-at-init ({name})", f"the NFA holds already at initialisation: Pearson rho(W0^T W0, {a_label} "
            f"at init) >= {THRESHOLD}; error = max(0, {THRESHOLD} - rho), tolerance 0",
            prediction=f">= {THRESHOLD}", measurement=s["rho_init"],
            error=max(0.0, THRESHOLD - s["rho_init"]), tolerance=0.0))
        controls.append(Control(
            f"initial-gram ({name})", f"the trained {a_label} is explained by the initial weights: Pearson "
            f"rho(W0^T W0, trained {a_label}) >= {THRESHOLD}; error = max(0, {THRESHOLD} - rho), tolerance 0",
            prediction=f">= {THRESHOLD}", measurement=s["rho_initial_gram"],
            error=max(0.0, THRESHOLD - s["rho_initial_gram"]), tolerance=0.0))

    names = list(stats)
    ticks = [(float(i), f"{n} (alpha={'1/2' if stats[n]['alpha'] == 0.5 else '1'})") for i, n in enumerate(names)]
    xs = [float(i) for i in range(len(names))]

    def status(key: str) -> str:
        rejected = all(c.rejected for c in controls if c.name.startswith(key))
        return "rejected" if rejected else "NOT rejected"

    corr_panel = Panel(
        "NFA: rho(W^T W, AGOP^alpha), synthetic and digits", "setting", "Pearson correlation", [
            Series("prediction: rho >= 0.9", [-0.3, len(names) - 0.7], [1.0, 1.0], role="prediction",
                   lower=[THRESHOLD, THRESHOLD], upper=[1.0, 1.0]),
            Series("trained", xs, [stats[n]["rho"] for n in names], connect=False),
            Series(f"control: at init ({status('holds-at-init')})", xs, [stats[n]["rho_init"] for n in names],
                   role="reference", connect=False, group="init"),
            Series(f"control: initial Gram vs trained AGOP ({status('initial-gram')})", xs,
                   [stats[n]["rho_initial_gram"] for n in names], role="reference", connect=False,
                   group="initial-gram"),
            Series("trained, alpha = 1/2 (digits: reported)", [xs[1]], [stats["digits"]["rho_alpha_half"]],
                   connect=False),
            Series("boundary: default init (not judged)", [xs[1]], [bound["rho"]], connect=False),
        ], hlines=[(THRESHOLD, "0.9")], xticks=ticks)
    top = 20
    spec_panel = Panel(
        "digits: spectra of W^T W and AGOP", "eigenvalue index", "eigenvalue / largest", [
            Series("W^T W (trained)", list(range(1, top + 1)), _spectrum(dig["g"])[:top]),
            Series("AGOP (trained)", list(range(1, top + 1)), _spectrum(dig["a"])[:top]),
            Series("W^T W (init)", list(range(1, top + 1)), _spectrum(dig["g0"])[:top], role="reference"),
        ], yscale="log")
    diag_panel = Panel(
        "digits: per-pixel diagonals (normalised)", "pixel (row-major 8x8)", "diagonal / max", [
            Series("diag W^T W (trained)", list(range(64)), list(np.diag(dig["g"]) / np.diag(dig["g"]).max())),
            Series("diag AGOP (trained)", list(range(64)), list(np.diag(dig["a"]) / np.diag(dig["a"]).max())),
        ])
    return Result(
        prediction={"rho_at_least": THRESHOLD, "alpha_linear": 0.5, "alpha_digits": 1.0},
        measurement={"rho_linear": stats["linear"]["rho"], "rho_digits": stats["digits"]["rho"]},
        error=error,
        tolerance=0.0,
        units="shortfall of the Pearson correlation below 0.9 (worst setting)",
        controls=controls,
        figure=[corr_panel, spec_panel, diag_panel],
        metrics={
            "linear": stats["linear"], "digits": stats["digits"],
            "linear_final_loss": lin["final_loss"],
            "digits_train_acc": dig["train_acc"], "digits_test_acc": dig["test_acc"],
            "boundary_default_init": {**bound, "train_acc": boundary["train_acc"],
                                      "test_acc": boundary["test_acc"]},
            "min_margin": min(s["rho"] for s in stats.values()) - THRESHOLD if not math.isnan(error) else None,
        },
    )


_COMMON = {"linear_in_dim": 20, "linear_width": 50, "linear_out_dim": 5, "linear_rank": 3, "linear_n_samples": 200,
           "linear_init_scale": 1e-3, "linear_lr": 0.05, "linear_steps": 1500, "init_scale": 0.1}

CLAIM = Claim(
    name="neural-feature-ansatz",
    strand="laws",
    reference="Radhakrishnan, Beaglehole, Pandit & Belkin (2024), Science, eq. 3; Tansley et al. (2025)",
    statement=(
        "theory says that after training the first-layer Gram W^T W is proportional to the average gradient outer "
        "product AGOP^alpha (Pearson rho >= 0.9): exactly with alpha = 1/2 in a two-layer linear net, and as an "
        "ansatz with alpha = 1 in a ReLU MLP on real digits; at initialisation it does not hold"
    ),
    quick={**_COMMON, "n_train": 1000, "n_test": 300, "width": 256, "lr": 0.1, "batch_size": 64, "steps": 300},
    full={**_COMMON, "n_train": 1400, "n_test": 397, "width": 1024, "lr": 0.1, "batch_size": 64, "steps": 1500},
    run=run,
)
