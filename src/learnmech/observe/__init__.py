"""learnmech.observe: instruments that measure coarse observables of any PyTorch training.

Curvature (sharpness, top-k eigenvalues, Hutchinson trace, SLQ spectral density) and gradient noise work on
``(model, loss_fn, batch)`` with ``batch = (inputs, targets)`` and ``loss_fn(model(inputs), targets)`` a scalar.
Spectra of weights (``esd_alpha``), neural collapse, kernels and representations work on arrays or tensors.
:class:`Observer` runs any of them every k steps of a training loop and keeps a tidy DataFrame::

    from learnmech.observe import Observer, sharpness
    sharpness(model, torch.nn.CrossEntropyLoss(), (x, y))          # top Hessian eigenvalue, one call

    obs = Observer(model, every=50, measure=["loss", "grad_norm", "sharpness", "esd_alpha"], loss_fn=loss_fn)
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        obs.step(loss, (x, y))       # after backward (grad_norm reads .grad), before the next zero_grad
        optimizer.step()
    obs.to_frame()                   # step, metric, layer, value, error, data (batch/probe: what it used)
"""

from . import tasks
from .collapse import NeuralCollapse, etf_sampling_null, neural_collapse, simplex_etf
from .esd import (
    PowerLawFit,  # noqa: F401 - deprecated alias of TailFit
    TailFit,
    bulk_fit,
    esd_alpha,
    fit_tail,
    layer_alphas,
    power_law_bulk,
    power_law_fit,  # noqa: F401 - deprecated alias of fit_tail
    spectral_density,
    spiked_null,
)
from .features import agop, eigenspace_overlap, matrix_correlation, psd_power
from .fourier import FourierNull, fourier_null, fourier_power, top_k_fraction
from .gradients import NoiseScale, gradient_noise_scale
from .hessian import (
    BlockHessian,
    HessianEigen,
    HessianOperator,
    HessianSpectrum,
    SharpnessTracker,
    TraceEstimate,
    adam_preconditioner,
    adam_threshold,
    block_hessian,
    hessian_eigenvalues,
    hessian_spectrum,
    hessian_trace,
    lanczos,
    power_iteration,
    preconditioned_sharpness,
    sharpness,
    subspace_eigenvalues,
)
from .norms import snapshot, update_norms, weight_norms
from .observer import BUILTIN_MEASURES, Observer, read_observations
from .similarity import centered_gram, cka, kernel_alignment, ntk_drift, target_alignment, unbiased_hsic

__all__ = [
    "BUILTIN_MEASURES", "BlockHessian", "SharpnessTracker", "adam_preconditioner", "adam_threshold", "block_hessian",
    "preconditioned_sharpness", "subspace_eigenvalues", "HessianEigen", "HessianOperator", "HessianSpectrum",
    "NeuralCollapse", "NoiseScale", "Observer", "TailFit", "TraceEstimate", "tasks", "cka", "agop",
    "matrix_correlation", "psd_power", "eigenspace_overlap", "FourierNull", "fourier_null", "fourier_power",
    "top_k_fraction", "esd_alpha", "bulk_fit", "spiked_null", "power_law_bulk", "gradient_noise_scale",
    "hessian_eigenvalues", "hessian_spectrum", "hessian_trace", "kernel_alignment", "lanczos", "layer_alphas",
    "neural_collapse", "etf_sampling_null", "ntk_drift", "power_iteration", "fit_tail", "read_observations",
    "sharpness", "snapshot", "spectral_density", "target_alignment", "update_norms", "weight_norms",
]

# Building blocks of cka and the neural-collapse null, not part of the surface above: importable here for
# existing code; new code imports them from observe.similarity and observe.collapse.
_HELPERS = (centered_gram, unbiased_hsic, simplex_etf)
