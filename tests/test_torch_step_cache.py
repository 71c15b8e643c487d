"""What adamkit.torch's step caches between steps must notice (torch.optim is the oracle).

A step skips work when nothing changed since the last one: the parameters' storage and grads are checked in one
C-level pass against the bindings cached at the last step, hyperparameters identical to those last synced are
not re-checked, and torch's step wrapper is entered only when a hook or a profiler needs it. Each test below
changes one thing behind the cache's back, in the grads-bound regime (``zero_grad(set_to_none=False)``) where
nothing else would reveal it, and fails if the cache went stale.
"""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler as S
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch_models import batches, flat, loss_fn, rel_error, twins

import adamkit.torch as at

TOL64 = 1e-10


def lockstep(change, steps=12, change_at=5, name="Adam", **kwargs):
    """Train twin MLPs (grads kept bound), calling ``change(model, opt, step)`` from step ``change_at`` on."""
    ours_model, ref_model = twins("mlp", torch.float64)

    def own(kwargs):  # a tensor lr changed in place must not be shared by the two optimizers
        return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}

    ours = getattr(at, name)(ours_model.parameters(), **own(kwargs))
    ref = getattr(torch.optim, name)(ref_model.parameters(), **own(kwargs))
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        for i, (x, y) in enumerate(batches("mlp", torch.float64, steps)):
            opt.zero_grad(set_to_none=False)
            loss_fn(model, x, y).backward()
            if i >= change_at:
                change(model, opt, i)
            opt.step()
    return ours_model, ref_model, ours


def assert_same(ours_model, ref_model, tol=TOL64):
    assert rel_error(flat(ours_model), flat(ref_model)) <= tol


def test_the_bound_case_is_what_is_measured():
    """The regime these tests change things in: after the first step every grad is a view of the flat buffer,
    so the step takes the cached path (no gather)."""
    ours_model, ref_model, ours = lockstep(lambda *a: None)
    assert all(p.grad is b.grad for p, b in zip(ours_model.parameters(), ours._bound))
    assert ours._bindings is not None and ours._still_bound()
    assert_same(ours_model, ref_model)


def test_data_replaced_while_grads_stay_bound():
    def change(model, opt, i):
        if i == 6:
            with torch.no_grad():
                model[2].weight.data = model[2].weight.data * 0.5  # new storage; the grad is still our view

    ours_model, ref_model, ours = lockstep(change)
    assert_same(ours_model, ref_model)
    assert ours_model[2].weight.data_ptr() == ours._by_param[id(ours_model[2].weight)].ptr


def test_one_grad_replaced_or_dropped_while_the_others_stay_bound():
    def change(model, opt, i):
        if i == 6:
            model[0].bias.grad = model[0].bias.grad.clone() * 3.0  # a grad that is not our view
        if i == 8:
            model[2].weight.grad = None  # skipped this step, state untouched (torch.optim too)

    ours_model, ref_model, ours = lockstep(change)
    assert_same(ours_model, ref_model)


def test_params_added_later_are_checked_too():
    """add_param_group after steps were taken: the new parameters' grads (autograd's own tensors at first) must
    be gathered although every old parameter is still bound."""
    ours_model, ref_model = twins("mlp", torch.float64)
    for model, cls in ((ours_model, at.Adam), (ref_model, torch.optim.Adam)):
        head, *rest = [list(m.parameters()) for m in model if list(m.parameters())]
        opt = cls(head, lr=0.01)
        for i, (x, y) in enumerate(batches("mlp", torch.float64, 16)):
            if i == 5:
                for p in (p for ps in rest for p in ps):
                    p.grad = None  # so that autograd gives them grads of its own, after the old ones are bound
                opt.add_param_group({"params": [p for ps in rest for p in ps], "lr": 0.02})
            opt.zero_grad(set_to_none=False)
            loss_fn(model, x, y).backward()
            opt.step()
    assert_same(ours_model, ref_model)


def test_hyperparameters_changed_in_place_or_to_a_bad_value():
    """Identical values skip the checks; a tensor lr changed in place, a betas list edited in place and a value
    replaced by a bad one are all seen."""
    lr = torch.tensor(0.01, dtype=torch.float64)

    def change(model, opt, i):
        group = opt.param_groups[0]
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].mul_(0.8)  # in place: the same object
        if i == 6:
            group["betas"] = [0.9, 0.999]
        if i >= 7:
            group["betas"][0] = 0.9 - 0.05 * (i - 6)  # the same list, edited

    ours_model, ref_model, ours = lockstep(change, lr=lr)
    assert_same(ours_model, ref_model)
    ours.param_groups[0]["eps"] = -1.0
    with pytest.raises(ValueError, match="eps"):
        ours.step()


def test_scheduler_lr_reaches_the_core_every_step():
    ours_model, ref_model = twins("mlp", torch.float64)
    for model, cls in ((ours_model, at.SGD), (ref_model, torch.optim.SGD)):
        opt = cls(model.parameters(), lr=0.05, momentum=0.9)
        sched = S.StepLR(opt, step_size=3, gamma=0.5)
        for x, y in batches("mlp", torch.float64, 15):
            opt.zero_grad(set_to_none=False)
            loss_fn(model, x, y).backward()
            opt.step()
            sched.step()
    assert_same(ours_model, ref_model)


def test_step_hooks_and_the_profiler_still_see_every_step():
    """torch's step wrapper is skipped while nothing needs it: hooks registered after steps were taken (on the
    optimizer, or globally) are called, and a profiler still records the step under torch's name."""
    model = twins("mlp", torch.float64)[0]
    opt = at.Adam(model.parameters(), lr=0.01)
    data = list(batches("mlp", torch.float64, 6))

    def one_step(x, y):
        opt.zero_grad(set_to_none=False)
        loss_fn(model, x, y).backward()
        opt.step()

    one_step(*data[0])
    calls = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    post = opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    one_step(*data[1])
    assert calls == ["pre", "post"]
    pre.remove(), post.remove()
    one_step(*data[2])
    assert calls == ["pre", "post"]
    handle = register_optimizer_step_pre_hook(lambda o, args, kwargs: calls.append("global"))
    try:
        one_step(*data[3])
    finally:
        handle.remove()
    assert calls == ["pre", "post", "global"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        one_step(*data[4])
    assert any(e.name == "Optimizer.step#Adam.step" for e in prof.events())


# ------------------------------------------------------------------- the set_to_none gather (one numba copy)
def mixed_model():
    """An MLP whose first layer is float64 and the rest float32 (two flat buffers, two dtypes to gather)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16).double(), torch.nn.Tanh(), torch.nn.Linear(16, 16))


def mixed_loss(model, x, y):
    h = torch.tanh(model[0](x))
    return ((model[2](h.float()).sum(-1, keepdim=True) - y.float()) ** 2).mean()


def test_set_to_none_gathers_every_grad_and_rebinds_it():
    ours_model, ref_model = mixed_model(), mixed_model()
    ours = at.Adam(ours_model.parameters(), lr=0.01)
    ref = torch.optim.Adam(ref_model.parameters(), lr=0.01)
    for x, y in batches("mlp", torch.float64, 12):
        for opt, model in ((ours, ours_model), (ref, ref_model)):
            opt.zero_grad(set_to_none=True)
            mixed_loss(model, x, y).backward()
            if opt is ours:
                expected = [p.grad.clone() for p in model.parameters()]
            opt.step()
        assert ours._bindings[3] is not None  # the vectorised gather ran
        for p, b, g in zip(ours_model.parameters(), ours._bound, expected):
            assert p.grad is b.grad  # rebound to the flat buffer...
            torch.testing.assert_close(p.grad, g, rtol=0, atol=0)  # ...holding this step's gradient
    for p, q in zip(ours_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)  # the float32 layers: rounding, amplified by Adam


def test_set_to_none_with_odd_grads_takes_the_per_parameter_path():
    """A grad that is None, not contiguous or sparse among new ones: nothing is copied by the vectorised gather."""

    def change(model, opt, i):
        for p in model.parameters():
            p.grad = p.grad.clone()  # every grad new, as after set_to_none
        if i == 6:
            w = model[2].weight  # 16 × 16: its transpose's transpose has its shape, not its strides
            w.grad = w.grad.t().contiguous().t()
            assert not w.grad.is_contiguous()
        if i == 8:
            model[0].bias.grad = None

    ours_model, ref_model, ours = lockstep(change)
    assert_same(ours_model, ref_model)


def test_gather_rebuilt_when_params_are_added():
    ours_model, ref_model = twins("mlp", torch.float64)
    for model, cls in ((ours_model, at.Adam), (ref_model, torch.optim.Adam)):
        head, *rest = [list(m.parameters()) for m in model if list(m.parameters())]
        opt = cls(head, lr=0.01)
        for i, (x, y) in enumerate(batches("mlp", torch.float64, 12)):
            if i == 5:
                opt.add_param_group({"params": [p for ps in rest for p in ps], "lr": 0.02})
            model.zero_grad(set_to_none=True)
            loss_fn(model, x, y).backward()
            opt.step()
    assert_same(ours_model, ref_model)
