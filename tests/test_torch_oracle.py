"""Every oracle="torch" case against the real torch.optim (CPU), 500 steps, same gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TOL, build, grad_stream, make_params, reference_groups, rel_error, run_lockstep
from registry import cases

STEPS = 500


def torch_twin(case, params: dict[str, np.ndarray], groups: bool):
    """torch.optim.<same name> over tensor copies of ``params``, grouped the same way."""
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    spec = reference_groups(tensors, list(tensors), groups, case.kwargs["lr"])
    return getattr(torch.optim, case.cls.__name__)(spec, **case.kwargs), tensors


def lockstep(case, dtype, groups=False, steps=STEPS):
    return run_lockstep(case, make_params(dtype), torch_twin, groups, steps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", cases("torch"), ids=lambda c: c.id)
def test_matches_torch(case, dtype):
    for groups in (False, True) if case.groups else (False,):
        params, tensors, _, _ = lockstep(case, dtype, groups)
        for k in params:
            assert params[k].dtype == dtype
            tol = case.torch_tol64 if dtype == np.float64 and case.torch_tol64 else TOL[dtype]
            assert rel_error(params[k], tensors[k].numpy()) <= tol, (k, groups)


@pytest.mark.parametrize("case", [c for c in cases("torch") if c.id in {"adam-amsgrad", "sgd-momentum", "adamw"}])
def test_state_slots_match_torch(case):
    """State slots carry torch's names and values."""
    params, tensors, opt, ref_opt = lockstep(case, np.float64, steps=100)
    state = opt.state_dict()["state"]
    for k, t in tensors.items():
        ref = ref_opt.state[t]
        for slot, value in state[k].items():
            if slot == "step":
                assert "step" not in ref or value == int(ref["step"])
            else:
                assert rel_error(value, ref[slot].numpy()) <= 1e-10, (k, slot)


def test_changing_lr_between_steps_takes_effect():
    case = next(c for c in cases("torch") if c.id == "adam")
    params = make_params(np.float64)
    ref_opt, tensors = torch_twin(case, params, groups=False)
    opt = build(case, params)
    for i, grads in enumerate(grad_stream(params, 60)):
        lr = 0.01 * (0.95**i)
        opt.param_groups[0]["lr"] = lr
        ref_opt.param_groups[0]["lr"] = lr
        opt.step(grads)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        ref_opt.step()
    for k in params:
        assert rel_error(params[k], tensors[k].numpy()) <= 1e-10


def feed(tensors, grads, names=None):
    for k in names if names is not None else tensors:
        tensors[k].grad = torch.tensor(grads[k])


@pytest.mark.parametrize("case", [c for c in cases("torch") if c.groups], ids=lambda c: c.id)
def test_per_group_lr_changes_match_torch(case):
    """Schedules write param_groups[i]["lr"] between steps: each group's new lr takes effect, as in torch."""
    params = make_params(np.float64)
    ref_opt, tensors = torch_twin(case, params, groups=True)
    opt = build(case, params, groups=True)
    lr0 = case.kwargs["lr"]
    for i, grads in enumerate(grad_stream(params, 80)):
        for group, ref_group, lr in zip(opt.param_groups, ref_opt.param_groups, (lr0 * 0.97**i, lr0 / (1 + i % 7))):
            group["lr"] = ref_group["lr"] = lr
        opt.step(grads)
        feed(tensors, grads)
        ref_opt.step()
    for k in params:
        assert rel_error(params[k], tensors[k].numpy()) <= (case.torch_tol64 or 1e-10), k


@pytest.mark.parametrize("case", [c for c in cases("torch") if c.groups], ids=lambda c: c.id)
def test_add_param_group_mid_run_matches_torch(case):
    """A group added after 20 steps starts its own state and step count at 0, as torch.optim does."""
    params = make_params(np.float64)
    names = list(params)
    first, second = names[: len(names) // 2], names[len(names) // 2 :]
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items()}
    ref_opt = getattr(torch.optim, case.cls.__name__)([tensors[k] for k in first], **case.kwargs)
    head = {k: params[k] for k in first}
    opt = case.cls(head, **case.kwargs)
    stream = list(grad_stream(params, 50))
    for grads in stream[:20]:
        opt.step({k: grads[k] for k in first})
        feed(tensors, grads, first)
        ref_opt.step()
    tail = {k: params[k] for k in second}
    opt.add_param_group({"params": tail, "lr": case.kwargs["lr"] / 3})
    ref_opt.add_param_group({"params": [tensors[k] for k in second], "lr": case.kwargs["lr"] / 3})
    for grads in stream[20:]:
        opt.step(grads)
        feed(tensors, grads)
        ref_opt.step()
    state = opt.state_dict()["state"]
    for k, values in {**head, **tail}.items():
        assert rel_error(values, tensors[k].numpy()) <= (case.torch_tol64 or 1e-10), k
        if k in state:
            assert state[k]["step"] == (50 if k in first else 30), k
