"""learnmech.hyper: theories of hyperparameters.

:func:`parametrize` puts a PyTorch model into SP, NTP, muP or mean-field parametrization (Yang & Hu 2021) and
returns param groups with per-layer learning rates for stock torch optimizers; :func:`coord_check` is the
coordinate check of Yang et al. (2022). The stability helpers measure the largest stable learning rate of real
training by bisection (Lewkowycz et al. 2020), and the transfer helpers locate the optimal learning rate of a
width x learning-rate sweep.
"""

from .coord import CoordCheck, coord_check, log_slope
from .models import TinyTransformer, mlp
from .parametrize import (
    OPTIMIZERS,
    SCHEMES,
    Parametrization,
    ParamRule,
    attention_scale,
    parameter_rules,
    parametrize,
    vector_rule,
    weight_rule,
)
from .training import TrainRun, half_mse, synthetic_regression, train

__all__ = [
    "SCHEMES", "OPTIMIZERS", "Parametrization", "ParamRule", "parametrize", "parameter_rules", "weight_rule",
    "vector_rule", "attention_scale", "coord_check", "CoordCheck", "log_slope", "mlp", "TinyTransformer",
    "TrainRun", "train", "half_mse", "synthetic_regression",
]
