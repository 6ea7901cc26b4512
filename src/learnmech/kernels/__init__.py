"""Tractable limits: analytic infinite-width kernels (NNGP/NTK), the empirical NTK of any torch module, and
the infinite-width training dynamics (gradient flow on MSE, NNGP posterior)."""

from .analytic import Kernel, mlp
from .dynamics import gradient_flow, nngp_posterior
from .empirical import empirical_ntk

__all__ = ["Kernel", "mlp", "empirical_ntk", "gradient_flow", "nngp_posterior"]
