"""Tractable limits: analytic infinite-width kernels (NNGP/NTK), the empirical NTK of any torch module, and
the infinite-width training dynamics (gradient flow on MSE, NNGP posterior)."""

from .analytic import Kernel, mlp
from .dynamics import FlowPrediction, Posterior, gradient_flow, nngp_posterior, train_mse_gd
from .empirical import empirical_ntk, ensemble_outputs, mlp_network

__all__ = ["Kernel", "mlp", "empirical_ntk", "mlp_network", "ensemble_outputs", "gradient_flow", "nngp_posterior",
           "FlowPrediction", "Posterior", "train_mse_gd"]
