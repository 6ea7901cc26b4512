"""Tractable limits: analytic infinite-width kernels (NNGP/NTK), the empirical NTK of any torch module, and
the infinite-width training dynamics (gradient flow on MSE, NNGP posterior)."""

from . import stax
from ._stax_torch import from_torch
from .analytic import Kernel, mlp
from .dynamics import (
    FlowPrediction,
    Posterior,
    gradient_descent,
    gradient_flow,
    max_learning_rate,
    nngp_posterior,
    train_mse_gd,
)
from .empirical import empirical_ntk, ensemble_outputs, mlp_network, monte_carlo_kernel_fn, ntk_vector_product
from .figures import convergence_panels
from .lazy import asymptotic_exponent, centered_scaled, train_tracking_ntk
from .representation import cka_width_coefficient

__all__ = ["Kernel", "mlp", "empirical_ntk", "mlp_network", "ensemble_outputs", "gradient_flow", "nngp_posterior",
           "FlowPrediction", "Posterior", "train_mse_gd", "gradient_descent", "max_learning_rate",
           "ntk_vector_product", "monte_carlo_kernel_fn", "stax", "from_torch", "centered_scaled",
           "asymptotic_exponent", "train_tracking_ntk", "cka_width_coefficient", "convergence_panels"]
