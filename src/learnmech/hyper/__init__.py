"""learnmech.hyper: theories of hyperparameters.

:func:`parametrize` puts a PyTorch model into SP, NTP, muP or mean-field parametrization (Yang & Hu 2021) and
returns param groups with per-layer learning rates for stock torch optimizers; :func:`coord_check` is the
coordinate check of Yang et al. (2022). :func:`lr_boundary` measures stability ceilings of real GD training
(Lewkowycz et al. 2020) and :func:`lr_sweep` / :func:`optimum_drift` locate the optimal learning rate of a
width x learning-rate sweep and its drift with width.
"""

from .batch import (
    TRADEOFF_RULES,
    CurveDistance,
    LinearRegressionTask,
    NoiseScales,
    ScaledHyper,
    TradeoffFit,
    critical_batch_from_run,
    curve_distance,
    fit_tradeoff,
    linear_scaling_rule,
    noise_scales,
    parabolic_minimum,
    sqrt_scaling_rule,
    steps_to_target,
    train_linear,
)
from .batched import gd_lr_grid
from .central_flow import CentralFlow, central_flow, central_flow_velocity, eigenvalue_gradient, top_eigenpairs
from .coord import CoordCheck, coord_check, log_slope
from .depth import residual_variance_ratio
from .models import MHATransformer, ResMLP, SelfAttention, TinyTransformer, cnn, mlp, resmlp
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
from .stability import (
    Bracket,
    RatioInterval,
    WidthExtrapolation,
    blew_up,
    diverged,
    extrapolate_width,
    lr_boundary,
    ratio_interval,
    spiked,
    uv_catapult,
)
from .training import TrainRun, freeze, half_mse, single_threaded, synthetic_regression, train
from .transfer import Drift, LRSweep, lr_sweep, optimal_log2_lr, optimum_drift

__all__ = [
    # parametrizations and the coordinate check
    "SCHEMES", "OPTIMIZERS", "Parametrization", "ParamRule", "parametrize", "parameter_rules", "attention_scale",
    "coord_check", "CoordCheck",
    # models to parametrize
    "mlp", "cnn", "resmlp", "ResMLP", "residual_variance_ratio", "TinyTransformer", "MHATransformer", "SelfAttention",
    # training, stability and learning-rate transfer
    "TrainRun", "train", "synthetic_regression", "freeze", "gd_lr_grid", "Bracket", "lr_boundary", "RatioInterval",
    "ratio_interval", "WidthExtrapolation", "extrapolate_width", "uv_catapult", "LRSweep", "Drift", "lr_sweep",
    "optimum_drift",
    # central flows
    "CentralFlow", "central_flow", "central_flow_velocity",
    # batch size
    "NoiseScales", "noise_scales", "TradeoffFit", "fit_tradeoff", "TRADEOFF_RULES", "critical_batch_from_run",
    "ScaledHyper", "linear_scaling_rule", "sqrt_scaling_rule", "CurveDistance", "curve_distance",
    "LinearRegressionTask", "train_linear",
]

# Experiment helpers, not part of the surface above: they stay importable here for existing code, but new code
# imports them from their modules (hyper.training.half_mse, hyper.stability.spiked / diverged / blew_up,
# hyper.coord.log_slope, hyper.parametrize.weight_rule / vector_rule, hyper.central_flow.eigenvalue_gradient /
# top_eigenpairs, hyper.transfer.optimal_log2_lr, hyper.batch.parabolic_minimum / steps_to_target,
# hyper.training.single_threaded).
_HELPERS = (half_mse, spiked, diverged, blew_up, single_threaded, log_slope, weight_rule, vector_rule,
            eigenvalue_gradient, top_eigenpairs, optimal_log2_lr, parabolic_minimum, steps_to_target)
