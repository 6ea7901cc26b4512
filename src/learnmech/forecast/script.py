"""Load a user's training script (the contract in :mod:`learnmech.forecast`), forecast it, and train it with
Observers so that the forecast can be scored."""

from __future__ import annotations

import importlib.util
import inspect
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..observe import Observer
from ..observe._torch import check_batch
from .card import Forecast
from .core import predict

__all__ = ["Script", "load_script", "forecast_script", "train_script"]

_OPTIMIZER_KEYS = {"name", "lr", "steps", "momentum", "betas", "eps", "batch_size", "every", "seed"}


@dataclass
class Script:
    """A loaded training script: ``module`` plus its parsed settings.

    train, test: ``(inputs, targets)`` (test may be None); settings: the ``optimizer`` dict with defaults filled
    in (name, lr, steps, momentum, betas, eps, batch_size, every, seed); runs, target: the sweep for the loss
    forecast (or None); widths: for the width transfer (or None).
    """

    path: Path
    module: Any
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor] | None
    settings: dict[str, Any]
    runs: Any = None
    target: Any = None
    widths: list[int] | None = None

    def model(self, width: int | None = None) -> torch.nn.Module:
        """A fresh model from the script (at ``width`` when given)."""
        torch.manual_seed(int(self.settings["seed"]))
        return self.module.model() if width is None else self.module.model(width=width)


def load_script(path: str | Path) -> Script:
    """Import the training script at ``path`` and check its contract; ValueError naming what is missing or wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"script must be an existing Python file, got {path}")
    spec = importlib.util.spec_from_file_location(f"learnmech_user_script_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"script {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ValueError(f"script {path} failed to import: {type(exc).__name__}: {exc}") from None
    for name in ("model", "loss_fn", "data", "optimizer"):
        if not hasattr(module, name):
            raise ValueError(f"script {path} must define {name!r} (see `learnmech forecast --help`)")
    if not callable(module.model) or not callable(module.data) or not callable(module.loss_fn):
        raise ValueError(f"script {path}: model and data must be functions and loss_fn callable")
    settings = module.optimizer
    if not isinstance(settings, Mapping):
        raise ValueError(f"script {path}: optimizer must be a dict of settings, got {type(settings).__name__}")
    unknown = set(settings) - _OPTIMIZER_KEYS
    if unknown:
        raise ValueError(f"script {path}: unknown optimizer settings {sorted(unknown)}; known: "
                         f"{sorted(_OPTIMIZER_KEYS)}")
    filled = {"name": "gd", "steps": 300, "momentum": 0.9, "betas": (0.9, 0.999), "eps": 1e-8, "batch_size": None,
              "every": 10, "seed": 0, **settings}
    if "lr" not in settings:
        raise ValueError(f"script {path}: optimizer must set 'lr'")
    if filled["name"] not in ("gd", "momentum", "adam"):
        raise ValueError(f"script {path}: optimizer['name'] must be 'gd', 'momentum' or 'adam', got {filled['name']!r}")
    data = module.data()
    if isinstance(data, Mapping):
        if "train" not in data:
            raise ValueError(f"script {path}: data() must return (inputs, targets) or a dict with 'train'")
        train = check_batch(data["train"], "data()['train']")
        test = check_batch(data["test"], "data()['test']") if data.get("test") is not None else None
    else:
        train, test = check_batch(data, "data()"), None
    runs = getattr(module, "runs", None)
    if callable(runs):
        runs = runs()
    target = getattr(module, "target", None)
    if runs is not None and not isinstance(runs, (str, Path)) and len(runs) == 0:
        runs = None  # the script has no finished runs to offer (e.g. they all diverged): no loss forecast
    widths = getattr(module, "widths", None)
    if widths is not None and "width" not in inspect.signature(module.model).parameters:
        raise ValueError(f"script {path}: widths is set but model() takes no 'width' argument")
    return Script(path=path, module=module, train=train, test=test, settings=filled, runs=runs, target=target,
                  widths=None if widths is None else [int(w) for w in widths])


def forecast_script(script: Script) -> Forecast:
    """:func:`learnmech.forecast.predict` with the script's model, loss, data and settings."""
    s = script.settings
    model_at = None
    if script.widths is not None:
        def model_at(width: int) -> torch.nn.Module:
            return script.model(width)
    runs, target = script.runs, script.target
    if runs is None or target is None:
        runs = target = None
    result = predict(
        script.model(), script.module.loss_fn, script.train, lr=s["lr"], optimizer=s["name"], momentum=s["momentum"],
        betas=tuple(s["betas"]), eps=s["eps"], steps=s["steps"], runs=runs, target=target,
        loss_metric="test_loss" if script.test is not None else "loss", model_at=model_at, widths=script.widths,
        seed=int(s["seed"]),
    )
    if runs is None and (script.runs is not None or script.target is not None):
        result.notes["loss"] = "the script gave no finished runs or no target"
    return result


def _optimizer(script: Script, model: torch.nn.Module) -> torch.optim.Optimizer:
    s = script.settings
    if s["name"] == "gd":
        return torch.optim.SGD(model.parameters(), lr=s["lr"])
    if s["name"] == "momentum":
        return torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"])
    return torch.optim.Adam(model.parameters(), lr=s["lr"], betas=tuple(s["betas"]), eps=s["eps"])


def train_script(script: Script) -> pd.DataFrame:
    """Train the script's model as its settings say (full batch unless ``batch_size``), observing the loss every
    step and, every ``every`` steps on the full training set, the (preconditioned, for Adam) sharpness (warm-started),
    the gradient noise scale and the test loss. Stops at the first non-finite loss. Returns the Observer frame."""
    s = script.settings
    model = script.model()
    loss_fn = script.module.loss_fn
    opt = _optimizer(script, model)
    x, y = script.train
    every = int(s["every"])
    curvature = "adam_sharpness" if s["name"] == "adam" else "sharpness"
    options: dict[str, dict[str, Any]] = {curvature: {"stop": "change", "rtol": 1e-3}}
    if s["name"] == "adam":
        options[curvature]["optimizer"] = opt
    measures: dict[str, Any] = {curvature: curvature, "grad_noise": "grad_noise"}
    if script.test is not None:
        xt, yt = script.test

        def test_loss(model: torch.nn.Module, _batch: Any) -> float:
            with torch.no_grad():
                return float(loss_fn(model(xt), yt))

        measures["test_loss"] = test_loss
    losses = Observer(model, every=1, measure=["loss"])
    periodic = Observer(model, every=every, measure=measures, loss_fn=loss_fn, probe=(x, y), options=options)
    generator = torch.Generator().manual_seed(int(s["seed"]))
    batch_size = s["batch_size"]
    steps = int(s["steps"])
    for step in range(steps + 1):
        if batch_size is None:
            xb, yb = x, y
        else:
            idx = torch.randint(0, x.shape[0], (int(batch_size),), generator=generator)
            xb, yb = x[idx], y[idx]
        loss = loss_fn(model(xb), yb)
        losses.step(loss, step=step)
        finite = math.isfinite(float(loss.detach()))
        if step % every == 0 or step == steps or not finite:
            periodic.measure_now(step, loss, (xb, yb))
        if not finite or step == steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return pd.concat([losses.to_frame(), periodic.to_frame()], ignore_index=True)
