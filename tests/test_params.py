"""Parameter storage: the caller's arrays (default) or packed views put back into the container; grads in place;
groups; dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import grad_stream, make_params
from registry import CASES

import adamkit


def base_of(view: np.ndarray) -> np.ndarray:
    while view.base is not None:
        view = view.base
    return view


def test_the_callers_arrays_are_the_parameters():
    params = make_params(np.float32)
    originals = {k: v for k, v in params.items()}
    expected = {k: v - np.float32(0.1) for k, v in params.items()}
    opt = adamkit.SGD(params, lr=0.1)
    for k in params:
        assert params[k] is originals[k] and opt.params[k] is originals[k]
    opt.step({k: np.ones_like(v) for k, v in params.items()})
    for k in params:
        assert params[k] is originals[k]
        np.testing.assert_array_equal(originals[k], expected[k])


def test_packed_group_values_become_views_of_one_buffer():
    params = make_params(np.float32)
    originals = {k: v.copy() for k, v in params.items()}
    opt = adamkit.SGD(lr=0.1)
    opt.add_param_group({"params": params}, packed=True)
    bases = {id(base_of(v)) for v in params.values()}
    assert len(bases) == 1
    for k in params:
        assert np.array_equal(params[k], originals[k]) and params[k].shape == originals[k].shape
        assert base_of(params[k]) is base_of(opt.params[k])
    opt.step({k: np.ones_like(v) for k, v in params.items()})
    for k in params:
        np.testing.assert_array_equal(params[k], originals[k] - np.float32(0.1))


def test_list_and_group_containers_are_rebound():
    plain = [np.zeros(3), np.zeros((2, 2))]
    opt = adamkit.SGD(plain, lr=1.0)
    opt.step([np.ones(3), np.ones((2, 2))])
    assert np.array_equal(plain[0], -np.ones(3)) and np.array_equal(plain[1], -np.ones((2, 2)))
    assert opt.params[0] is not None and list(opt.params) == ["0", "1"]

    g1, g2 = {"a": np.zeros(2)}, [np.zeros(2)]
    opt = adamkit.SGD([{"params": g1}, {"params": g2, "lr": 0.5}], lr=1.0)
    opt.step({"a": np.ones(2), "1": np.ones(2)})
    assert np.array_equal(g1["a"], [-1, -1]) and np.array_equal(g2[0], [-0.5, -0.5])
    assert opt.param_groups[1]["param_names"] == ["1"]


def test_mixed_dtypes_in_one_group_get_one_buffer_each():
    params = {"a": np.ones(3, np.float32), "b": np.ones(2, np.float64), "c": np.ones(4, np.float32)}
    opt = adamkit.Adam(lr=0.1)
    opt.add_param_group({"params": params}, packed=True)
    assert base_of(params["a"]) is base_of(params["c"])
    assert base_of(params["a"]) is not base_of(params["b"])
    opt.step({k: np.ones_like(v) for k, v in params.items()})
    assert params["a"].dtype == np.float32 and params["b"].dtype == np.float64
    np.testing.assert_allclose(params["b"], 0.9)
    np.testing.assert_allclose(params["a"], 0.9, rtol=1e-6)


def test_writing_grads_in_place_equals_passing_them():
    p1, p2 = make_params(np.float64), make_params(np.float64)
    a, b = adamkit.Adam(p1, lr=0.01), adamkit.Adam(p2, lr=0.01)
    for grads in grad_stream(p1, 5):
        a.step(grads)
        for k, g in grads.items():
            b.grads[k][...] = g
        b.step()
    for k in p1:
        assert np.array_equal(p1[k], p2[k])
    b.zero_grad()
    assert all(not np.any(g) for g in b.grads.values())


def test_add_param_group_and_unique_names():
    opt = adamkit.Adam({"w": np.ones(2)}, lr=0.1)
    extra = {"v": np.ones(3)}
    opt.add_param_group({"params": extra, "lr": 0.2})
    assert opt.param_groups[1]["lr"] == 0.2 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    opt.step({"w": np.ones(2), "v": np.ones(3)})
    np.testing.assert_allclose(extra["v"], 0.8)
    with pytest.raises(ValueError, match="unique"):
        opt.add_param_group({"params": {"w": np.ones(1)}})
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": {"z": np.ones(1)}, "lr": -2.0})
    assert len(opt.param_groups) == 2


def test_zero_d_and_empty_tensors_update():
    params = {"s": np.array(1.0), "e": np.zeros((0, 3))}
    opt = adamkit.SGD(params, lr=0.5, momentum=0.9)
    opt.step({"s": np.array(2.0), "e": np.zeros((0, 3))})
    assert params["s"].shape == () and float(params["s"]) == 0.0
    assert params["e"].shape == (0, 3)


def test_one_contiguous_buffer_per_group_and_dtype():
    g1 = {"a": np.ones(3), "b": np.ones((2, 2)), "s": np.array(1.0), "e": np.zeros((0, 3))}
    g2 = {"c": np.ones(4), "d": np.ones(2, np.float32)}
    opt = adamkit.Adam()
    opt.add_param_group({"params": g1}, packed=True)
    opt.add_param_group({"params": g2, "lr": 0.5}, packed=True)
    (b1,) = {id(base_of(v)) for v in g1.values()}
    assert id(base_of(g2["c"])) != b1 and base_of(g2["c"]) is not base_of(g2["d"])
    base = base_of(g1["a"])
    assert base.flags["C_CONTIGUOUS"] and base.size >= 3 + 4 + 1
    for v in g1.values():
        assert v.size == 0 or np.shares_memory(v, base)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_list_form_equals_dict_form(dtype):
    as_dict = make_params(dtype)
    as_list = [v.copy() for v in as_dict.values()]
    a = adamkit.Adam(as_dict, lr=0.01, amsgrad=True)
    b = adamkit.Adam(as_list, lr=0.01, amsgrad=True)
    for grads in grad_stream(as_dict, 20):
        a.step(grads)
        b.step(list(grads.values()))
    for x, y in zip(as_dict.values(), as_list):
        assert np.array_equal(x, y) and x.shape == y.shape


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_list_form_and_mixed_dtypes_equal_separate_dict_runs(case):
    """For every case: a list of arrays, and one group mixing float32 and float64 tensors (interleaved), step
    bit for bit like the same tensors given as separate single-dtype dicts (the list form only where the step
    couples every tensor through a global norm: there the float32 tensors change the float64 ones' step)."""
    p64, p32 = make_params(np.float64, seed=3), make_params(np.float32, seed=4)
    as_list = [v.copy() for v in p64.values()]
    mixed = {}
    for k in p64:
        mixed[f"d{k}"], mixed[f"f{k}"] = p64[k].copy(), p32[k].copy()
    runs = [case.cls(p, **case.kwargs) for p in (p64, p32, as_list, mixed)]
    for g64, g32 in zip(grad_stream(p64, 15, seed=5), grad_stream(p32, 15, seed=6)):
        runs[0].step(g64)
        runs[1].step(g32)
        runs[2].step(list(g64.values()))
        runs[3].step({n: g for k in g64 for n, g in ((f"d{k}", g64[k]), (f"f{k}", g32[k]))})
    for i, k in enumerate(p64):
        assert as_list[i].dtype == np.float64 and np.array_equal(as_list[i], p64[k]), k
        if case.coupled:
            continue
        assert mixed[f"d{k}"].dtype == np.float64 and np.array_equal(mixed[f"d{k}"], p64[k]), k
        assert mixed[f"f{k}"].dtype == np.float32 and np.array_equal(mixed[f"f{k}"], p32[k]), k
    if case.coupled:
        return
    state_mixed = runs[3].state_dict()["state"]
    for prefix, run in (("d", runs[0]), ("f", runs[1])):
        for k, entry in run.state_dict()["state"].items():
            for slot, value in entry.items():
                assert np.array_equal(state_mixed[prefix + k][slot], value), (k, slot)


def test_views_stay_live_across_steps_and_in_place_edits():
    """The caller's arrays are the parameters: an in-place edit by the caller is what the next step reads."""
    params = {"w": np.ones(3), "s": np.array(2.0)}
    opt = adamkit.SGD(params, lr=0.5)
    view = params["w"]
    params["w"][...] = 10.0
    opt.step({"w": np.ones(3), "s": np.array(1.0)})
    assert params["w"] is view and np.array_equal(view, [9.5, 9.5, 9.5])
    assert np.shares_memory(params["w"], opt.params["w"]) and opt.params[0] is params["w"]
    assert float(params["s"]) == 1.5


def test_grads_views_share_one_buffer_and_zero_grad():
    params = make_params(np.float64)
    opt = adamkit.Adam(params)
    grads = opt.grads
    bases = {id(base_of(g)) for g in grads.values()}
    assert len(bases) == 1 and base_of(grads["w"]) is not base_of(params["w"])
    for k, g in grads.items():
        assert g.shape == params[k].shape and g.flags.writeable
        g[...] = 1.0
    opt.zero_grad()
    assert all(g.size == 0 or not np.any(g) for g in grads.values())
    before = {k: v.copy() for k, v in params.items()}
    opt.step()  # zero gradients: Adam's update is 0 / (0 + eps) = 0
    for k in params:
        assert np.array_equal(params[k], before[k])


def test_packed_group_copies_a_replaced_entry_in_and_puts_the_view_back():
    params = {"w": np.ones(3)}
    opt = adamkit.SGD(lr=1.0)
    opt.add_param_group({"params": params}, packed=True)
    view = params["w"]
    params["w"] = np.full(3, 5.0)
    opt.step({"w": np.ones(3)})
    assert params["w"] is view and np.array_equal(view, [4.0, 4.0, 4.0]) and opt.params["w"] is view
