"""state_dict: save mid-run, load into a fresh optimizer, continue in lockstep bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import build, grad_stream, make_params
from registry import CASES


def snapshot(params, opt):
    return {k: v.copy() for k, v in params.items()}, copy.deepcopy(opt.state_dict())


def assert_same(a, b):
    (pa, sa), (pb, sb) = a, b
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for name in sa["state"]:
        assert sa["state"][name].keys() == sb["state"][name].keys()
        for slot in sa["state"][name]:
            assert np.array_equal(sa["state"][name][slot], sb["state"][name][slot]), (name, slot)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_resume_is_bit_for_bit(case, dtype):
    params = make_params(dtype)
    opt = build(case, params, groups=case.groups)
    grads = list(grad_stream(params, 20))
    for g in grads[:10]:
        opt.step(g)
    saved = opt.state_dict()
    fresh_params = {k: v.copy() for k, v in params.items()}
    fresh = build(case, fresh_params, groups=case.groups)
    fresh.load_state_dict(saved)
    for g in grads[10:]:
        opt.step(g)
        fresh.step(g)
    assert_same(snapshot(params, opt), snapshot(fresh_params, fresh))


def test_state_dict_is_a_copy_keyed_by_name():
    params = make_params(np.float64)
    case = next(c for c in CASES if c.id == "adam-amsgrad")
    opt = build(case, params)
    stream = grad_stream(params, 3)
    opt.step(next(stream))
    saved = opt.state_dict()
    before = copy.deepcopy(saved)
    opt.step(next(stream))
    assert set(saved["state"]) == set(params)
    assert saved["param_groups"][0]["params"] == list(params)
    assert set(saved["state"]["w"]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert_same((params, before), (params, saved))


def test_refused_load_changes_nothing():
    params = make_params(np.float64)
    case = next(c for c in CASES if c.id == "adam")
    opt = build(case, params)
    for g in grad_stream(params, 3):
        opt.step(g)
    before = snapshot(params, opt)

    wrong_names = copy.deepcopy(opt.state_dict())
    wrong_names["param_groups"][0]["params"][0] = "nope"
    with pytest.raises(ValueError, match="names"):
        opt.load_state_dict(wrong_names)

    wrong_shape = copy.deepcopy(opt.state_dict())
    wrong_shape["param_groups"][0]["lr"] = 0.5
    wrong_shape["state"]["w"]["exp_avg"] = np.zeros((7,))
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(wrong_shape)

    bad_lr = copy.deepcopy(opt.state_dict())
    bad_lr["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(bad_lr)
    assert_same(before, snapshot(params, opt))
