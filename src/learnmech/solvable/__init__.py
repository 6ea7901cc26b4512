"""Solvable idealized settings: deep linear networks (Saxe et al. 2014), kernel learning curves
(eigenlearning: Simon et al. 2021; Bordelon, Canatar & Pehlevan 2020) and teacher-student ridge regression
(Advani & Saxe 2017; Hastie et al. 2019)."""

from . import conservation, deep_linear, ridge, saddle, spectra
from .eigenlearning import (
    EigenlearningPrediction,
    effective_regularization,
    eigenlearning,
    gaussian_feature_learning_curve,
    kernel_eigensystem,
    kernel_learning_curve,
    kernel_regression,
    learning_curve_exponent,
    power_law_spectrum,
)
from .ridge import optimal_ridge, ridge_risk, simulate_ridge_risk
from .spectra import SphereSpectrum, make_harmonic_target, sphere_kernel_spectrum, uniform_sphere

__all__ = [
    "conservation",
    "deep_linear",
    "ridge",
    "saddle",
    "spectra",
    "EigenlearningPrediction",
    "eigenlearning",
    "effective_regularization",
    "kernel_eigensystem",
    "kernel_regression",
    "learning_curve_exponent",
    "power_law_spectrum",
    "kernel_learning_curve",
    "gaussian_feature_learning_curve",
    "SphereSpectrum",
    "sphere_kernel_spectrum",
    "make_harmonic_target",
    "uniform_sphere",
    "ridge_risk",
    "optimal_ridge",
    "simulate_ridge_risk",
]
