"""Fuzzing (hypothesis): random layouts of caller arrays — 0-d, empty, odd lengths, many tiny tensors, several
chunks — living inside one guarded buffer, random in-range hyperparameters, both dtypes: the fused engine equals
the NumPy engine, and no element outside the parameters is ever written."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry import CASES

from adamkit.flat import CHUNK

GUARD = 3  # elements of guard value before and after every parameter
SENTINEL = -12345.0

sizes = st.lists(
    st.one_of(st.just(()), st.tuples(st.integers(0, 9)), st.tuples(st.integers(1, 3), st.integers(0, 4))),
    min_size=1,
    max_size=40,
)


def guarded(shapes, dtype, rng, big):
    """Parameters as disjoint views of one buffer, each surrounded by guard values."""
    shapes = list(shapes) + ([(CHUNK + 5,)] if big else [])
    total = sum(math.prod(s) + 2 * GUARD for s in shapes)
    buffer = np.full(total, SENTINEL, dtype)
    params, at = {}, 0
    for i, s in enumerate(shapes):
        n = math.prod(s)
        view = buffer[at + GUARD : at + GUARD + n].reshape(s)
        view[...] = rng.standard_normal(s)
        params[f"p{i}"] = view
        at += n + 2 * GUARD
    mask = np.ones(total, bool)
    for v in params.values():
        if v.size:
            start = (v.ctypes.data - buffer.ctypes.data) // buffer.itemsize
            mask[start : start + v.size] = False
    return buffer, params, mask


def randomized(kwargs, data):
    """The case's hyperparameters with lr, weight decay, momentum and eps drawn within their ranges."""
    out = dict(kwargs)
    out["lr"] = data.draw(st.floats(1e-4, 0.5))
    for key, low, high in (("weight_decay", 0.0, 0.1), ("momentum", 0.05, 0.95), ("eps", 1e-10, 1e-3)):
        if isinstance(out.get(key), float) and out[key]:
            out[key] = data.draw(st.floats(low, high))
    return out


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    shapes=sizes,
    dtype=st.sampled_from([np.float32, np.float64]),
    big=st.booleans(),
    data=st.data(),
)
def test_fused_equals_numpy_on_random_layouts_and_guards_stay(case, shapes, dtype, big, data):
    kwargs = randomized(case.kwargs, data)
    runs = []
    for engine in ("fused", "numpy"):
        buffer, params, mask = guarded(shapes, dtype, np.random.default_rng(0), big)
        opt = case.cls(params, engine=engine, **kwargs)
        grad_rng = np.random.default_rng(1)
        for _ in range(3):
            opt.step({k: (grad_rng.standard_normal(v.shape) * 0.1).astype(dtype) for k, v in params.items()})
        assert np.all(buffer[mask] == dtype(SENTINEL)), "an element outside the parameters was written"
        runs.append((params, opt.state_dict()["state"]))
    (fused, fs), (ref, rs) = runs
    for k in ref:
        if dtype == np.float64:
            np.testing.assert_array_max_ulp(fused[k], ref[k], maxulp=2)
        else:
            np.testing.assert_allclose(fused[k], ref[k], rtol=2e-6, atol=2e-6)
    assert fs.keys() == rs.keys()


NUMERIC = ["lr", "eps", "weight_decay", "momentum", "alpha", "rho", "lr_decay", "momentum_decay", "dampening"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("value", [math.nan, -1.0, math.inf])
def test_out_of_range_and_nan_hyperparameters_are_refused(case, value):
    probe = case.cls([np.zeros(1)], **case.kwargs)
    for key in NUMERIC:
        if key not in probe.defaults:
            continue
        with pytest.raises((ValueError, TypeError), match=key):
            case.cls([np.zeros(1)], **{**case.kwargs, key: value})
