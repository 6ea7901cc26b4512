"""learnmech.observe: instruments that measure coarse observables of any PyTorch training.

Curvature (sharpness, top-k eigenvalues, Hutchinson trace, SLQ spectral density) and gradient noise work on
``(model, loss_fn, batch)`` with ``batch = (inputs, targets)`` and ``loss_fn(model(inputs), targets)`` a scalar.
Spectra of weights (``esd_alpha``), neural collapse, kernels and representations work on arrays or tensors.
"""

from .collapse import NeuralCollapse, neural_collapse
from .esd import PowerLawFit, esd_alpha, layer_alphas, power_law_fit, spectral_density
from .hessian import (
    HessianEigen,
    HessianOperator,
    HessianSpectrum,
    TraceEstimate,
    hessian_eigenvalues,
    hessian_spectrum,
    hessian_trace,
    lanczos,
    power_iteration,
    sharpness,
)

__all__ = [
    "HessianEigen",
    "HessianOperator",
    "HessianSpectrum",
    "NeuralCollapse",
    "PowerLawFit",
    "TraceEstimate",
    "esd_alpha",
    "hessian_eigenvalues",
    "hessian_spectrum",
    "hessian_trace",
    "lanczos",
    "layer_alphas",
    "neural_collapse",
    "power_law_fit",
    "power_iteration",
    "sharpness",
    "spectral_density",
]
