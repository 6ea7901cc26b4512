"""learnmech.laws: fit, compare and extrapolate scaling laws.

- :func:`fit_scaling_law`: L(N, D) = E + A/N^alpha + B/D^beta by Hoffmann et al. (2022)'s approach 3 (Huber loss on
  log-loss, L-BFGS from a grid of starts), with bootstrap intervals (Besiroglu et al. 2024) and the
  compute-optimal allocation N_opt(C), D_opt(C).
- :func:`fit_power_law`, :func:`fit_broken_power_law`, :func:`compare_power_laws`: one-variable laws and model
  comparison by held-out error.
- :func:`load_chinchilla`: the Chinchilla points Epoch AI extracted; :mod:`.experiment`: our own MLP sweep.
- :mod:`.random_features`: the solvable model of Maloney, Roberts & Sully (2022), its loss derived from the spectrum.
- :func:`fit_interaction_law`: the interaction form of Kaplan et al. (2020, eq. 1.5), the additive law's rival.
- :mod:`.quanta`: the quantization model (Michaud et al. 2023): Zipf quanta fix the exponents a priori; its
  multitask sparse parity task.
"""

from .data import drop_highest, find_data_file, load_chinchilla
from .experiment import (
    PowerLawTask,
    TeacherTask,
    make_task,
    make_teacher_task,
    mlp_parameter_count,
    train_mlps,
    train_random_feature_mlp,
)
from .fit import (
    PARAMETER_NAMES,
    ComputeOptimal,
    ScalingLawFit,
    check_scaling_data,
    compute_optimal,
    default_start_grid,
    fit_scaling_law,
    huber,
    scaling_law,
)
from .forms import InteractionFit, fit_interaction_law, interaction_law
from .optim import BatchedMinimum, minimize_batched
from .plot import frontier_panel, loss_vs_compute_panel
from .power import (
    MODELS,
    BrokenPowerLawFit,
    PowerLawFit,
    compare_power_laws,
    fit_broken_power_law,
    fit_power_law,
    power_law,
)
from .quanta import (
    QuantaExponents,
    SparseParityTask,
    multitask_sparse_parity,
    quanta_exponents,
    quanta_loss,
    sparse_parity_mlp,
    staircase_exponent,
    train_sparse_parity,
    zipf_frequencies,
)
from .random_features import (
    ProjectionTask,
    make_projection_task,
    mrs_exponent,
    power_spectrum,
    predict_projection_test_loss,
    projection_test_loss,
)

__all__ = [
    "QuantaExponents", "SparseParityTask", "multitask_sparse_parity", "quanta_exponents", "quanta_loss",
    "sparse_parity_mlp", "staircase_exponent", "train_sparse_parity", "zipf_frequencies", "InteractionFit",
    "fit_interaction_law", "interaction_law", "ProjectionTask", "make_projection_task", "mrs_exponent",
    "power_spectrum", "predict_projection_test_loss", "projection_test_loss", "MODELS", "BrokenPowerLawFit",
    "PowerLawFit", "PowerLawTask", "TeacherTask", "make_teacher_task", "mlp_parameter_count", "train_mlps",
    "make_task", "train_random_feature_mlp", "compare_power_laws", "fit_broken_power_law", "fit_power_law",
    "power_law", "ComputeOptimal", "ScalingLawFit", "compute_optimal", "fit_scaling_law", "frontier_panel",
    "load_chinchilla", "loss_vs_compute_panel", "scaling_law",
]

# Helpers of the fits, not part of the surface above: importable here for existing code; new code imports them
# from their modules (laws.fit, laws.data, laws.optim).
_HELPERS = (PARAMETER_NAMES, BatchedMinimum, check_scaling_data, default_start_grid, drop_highest, find_data_file,
            huber, minimize_batched)
