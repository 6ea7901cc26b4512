"""learnmech.observe: instruments that measure coarse observables of any PyTorch training.

Curvature (sharpness, top-k eigenvalues, Hutchinson trace, SLQ spectral density) works on ``(model, loss_fn,
batch)`` with ``batch = (inputs, targets)`` and ``loss_fn(model(inputs), targets)`` a scalar.
"""

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
    "TraceEstimate",
    "hessian_eigenvalues",
    "hessian_spectrum",
    "hessian_trace",
    "lanczos",
    "power_iteration",
    "sharpness",
]
