"""learnmech.forecast: predictions for *your* training run, made before it starts and scored after it.

Python::

    from learnmech import forecast
    s = forecast.stability(model, loss_fn, (x, y), optimizer="gd")      # sharpness at init, lr_stable
    s.at(lr=0.1).expectation                                            # edge-of-stability expectation
    fc = forecast.predict(model, loss_fn, (x, y), lr=0.1, runs="sweep.csv", target={"D": 1400})
    print(fc.summary())
    ... train with an Observer (measure=["loss", "sharpness", "grad_noise", ...]) ...
    card = fc.score(observer.to_frame())                                # prediction, measurement, verdict
    card.to_html("forecast.html")                                       # report card with figures

Forecasts (each scored by a rule fixed in :mod:`.card`):

- stability: top Hessian eigenvalue at init and ``lr_stable`` = 2/lambda (GD), (2 + 2 momentum)/lambda (heavy
  ball), (2 + 2 beta1)/((1 - beta1) a) for Adam's preconditioned sharpness a (Cohen et al. 2022); the
  edge-of-stability expectation at a chosen lr (Cohen et al. 2021): sharpness rises to the threshold and hovers.
- batch size: the gradient noise scale B_simple and the critical batch size (McCandlish et al. 2018).
- width transfer: the muP per-parameter learning rates at a target width for an lr tuned on a narrow proxy
  (``hyper.parametrize``), checked by the coordinate check on your architecture (Yang et al. 2022).
- loss: the final loss at your run's size from a small sweep of your own runs (CSV or list of dicts), power law
  or Chinchilla law with a bootstrap band (``laws.fit_power_law`` / ``laws.fit_scaling_law``).

Command line: ``learnmech forecast --script train.py [--run] [--out DIR]``. The script contract (a Python file):

- ``model(width=None) -> torch.nn.Module``: a fresh model (``width`` only needed with ``widths``);
- ``loss_fn(outputs, targets) -> scalar tensor`` (mean over examples);
- ``data() -> (x, y)`` or ``{"train": (x, y), "test": (x, y)}``; training uses ``train``, the loss forecast is
  scored on the test loss when there is a test set;
- ``optimizer = {"name": "gd" | "momentum" | "adam", "lr": float, "steps": 300, "momentum": 0.9,
  "betas": (0.9, 0.999), "eps": 1e-8, "batch_size": None, "every": 10, "seed": 0}`` (only ``lr`` is required;
  ``batch_size=None`` is full batch; measurements every ``every`` steps);
- optional ``runs`` (list of dicts, CSV path, or a function returning the list) with ``target`` (e.g.
  ``{"D": 1400}``) for the loss forecast, and ``widths`` (proxy first, target last) for the width transfer.

``examples/digits_cnn.py`` is a complete script (a small CNN on scikit-learn's digits); docs/forecast.md walks
through it.
"""

from .batch import BatchSizeForecast, batch_size
from .card import Forecast, Scorecard, ScoredItem
from .core import predict
from .loss import LossForecast, loss_forecast, read_runs
from .stability import EdgeOfStability, Stability, stability, threshold
from .width import WidthTransfer, width_transfer

__all__ = [
    "BatchSizeForecast", "EdgeOfStability", "Forecast", "LossForecast", "ScoredItem", "Scorecard", "Stability",
    "WidthTransfer", "batch_size", "loss_forecast", "predict", "read_runs", "stability", "threshold",
    "width_transfer",
]
