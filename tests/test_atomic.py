"""Nothing lost, nothing trusted (issue 10, items 1–7): refused steps are atomic whatever refuses them; copies
and pickles step their own arrays; NAdam keeps histories apart (torch.optim as oracle); out-of-range values,
untrusted state_dicts and aliasing are refused; reductions do not depend on thread counts."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import grad_stream, make_params

import adamkit
from adamkit.hooks import ClipGradNorm, DecoupledWeightDecay, FreezeParam, WeightDecay
from adamkit.schedules import StepLR


def snapshot(opt, params):
    """Everything a refused step must leave bytewise unchanged."""
    return (
        {k: v.copy() for k, v in params.items()},
        {k: v.copy() for k, v in opt.grads.items()},
        pickle.dumps(opt.state_dict()),
        [dict(g, params=None) for g in opt.param_groups],
    )


def assert_unchanged(before, opt, params):
    after = snapshot(opt, params)
    for k in before[0]:
        assert before[0][k].tobytes() == after[0][k].tobytes(), f"param {k} changed"
        assert before[1][k].tobytes() == after[1][k].tobytes(), f"grad {k} changed"
    assert before[2] == after[2], "state, steps or schedule changed"
    assert before[3] == after[3], "hyperparameters changed"


def primed(opt_factory, dtype=np.float32, steps=3, **kw):
    params = make_params(dtype, **kw)
    opt = opt_factory(params)
    for grads in grad_stream(params, steps):
        opt.step(grads)
    for g in opt.grads.values():
        g[...] = 0.5
    return params, opt


# ---- item 2: a refused step changes nothing, from any check, hook, group, dtype buffer or FP error -------------
def test_weight_decay_overflow_then_clip_refuses_with_nothing_changed():
    params, opt = primed(lambda p: adamkit.Adam(p, lr=0.01))
    opt.add_hook(WeightDecay(3e38))  # g + 3e38·p overflows float32 to inf where |p| > 1.2: an inf norm
    opt.add_hook(ClipGradNorm(1.0))
    before = snapshot(opt, params)
    with pytest.raises(FloatingPointError, match="norm"):
        opt.step()
    assert_unchanged(before, opt, params)
    with pytest.raises(FloatingPointError, match="norm"):
        opt.step({k: np.ones_like(v) for k, v in params.items()})
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("engine", ["numpy", "fused"])
def test_failure_in_a_later_group_or_dtype_buffer_leaves_the_first_unchanged(engine):
    """np.errstate(all="raise") makes the NumPy engine raise midway: group 0 (and the float64 buffer) must be
    restored; the fused engine raises nothing midway, and its refusal (a scalar that overflows float32 in the
    second group) comes before any kernel runs."""
    g0 = {"a": np.ones(3), "b": np.ones(2, np.float32)}
    g1 = {"c": np.full(2, 1e-30, np.float32)}
    opt = adamkit.Adam([{"params": g0}, {"params": g1, "lr": 0.1}], lr=0.1, engine=engine)
    params = {**g0, **g1}
    opt.step({k: np.ones_like(v) for k, v in params.items()})
    before = snapshot(opt, params)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    grads["c"][...] = 1e-30  # v = 1e-60 underflows float32 in group 1: a FloatingPointError under errstate
    if engine == "numpy":
        with np.errstate(all="raise"), pytest.raises(FloatingPointError):
            opt.step(grads)
    else:
        opt.param_groups[1]["lr"] = 1e39  # finite in float64, inf in float32
        with pytest.raises(ValueError, match="not finite in float32"):
            opt.step(grads)
        opt.param_groups[1]["lr"] = 0.1
    assert_unchanged(before, opt, params)


def test_refused_step_grads_leave_opt_grads_and_schedule_alone():
    params = {"w": np.ones(3)}
    opt = adamkit.SGD(params, lr=StepLR(1, gamma=0.5, lr=0.1))
    opt.step({"w": np.ones(3)})
    opt.grads["w"][...] = 7.0
    before = snapshot(opt, params)
    t = opt.state_dict()["schedule"]["t"]
    with pytest.raises(TypeError, match="dtype"):
        opt.step({"w": np.ones(3, np.float32)})
    opt.add_hook(ClipGradNorm(1.0))
    with pytest.raises(FloatingPointError):
        opt.step({"w": np.array([np.inf, 1.0, 1.0])})
    assert_unchanged(before, opt, params)
    assert opt.state_dict()["schedule"]["t"] == t and opt.param_groups[0]["lr"] == 0.05


def test_step_grads_reads_the_callers_gradients_and_leaves_opt_grads():
    params = {"w": np.zeros(2)}
    opt = adamkit.SGD(params, lr=1.0)
    opt.grads["w"][...] = 5.0
    g = np.array([1.0, 2.0])
    opt.step({"w": g})
    assert np.array_equal(params["w"], [-1, -2]) and np.array_equal(opt.grads["w"], [5, 5])
    assert np.array_equal(g, [1, 2])


# ---- item 1: copies and pickles ---------------------------------------------------------------------------
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("clone", [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))], ids=["deepcopy", "pickle"])
def test_a_copy_steps_its_own_arrays_and_its_own_grads(packed, clone):
    params = make_params(np.float64)
    opt = adamkit.Adam(lr=0.1)
    opt.add_param_group({"params": params}, packed=packed)
    opt.step({k: np.ones_like(v) for k, v in params.items()})
    twin = clone(opt)
    originals = {k: v.copy() for k, v in params.items()}
    for g in twin.grads.values():
        g[...] = 1.0
    twin.step()
    reference = copy.deepcopy(originals)
    ref_opt = adamkit.Adam(reference, lr=0.1)
    ref_opt.load_state_dict(opt.state_dict())
    ref_opt.step({k: np.ones_like(v) for k, v in reference.items()})
    for k in params:
        assert np.array_equal(params[k], originals[k]), "the original must not move"
        assert np.array_equal(twin.params[k], reference[k]), "the copy steps its own arrays with its grads"
        assert twin.param_groups[0]["params"][list(params).index(k)] is twin.params[k]


# ---- item 3: NAdam keeps each tensor's history -----------------------------------------------------------
def test_nadam_keeps_running_products_apart_like_torch():
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal(3), "b": rng.standard_normal(3)}
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    opt = adamkit.NAdam(params, lr=0.01)
    ref = torch.optim.NAdam(list(tensors.values()), lr=0.01)
    # a skips step 4 and b skips step 5 while momentum_decay differs: both end at 4 steps, different Π_t
    plan = [(None, 4e-3)] * 3 + [("a", 0.2), ("b", 4e-3)] + [(None, 4e-3)] * 3
    for frozen, psi in plan:
        grads = {k: rng.standard_normal(3) for k in params}
        opt.param_groups[0]["momentum_decay"] = ref.param_groups[0]["momentum_decay"] = psi
        hooks = [FreezeParam(frozen)] if frozen else []
        opt.hooks[:] = hooks
        opt.step(grads)
        for k, t in tensors.items():
            t.grad = None if k == frozen else torch.tensor(grads[k])
        ref.step()
    products = {k: opt.state_dict()["state"][k]["mu_product"] for k in params}
    assert products["a"] != products["b"]
    for k, t in tensors.items():
        assert products[k] == pytest.approx(float(ref.state[t]["mu_product"]), rel=1e-6)
        np.testing.assert_allclose(params[k], t.numpy(), rtol=1e-9, atol=1e-12)


# ---- item 4: values outside the stated range ----------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (adamkit.SGD, dict(lr=math.inf), "lr"),
        (adamkit.Adam, dict(weight_decay=math.inf), "weight_decay"),
        (adamkit.SGD, dict(lr=0.1, momentum=math.inf), "momentum"),
    ],
)
def test_infinity_is_outside_an_unbounded_range(cls, kwargs, match):
    with pytest.raises(ValueError, match=rf"{match} must be in \[0, inf\)"):
        cls([np.zeros(2)], **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: adamkit.SGD(p, lr=1e39),  # finite in float64, inf in float32
        lambda p: adamkit.Adam(p, lr=0.1, betas=(0.99999999, 0.999), convention="keras"),  # 1 − β1ᵗ = 0 in float32
    ],
)
def test_scalars_that_overflow_the_buffer_dtype_are_refused_with_nothing_changed(make):
    params = {"w": np.ones(3, np.float32)}
    opt = make(params)
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match="not finite in float32"):
        opt.step({"w": np.ones(3, np.float32)})
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize(
    "hook, attribute, value",
    [
        (ClipGradNorm(1.0), "max_norm", -1.0),
        (ClipGradNorm(1.0), "max_norm", math.nan),
        (WeightDecay(0.1), "rate", math.inf),
        (DecoupledWeightDecay(0.1), "rate", -0.5),
    ],
)
def test_hook_settings_changed_after_construction_are_checked_at_each_step(hook, attribute, value):
    params, opt = primed(lambda p: adamkit.SGD(p, lr=0.1))
    opt.add_hook(hook)
    setattr(hook, attribute, value)
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match=attribute):
        opt.step()
    assert_unchanged(before, opt, params)


def test_an_infinite_parameter_stays_infinite_without_weight_decay():
    for cls in (adamkit.SGD, adamkit.Adam, adamkit.RMSprop, adamkit.Adagrad):
        params = {"w": np.array([np.inf, 1.0])}
        cls(params, lr=0.1).step({"w": np.array([0.0, 1.0])})
        assert params["w"][0] == np.inf, cls.__name__


# ---- item 5: load_state_dict trusts nothing ----------------------------------------------------------------
def _saved():
    params = {"w": np.ones(3)}
    opt = adamkit.Adam(params, lr=StepLR(2, lr=0.1))
    opt.step({"w": np.ones(3)})
    return opt.state_dict()


@pytest.mark.parametrize(
    "corrupt, error, match",
    [
        (lambda s: s["state"]["w"].update(step=-1), ValueError, "step"),
        (lambda s: s["state"]["w"].update(step=2.9), TypeError, "step"),
        (lambda s: s["state"]["w"].update(step="3"), TypeError, "step"),
        (lambda s: s["state"]["w"].update(exp_avg=np.ones(3, complex)), TypeError, "exp_avg"),
        (lambda s: s["state"]["w"].update(exp_avg=np.full(3, np.nan)), ValueError, "exp_avg"),
        (lambda s: s["state"]["w"].update(exp_avg_sq=-np.ones(3)), ValueError, "exp_avg_sq"),
        (lambda s: s["schedule"].update(t=-5), ValueError, "t"),
        (lambda s: s["schedule"].update(base_lrs=[-1.0]), ValueError, "base_lrs"),
        (lambda s: s["schedule"].pop("state"), ValueError, "schedule"),
        (lambda s: s["schedule"].update(state={"unknown": 1}), ValueError, "schedule"),
    ],
)
def test_corrupt_state_dicts_are_refused_and_change_nothing(corrupt, error, match):
    saved = _saved()
    corrupt(saved)
    params = {"w": np.full(3, 2.0)}
    opt = adamkit.Adam(params, lr=StepLR(2, lr=0.1))
    for _ in range(3):
        opt.step({"w": np.full(3, 0.5)})
    before = snapshot(opt, params)
    with pytest.raises(error, match=match):
        opt.load_state_dict(saved)
    assert_unchanged(before, opt, params)


def test_state_dict_does_not_share_mutable_hyperparameters():
    params = {"w": np.ones(2)}
    opt = adamkit.Adam(params, betas=[0.9, 0.999])
    saved = opt.state_dict()
    saved["param_groups"][0]["betas"][0] = 0.1
    assert opt.param_groups[0]["betas"][0] == 0.9
    other = adamkit.Adam({"w": np.ones(2)}, betas=[0.9, 0.999])
    other.load_state_dict(saved)
    saved["param_groups"][0]["betas"][0] = 0.5
    assert other.param_groups[0]["betas"][0] == 0.1


# ---- item 6: aliasing ------------------------------------------------------------------------------------
def test_the_same_array_in_two_groups_is_refused():
    w = np.zeros(3)
    with pytest.raises(ValueError, match="more than once"):
        adamkit.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)


def test_a_second_live_optimizer_over_the_same_arrays_warns():
    w = np.zeros(3)
    first = adamkit.SGD([w], lr=0.1)
    with pytest.warns(RuntimeWarning, match="another live optimizer"):
        adamkit.Adam([w[1:]])
    del first
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adamkit.Adam([w])  # the first one is gone: no warning


# ---- item 7: determinism ---------------------------------------------------------------------------------
DETERMINISM = """
import sys, numpy as np, adamkit, hashlib, numba
rng = np.random.default_rng(0)
params = {"a": rng.standard_normal(300_001), "b": rng.standard_normal((70, 90)), "c": rng.standard_normal(7)}
opt = adamkit.Adam(params, lr=1e-3)
opt.add_hook(adamkit.ClipGradNorm(0.5))
for _ in range(5):
    opt.step({k: rng.standard_normal(v.shape) * 3 for k, v in params.items()})
print(hashlib.sha256(b"".join(v.tobytes() for v in params.values())).hexdigest())
"""


def test_results_do_not_depend_on_numba_or_blas_thread_counts():
    digests = set()
    for threads in ("1", "2"):
        env = {"NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        out = subprocess.run(
            [sys.executable, "-c", DETERMINISM], capture_output=True, text=True, check=True,
            env={**__import__("os").environ, **env},
        )  # fmt: skip
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


# ---- the NaN/Inf policy ------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fused", "numpy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_skip_and_raise_change_nothing(engine, bad):
    for policy in ("skip", "raise"):
        params, opt = primed(lambda p, policy=policy: adamkit.Adam(p, lr=0.1, nonfinite=policy, engine=engine))
        before = snapshot(opt, params)
        grads = {k: np.ones_like(v) for k, v in params.items()}
        grads["k"].flat[7] = bad
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="'k'"):
                opt.step(grads)
        else:
            opt.step(grads)
            assert opt.skipped_steps == 1
        assert_unchanged(before, opt, params)
        state = opt.state_dict()["state"]
        assert all(np.all(np.isfinite(e["exp_avg_sq"])) for e in state.values() if "exp_avg_sq" in e)
        del grads["k"]
        opt.step({**grads, "k": np.ones_like(params["k"])})  # a good step afterwards goes through
        assert opt.state_dict()["state"]["k"]["step"] == 4


def test_nonfinite_default_ignores_as_torch_and_bad_policy_is_named():
    assert adamkit.SGD([np.zeros(1)]).nonfinite == "ignore"
    with pytest.raises(ValueError, match="nonfinite"):
        adamkit.SGD([np.zeros(1)], nonfinite="warn")
    with pytest.raises(ValueError, match="nonfinite"):
        adamkit.SGD([np.zeros(1)]).nonfinite = "sometimes"
