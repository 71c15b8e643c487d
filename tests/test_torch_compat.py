"""Each torch.optim compatibility point of adamkit.torch, with torch.optim as the oracle."""

from __future__ import annotations

import copy
import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S
from torch_models import batches, flat, loss_fn, param_groups, rel_error, train, twins

import adamkit.torch as at

TOL64 = 1e-10


def pair(name="Adam", model_name="mlp", dtype=torch.float64, groups=None, **kwargs):
    """Twin models; adamkit.torch.<name> on one, torch.optim.<name> on the other."""
    ours_model, ref_model = twins(model_name, dtype)
    make = groups or (lambda m: m.parameters())
    ours = getattr(at, name)(make(ours_model), **kwargs)
    ref = getattr(torch.optim, name)(make(ref_model), **kwargs)
    return ours_model, ref_model, ours, ref


def assert_same(ours_model, ref_model, tol=TOL64):
    assert rel_error(flat(ours_model), flat(ref_model)) <= tol


def test_import_adamkit_does_not_import_torch():
    code = "import adamkit, sys; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_params_and_grads_are_views_of_the_flat_buffers():
    """p.data is a view into the core's flat buffer; with zero_grad(set_to_none=False) the grads autograd made at
    the first backward are kept, so the second step copies them in and rebinds them to views of the flat gradient
    buffer; from then on autograd accumulates into them in place: no copy, no rebinding."""
    model, _ = twins("mlp", torch.float32)
    opt = at.Adam(model.parameters(), lr=0.01)
    core_data = opt._core._flats[0][0].data
    base, end = core_data.ctypes.data, core_data.ctypes.data + core_data.nbytes
    assert all(base <= p.data_ptr() < end for p in model.parameters() if p.numel())
    data = list(batches("mlp", torch.float32, 4))
    train(model, opt, data[:2], set_to_none=False)
    grads = [p.grad for p in model.parameters()]
    core_grad = opt._core._flats[0][0].grad
    assert all(core_grad.ctypes.data <= g.data_ptr() < core_grad.ctypes.data + core_grad.nbytes for g in grads)
    train(model, opt, data[2:], set_to_none=False)
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    assert np.array_equal(core_grad, torch.cat([g.flatten() for g in grads]).numpy())


# --------------------------------------------------------------------------------------------- schedulers
SCHEDULERS = {
    "LambdaLR": lambda o: S.LambdaLR(o, lambda t: 0.97**t),
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda t: 0.98),
    "StepLR": lambda o: S.StepLR(o, step_size=5, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[5, 12], gamma=0.3),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=7),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.2, total_iters=10),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.95),
    "SequentialLR": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.ExponentialLR(o, gamma=0.9)], milestones=[5]
    ),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-4),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=4),
                                                      S.ExponentialLR(o, gamma=0.9)]),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=1e-3, max_lr=1e-2, step_size_up=4),  # cycles betas[0] too
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=6, T_mult=2),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.02, total_steps=40),  # cycles betas[0] too
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=30, power=2.0),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.5),
}  # fmt: skip


def test_every_scheduler_is_covered():
    names = {
        n for n, c in vars(S).items()
        if isinstance(c, type) and issubclass(c, (S.LRScheduler, S.ReduceLROnPlateau))
        and c not in (S.LRScheduler, S._LRScheduler) and not n.startswith("_")
    }  # fmt: skip
    assert names == set(SCHEDULERS)


@pytest.mark.parametrize("sched", SCHEDULERS)
def test_scheduler_matches_torch(sched):
    ours_model, ref_model, ours, ref = pair("Adam", lr=0.01)
    data = list(batches("mlp", torch.float64, 40))
    lrs = []
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        scheduler = SCHEDULERS[sched](opt)
        seen = []
        for x, y in data:
            opt.zero_grad()
            loss = loss_fn(model, x, y)
            loss.backward()
            opt.step()
            scheduler.step(loss.item()) if sched == "ReduceLROnPlateau" else scheduler.step()
            seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]))
        lrs.append(seen)
    assert lrs[0] == lrs[1] and len({lr for lr, _ in lrs[0]}) > 1  # the lr did change
    assert_same(ours_model, ref_model)


def test_param_groups_lr_edits_take_effect():
    ours_model, ref_model, ours, ref = pair("Adam", groups=lambda m: param_groups(m, 0.01, True), lr=0.01)
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        for i, (x, y) in enumerate(batches("mlp", torch.float64, 30)):
            opt.param_groups[0]["lr"] = 0.01 * 0.9**i
            opt.param_groups[1]["lr"] = 0.02 / (1 + i % 4)
            train(model, opt, [(x, y)])
    assert_same(ours_model, ref_model)


def test_tensor_lr_as_torch_accepts_it():
    # Each its own lr tensor (schedulers fill_ it in place). float64: torch does its scalar math in the lr tensor's
    # dtype, adamkit in double, so a float32 lr tensor gives ~1e-8 relative differences per step.
    ours_model, ref_model = twins("mlp", torch.float64)
    ours = at.Adam(ours_model.parameters(), lr=torch.tensor(0.01, dtype=torch.float64))
    ref = torch.optim.Adam(ref_model.parameters(), lr=torch.tensor(0.01, dtype=torch.float64))
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        sched = S.ExponentialLR(opt, gamma=0.9)
        train(model, opt, batches("mlp", torch.float64, 20), sched)
        assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)
    assert_same(ours_model, ref_model)


def test_step_with_closure_returns_the_loss():
    ours_model, ref_model, ours, ref = pair("RMSprop", lr=0.01, momentum=0.5)
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        losses = []
        for x, y in batches("mlp", torch.float64, 20):

            def closure(model=model, x=x, y=y, opt=opt):
                opt.zero_grad()
                loss = loss_fn(model, x, y)
                loss.backward()
                return loss

            losses.append(opt.step(closure).item())
        opt.losses = losses
    assert ours.losses == pytest.approx(ref.losses, rel=1e-10)
    assert_same(ours_model, ref_model)


@pytest.mark.parametrize("how", ["set_to_none=True", "set_to_none=False", "model.zero_grad()"])
def test_zero_grad_every_way(how):
    ours_model, ref_model, ours, ref = pair("Adam", lr=0.01, amsgrad=True)
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        for x, y in batches("mlp", torch.float64, 25):
            if how == "model.zero_grad()":
                model.zero_grad()
            else:
                opt.zero_grad(set_to_none=how == "set_to_none=True")
            loss_fn(model, x, y).backward()
            opt.step()
    assert_same(ours_model, ref_model)
    if how == "set_to_none=False":  # the grads stayed bound to the flat buffer all along
        assert all(p.grad is b.grad for p, b in zip(ours_model.parameters(), ours._bound))
    ours.zero_grad()
    assert all(p.grad is None for p in ours_model.parameters())


def test_add_param_group_mid_run():
    ours_model, ref_model = twins("mlp", torch.float64)
    opts = []
    for model, cls in ((ours_model, at.NAdam), (ref_model, torch.optim.NAdam)):
        head, *rest = [list(m.parameters()) for m in model if list(m.parameters())]
        opt = cls(head, lr=0.01)
        data = list(batches("mlp", torch.float64, 30))
        train(model, opt, data[:10])
        opt.add_param_group({"params": [p for ps in rest for p in ps], "lr": 0.003, "momentum_decay": 0.01})
        train(model, opt, data[10:])
        opts.append(opt)
    assert_same(ours_model, ref_model)
    assert ours_model[0].weight.data_ptr() != ours_model[2].weight.data_ptr()


def test_groups_with_different_hyperparameters():
    def groups(m):
        return [
            {"params": m[0].parameters(), "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True},
            {"params": m[2].parameters(), "lr": 0.003, "eps": 1e-6, "maximize": False},
            {"params": m[4].parameters(), "decoupled_weight_decay": True, "weight_decay": 0.05},
        ]

    ours_model, ref_model, ours, ref = pair("Adam", groups=groups, lr=0.01)
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        train(model, opt, batches("mlp", torch.float64, 40))
    assert len(ours._core.param_groups) == 3
    assert_same(ours_model, ref_model)


class TwoHeads(nn.Module):
    """A model one of whose heads is used only on even steps: the other gets no grad (None) then."""

    def __init__(self, dtype):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.a, self.b = nn.Linear(6, 8).to(dtype), nn.Linear(8, 1).to(dtype), nn.Linear(8, 1).to(dtype)

    def forward(self, x, use_b):
        h = torch.tanh(self.body(x))
        return self.a(h) + (self.b(h) if use_b else 0)


def test_params_without_grad_are_skipped_state_untouched():
    models = [TwoHeads(torch.float64), TwoHeads(torch.float64)]
    ours, ref = at.Adam(models[0].parameters(), lr=0.01), torch.optim.Adam(models[1].parameters(), lr=0.01)
    for opt, model in zip((ours, ref), models):
        for i, (x, y) in enumerate(batches("mlp", torch.float64, 30)):
            opt.zero_grad()
            ((model(x, i % 3 == 0) - y) ** 2).mean().backward()
            before = model.b.weight.detach().clone()
            opt.step()
            if i % 3:
                assert torch.equal(model.b.weight, before)
    assert int(ours.state[models[0].b.weight]["step"]) == int(ref.state[models[1].b.weight]["step"]) == 10
    assert_same(*models)


def test_frozen_params_stay_put():
    ours_model, ref_model = twins("mlp", torch.float64)
    for m in (ours_model, ref_model):
        m[0].requires_grad_(False)
    frozen = ours_model[0].weight.detach().clone()
    ours, ref = at.AdamW(ours_model.parameters(), lr=0.01), torch.optim.AdamW(ref_model.parameters(), lr=0.01)
    train(ours_model, ours, batches("mlp", torch.float64, 20))
    train(ref_model, ref, batches("mlp", torch.float64, 20))
    assert torch.equal(ours_model[0].weight, frozen)
    assert ours_model[0].weight not in ours.state
    assert_same(ours_model, ref_model)


def test_named_parameters_store_param_names():
    ours_model, ref_model, ours, ref = pair("SGD", groups=lambda m: m.named_parameters(), lr=0.01, momentum=0.9)
    train(ours_model, ours, batches("mlp", torch.float64, 5))
    train(ref_model, ref, batches("mlp", torch.float64, 5))
    ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
    assert (
        ours_sd["param_groups"][0]["param_names"]
        == ref_sd["param_groups"][0]["param_names"]
        == [n for n, _ in ours_model.named_parameters()]
    )
    assert_same(ours_model, ref_model)


# ------------------------------------------------------------------------------------------- state_dict
def _torch_cases():
    from registry import cases

    return cases("torch")


@pytest.mark.parametrize("case", _torch_cases(), ids=lambda c: c.id)
@pytest.mark.parametrize("direction", ["torch->adamkit", "adamkit->torch"])
def test_state_dict_interchange_continues_in_lockstep(case, direction):
    """Train 15 steps with one, load its state_dict into the other, train 15 more: equal to 30 steps of torch."""
    name = case.cls.__name__
    data = list(batches("mlp", torch.float64, 30))
    whole_model, _ = twins("mlp", torch.float64)
    whole = getattr(torch.optim, name)(whole_model.parameters(), **case.kwargs)
    train(whole_model, whole, data)

    first_cls, second_cls = (torch.optim, at) if direction == "torch->adamkit" else (at, torch.optim)
    model, _ = twins("mlp", torch.float64)
    first = getattr(first_cls, name)(model.parameters(), **case.kwargs)
    train(model, first, data[:15])
    saved = first.state_dict()
    resumed = copy.deepcopy(model)
    second = getattr(second_cls, name)(resumed.parameters(), **case.kwargs)
    second.load_state_dict(saved)
    train(resumed, second, data[15:])
    assert_same(resumed, whole_model, case.torch_tol64 or TOL64)
    ours, ref = (second.state_dict(), whole.state_dict()) if direction == "torch->adamkit" else (saved, None)
    if ref is not None:  # the format: same ids, slot names, dtypes and shapes as torch.optim's
        assert ours["state"].keys() == ref["state"].keys()
        for i, entry in ref["state"].items():
            assert ours["state"][i].keys() == entry.keys()
            for k, v in entry.items():
                assert ours["state"][i][k].dtype == v.dtype and ours["state"][i][k].shape == v.shape, (i, k)
                assert rel_error(ours["state"][i][k].double(), v.double()) <= (case.torch_tol64 or TOL64) * 10
        for g, h in zip(ours["param_groups"], ref["param_groups"]):
            assert {k: v for k, v in g.items() if k != "convention"} == h


def test_torch_save_load_weights_only_round_trip():
    ours_model, _ = twins("mlp", torch.float32)
    opt = at.NAdam(ours_model.parameters(), lr=0.01)
    data = list(batches("mlp", torch.float32, 20))
    train(ours_model, opt, data[:10])
    buf = io.BytesIO()
    torch.save({"model": ours_model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    fresh_model, _ = twins("mlp", torch.float32)
    fresh_model.load_state_dict(loaded["model"])
    fresh = at.NAdam(fresh_model.parameters(), lr=0.5)
    fresh.load_state_dict(loaded["opt"])
    assert fresh.param_groups[0]["lr"] == 0.01
    train(ours_model, opt, data[10:])
    train(fresh_model, fresh, data[10:])
    assert torch.equal(flat(fresh_model), flat(ours_model))


def test_load_state_dict_refuses_bad_input_and_changes_nothing():
    model, _ = twins("mlp", torch.float64)
    opt = at.Adam(model.parameters(), lr=0.01)
    train(model, opt, batches("mlp", torch.float64, 3))
    before = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(before)
    bad["state"][0]["exp_avg"] = torch.zeros(3)
    with pytest.raises(ValueError, match="exp_avg"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert all(torch.equal(after["state"][i][k], v) for i, e in before["state"].items() for k, v in e.items())


def test_state_written_directly_is_read_back():
    """ZeroRedundancyOptimizer (and users) assign ``optim.state[p] = {...}``: the next step uses it."""
    ours_model, ref_model, ours, ref = pair("Adam", lr=0.01)
    data = list(batches("mlp", torch.float64, 20))
    train(ref_model, ref, data[:10])
    ours_model.load_state_dict(ref_model.state_dict())
    for p, q in zip(ours_model.parameters(), ref_model.parameters()):
        ours.state[p] = {k: v.clone() for k, v in ref.state[q].items()}
    train(ours_model, ours, data[10:])
    train(ref_model, ref, data[10:])
    assert_same(ours_model, ref_model)


# -------------------------------------------------------------------------------------------- GradScaler
def test_grad_scaler_skips_steps_with_inf_grads():
    ours_model, ref_model, ours, ref = pair("Adam", dtype=torch.float32, lr=0.01)
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=3)
        for i, (x, y) in enumerate(batches("mlp", torch.float32, 20)):
            opt.zero_grad(set_to_none=i % 2 == 0)
            scaler.scale(loss_fn(model, x, y)).backward()
            if i in (4, 11):
                next(model.parameters()).grad[0, 0] = float("inf") if i == 4 else float("nan")
                before = (flat(model), copy.deepcopy(opt.state_dict()))
            scaler.step(opt)
            scaler.update()
            if i in (4, 11):
                assert torch.equal(flat(model), before[0])
                after = opt.state_dict()
                assert all(torch.equal(after["state"][k][s], v) for k, e in before[1]["state"].items()
                           for s, v in e.items())  # fmt: skip
        opt.scale = scaler.get_scale()
    assert ours.scale == ref.scale
    assert_same(ours_model, ref_model, 1e-5)


# -------------------------------------------------------------------------------------- compile, backward
def test_compiled_model_trains_as_torch_optim():
    ours_model, ref_model = twins("mlp", torch.float32)
    compiled = torch.compile(ours_model, backend="aot_eager")
    ours, ref = at.Adam(ours_model.parameters(), lr=0.01), torch.optim.Adam(ref_model.parameters(), lr=0.01)
    train(compiled, ours, batches("mlp", torch.float32, 30))
    train(ref_model, ref, batches("mlp", torch.float32, 30))
    assert_same(ours_model, ref_model, 1e-5)
    assert ours._bound[0].param.data_ptr() == ours._bound[0].ptr  # still stepping the flat buffer in place


@pytest.mark.parametrize("name", ["Adam", "SGD", "Adagrad"])
def test_step_in_backward_equals_the_ordinary_loop(name):
    kwargs = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    models = [TwoHeads(torch.float64) for _ in range(3)]
    hooked = getattr(at, name)(models[0].parameters(), **kwargs)
    handles = at.step_in_backward(models[0], hooked)
    plain = getattr(at, name)(models[1].parameters(), **kwargs)
    ref = getattr(torch.optim, name)(models[2].parameters(), **kwargs)
    for i, (x, y) in enumerate(batches("mlp", torch.float64, 25)):
        ((models[0](x, i % 2 == 0) - y) ** 2).mean().backward()  # the step happens in here
        for opt, model in ((plain, models[1]), (ref, models[2])):
            opt.zero_grad()
            ((model(x, i % 2 == 0) - y) ** 2).mean().backward()
            opt.step()
    assert torch.equal(flat(models[0]), flat(models[1]))
    assert_same(models[0], models[2])
    for h in handles:
        h.remove()


# ----------------------------------------------------------------------------------- storage rebinding
def test_replaced_data_is_copied_in_and_rebound():
    ours_model, ref_model, ours, ref = pair("Adam", lr=0.01)
    data = list(batches("mlp", torch.float64, 20))
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        train(model, opt, data[:10])
        with torch.no_grad():
            model[0].weight.data = model[0].weight.data * 0.5  # a new tensor, as model.to() would give
        train(model, opt, data[10:])
    assert_same(ours_model, ref_model)
    assert ours_model[0].weight.data_ptr() == ours._bound[0].ptr


def test_recast_after_creation_moves_to_the_torch_ops_path_with_its_state():
    """model.double() after the optimizer was created: the parameters leave the float32 flat buffer and are
    stepped with torch ops in float64, their state cast along; torch.optim needs a load_state_dict to cast its
    state (it refuses to lerp a float32 exp_avg with a float64 grad)."""
    ours_model, ref_model, ours, ref = pair("Adam", dtype=torch.float32, lr=0.01)
    data = list(batches("mlp", torch.float64, 20))
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        train(model, opt, [(x.float(), y.float()) for x, y in data[:10]])
        model.double()
    ref.load_state_dict(ref.state_dict())  # torch's way of casting state to the parameters' new dtype
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        train(model, opt, data[10:])
    assert not ours._bound and all(p.dtype == torch.float64 for p in ours_model.parameters())
    assert {k: v.dtype for k, v in ours.state[ours_model[0].weight].items()} == {
        k: v.dtype for k, v in ref.state[ref_model[0].weight].items()
    }
    assert_same(ours_model, ref_model, 1e-5)  # the first 10 steps were float32
    with pytest.raises(RuntimeError, match="cannot change shape"):
        model = twins("mlp", torch.float32)[0]
        opt = at.Adam(model.parameters())
        model[0].weight.data = torch.zeros(2)
        opt.step()


# -------------------------------------------------------------------------------- sparse, complex, 0-d
@pytest.mark.parametrize("name", ["SGD", "Adagrad"])
def test_sparse_gradients(name):
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(nn.Embedding(10, 3, sparse=True).double())
    kwargs = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.1)
    ours, ref = (
        getattr(at, name)(models[0].parameters(), **kwargs),
        getattr(torch.optim, name)(models[1].parameters(), **kwargs),
    )
    idx = torch.Generator().manual_seed(0)
    for _ in range(15):
        i = torch.randint(0, 10, (4,), generator=idx)
        for opt, m in ((ours, models[0]), (ref, models[1])):
            opt.zero_grad()
            m(i).pow(2).sum().backward()
            opt.step()
    assert_same(*models)


@pytest.mark.parametrize("name", ["Adam", "RMSprop", "SGD", "Adadelta"])
def test_complex_and_0d_params(name):
    def make():
        torch.manual_seed(0)
        return [torch.randn(3, 2, dtype=torch.complex128, requires_grad=True),
                torch.randn((), dtype=torch.float64, requires_grad=True)]  # fmt: skip

    kwargs = dict(lr=0.01, momentum=0.5) if name in ("SGD", "RMSprop") else dict(lr=0.01)
    ps, qs = make(), make()
    ours, ref = getattr(at, name)(ps, **kwargs), getattr(torch.optim, name)(qs, **kwargs)
    target = torch.randn(3, 2, dtype=torch.complex128)
    for _ in range(20):
        for opt, (z, s) in ((ours, ps), (ref, qs)):
            opt.zero_grad()
            ((z - target).abs().pow(2).sum() + (s - 1) ** 2).backward()
            opt.step()
    for p, q in zip(ps, qs):
        assert p.dtype == q.dtype
        assert (
            rel_error(torch.view_as_real(p.detach()), torch.view_as_real(q.detach())) <= TOL64
            if p.is_complex()
            else rel_error(p.detach(), q.detach()) <= TOL64
        )
    ours_state, ref_state = ours.state_dict()["state"], ref.state_dict()["state"]
    assert {k: v.dtype for k, v in ours_state[0].items()} == {k: v.dtype for k, v in ref_state[0].items()}


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("Adam", dict(lr=-1.0), "Invalid learning rate: -1.0"),
        ("Adam", dict(betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
        ("AdamW", dict(eps=-1e-8), "Invalid epsilon value"),
        ("SGD", dict(lr=0.1, momentum=-0.5), "Invalid momentum value"),
        ("SGD", dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        ("RMSprop", dict(alpha=-0.1), "Invalid alpha value"),
        ("Adadelta", dict(rho=1.5), "Invalid rho value"),
        ("Adagrad", dict(lr_decay=-1.0), "Invalid lr_decay value"),
        ("NAdam", dict(momentum_decay=-1.0), "Invalid momentum_decay value"),
        ("RAdam", dict(weight_decay=-1.0), "Invalid weight_decay value"),
    ],
)
def test_bad_hyperparameters_raise_torchs_error_before_params_are_touched(name, kwargs, message):
    for params in (None, [torch.zeros(2, requires_grad=True)]):
        with pytest.raises(ValueError) as ours:
            getattr(at, name)(params, **kwargs)
        with pytest.raises(ValueError) as ref:
            getattr(torch.optim, name)(params, **kwargs)
        assert str(ours.value) == str(ref.value) and message in str(ours.value)


def test_differentiable_is_refused_and_flags_accepted():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        at.Adam([p], differentiable=True)
    opt = at.Adam([p], fused=True)
    assert opt.param_groups[0]["fused"] is True
    at.Adam([p], foreach=True, capturable=True)
    with pytest.raises(ValueError, match="convention"):
        at.Adam([p], convention="jax")
    with pytest.raises(ValueError, match="engine"):
        at.Adam([p], engine="gpu")


def test_bad_group_is_refused_and_nothing_added():
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = at.Adam([p], lr=0.01)
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [q], "lr": -1.0})
    assert len(opt.param_groups) == len(opt._core_index) == 1 and len(opt._bound) == 1
    opt.param_groups[0]["lr"] = -1.0
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    assert torch.equal(p, torch.zeros(2)) and not opt.state


@pytest.mark.parametrize("set_to_none", [True, False])
def test_gradient_accumulation_and_clipping_act_on_the_bound_grads(set_to_none):
    """Two backward passes per step (accumulating into the bound grads in place), then clip_grad_norm_ (which
    scales p.grad in place), then the step: as torch.optim."""
    ours_model, ref_model, ours, ref = pair("Adam", lr=0.01)
    data = list(batches("mlp", torch.float64, 30))
    for opt, model in ((ours, ours_model), (ref, ref_model)):
        for (x1, y1), (x2, y2) in zip(data[::2], data[1::2]):
            opt.zero_grad(set_to_none=set_to_none)
            loss_fn(model, x1, y1).backward()
            loss_fn(model, x2, y2).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05)
            opt.step()
    assert_same(ours_model, ref_model)


def test_non_contiguous_params():
    """A transposed (non-contiguous) leaf: packed into the flat buffer by value, stepped as torch.optim does."""

    def make():
        torch.manual_seed(0)
        return torch.randn(3, 4, dtype=torch.float64).t().detach().requires_grad_()

    w, v = make(), make()
    assert not w.is_contiguous()
    ours, ref = at.RAdam([w], lr=0.1), torch.optim.RAdam([v], lr=0.1)
    target = torch.randn(4, 3, dtype=torch.float64)
    for _ in range(20):
        for opt, p in ((ours, w), (ref, v)):
            opt.zero_grad()
            ((p - target) ** 2 * torch.arange(12.0, dtype=torch.float64).reshape(4, 3)).sum().backward()
            opt.step()
    assert rel_error(w.detach(), v.detach()) <= TOL64
