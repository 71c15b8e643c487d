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


# --- Muon -----------------------------------------------------------------------------------------------
def transcribed_muon(params, grads_stream, lr, weight_decay=0.1, momentum=0.95, nesterov=True,
                     ns=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None):  # fmt: skip
    """torch.optim.Muon's _single_tensor_muon and _zeropower_via_newtonschulz, line by line in float64 NumPy
    (torch runs the iteration in bfloat16)."""
    bufs = {k: np.zeros_like(v) for k, v in params.items()}
    for grads in grads_stream:
        for k, p in params.items():
            g = grads[k]
            bufs[k] = bufs[k] + (1 - momentum) * (g - bufs[k])
            update = bufs[k] - (bufs[k] - g) * (1 - momentum) if nesterov else bufs[k]
            x = transcribed_newton_schulz(update, ns, ns_steps, eps)
            rows, cols = p.shape
            if adjust_lr_fn == "match_rms_adamw":
                adjusted = lr * 0.2 * np.sqrt(max(rows, cols))
            else:
                adjusted = lr * np.sqrt(max(1, rows / cols))
            p *= 1 - lr * weight_decay
            p -= adjusted * x
    return params


def transcribed_newton_schulz(update, ns, ns_steps, eps):
    """torch's _zeropower_via_newtonschulz, in the input's dtype (float64 here)."""
    x = update.T if update.shape[0] > update.shape[1] else update
    x = x / max(np.sqrt(np.sum(x * x)), eps)
    for _ in range(ns_steps):
        a = x @ x.T
        x = ns[0] * x + (ns[1] * a + ns[2] * (a @ a)) @ x
    return x.T if update.shape[0] > update.shape[1] else x


MATRICES = {"wide": (6, 9), "tall": (11, 4), "square": (5, 5)}


@pytest.mark.parametrize("engine", ["fused", "numpy"])
@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=0.02), dict(lr=0.01, nesterov=False, momentum=0.8, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")],
)
def test_muon_matches_a_float64_transcription_of_torch_tightly(kwargs, engine):
    params = make_params(np.float64, shapes=MATRICES)
    expected = transcribed_muon({k: v.copy() for k, v in params.items()}, grad_stream(params, 300), **kwargs)
    opt = adamkit.Muon(params, engine=engine, **kwargs)
    for g in grad_stream(params, 300):
        opt.step(g)
    for k in params:
        err = np.max(np.abs(params[k] - expected[k])) / np.max(np.abs(expected[k]))
        assert err <= 1e-10, (k, err)


@pytest.mark.parametrize("steps", [0, 1, 5, 9])
@pytest.mark.parametrize("shape", [(7, 12), (12, 7), (6, 6), (1, 5), (30, 2)])
def test_newton_schulz_through_the_gram_spectrum_equals_the_iteration(shape, steps):
    """adamkit evaluates NS_k(X) as V·q(Λ)·Vᵀ·X; torch's iteration, written out in float64, gives the same matrix
    (full rank, rank 1, zero; other coefficients, some making q negative). A non-finite X takes the iteration
    (NaN, as torch)."""
    from adamkit.optim.muon import newton_schulz

    rng = np.random.default_rng(steps)
    full = rng.standard_normal(shape)
    rank1 = np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))
    for x in (full, rank1, np.zeros(shape)):
        for coefficients in ((3.4445, -4.775, 2.0315), (1.5, -0.5, 0.0), (-1.0, 0.5, 0.0)):  # q > 0, q < 0
            expected = transcribed_newton_schulz(x, coefficients, steps, 1e-7)
            got = newton_schulz(x.copy(), coefficients, steps, 1e-7)
            assert np.max(np.abs(got - expected)) <= 1e-10 * max(1.0, np.max(np.abs(expected))), (coefficients,)
    bad = full.copy()
    bad[0, 0] = np.nan
    assert np.all(np.isnan(newton_schulz(bad, (3.4445, -4.775, 2.0315), max(steps, 1), 1e-7)))


def test_muon_routes_by_shape_and_one_schedule_drives_both_parts():
    scheduled, manual = make_params(np.float64), make_params(np.float64)
    opt = adamkit.Muon(scheduled, lr=0.02)
    opt.schedule = adamkit.schedules.StepLR(1, gamma=0.5)
    twin = adamkit.Muon(manual, lr=0.02)
    for t, g in enumerate(grad_stream(scheduled, 3)):
        twin.param_groups[0]["lr"], twin.param_groups[0]["adamw_lr"] = 0.02 * 0.5**t, 1e-3 * 0.5**t
        opt.step(g)
        twin.step(g)
    for k in scheduled:
        assert np.array_equal(scheduled[k], manual[k]), k
    state = opt.state_dict()["state"]
    assert set(state["w"]) == {"step", "momentum_buffer"} and set(state["e"]) == {"step", "momentum_buffer"}
    for k in ("b", "s", "k"):
        assert set(state[k]) == {"step", "exp_avg", "exp_avg_sq"}, k


@pytest.mark.parametrize(
    "name, value",
    [("ns_steps", 100), ("ns_steps", 2.5), ("ns_coefficients", (1.0, 2.0)), ("adjust_lr_fn", "bogus"),
     ("adamw_lr", -1.0), ("adamw_betas", (0.9, 1.0)), ("adamw_eps", -1.0), ("momentum", 1.0)],
)  # fmt: skip
def test_muon_refuses_bad_arguments_naming_them(name, value):
    with pytest.raises(ValueError, match=name):
        adamkit.Muon(make_params(np.float64), **{name: value})


# --- ScheduleFreeAdamW ---------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fused", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_schedulefree_train_eval_swaps_match_the_reference(dtype, engine):
    import schedulefree
    import torch
    from conftest import TOL, rel_error

    params = make_params(dtype)
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    kwargs = dict(lr=0.02, weight_decay=0.01, warmup_steps=10)
    ref = schedulefree.AdamWScheduleFree(list(tensors.values()), **kwargs)
    opt = adamkit.ScheduleFreeAdamW(params, engine=engine, **kwargs)
    opt.eval()  # before any step: nothing to swap, as the reference
    ref.eval()
    for t, g in enumerate(grad_stream(params, 120)):
        if t % 40 == 0:
            opt.train()
            ref.train()
        opt.step(g)
        for k, x in tensors.items():
            x.grad = torch.tensor(g[k])
        ref.step()
        if t % 40 == 39:
            opt.eval()
            ref.eval()
            for k in params:  # the averaged point x, in the parameters
                assert rel_error(params[k], tensors[k].numpy()) <= TOL[dtype], (t, k)
    assert opt.param_groups[0]["train_mode"] is False


def test_schedulefree_refuses_a_step_in_eval_mode_and_changes_nothing():
    params = make_params(np.float64)
    opt = adamkit.ScheduleFreeAdamW(params, lr=0.01)
    stream = list(grad_stream(params, 3))
    opt.step(stream[0])
    opt.eval()
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(RuntimeError, match=r"train\(\)"):
        opt.step(stream[1])
    assert all(np.array_equal(before[k], params[k]) for k in params)
    opt.train()
    opt.step(stream[1])
    assert opt.state_dict()["state"]["w"]["step"] == 2


@pytest.mark.parametrize("name, value", [("warmup_steps", -1), ("warmup_steps", 1.5), ("r", -1.0),
                                         ("weight_lr_power", -0.5), ("betas", (0.0, 0.9))])  # fmt: skip
def test_schedulefree_refuses_bad_arguments_naming_them(name, value):
    with pytest.raises(ValueError, match=name):
        adamkit.ScheduleFreeAdamW(make_params(np.float64), **{name: value})


@pytest.mark.parametrize("cls", [adamkit.Muon, adamkit.Adafactor])
def test_a_scalar_that_overflows_float32_is_refused_before_any_tensor_moves(cls):
    params = {"m": np.ones((3, 4), np.float32), "v": np.ones(5, np.float32), "n": np.ones((4, 2), np.float32)}
    opt = cls(params, lr=0.01)
    opt.step({k: np.full_like(v, 0.1) for k, v in params.items()})
    before = {k: v.copy() for k, v in params.items()}
    opt.param_groups[0]["lr"] = 1e39  # finite in float64, not in float32
    with pytest.raises(ValueError, match="not finite in float32"):
        opt.step({k: np.full_like(v, 0.1) for k, v in params.items()})
    assert all(np.array_equal(before[k], params[k]) for k in params)


# --- LAMB's options ---------------------------------------------------------------------------------------
LAMB_BASE = dict(lr=0.01, weight_decay=0.05)


RECTIFIED = dict(LAMB_BASE, rectify=True)


@pytest.mark.parametrize(
    "base, option",
    [(LAMB_BASE, dict(rectify=True)), (RECTIFIED, dict(degenerated_to_sgd=True)), (RECTIFIED, dict(n_sma_threshold=20)),
     (LAMB_BASE, dict(pre_norm=True, max_grad_norm=3.0)),
     (LAMB_BASE, dict(adam_debias=True)), (LAMB_BASE, dict(weight_decouple=False)), (LAMB_BASE, dict(fixed_decay=True)),
     (dict(LAMB_BASE, weight_decouple=False), dict(grad_averaging=False)), (LAMB_BASE, dict(adam=True)),
     (LAMB_BASE, dict(adanorm=True)), (dict(LAMB_BASE, adanorm=True), dict(adanorm_r=0.5))],
    ids=lambda o: ",".join(o),
)  # fmt: skip
def test_lamb_option_changes_the_trajectory(base, option):
    """Each option the package oracle checks (tests/registry.py) shows on this stream: 300 steps with it end far
    (≫ the 1e-10 bar) from 300 steps without it. (grad_averaging only scales u, which the trust ratio undoes,
    unless u also carries the coupled decay.)"""
    runs = []
    for kwargs in (base, dict(base, **option)):
        params = make_params(np.float64)
        opt = adamkit.LAMB(params, **kwargs)
        for g in grad_stream(params, 300):
            opt.step(g)
        runs.append(params)
    assert max(np.max(np.abs(runs[0][k] - runs[1][k]), initial=0) for k in runs[0]) > 1e-4


def test_lamb_rectified_coupled_decay_does_nothing_as_in_the_reference():
    """pytorch_optimizer's rectified branch never adds λ·p when weight_decouple=False (checked against it in
    tests/registry.py, lamb-rectify-sgd-coupled): the same bytes as no decay."""
    runs = []
    for wd in (0.1, 0.0):
        params = make_params(np.float64)
        opt = adamkit.LAMB(params, lr=0.01, rectify=True, weight_decay=wd, weight_decouple=False)
        for g in grad_stream(params, 50):
            opt.step(g)
        runs.append(params)
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_lamb_pre_norm_factor_is_the_references():
    """The global clipping factor is pytorch_optimizer's own (its float32 sum exactly; the factor to a few float32
    ulps: torch's float32 sqrt is not correctly rounded), and clipping is active on part of the stream only."""
    import pytorch_optimizer
    import torch
    from pytorch_optimizer.optimizer.utils.gradient import get_global_gradient_norm

    params = make_params(np.float64)
    tensors = [torch.tensor(v.copy()) for v in params.values()]
    ref = pytorch_optimizer.Lamb(tensors, lr=0.01, pre_norm=True, max_grad_norm=3.0)
    opt = adamkit.LAMB(params, lr=0.01, pre_norm=True, max_grad_norm=3.0)
    factors = []
    for g in grad_stream(params, 200):
        for t, k in zip(tensors, g):
            t.grad = torch.tensor(g[k])
        opt._grad_sq = opt._global_grad_sq(frozenset(), g)
        assert opt._grad_sq == get_global_gradient_norm(ref.param_groups).item()
        factor, expected = opt._grad_scale(opt.param_groups[0]), ref.get_global_gradient_norm().item()
        assert abs(factor - expected) <= 4 * np.spacing(np.float32(expected)), (factor, expected)
        factors.append(factor)
    assert min(factors) < 0.5 and max(factors) == 1.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [(dict(adanorm=1), TypeError, "adanorm"), (dict(adanorm_r=1.5), ValueError, "adanorm_r"),
     (dict(foreach=True), ValueError, "foreach"), (dict(bogus=1), TypeError, "bogus"),
     (dict(n_sma_threshold=-1), ValueError, "n_sma_threshold"), (dict(max_grad_norm=-1.0), ValueError, "max_grad_norm"),
     (dict(rectify=1), TypeError, "rectify"), (dict(pre_norm="yes"), TypeError, "pre_norm")],
)  # fmt: skip
def test_lamb_refuses_options_it_does_not_offer_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        adamkit.LAMB(make_params(np.float64), **kwargs)


def test_lamb_rectify_skips_the_update_but_not_the_moments_before_the_threshold():
    """rectify without degenerated_to_sgd: while ρ_t < 5 (the first steps at β2 = 0.999) only the decay and the
    moments move, as the reference does."""
    params = make_params(np.float64)
    before = {k: v.copy() for k, v in params.items()}
    opt = adamkit.LAMB(params, lr=0.01, rectify=True, weight_decay=0.1)
    opt.step(next(grad_stream(params, 1)))
    for k in params:
        np.testing.assert_array_equal(params[k], before[k] * (1 - 0.01 * 0.1))
    assert np.any(opt.state_dict()["state"]["w"]["exp_avg"] != 0)


def test_lamb_adanorm_keeps_the_references_running_gradient_norm():
    """AdaNorm's ``e`` per tensor is saved (host scalar ``exp_grad_adanorm``) with the reference's values."""
    import pytorch_optimizer
    import torch

    params = make_params(np.float64)
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    ref = pytorch_optimizer.Lamb(list(tensors.values()), lr=0.01, adanorm=True, adanorm_r=0.9)
    opt = adamkit.LAMB(params, lr=0.01, adanorm=True, adanorm_r=0.9)
    for g in grad_stream(params, 50):
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        ref.step()
        opt.step(g)
    state = opt.state_dict()["state"]
    for k, t in tensors.items():
        expected = ref.state[t]["exp_grad_adanorm"].item()
        assert abs(state[k]["exp_grad_adanorm"] - expected) <= 1e-12 * max(1.0, expected), k
    assert len({state[k]["exp_grad_adanorm"] for k in state}) > 2  # one per tensor
