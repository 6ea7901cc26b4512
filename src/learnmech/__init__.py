"""learnmech: a PyTorch-native laboratory for learning mechanics.

Strands: :mod:`learnmech.kernels` (tractable limits), :mod:`learnmech.solvable` (exactly solvable settings),
:mod:`learnmech.laws` (scaling laws), :mod:`learnmech.hyper` (hyperparameter theory) and
:mod:`learnmech.observe` (instruments for real training). :mod:`learnmech.claims` states each published
prediction, runs an experiment and returns a verdict.
"""

__version__ = "0.1.0"
