"""Depth scaling of residual networks at initialisation: the residual-stream variance recursion.

For the residual MLP ``h_{l+1} = h_l + m W_l phi(h_l)`` (:class:`~learnmech.hyper.models.ResMLP`) with
``W_l ~ N(0, g^2 / width)`` and branch multiplier ``m``, the infinite-width (mean-field) recursion of the stream's
second moment ``q_l = ||h_l||^2 / width`` is

    q_{l+1} = q_l + m^2 g^2 E[phi(z)^2],  z ~ N(0, q_l)        (the cross term h . W phi(h) has mean 0)

and for a positively homogeneous activation ``E[phi(z)^2] = c_phi q`` (``c_relu = 1/2``, ``c_identity = 1``), so
``q_L / q_0 = (1 + m^2 g^2 c_phi)^L``. Standard residual nets (``m = 1``) blow up exponentially in depth; Depth-muP's
``m = sqrt(base_L / L)`` (Yang, Yu, Zhu & Hayou 2023, "Tensor Programs VI", sec. 3; Bordelon, Noci, Li, Hanin &
Pehlevan 2023, eq. 2) gives ``(1 + base_L g^2 c_phi / L)^L -> exp(base_L g^2 c_phi)``: bounded, flat in depth
as ``L -> infinity``.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_array, one_of, positive_float, positive_int
from .models import _activation_name

#: ``E[phi(z)^2] / E[z^2]`` for z Gaussian, for the positively homogeneous activations.
HOMOGENEOUS_GAIN = {"relu": 0.5, "identity": 1.0}


def residual_variance_ratio(
    depths: object, branch_multiplier: str | float = "depth-mup", *, base_depth: int = 1, gain: float = 1.0,
    activation: str = "relu",
) -> np.ndarray:
    """Infinite-width ``q_L / q_0`` of a residual MLP's stream at init, for each depth ``L``.

    depths: ``(D,)`` positive integers. branch_multiplier: ``"depth-mup"`` (``m = sqrt(base_depth / L)``, what
    :func:`~learnmech.hyper.parametrize` applies with ``depth=(L, base_depth)``), ``"standard"`` (``m = 1``) or a
    fixed float ``m``. gain: the init std factor ``g`` of the branch weights (``W ~ N(0, g^2 / fan_in)``);
    activation: ``"relu"`` or ``"identity"`` (``"linear"`` is a deprecated alias of ``"identity"``).
    Returns ``(D,)`` ratios ``(1 + m^2 g^2 c_phi)^L`` (dimensionless).
    """
    L = as_array(depths, "depths", ndim=1)
    if np.any(L < 1) or np.any(L != np.round(L)):
        raise ValueError(f"depths must be positive integers, got {L.tolist()}")
    base_depth = positive_int(base_depth, "base_depth")
    gain = positive_float(gain, "gain")
    c_phi = HOMOGENEOUS_GAIN[_activation_name(activation, HOMOGENEOUS_GAIN)]
    if isinstance(branch_multiplier, str):
        kind = one_of(branch_multiplier, "branch_multiplier", ("depth-mup", "standard"))
        m2 = base_depth / L if kind == "depth-mup" else np.ones_like(L)
    else:
        m2 = np.full_like(L, positive_float(branch_multiplier, "branch_multiplier") ** 2)
    return (1.0 + m2 * gain**2 * c_phi) ** L
