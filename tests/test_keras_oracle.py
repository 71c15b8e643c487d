"""Every oracle="keras" case against Keras 3 (torch backend), 300 steps, same gradients."""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import build, grad_stream, make_params, rel_error  # noqa: E402
from registry import cases  # noqa: E402

STEPS = 300
# float32 at 1e-6 (tighter than 1e-5) so the test tells the conventions apart: torch's Adam form lands ~2e-6 from
# Keras's. float64 at 1e-5: Keras keeps the learning rate in a float32 variable and computes 1 − lr·λ from it.
KERAS_TOL = {np.float32: 1e-6, np.float64: 1e-5}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", cases("keras"), ids=lambda c: c.id)
def test_matches_keras(case, dtype):
    params = make_params(dtype)
    name, kwargs = case.keras
    ref_opt = getattr(keras.optimizers, name)(**kwargs)
    variables = {k: keras.Variable(v.copy(), dtype=str(np.dtype(dtype))) for k, v in params.items()}
    opt = build(case, params)
    for grads in grad_stream(params, STEPS):
        opt.step(grads)
        ref_opt.apply([keras.ops.convert_to_tensor(grads[k]) for k in variables], list(variables.values()))
    for k, var in variables.items():
        ref = keras.ops.convert_to_numpy(var.value)
        assert ref.dtype == dtype
        assert rel_error(params[k], ref) <= (case.keras_tol or KERAS_TOL[dtype]), k
