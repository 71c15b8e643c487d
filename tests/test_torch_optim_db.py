"""torch's own optimizer test database (shipped in the wheel): every input trains as torch.optim does, every
error input raises torch's error (or warning) with torch's message."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch

pytest.importorskip("expecttest")  # torch.testing._internal imports it
from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db  # noqa: E402
from torch_models import batches, flat, mlp, rel_error, train  # noqa: E402

import adamkit.torch as at  # noqa: E402

# torch.optim's classic family (adamkit/torch/optimizers.py), and the doors of modern.py whose reference is
# torch.optim itself (Adafactor, Muon); the other reference-package doors (Lion, LAMB, ScheduleFreeAdamW) are
# tested against their references in test_torch_modern_doors.py
CLASSIC = {n for n in at.__all__ if isinstance(getattr(at.optimizers, n, None), type) and n != "TorchOptimizer"}
TORCH_REFERENCED = {
    n for n in set(at.__all__) - CLASSIC if getattr(getattr(at, n), "_torch_class", None) is getattr(torch.optim, n, 0)
}
INFOS = [info for info in optim_db if info.optim_cls.__name__ in CLASSIC | TORCH_REFERENCED]
# torch's inputs adamkit takes on purpose where torch refuses them: (optimizer, error input) → what it does instead
WIDER = {("Muon", "only support 2D parameters"): "steps the other parameters with AdamW (adamw_*)"}
# step errors adamkit raises already at construction (torch's type and words): before it has bound anything
EARLIER = {("Adafactor", "does not support complex parameters"), ("Muon", "does not support complex parameters")}


def test_every_adamkit_torch_optimizer_has_torch_entries():
    assert {i.optim_cls.__name__ for i in INFOS} == CLASSIC | TORCH_REFERENCED
    assert len(CLASSIC) == 9 and TORCH_REFERENCED == {"Adafactor", "Muon"}


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.optim_cls.__name__)
def test_optim_db_inputs_train_as_torch(info, monkeypatch):
    name = info.optim_cls.__name__
    # torch.optim.Muon runs Newton–Schulz in bfloat16, adamkit in the parameters' dtype: its one cast to
    # bfloat16 made a copy, torch's Muon is exactly comparable (the bfloat16 run: test_torch_modern_doors.py)
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    for optim_input in info.optim_inputs_func(device="cpu"):
        kwargs = optim_input.kwargs
        models = [mlp(torch.float64), mlp(torch.float64)]
        params = [[p for p in m.parameters() if name != "Muon" or p.ndim == 2] for m in models]  # torch's Muon: 2-D
        ours = getattr(at, name)(params[0], **copy.deepcopy(kwargs))
        ref = info.optim_cls(params[1], **copy.deepcopy(kwargs))
        train(models[0], ours, batches("mlp", torch.float64, 15))
        train(models[1], ref, batches("mlp", torch.float64, 15))
        # a float32 lr tensor: torch does its scalar math in float32, adamkit in double (~1e-8 per step)
        tol = 1e-6 if isinstance(kwargs.get("lr"), torch.Tensor) else 1e-10
        assert rel_error(flat(models[0]), flat(models[1])) <= tol, optim_input.desc
        assert rel_error(flat(models[0]), flat(mlp(torch.float64))) > 1e-4, optim_input.desc  # it did train


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.optim_cls.__name__)
def test_optim_db_error_inputs_raise_torchs_errors(info):
    cls = getattr(at, info.optim_cls.__name__)
    for error_input in info.optim_error_inputs_func(device="cpu", dtype=torch.float32):
        given = error_input.optimizer_error_input
        params, kwargs = given.params, given.kwargs
        if (cls.__name__, given.desc) in WIDER:
            assert_steps_what_torch_refuses(cls, params, kwargs)
        elif error_input.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR:
            if issubclass(error_input.error_type, Warning):
                with pytest.warns(error_input.error_type, match=error_input.error_regex):
                    cls(params, **kwargs)
            else:
                with pytest.raises(error_input.error_type, match=error_input.error_regex):
                    cls(params, **kwargs)
        elif (cls.__name__, given.desc) in EARLIER:
            with pytest.raises(error_input.error_type, match=re.compile(error_input.error_regex)):
                cls(params, **kwargs)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt = cls(params, **kwargs)
            with pytest.raises(error_input.error_type, match=re.compile(error_input.error_regex)):
                opt.step()


def assert_steps_what_torch_refuses(cls, params, kwargs):
    """An input in ``WIDER``: adamkit constructs and steps it (each parameter moves) where torch raises."""
    params = [p.detach().clone().requires_grad_(True) for p in params]
    before = [p.detach().clone() for p in params]
    opt = cls(params, **kwargs)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert all(not torch.equal(p.detach(), b) for p, b in zip(params, before))
