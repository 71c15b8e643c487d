"""NumPy users: the caller's own arrays are the parameters, whatever references the caller keeps to them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import grad_stream, make_params
from hypothesis import given, settings
from hypothesis import strategies as st

import adamkit
from adamkit.flat import CHUNK


def quadratic_grad(w, target=1.0):
    return 2 * (w - target)


def test_a_list_of_the_callers_arrays_trains():
    """The issue's first report: `w` stayed all zero."""
    w = np.zeros(50)
    opt = adamkit.Adam([w], lr=1e-2)
    for _ in range(500):
        opt.step([quadratic_grad(w)])
    assert np.all(np.abs(w - 1) < 0.05)


class TwoLayerNet:
    """A model object keeping its own references, and a params dict built from them (the book's habit)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.W1, self.b1 = rng.standard_normal((3, 4)), np.zeros(4)
        self.params = {"W1": self.W1, "b1": self.b1}

    def loss_grads(self, x, t):
        y = x @ self.W1 + self.b1
        dy = 2 * (y - t) / len(x)
        return float(np.mean(np.sum((y - t) ** 2, axis=1))), {"W1": x.T @ dy, "b1": dy.sum(0)}


def test_a_model_object_with_its_own_attributes_trains():
    net = TwoLayerNet()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3))
    t = x @ rng.standard_normal((3, 4)) + 0.5
    opt = adamkit.SGD(net.params, lr=0.1, momentum=0.9)
    first, _ = net.loss_grads(x, t)
    for _ in range(200):
        _, grads = net.loss_grads(x, t)
        opt.step(grads)
    last, _ = net.loss_grads(x, t)  # computed from net.W1 and net.b1: the model's own references
    assert net.params["W1"] is net.W1 and last < 1e-3 * first


def test_views_of_one_array_are_refused_and_a_whole_array_with_a_row_view_works():
    W = np.zeros((3, 3))
    with pytest.raises(ValueError, match="share memory"):
        adamkit.Adam({"W": W, "row": W[0]})
    with pytest.raises(ValueError, match="share memory"):
        adamkit.Adam({"a": W[0:2], "b": W[1:3]})
    with pytest.raises(ValueError, match="share memory"):
        adamkit.Adam([{"params": {"a": W[0]}}, {"params": {"b": W[0:1]}}])
    with pytest.raises(ValueError, match="C-contiguous"):
        adamkit.Adam({"col": W[:, 0]})
    with pytest.raises(ValueError, match="C-contiguous"):
        adamkit.Adam({"t": np.ones((2, 3)).T})
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        adamkit.SGD([ro])
    # disjoint views of one array are the caller's too: each row trains, and W (their base) sees it
    rows = {"r0": W[0], "r2": W[2]}
    opt = adamkit.SGD(rows, lr=1.0)
    opt.step({"r0": np.ones(3), "r2": -np.ones(3)})
    assert np.array_equal(W, [[-1, -1, -1], [0, 0, 0], [1, 1, 1]])


def test_a_memmap_trains_in_place(tmp_path):
    path = tmp_path / "w.dat"
    w = np.memmap(path, dtype=np.float32, mode="w+", shape=(4, 5))
    w[...] = 0
    opt = adamkit.Adam({"w": w}, lr=0.1)
    for _ in range(3):
        opt.step({"w": np.ones((4, 5), np.float32)})
    w.flush()
    on_disk = np.memmap(path, dtype=np.float32, mode="r", shape=(4, 5))
    assert np.all(on_disk < -0.25) and np.array_equal(on_disk, w)


@pytest.mark.parametrize("engine", ["fused", "numpy"])
def test_an_array_replaced_in_the_dict_is_adopted_with_its_state(engine):
    ours, ref = {"w": np.ones(4)}, [np.ones(4)]
    a = adamkit.Adam(ours, lr=0.1, engine=engine)
    b = adamkit.Adam(ref, lr=0.1, engine=engine)
    g = np.array([1.0, -1.0, 0.5, 2.0])
    for step in range(6):
        if step == 3:
            ours["w"] = ours["w"] + 1  # a new array: the next step must train it, keeping m and v
            ref[0] += 1
        a.step({"w": g})
        b.step([g])
    assert np.array_equal(ours["w"], ref[0]) and a.params["w"] is ours["w"]
    assert a.param_groups[0]["params"][0] is ours["w"]


def test_a_replacement_of_another_shape_or_a_new_key_is_refused_and_nothing_changes():
    params = {"w": np.ones(3), "b": np.zeros(2)}
    opt = adamkit.Adam(params, lr=0.1)
    opt.step({"w": np.ones(3), "b": np.ones(2)})
    w, b = params["w"], params["b"]
    saved = {k: v.copy() for k, v in params.items()}
    params["b"] = np.zeros(5)
    with pytest.raises(ValueError, match="'b'.*shape"):
        opt.step({"w": np.ones(3), "b": np.ones(2)})
    params["b"] = b
    params["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match="added \\['extra'\\]"):
        opt.step({"w": np.ones(3), "b": np.ones(2)})
    del params["extra"]
    assert np.array_equal(w, saved["w"]) and np.array_equal(b, saved["b"])
    assert opt.state_dict()["state"]["w"]["step"] == 1


def test_non_string_dict_keys_are_refused_at_construction():
    with pytest.raises(TypeError, match="keyed by parameter names"):
        adamkit.SGD({1: np.zeros(2)})


shapes = st.lists(
    st.one_of(
        st.just(()),
        st.tuples(st.integers(0, 7)),
        st.tuples(st.integers(0, 4), st.integers(0, 5)),
        st.just((CHUNK + 3,)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None)
@given(shapes=shapes, dtypes=st.lists(st.sampled_from([np.float32, np.float64]), min_size=6, max_size=6))
def test_property_callers_arrays_equal_the_packed_numpy_reference(shapes, dtypes):
    """Random sets of caller arrays (0-d, empty, odd and multi-chunk sizes, mixed dtypes): after a few steps the
    caller's own arrays equal the NumPy engine run on adamkit-owned packed storage."""
    rng = np.random.default_rng(len(shapes))
    arrays = {f"p{i}": rng.standard_normal(s).astype(dtypes[i]) for i, s in enumerate(shapes)}
    refs = {k: v.copy() for k, v in arrays.items()}
    held = dict(arrays)  # the caller's own references
    ours = adamkit.AdamW(arrays, lr=0.01, amsgrad=True)
    ref = adamkit.AdamW(lr=0.01, amsgrad=True, engine="numpy")
    ref.add_param_group({"params": refs}, packed=True)
    for grads in grad_stream(held, 4):
        ours.step(grads)
        ref.step(grads)
    for k in held:
        assert held[k] is arrays[k]
        if held[k].dtype == np.float64:
            np.testing.assert_array_max_ulp(held[k], refs[k], maxulp=1)
        else:
            np.testing.assert_allclose(held[k], refs[k], rtol=1e-6, atol=1e-6)


def test_step_with_grads_in_place_and_partial_steps_over_callers_arrays():
    """FreezeParam (a partial step) over the caller's arrays: the frozen one is untouched, the rest train."""
    params = make_params(np.float64)
    frozen = params["w"].copy()
    opt = adamkit.Adam(params, lr=0.1)
    opt.add_hook(adamkit.FreezeParam("w"))
    for grads in grad_stream(params, 3):
        for k, g in grads.items():
            opt.grads[k][...] = g
        opt.step()
    assert np.array_equal(params["w"], frozen) and not np.array_equal(params["k"], make_params(np.float64)["k"])


# ---- the base API: opt.lr, no silent attributes, state_dicts of the right kind -------------------------------
def test_opt_lr_reads_the_common_lr_and_writes_every_group():
    opt = adamkit.SGD([{"params": [np.zeros(2)]}, {"params": [np.zeros(2)]}], lr=0.1)
    assert opt.lr == 0.1
    opt.lr = 0.5
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5] and opt.defaults["lr"] == 0.5
    opt.param_groups[1]["lr"] = 0.2
    with pytest.raises(AttributeError, match="different learning rates"):
        _ = opt.lr
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.2]
    scheduled = adamkit.SGD([np.zeros(1)], lr=adamkit.schedules.StepLR(2, lr=0.1))
    with pytest.raises(AttributeError, match="schedule"):
        scheduled.lr = 0.3


def test_unknown_attributes_are_refused_naming_the_real_knobs():
    opt = adamkit.Adam([np.zeros(2)])
    with pytest.raises(AttributeError, match="learning_rate.*lr, betas, eps"):
        opt.learning_rate = 100
    opt.engine = "numpy"  # a real attribute still works
    opt._private = 1


def test_load_state_dict_refuses_another_optimizer_or_foreign_slots():
    a = adamkit.Adam([np.zeros(2)], lr=0.1)
    a.step([np.ones(2)])
    saved = a.state_dict()
    with pytest.raises(ValueError, match="Adam optimizer; this one is a SGD"):
        adamkit.SGD([np.zeros(2)], lr=0.1, momentum=0.9).load_state_dict(saved)
    untyped = {k: v for k, v in saved.items() if k != "type"}
    sgd = adamkit.SGD([np.zeros(2)], lr=0.1, momentum=0.9)
    untyped["param_groups"] = sgd.state_dict()["param_groups"]
    with pytest.raises(KeyError, match="exp_avg"):
        sgd.load_state_dict(untyped)
    plain = adamkit.Adam([np.zeros(2)], lr=0.1)
    amsgrad = adamkit.Adam([np.zeros(2)], lr=0.1, amsgrad=True)
    amsgrad.step([np.ones(2)])
    inconsistent = amsgrad.state_dict()
    inconsistent["param_groups"][0]["amsgrad"] = False  # hyperparameters without the slot the state holds
    with pytest.raises(KeyError, match="max_exp_avg_sq"):
        plain.load_state_dict(inconsistent)
    plain.load_state_dict(amsgrad.state_dict())  # as torch: the hyperparameters come with the state
    assert plain.param_groups[0]["amsgrad"] is True
