"""The phase engine (adamkit.phases): per-tensor reductions with a fixed order, per-tensor maps, scratch slots."""

from __future__ import annotations

import copy

import numba
import numpy as np
import pytest
from conftest import grad_stream, make_params

import adamkit
from adamkit.flat import CHUNK, FlatBuffer
from adamkit.optim.lamb import trust_step
from adamkit.phases import segment_map, segment_sums_of_squares

SHAPES = {"big": (3 * CHUNK + 11,), "s": (), "e": (0, 4), "w": (7, 5), "e2": (0,), "last": (2 * CHUNK,)}


def bucket(dtype, packed=False):
    params = make_params(dtype, shapes=SHAPES)
    return FlatBuffer.of(list(params.items()), packed=packed), params


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_segment_sums_are_per_tensor_and_zero_for_empty_ones(dtype, packed):
    flat, params = bucket(dtype, packed)
    other = np.random.default_rng(5).standard_normal(flat.size).astype(dtype)
    sums = segment_sums_of_squares(flat.tensors(), [None, other])
    assert sums.shape == (2, len(SHAPES)) and sums.dtype == np.float64
    for k, seg in enumerate(flat.segments):
        p = flat.params[k].astype(np.float64)
        o = seg.view(other).astype(np.float64)
        np.testing.assert_allclose(sums[0, k], np.sum(p * p), rtol=1e-12)
        np.testing.assert_allclose(sums[1, k], np.sum(o * o), rtol=1e-12)
    assert sums[0, list(SHAPES).index("e")] == 0 and sums[1, list(SHAPES).index("e2")] == 0


def test_segment_sums_of_a_subset_of_tensors():
    flat, _ = bucket(np.float64)
    members = [0, 2, 3]
    sums = segment_sums_of_squares(flat.tensors(members), [None])
    full = segment_sums_of_squares(flat.tensors(), [None])
    assert np.array_equal(sums[0], full[0, members])


def test_segment_sums_do_not_depend_on_the_thread_count():
    flat, _ = bucket(np.float32)
    threads = numba.get_num_threads()
    try:
        results = []
        for n in sorted({1, threads}):
            numba.set_num_threads(n)
            results.append(segment_sums_of_squares(flat.tensors(), [None]).tobytes())
    finally:
        numba.set_num_threads(threads)
    assert len(set(results)) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_segment_map_reads_each_tensors_own_scalar_in_both_engines(dtype):
    out = {}
    for engine in ("numpy", "fused"):
        flat, params = bucket(dtype)
        u = np.random.default_rng(2).standard_normal(flat.size).astype(dtype)
        before = [p.copy() for p in flat.params]
        coef = np.arange(1, len(SHAPES) + 1, dtype=dtype)
        u_before = u.copy()
        segment_map(engine, trust_step, flat.tensors(), [u], {"coef": coef}, writes=1)
        assert np.array_equal(u, u_before)  # read only
        for k, seg in enumerate(flat.segments):
            np.testing.assert_array_equal(flat.params[k], before[k] - coef[k] * seg.view(u))
        out[engine] = [p.copy() for p in flat.params]
    for a, b in zip(out["numpy"], out["fused"]):
        assert np.array_equal(a, b)


def test_scratch_slots_never_enter_the_state_dict_and_are_refused_on_load():
    params = make_params(np.float64)
    opt = adamkit.LAMB(params, lr=0.01)
    for g in grad_stream(params, 3):
        opt.step(g)
    saved = opt.state_dict()
    assert all(set(entry) == {"step", "exp_avg", "exp_avg_sq"} for entry in saved["state"].values())
    bad = copy.deepcopy(saved)
    bad["state"]["w"]["update"] = np.zeros((4, 3))
    with pytest.raises(KeyError, match="update"):
        opt.load_state_dict(bad)


def test_a_copy_steps_its_own_scratch_and_matches_the_original():
    params = make_params(np.float64)
    opt = adamkit.LAMB(params, lr=0.01, weight_decay=0.1)
    stream = list(grad_stream(params, 10))
    for g in stream[:5]:
        opt.step(g)
    twin = copy.deepcopy(opt)
    for g in stream[5:]:
        opt.step(g)
        twin.step(g)
    for k in params:
        assert np.array_equal(twin.params[k], opt.params[k]) and twin.params[k] is not opt.params[k]


def test_lamb_trust_ratio_is_one_for_a_zero_parameter_as_the_reference():
    from conftest import rel_error
    from registry import CASES
    from test_package_oracle import lockstep

    case = next(c for c in CASES if c.id == "lamb-wd")
    params = {"zero": np.zeros(5), "w": np.random.default_rng(0).standard_normal((3, 4)), "e": np.zeros((0,))}
    params, tensors, _, _ = lockstep(case, np.float64, steps=30, params=params)
    for k in params:
        assert rel_error(params[k], tensors[k].numpy()) <= 1e-12, k
