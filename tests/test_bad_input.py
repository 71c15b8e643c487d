"""Bad input: a clear error naming the argument; a refused step leaves everything bitwise unchanged."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from conftest import make_params

import adamkit

BAD_HYPERPARAMETERS = [
    (adamkit.SGD, dict(lr=-0.1), ValueError, "lr"),
    (adamkit.SGD, dict(lr=math.nan), ValueError, "lr"),
    (adamkit.SGD, dict(lr="0.1"), TypeError, "lr"),
    (adamkit.SGD, dict(momentum=-0.5), ValueError, "momentum"),
    (adamkit.SGD, dict(weight_decay=-1e-3), ValueError, "weight_decay"),
    (adamkit.SGD, dict(nesterov=True), ValueError, "nesterov"),
    (adamkit.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "nesterov"),
    (adamkit.SGD, dict(dampening=1.5), ValueError, "dampening"),
    (adamkit.SGD, dict(engine="cuda"), ValueError, "engine"),
    (adamkit.Adam, dict(lr=-1.0), ValueError, "lr"),
    (adamkit.Adam, dict(lr=math.nan), ValueError, "lr"),
    (adamkit.Adam, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (adamkit.Adam, dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (adamkit.Adam, dict(betas=(0.9, math.nan)), ValueError, r"betas\[1\]"),
    (adamkit.Adam, dict(betas=0.9), TypeError, "betas"),
    (adamkit.Adam, dict(eps=-1e-8), ValueError, "eps"),
    (adamkit.Adam, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (adamkit.Adam, dict(amsgrad="yes"), TypeError, "amsgrad"),
    (adamkit.Adam, dict(convention="tf"), ValueError, "convention"),
    (adamkit.AdamW, dict(convention="jax"), ValueError, "convention"),
    (adamkit.AdamW, dict(weight_decay=-0.01), ValueError, "weight_decay"),
    (adamkit.AdamW, dict(engine="gpu"), ValueError, "engine"),
]


@pytest.mark.parametrize("cls, kwargs, error, name", BAD_HYPERPARAMETERS)
def test_bad_hyperparameter_is_refused(cls, kwargs, error, name):
    with pytest.raises(error, match=name):
        cls(make_params(np.float64), **kwargs)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"w": np.ones(3, dtype=np.int64)}, "dtype"),
        ({"w": np.ones(3, dtype=np.float16)}, "dtype"),
        ({"w": [1.0, 2.0]}, "NumPy array"),
        ([np.ones(2), 3.0], "NumPy array"),
        ((np.ones(2),), "list"),
        (np.ones(3), "dict"),
    ],
)
def test_bad_params_type(params, match):
    with pytest.raises(TypeError, match=match):
        adamkit.Adam(params)


def test_empty_and_duplicate_params():
    with pytest.raises(ValueError, match="empty"):
        adamkit.Adam([])
    a = np.ones(3)
    with pytest.raises(ValueError, match="more than once"):
        adamkit.Adam([a, a])


def everything(params, opt):
    return {k: v.copy() for k, v in params.items()}, copy.deepcopy(opt.state_dict())


def assert_unchanged(before, after):
    (pa, sa), (pb, sb) = before, after
    for k in pa:
        assert np.array_equal(pa[k], pb[k]) and pa[k].tobytes() == pb[k].tobytes(), k
    assert sa["param_groups"] == sb["param_groups"]
    for name in sa["state"]:
        for slot, value in sa["state"][name].items():
            assert np.array_equal(value, sb["state"][name][slot]), (name, slot)


def primed(cls=adamkit.Adam, **kwargs):
    params = make_params(np.float32)
    opt = cls(params, **kwargs)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    opt.step(grads)
    return params, opt, grads


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda g: g.pop("w"), KeyError, "missing"),
        (lambda g: g.update(extra=np.ones(2, np.float32)), KeyError, "extra"),
        (lambda g: g.update(w=np.ones((3, 4), np.float32)), ValueError, "shape"),
        (lambda g: g.update(w=np.ones((4, 3), np.float64)), TypeError, "dtype"),
        (lambda g: g.update(b=[1.0, 2.0, 3.0]), TypeError, "NumPy array"),
    ],
)
def test_bad_grads_refused_and_nothing_changes(mutate, error, match):
    params, opt, grads = primed(amsgrad=True)
    before = everything(params, opt)
    bad = dict(grads)
    mutate(bad)
    with pytest.raises(error, match=match):
        opt.step(bad)
    assert_unchanged(before, everything(params, opt))


def test_bad_grad_list_length_refused():
    params, opt, grads = primed(adamkit.SGD, momentum=0.9)
    before = everything(params, opt)
    with pytest.raises(ValueError, match="entries"):
        opt.step(list(grads.values())[:-1])
    assert_unchanged(before, everything(params, opt))


@pytest.mark.parametrize(
    "key, value, match", [("lr", -1.0, "lr"), ("betas", (0.9, 1.5), "betas"), ("eps", -1.0, "eps")]
)
def test_bad_group_hyperparameter_at_step_refused(key, value, match):
    params, opt, grads = primed()
    opt.param_groups[0][key] = value
    before = everything(params, opt)
    with pytest.raises(ValueError, match=match):
        opt.step(grads)
    assert_unchanged(before, everything(params, opt))
