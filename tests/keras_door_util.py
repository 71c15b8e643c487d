"""Run Keras 3 (torch backend) and adamkit.keras on the same gradient stream, side by side."""

from __future__ import annotations

import os
import warnings

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from conftest import rel_error  # noqa: E402

import adamkit.keras as ak  # noqa: E402

SHAPES = [(4, 3), (3,), (), (2, 2, 5)]
TOL32 = 1e-6

# Two streams. "unit": parameters ~N(0, 1), gradients ~N(0, 1) times a per-step scale in [0.1, 2]. "tiny":
# parameters ~1e-3 and gradients ~1e-6, where epsilon is as large as √v, √h or |g|, so its placement (inside or
# outside the root, added to u or to |g|, epsilon hat) changes every step by tens of percent.
STREAMS = {"unit": (1.0, 1.0), "tiny": (1e-3, 1e-6)}


def variables(stream: str, dtype=np.float32, seed: int = 0) -> list[np.ndarray]:
    p_scale, _ = STREAMS[stream]
    rng = np.random.default_rng(seed)
    return [np.asarray(p_scale * rng.standard_normal(s), dtype=dtype) for s in SHAPES]


def gradients(stream: str, steps: int, dtype=np.float32, seed: int = 1, none_every: int = 0):
    """``steps`` lists of gradients; with ``none_every = k``, variable 1's gradient is None every k-th step."""
    _, g_scale = STREAMS[stream]
    rng = np.random.default_rng(seed)
    for t in range(steps):
        scale = g_scale * rng.uniform(0.1, 2.0)
        grads = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
        if none_every and t % none_every == 1:
            grads[1] = None
        yield grads


def keras_kwargs(kwargs: dict) -> dict:
    """The same arguments for Keras: an adamkit.keras schedule becomes Keras's own schedule of that name."""
    out = dict(kwargs)
    lr = kwargs.get("learning_rate")
    if isinstance(lr, ak.schedules.LearningRateSchedule):
        out["learning_rate"] = getattr(keras.optimizers.schedules, type(lr).__name__)(**lr.get_config())
    return out


def race(name: str, kwargs: dict, stream: str = "unit", steps: int = 100, none_every: int = 0, ours=None,
         dtype=np.float32):  # fmt: skip
    """Run Keras's ``name(**kwargs)`` and ``ours`` (default: adamkit.keras's ``name(**kwargs)``) on one stream;
    returns (our arrays — the caller's own, updated in place —, Keras's values, the two optimizers)."""
    ours = getattr(ak, name)(**kwargs) if ours is None else ours
    ref = getattr(keras.optimizers, name)(**keras_kwargs(kwargs))
    arrays = variables(stream, dtype)
    kvars = [keras.Variable(a.copy(), dtype=str(np.dtype(dtype))) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn about None gradients
        for grads in gradients(stream, steps, dtype, none_every=none_every):
            ref.apply([None if g is None else keras.ops.convert_to_tensor(g) for g in grads], kvars)
            ours.apply(grads, arrays)
    return arrays, [keras.ops.convert_to_numpy(v.value) for v in kvars], ours, ref


def worst(ours: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """The largest per-variable relative error (‖ours − ref‖∞ / ‖ref‖∞)."""
    return max(rel_error(a, b) for a, b in zip(ours, ref))
