"""Lion, LAMB, Adafactor, Muon, ScheduleFreeAdamW: what the registry-driven tests do not reach."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import grad_stream, make_params

import adamkit


# --- Adafactor ------------------------------------------------------------------------------------------
def stepped_adafactor(steps=3, **kwargs):
    params = make_params(np.float32)
    opt = adamkit.Adafactor(params, lr=0.01, **kwargs)
    for g in grad_stream(params, steps):
        opt.step(g)
    return params, opt


def test_adafactor_keeps_torchs_factored_slots_and_shapes():
    _, opt = stepped_adafactor()
    state = opt.state_dict()["state"]
    assert set(state["w"]) == {"step", "row_var", "col_var"}
    assert state["w"]["row_var"].shape == (4, 1) and state["w"]["col_var"].shape == (1, 3)
    assert state["k"]["row_var"].shape == (2, 2, 1) and state["k"]["col_var"].shape == (2, 1, 5)
    assert set(state["b"]) == {"step", "variance"} and state["b"]["variance"].shape == (3,)
    assert state["s"]["variance"].shape == ()
    assert state["w"]["step"] == 3 and state["w"]["row_var"].dtype == np.float32


def test_adafactor_refuses_a_bad_load_and_changes_nothing():
    params, opt = stepped_adafactor()
    before = copy.deepcopy(opt.state_dict())
    for slot, value, match in [
        ("row_var", np.zeros((3, 1)), "shape"),
        ("variance", np.zeros(3), "keeps"),
        ("row_var", -np.ones((4, 1)), ">= 0"),
    ]:
        bad = copy.deepcopy(before)
        bad["state"]["w"][slot] = value
        with pytest.raises((ValueError, KeyError), match=match):
            opt.load_state_dict(bad)
    after = opt.state_dict()
    for name in before["state"]:
        for k, v in before["state"][name].items():
            assert np.array_equal(v, after["state"][name][k]), (name, k)


@pytest.mark.parametrize("value", [(-1.0, 1e-3), (None, -1.0), 1e-3, (None,)])
def test_adafactor_refuses_bad_eps_naming_it(value):
    with pytest.raises(ValueError, match="eps"):
        adamkit.Adafactor(make_params(np.float64), eps=value)


@pytest.mark.parametrize("name, value", [("d", 0.5), ("beta2_decay", 0.1), ("lr", -1.0)])
def test_adafactor_refuses_out_of_range_arguments(name, value):
    with pytest.raises(ValueError, match=name):
        adamkit.Adafactor(make_params(np.float64), **{name: value})
