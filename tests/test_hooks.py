"""Hooks equal their definitions: the L2 loss term, AdamW's decay, torch's clip_grad_norm_/clip_grad_value_."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import grad_stream, make_params, rel_error

import adamkit
from adamkit.hooks import ClipGradNorm, ClipGradValue, DecoupledWeightDecay, FreezeParam, WeightDecay


def run(opt_factory, hooks, steps=50, dtype=np.float64, grad_fn=None):
    params = make_params(dtype)
    opt = opt_factory(params)
    for h in hooks:
        opt.add_hook(h)
    for grads in grad_stream(params, steps):
        opt.step(grad_fn(params, grads) if grad_fn else grads)
    return params, opt


def test_weight_decay_equals_l2_term_in_the_loss():
    rate = 0.05
    hooked, _ = run(lambda p: adamkit.Adam(p, lr=0.01), [WeightDecay(rate)])
    # gradient of loss + rate/2·‖p‖² is g + rate·p
    plain, _ = run(lambda p: adamkit.Adam(p, lr=0.01), [], grad_fn=lambda p, g: {k: g[k] + rate * p[k] for k in g})
    for k in hooked:
        np.testing.assert_array_equal(hooked[k], plain[k])


def test_decoupled_weight_decay_equals_adamw():
    hooked, _ = run(lambda p: adamkit.Adam(p, lr=0.01), [DecoupledWeightDecay(0.1)])
    adamw, _ = run(lambda p: adamkit.AdamW(p, lr=0.01, weight_decay=0.1), [])
    for k in hooked:
        assert rel_error(hooked[k], adamw[k]) <= 1e-14


def test_lr_independent_decay():
    params = {"w": np.ones(3)}
    opt = adamkit.SGD(params, lr=0.5)
    opt.add_hook(DecoupledWeightDecay(0.1, lr_independent=True))
    opt.step({"w": np.zeros(3)})
    np.testing.assert_array_equal(params["w"], np.full(3, 0.9))


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_equals_torch(max_norm, dtype):
    params = make_params(dtype)
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    opt = adamkit.SGD(params, lr=0.1, momentum=0.9)
    opt.add_hook(ClipGradNorm(max_norm))
    ref = torch.optim.SGD(list(tensors.values()), lr=0.1, momentum=0.9)
    for grads in grad_stream(params, 30):
        opt.step(grads)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        torch.nn.utils.clip_grad_norm_(list(tensors.values()), max_norm)
        ref.step()
        for k, t in tensors.items():  # after each step: the clip took effect exactly as torch's
            assert rel_error(params[k], t.numpy()) <= (1e-12 if dtype == np.float64 else 1e-6)
        assert all(np.array_equal(opt.grads[k], np.zeros_like(params[k])) for k in params), "hooks use a scratch copy"
    for k in params:
        assert rel_error(params[k], tensors[k].numpy()) <= (1e-12 if dtype == np.float64 else 1e-5)


def test_clip_grad_value_equals_torch():
    params = make_params(np.float64)
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    opt = adamkit.Adam(params, lr=0.01)
    opt.add_hook(ClipGradValue(0.3))
    ref = torch.optim.Adam(list(tensors.values()), lr=0.01)
    for grads in grad_stream(params, 30):
        opt.step(grads)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        torch.nn.utils.clip_grad_value_(list(tensors.values()), 0.3)
        ref.step()
    for k in params:
        assert rel_error(params[k], tensors[k].numpy()) <= 1e-10


def test_freeze_param_leaves_it_bitwise_unchanged():
    params, opt = run(lambda p: adamkit.Adam(p, lr=0.01), [])
    frozen_before = params["w"].copy()
    state_before = copy.deepcopy(opt.state_dict()["state"]["w"])
    opt.add_hook(FreezeParam("w"))
    for grads in grad_stream(params, 5, seed=9):
        opt.step(grads)
    assert np.array_equal(params["w"], frozen_before)
    after = opt.state_dict()["state"]["w"]
    assert after["step"] == state_before["step"] == 50
    assert all(np.array_equal(after[s], state_before[s]) for s in ("exp_avg", "exp_avg_sq"))
    assert opt.state_dict()["state"]["b"]["step"] == 55


def test_inf_gradient_with_clip_norm_refuses_the_step():
    params, opt = run(lambda p: adamkit.Adam(p, lr=0.01), [DecoupledWeightDecay(0.1), ClipGradNorm(1.0)], steps=3)
    before = {k: v.copy() for k, v in params.items()}
    state = copy.deepcopy(opt.state_dict())
    grads = {k: np.ones_like(v) for k, v in params.items()}
    grads["w"][0, 0] = np.inf
    with pytest.raises(FloatingPointError, match="norm"):
        opt.step(grads)
    for k in params:
        assert np.array_equal(params[k], before[k]) and not np.any(np.isnan(params[k]))
    assert opt.state_dict()["state"]["w"]["step"] == state["state"]["w"]["step"]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: WeightDecay(-0.1), "rate"),
        (lambda: DecoupledWeightDecay(-1.0), "rate"),
        (lambda: ClipGradNorm(-1.0), "max_norm"),
        (lambda: ClipGradValue(float("nan")), "limit"),
        (lambda: FreezeParam(), "name"),
    ],
)
def test_bad_hook_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_freeze_unknown_name_refused():
    params = make_params(np.float64)
    opt = adamkit.SGD(params, lr=0.1)
    opt.add_hook(FreezeParam("nope"))
    with pytest.raises(KeyError, match="nope"):
        opt.step({k: np.ones_like(v) for k, v in params.items()})
    with pytest.raises(TypeError, match="Hook"):
        opt.add_hook(lambda o, s: None)


def test_frozen_parameter_with_inf_gradient_does_not_refuse_clipping():
    params, opt = run(lambda p: adamkit.SGD(p, lr=0.1), [FreezeParam("w"), ClipGradNorm(1.0)], steps=2)
    frozen = params["w"].copy()
    grads = {k: np.ones_like(v) for k, v in params.items()}
    grads["w"][0, 0] = np.inf
    opt.step(grads)
    assert np.array_equal(params["w"], frozen) and np.all(np.isfinite(params["b"]))
