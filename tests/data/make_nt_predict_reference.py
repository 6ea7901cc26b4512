"""Generate tests/data/nt_predict_reference.json: neural-tangents 0.6.5's ``nt.predict.max_learning_rate`` and its
momentum ODE (``nt.predict.gradient_descent`` with an MSE loss) on a fixed random kernel problem.

Run with the neural-tangents peer python (never learnmech's venv):

    python -c "import sys; sys.path.insert(0, 'benchmarks'); from _peers import NT_REQUIREMENTS, peer_python; \\
        print(peer_python('nt', NT_REQUIREMENTS))"      # creates benchmarks/.peers/nt once
    benchmarks/.peers/nt/bin/python tests/data/make_nt_predict_reference.py tests/data/nt_predict_reference.json

The kernel problem (a Gram matrix over train + test points, targets, initial outputs) is drawn here from a fixed
seed and stored in the JSON, so the test needs neither jax nor this script. jax runs in float64.

Momentum ODE: neural-tangents solves ``f'' = -Theta dL/df - ((1 - m) / sqrt(lr)) f'`` in time ``sqrt(lr) * t``, the
continuous-time limit of heavy-ball GD with step ``sqrt(lr)`` (its docstring: "solved in the units of
learning_rate**0.5"). Our exact discrete recursion must approach it as ``lr -> 0`` at fixed ``sqrt(lr) * steps``;
the cases below keep ``sqrt(lr) * steps = HORIZON`` and refine ``steps``.
"""

from __future__ import annotations

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import predict  # noqa: E402

SEED = 20251125
N_TRAIN, N_TEST, OUTPUTS, FEATURES = 6, 3, 2, 9
MOMENTUM = 0.9
HORIZON = 12.0  # sqrt(lr) * steps, in units where the top mode's lr * lambda_max / N is lr * SCALE
STEPS = (40, 400, 4000)


def main(path: str) -> None:
    rng = np.random.default_rng(SEED)
    features = rng.standard_normal((N_TRAIN + N_TEST, FEATURES))
    joint = features @ features.T / FEATURES
    k_train, k_test = joint[:N_TRAIN, :N_TRAIN], joint[N_TRAIN:, :N_TRAIN]
    y = rng.standard_normal((N_TRAIN, OUTPUTS))
    f0 = 0.3 * rng.standard_normal((N_TRAIN, OUTPUTS))
    g0 = 0.3 * rng.standard_normal((N_TEST, OUTPUTS))

    lr_cases = []
    for size in (None, N_TRAIN * OUTPUTS):
        for momentum in (0.0, 0.5, 0.9):
            value = float(predict.max_learning_rate(jnp.asarray(k_train), y_train_size=size, momentum=momentum))
            lr_cases.append(dict(y_train_size=size, momentum=momentum, lr=value))

    def mse(fx, y_hat):
        return 0.5 * jnp.mean((fx - y_hat) ** 2)

    ode_cases = []
    for steps in STEPS:
        lr = (HORIZON / steps) ** 2
        predict_fn = predict.gradient_descent(mse, jnp.asarray(k_train), jnp.asarray(y), learning_rate=lr,
                                              momentum=MOMENTUM)
        train, test = predict_fn(float(steps), jnp.asarray(f0), jnp.asarray(g0), jnp.asarray(k_test))
        ode_cases.append(dict(steps=steps, lr=lr, momentum=MOMENTUM, train=np.asarray(train).tolist(),
                              test=np.asarray(test).tolist()))
        print(steps, file=sys.stderr)
    meta = dict(neural_tangents="0.6.5", seed=SEED, x64=True, horizon=HORIZON)
    with open(path, "w") as handle:
        json.dump(dict(meta=meta, k_train=k_train.tolist(), k_test=k_test.tolist(), y=y.tolist(), f0=f0.tolist(),
                       g0=g0.tolist(), max_learning_rate=lr_cases, momentum_ode=ode_cases), handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
