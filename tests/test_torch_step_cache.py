"""What adamkit.torch's step caches between steps must notice (torch.optim is the oracle).

A step skips work when nothing changed since the last one: the parameters' storage and grads are checked in two
C-level passes against the bindings cached at the last step, hyperparameters identical to those last synced are
not re-checked, and torch's step wrapper is entered only when a hook or a profiler needs it. Each test below
changes one thing behind the cache's back, in the grads-bound regime (``zero_grad(set_to_none=False)``) or the
grads-read-in-place regime (``set_to_none=True``) where nothing else would reveal it, and fails if the cache went
stale or a grad was read where it should not be.
"""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler as S
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch_models import batches, flat, loss_fn, rel_error, twins

import adamkit.torch as at

TOL64 = 1e-10


def lockstep(change, steps=12, change_at=5, name="Adam", set_to_none=False, **kwargs):
    """Train twin MLPs (grads kept bound, or new each step), calling ``change(model, opt, step)`` from step
    ``change_at`` on."""
    ours_model, ref_model = twins("mlp", torch.float64)

    def own(kwargs):  # a tensor lr changed in place must not be shared by the two optimizers
        return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}

    ours = getattr(at, name)(ours_model.parameters(), **own(kwargs))
    ref = getattr(torch.optim, name)(ref_model.parameters(), **own(kwargs))
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        for i, (x, y) in enumerate(batches("mlp", torch.float64, steps)):
            opt.zero_grad(set_to_none=set_to_none)
            loss_fn(model, x, y).backward()
            if i >= change_at:
                change(model, opt, i)
            opt.step()
    return ours_model, ref_model, ours


def assert_same(ours_model, ref_model, tol=TOL64):
    assert rel_error(flat(ours_model), flat(ref_model)) <= tol


def test_the_bound_case_is_what_is_measured():
    """The regime these tests change things in: from the second step on every grad is a view of the flat buffer,
    so the step takes the cached path (the flat gradient, nothing skipped)."""
    ours_model, ref_model, ours = lockstep(lambda *a: None)
    assert all(p.grad is b.grad for p, b in zip(ours_model.parameters(), ours._bound))
    assert ours._bindings is not None and ours._gradients() == (None, frozenset())
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


# --------------------------------------------------------- set_to_none: new grads read where autograd put them
def mixed_model():
    """An MLP whose first layer is float64 and the rest float32 (two flat buffers, two dtypes read in place)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16).double(), torch.nn.Tanh(), torch.nn.Linear(16, 16))


def mixed_loss(model, x, y):
    h = torch.tanh(model[0](x))
    return ((model[2](h.float()).sum(-1, keepdim=True) - y.float()) ** 2).mean()


def test_set_to_none_reads_every_grad_in_place():
    """After set_to_none the kernel reads autograd's grads where they are: nothing is copied into the flat gradient
    buffer, p.grad stays autograd's tensor, holding this step's gradient; the result is torch.optim's."""
    ours_model, ref_model = mixed_model(), mixed_model()
    ours = at.Adam(ours_model.parameters(), lr=0.01)
    ref = torch.optim.Adam(ref_model.parameters(), lr=0.01)
    for x, y in batches("mlp", torch.float64, 12):
        for opt, model in ((ours, ours_model), (ref, ref_model)):
            opt.zero_grad(set_to_none=True)
            mixed_loss(model, x, y).backward()
            if opt is ours:
                grads = [p.grad for p in model.parameters()]
                expected = [g.clone() for g in grads]
            opt.step()
        assert ours._bindings is not None  # the per-parameter path (which drops them) did not run
        for bucket in ours._core._buckets():
            assert not bucket.grad.any()  # never written: the grads were read in place
        for p, g, e in zip(ours_model.parameters(), grads, expected):
            assert p.grad is g
            torch.testing.assert_close(p.grad, e, rtol=0, atol=0)
    for p, q in zip(ours_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)  # the float32 layers: rounding, amplified by Adam


def switching(set_to_none, steps, observe):
    """Twin MLPs (adamkit, torch.optim) trained with ``zero_grad(set_to_none=set_to_none(i))`` at step ``i``, in
    lockstep (checked at the end); ``observe(ours, ours_model)`` after each step, the observations returned."""
    ours_model, ref_model = twins("mlp", torch.float64)
    ours = at.Adam(ours_model.parameters(), lr=0.01)
    ref = torch.optim.Adam(ref_model.parameters(), lr=0.01)
    seen = []
    for i, (x, y) in enumerate(batches("mlp", torch.float64, steps)):
        for opt, model in ((ours, ours_model), (ref, ref_model)):
            opt.zero_grad(set_to_none=set_to_none(i))
            loss_fn(model, x, y).backward()
            opt.step()
        seen.append(observe(ours, ours_model))
    assert_same(ours_model, ref_model)
    return seen


def test_grads_kept_between_steps_are_rebound_once():
    """set_to_none=False after autograd made new grads: the first step reads them in place, the next finds the
    same tensors (kept, zeroed in place) and copies them in and rebinds them; from then on they are our views.
    Back to set_to_none=True: read in place again, no copy."""

    def bound(ours, model):
        return all(p.grad is b.grad for p, b in zip(model.parameters(), ours._bound))

    assert switching(lambda i: i >= 6, 9, bound) == [False, True, True, True, True, True, False, False, False]


def test_steps_reading_grads_in_place_take_the_fast_path(monkeypatch):
    """Once the state exists, a step after set_to_none re-plans nothing (the bucket's launch, its kernel swapped
    for the one reading by address); back to bound grads, one full step prepares the flat kernel, then none."""
    from adamkit.stepping import Stepping

    planned = []
    jobs = Stepping._jobs
    monkeypatch.setattr(Stepping, "_jobs", lambda self, *a: planned.append(1) or jobs(self, *a))
    counts = switching(lambda i: i < 6, 12, lambda ours, model: len(planned))
    full_steps = [b > a for a, b in zip([0, *counts], counts)]
    # 0: slots created; 1: the launch made; 6: step 5's grads kept (zeroed in place), so rebound: the flat kernel
    assert full_steps == [i in (0, 1, 6) for i in range(12)]


def set_to_none_lockstep(change, **kwargs):
    return lockstep(change, set_to_none=True, **kwargs)


def test_set_to_none_with_none_grads_skips_them_and_reads_the_others_in_place():
    """Frozen parameters (grad None every step) and one grad dropped once: skipped, as torch.optim skips them."""
    ours_model, ref_model = twins("mlp", torch.float64)
    for model in (ours_model, ref_model):
        model[0].weight.requires_grad_(False)

    def change(model, opt, i):
        if i == 7:
            model[2].bias.grad = None

    for model, cls in ((ours_model, at.Adam), (ref_model, torch.optim.Adam)):
        opt = cls(model.parameters(), lr=0.01)
        for i, (x, y) in enumerate(batches("mlp", torch.float64, 12)):
            opt.zero_grad(set_to_none=True)
            loss_fn(model, x, y).backward()
            if i >= 5:
                change(model, opt, i)
            opt.step()
            if cls is at.Adam and i == 7:
                assert opt._bindings is not None  # read in place, not by the per-parameter path
    assert_same(ours_model, ref_model)


def test_set_to_none_with_data_replaced():
    def change(model, opt, i):
        if i == 6:
            with torch.no_grad():
                model[2].weight.data = model[2].weight.data * 0.5  # new storage, while the grads are autograd's

    ours_model, ref_model, ours = set_to_none_lockstep(change)
    assert_same(ours_model, ref_model)
    assert ours_model[2].weight.data_ptr() == ours._by_param[id(ours_model[2].weight)].ptr


@pytest.mark.parametrize("odd", ["offset view", "requires grad", "inference tensor"])
def test_set_to_none_with_grads_whose_metadata_differ(odd):
    """New grads the check must judge one by one: a contiguous view at an offset of a larger tensor (read in place
    at its own address), a grad that requires grad and an inference tensor (other metadata than our views: the
    per-parameter path). Each must give torch.optim's result."""

    def change(model, opt, i):
        w = model[2].weight
        if odd == "offset view":
            big = torch.zeros(w.numel() + 7, dtype=w.dtype)
            big[7:] = w.grad.reshape(-1)
            w.grad = big[7:].view_as(w)
        elif odd == "requires grad":
            w.grad = w.grad.clone().requires_grad_()
        else:
            with torch.inference_mode():
                w.grad = w.grad.clone()

    ours_model, ref_model, ours = set_to_none_lockstep(change)
    assert_same(ours_model, ref_model)


def test_set_to_none_with_a_conjugate_view_grad_is_refused_as_torch_refuses_it():
    """A complex grad given as a lazy conjugate view (its memory holds the unconjugated values): reading its bytes
    in place would step with conj(g). The check sends it to the per-parameter path, which refuses it with torch's
    own error (torch.optim.Adam raises it too), nothing changed."""
    torch.manual_seed(0)
    params = [torch.randn(5, dtype=torch.complex128, requires_grad=True) for _ in range(2)]
    twin = [p.detach().clone().requires_grad_() for p in params]
    ours, ref = at.Adam(params, lr=0.01), torch.optim.Adam(twin, lr=0.01)
    for conj in (False, False, True):
        g = torch.randn(2, 5, dtype=torch.complex128)
        for opt, ps in ((ours, params), (ref, twin)):
            opt.zero_grad(set_to_none=True)
            for p, gi in zip(ps, g):
                p.grad = gi.clone().conj() if conj else gi.clone()
            before = [p.detach().clone() for p in ps]
            if conj:
                with pytest.raises(RuntimeError, match="conjugated"):
                    opt.step()
                for p, b in zip(ps, before):
                    assert torch.equal(p, b)
            else:
                opt.step()
    for p, q in zip(params, twin):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=0)


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


def test_bindings_rebuilt_when_params_are_added():
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
