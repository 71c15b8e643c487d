"""Bad input: a clear error naming the argument; a refused step leaves everything bitwise unchanged."""

from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import pytest
from conftest import build, grad_stream, make_params
from registry import CASES

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


# --- generic over the registry: every optimizer class refuses the same bad values --------------------------
def registry_classes():
    return list(dict.fromkeys(c.cls for c in CASES))


GENERIC_BAD = [
    ("lr", -1.0),
    ("lr", math.nan),
    ("weight_decay", -0.1),
    ("weight_decay", math.nan),
    ("eps", -1e-8),
    ("momentum", -0.5),
    ("betas", (1.0, 0.999)),
    ("betas", (0.9, 1.0)),
    ("betas", (-0.1, 0.999)),
    ("convention", "bogus"),
    ("engine", "bogus"),
]


def generic_bad_table():
    for cls in registry_classes():
        accepted = inspect.signature(cls.__init__).parameters
        for name, value in GENERIC_BAD:
            if name in accepted:
                yield pytest.param(cls, name, value, id=f"{cls.__name__}-{name}={value}")


@pytest.mark.parametrize("cls, name, value", list(generic_bad_table()))
def test_every_optimizer_refuses_bad_value_naming_it(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls(make_params(np.float64), **{"lr": 0.01, name: value})


def everything_with_grads(params, opt):
    params_copy, state = everything(params, opt)
    return params_copy, state, {k: v.copy() for k, v in opt.grads.items()}


def assert_all_unchanged(before, after):
    assert_unchanged(before[:2], after[:2])
    assert before[1]["state"].keys() == after[1]["state"].keys()
    for k in before[2]:
        assert before[2][k].tobytes() == after[2][k].tobytes(), ("grad", k)


def primed_case(case, steps=3):
    params = make_params(np.float64)
    opt = build(case, params, groups=case.groups)
    stream = list(grad_stream(params, steps + 1))
    for g in stream[:steps]:
        opt.step(g)
    return params, opt, stream[steps]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_case_refuses_bad_lr_at_step_time_unchanged(case):
    """A group's lr set to -1 after construction: step refused, params, state, step count, grads bitwise kept."""
    params, opt, grads = primed_case(case)
    opt.param_groups[-1]["lr"] = -1.0
    before = everything_with_grads(params, opt)
    with pytest.raises(ValueError, match="lr"):
        opt.step(grads)
    assert_all_unchanged(before, everything_with_grads(params, opt))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_case_refuses_bad_grads_unchanged(case):
    """A grad of the wrong dtype (last tensor only): nothing, not even the other tensors' grads, is written."""
    params, opt, grads = primed_case(case)
    before = everything_with_grads(params, opt)
    last = list(grads)[-1]
    bad = {**grads, last: grads[last].astype(np.float32)}
    with pytest.raises(TypeError, match="dtype"):
        opt.step(bad)
    bad = {**grads, last: np.zeros((7, 1))}
    with pytest.raises(ValueError, match="shape"):
        opt.step(bad)
    with pytest.raises(KeyError, match="missing"):
        opt.step({k: v for k, v in grads.items() if k != last})
    assert_all_unchanged(before, everything_with_grads(params, opt))
    opt.step(grads)  # and the optimizer still works afterwards
    assert opt.state_dict()["state"] == {} or all(s["step"] == 4 for s in opt.state_dict()["state"].values())
