"""Solvable idealized settings: deep linear networks (Saxe et al. 2014), kernel learning curves
(eigenlearning: Simon et al. 2021; Bordelon, Canatar & Pehlevan 2020) and teacher-student ridge regression
(Advani & Saxe 2017; Hastie et al. 2019)."""

from . import deep_linear, ridge
from .eigenlearning import (
    EigenlearningPrediction,
    effective_regularization,
    eigenlearning,
    kernel_eigensystem,
    kernel_regression,
    learning_curve_exponent,
    power_law_spectrum,
)
from .ridge import optimal_ridge, ridge_risk, simulate_ridge_risk

__all__ = [
    "deep_linear",
    "ridge",
    "EigenlearningPrediction",
    "eigenlearning",
    "effective_regularization",
    "kernel_eigensystem",
    "kernel_regression",
    "learning_curve_exponent",
    "power_law_spectrum",
    "ridge_risk",
    "optimal_ridge",
    "simulate_ridge_risk",
]
