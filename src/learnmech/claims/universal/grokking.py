"""grokking: with weight decay, test accuracy on modular addition jumps long after the training set is fit.

Theory (Power et al. 2022; the weight-norm account of Liu, Michaud & Tegmark 2023 "Omnigrok"): a net first
memorises the training pairs (train accuracy -> 100%, test accuracy near chance); weight decay then slowly
shrinks the weights towards the low-norm generalising (Fourier) solution, and test accuracy rises to ~100%
much later. Without weight decay nothing pulls the memorising solution towards low norm, so the net does not
generalise within the same budget.

Experiment: an MLP on one-hot pairs (a, b) -> (a + b) mod p, full-batch AdamW, trained twice from the same
init and split: with weight decay and without (the control).

Verdict: the delay, judged in decades. t_train / t_test: the first recorded steps at which train / test accuracy
reach 95%; delay ratio (t_test - every) / t_train (a lower bound: a crossing recorded at step s happened in
(s - every, s]). error = max(0, 1 - log10(delay ratio)), the decades by which the delay falls short of one decade;
NaN (disagrees) if test accuracy never reaches 95% within the budget; tolerance 0 (a definition, not a statistic).

Where the thresholds come from (fixed before the runs): 95% is "generalised" for a task whose chance level is 1/p
(Power et al. 2022 use 99%, fig. 1; 95% only makes the crossing earlier, i.e. the ratio smaller: conservative).
"Long after" = at least one decade: Power et al. (2022, fig. 1 left) show train accuracy at ~100% after ~10^3 steps
and validation accuracy after ~10^5, two decades on the log-step axis; one decade is half of that published gap.

Control (``no-weight-decay``): the same net, split and init trained without weight decay; rival statement "weight
decay is not needed, the net generalises anyway (>= 95% test accuracy within the budget)". error = max(0, 0.95 -
best test accuracy), tolerance 0: rejected iff the run without weight decay never reaches 95%.

Configs (chosen after a failure, hence a written rule): at p = 97 with 50% of the pairs for training the delay was
6.8x (test 95% at step 420, train at step 60: the claim disagreed, although test accuracy was still ~0 when the
training set was fit), and at p = 97 with 30% the net had not generalised within 2000 steps. Rule, applied to
both configs: Power et al. (2022, fig. 1 right) show the delay growing as the training fraction shrinks, so take
the smallest training fraction, in steps of 0.1, at which the run with weight decay generalises within the CPU
budget (quick <= 60 s, full <= 5 min on 2 cores) for p in {31, 59}: quick p = 31 at 0.6, full p = 59 at 0.4.
Seeds 0-9 (quick) and 0-2 (full) give the same verdict (see the report's per-seed table).

Choices fixed after a first look (besides the configs above): a first design counted qualitative criteria; the
verdict is the delay in decades, the no-weight-decay run is a Control (it must be rejected for the verdict to
count), and each threshold states its source.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from learnmech.claims import Claim, Control, Diverged, Panel, Result, Series, step
from learnmech.observe import weight_norms
from learnmech.observe.tasks import TrainHistory, mlp, modular_addition, train

THRESHOLD = 0.95  # "reaches >95%" (issue statement)
MIN_DELAY_RATIO = 10.0  # "long after" = at least one decade in steps


def _parameter_norm(_step: int, model: torch.nn.Module) -> float:
    """Euclidean norm of all parameters: the quantity weight decay shrinks (Liu et al. 2023)."""
    return math.sqrt(sum(norm**2 for norm in weight_norms(model).values()))


def _run_once(config: dict[str, Any], seed: int, weight_decay: float, label: str, offset: int) -> TrainHistory:
    data = modular_addition(config["p"], config["train_fraction"], seed=seed)
    model = mlp(2 * config["p"], [config["width"]], config["p"], "relu", seed=seed)
    total = 2 * config["steps"]
    history = train(
        model, data, steps=config["steps"], lr=config["lr"], optimizer="adamw", loss="cross_entropy",
        weight_decay=weight_decay, every=config["every"], callback=_parameter_norm, seed=seed,
        progress=lambda done, _n: step(offset + done, total, label),
    )
    if history.diverged_step is not None:
        raise Diverged(history.diverged_step, f"{label}: non-finite loss at step {history.diverged_step}")
    return history


def run(config: dict[str, Any], seed: int) -> Result:
    grok = _run_once(config, seed, config["weight_decay"], "with weight decay", 0)
    control = _run_once(config, seed, 0.0, "without weight decay", config["steps"])

    t_train = grok.first_step(grok.train_acc, THRESHOLD)
    t_test = grok.first_step(grok.test_acc, THRESHOLD)
    # Accuracies are recorded every config["every"] steps, so a crossing recorded at step s happened in
    # (s - every, s]: (t_test - every) / t_train is a lower bound on the true delay ratio (conservative).
    delay_ratio = math.nan
    if t_test is not None and t_train is not None:
        delay_ratio = max(t_test - config["every"], 0) / max(t_train, 1)
    control_best = max(control.test_acc)
    failures = {  # the three parts of the sentence, kept as metrics for the report
        "groks": t_test is None,
        "delayed": not (delay_ratio >= MIN_DELAY_RATIO),
        "control": control_best >= THRESHOLD,
    }
    # Floor at 1e-3 (ratio 0: test crossed within one recording interval of train) so the error stays finite.
    decades = math.log10(max(delay_ratio, 1e-3)) if math.isfinite(delay_ratio) else math.nan
    error = max(0.0, math.log10(MIN_DELAY_RATIO) - decades) if math.isfinite(decades) else math.nan
    controls = [Control(
        "no-weight-decay", "without weight decay the net generalises anyway (>= 95% test accuracy within the "
        "budget); error = max(0, 0.95 - best test accuracy), tolerance 0",
        prediction=f">= {THRESHOLD}", measurement=control_best, error=max(0.0, THRESHOLD - control_best),
        tolerance=0.0)]
    test_at_fit = grok.test_acc[grok.steps.index(t_train)] if t_train is not None else math.nan

    def curves(history: TrainHistory, name: str) -> list[Series]:
        steps = history.steps[1:]  # log-step axis: drop step 0
        return [
            Series(f"train ({name})", steps, history.train_acc[1:]),
            Series(f"test ({name})", steps, history.test_acc[1:]),
        ]

    # The prediction drawn: test accuracy >= 95% from 10x the train-fit step on (where the claim expects it).
    predicted_from = MIN_DELAY_RATIO * max(t_train or 1, 1)
    predicted = Series("prediction: test >= 95% only after 10x the train-fit step", [predicted_from, config["steps"]],
                       [THRESHOLD, THRESHOLD], role="prediction", lower=[THRESHOLD, THRESHOLD], upper=[1.0, 1.0])
    rival = Series("control: test >= 95% without weight decay (rejected)" if controls[0].rejected else
                   "control: test >= 95% without weight decay (NOT rejected)", [1, config["steps"]],
                   [THRESHOLD, THRESHOLD], role="reference")
    figure = [
        Panel("Modular addition with weight decay", "training step", "accuracy", [*curves(grok, "wd"), predicted],
              xscale="log", hlines=[(THRESHOLD, "95%")]),
        Panel("Control: no weight decay", "training step", "accuracy", [*curves(control, "no wd"), rival],
              xscale="log", hlines=[(THRESHOLD, "95%")]),
        Panel("Parameter norm", "training step", "||theta||_2", [
            Series("with weight decay", grok.steps[1:], grok.extra[1:]),
            Series("without weight decay", control.steps[1:], control.extra[1:]),
        ], xscale="log"),
    ]
    return Result(
        prediction={"test_acc_with_wd_at_least": THRESHOLD, "delay_ratio_at_least": MIN_DELAY_RATIO,
                    "test_acc_without_wd_below": THRESHOLD},
        measurement={"test_acc_with_wd": grok.test_acc[-1], "delay_ratio": delay_ratio,
                     "test_acc_without_wd": control_best},
        error=error,
        tolerance=0.0,
        units="decades by which the delay ratio falls short of one decade (10x)",
        controls=controls,
        figure=figure,
        metrics={"step_train_95": t_train, "step_test_95": t_test, "test_acc_when_train_fit": test_at_fit,
                 "final_train_acc_with_wd": grok.train_acc[-1], "final_train_acc_without_wd": control.train_acc[-1],
                 "final_parameter_norm_with_wd": grok.extra[-1], "final_parameter_norm_without_wd": control.extra[-1],
                 "delay_decades": decades if math.isfinite(decades) else None,
                 "criteria_failed": [name for name, bad in failures.items() if bad]},
    )


CLAIM = Claim(
    name="grokking",
    strand="universal",
    reference="Power et al. (2022), Fig. 1; Liu, Michaud & Tegmark (2023)",
    statement=(
        "theory says an MLP trained on modular addition with weight decay fits the training pairs first and "
        "reaches >95% test accuracy at least 10x more steps later, while without weight decay it does not "
        "generalise within the same budget"
    ),
    quick={"p": 31, "train_fraction": 0.6, "width": 256, "lr": 1e-2, "weight_decay": 1.0, "steps": 1200,
           "every": 10},
    full={"p": 59, "train_fraction": 0.4, "width": 256, "lr": 1e-2, "weight_decay": 1.0, "steps": 2000,
          "every": 10},
    run=run,
)
