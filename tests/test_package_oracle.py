"""Every oracle="package" case against its reference package's torch optimizer (CPU), 300 steps, same
gradients: Lion vs lion-pytorch, LAMB vs pytorch_optimizer, ... (see tests/registry.py)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import TOL, make_params, reference_groups, rel_error, run_lockstep
from registry import cases

STEPS = 300


def reference_class(case) -> type:
    module, name = case.reference.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def reference_twin(case, params: dict[str, np.ndarray], groups: bool):
    """The reference optimizer over tensor copies of ``params``, grouped as ``conftest.build`` groups them."""
    tensors = {k: torch.tensor(v.copy()) for k, v in params.items() if v.size or not case.ref_skips_empty}
    kwargs = case.ref_kwargs if case.ref_kwargs is not None else case.kwargs
    spec = reference_groups(tensors, list(params), groups, case.kwargs["lr"])
    ref = reference_class(case)(spec, **kwargs)
    if case.ref_setup:
        getattr(ref, case.ref_setup)()
    return ref, tensors


def lockstep(case, dtype, groups=False, steps=STEPS, params=None):
    params = make_params(dtype) if params is None else params
    return run_lockstep(case, params, reference_twin, groups, steps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", cases("package"), ids=lambda c: c.id)
def test_matches_reference_package(case, dtype):
    for groups in (False, True) if case.groups else (False,):
        params, tensors, _, _ = lockstep(case, dtype, groups)
        for k in params:
            assert params[k].dtype == dtype
            tol = case.torch_tol64 if dtype == np.float64 and case.torch_tol64 else TOL[dtype]
            tol = case.ref_tol or tol
            ref = tensors[k].numpy() if k in tensors else make_params(dtype)[k]  # one the reference cannot step
            assert rel_error(params[k], ref) <= tol, (k, groups)
            assert np.any(params[k] != make_params(dtype)[k]) or params[k].size == 0, k  # it moved


@pytest.mark.parametrize("case", cases("package"), ids=lambda c: c.id)
def test_state_slots_match_reference(case):
    """Saved state slots carry the reference's names and values."""
    params, tensors, opt, ref_opt = lockstep(case, np.float64, steps=50)
    state = opt.state_dict()["state"]
    for k, t in tensors.items():
        ref = ref_opt.state[t]
        for slot, value in state[k].items():
            if isinstance(value, np.ndarray) and slot in ref:
                assert rel_error(value, ref[slot].numpy()) <= case.slot_tol, (k, slot)
