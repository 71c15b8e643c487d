"""Fused engine ≡ NumPy engine for every registered case: params and every state slot."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build, grad_stream, make_params
from registry import CASES

import adamkit.engine


def run(case, dtype, engine, groups=False, shapes=None, steps=50):
    params = make_params(dtype) if shapes is None else make_params(dtype, shapes=shapes)
    opt = build(case, params, engine=engine, groups=groups)
    for grads in grad_stream(params, steps):
        opt.step(grads)
    return params, opt.state_dict()["state"]


def assert_engines_agree(case, dtype, **kw):
    p_fused, s_fused = run(case, dtype, "fused", **kw)
    p_np, s_np = run(case, dtype, "numpy", **kw)
    pairs = [(p_fused[k], p_np[k]) for k in p_np]
    assert s_fused.keys() == s_np.keys()
    for name in s_np:
        assert s_fused[name].keys() == s_np[name].keys()
        for k in s_np[name]:
            if isinstance(s_np[name][k], np.ndarray):
                pairs.append((s_fused[name][k], s_np[name][k]))
            else:  # step count and host scalars (e.g. NAdam's mu product) are computed on the host
                assert s_fused[name][k] == s_np[name][k], (name, k)
    for a, b in pairs:
        if dtype == np.float64:
            np.testing.assert_array_max_ulp(a, b, maxulp=1)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * max(1.0, float(np.max(np.abs(b), initial=0))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fused_equals_numpy(case, dtype):
    assert_engines_agree(case, dtype)
    if case.groups:
        assert_engines_agree(case, dtype, groups=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fused_equals_numpy_parallel_kernel(case, dtype, monkeypatch):
    """Tensors above PARALLEL_MIN_SIZE in all take the prange kernel over the caller's arrays (with a 0-d and an
    empty tensor among them, and one tensor spanning several chunks)."""
    used = spy_kernels(monkeypatch)
    shapes = {"big": (2 * adamkit.flat.CHUNK + 17,), "s": (), "e": (0, 3), "w": (5, 3)}
    assert_engines_agree(case, dtype, shapes=shapes, steps=5)
    if case.elementwise:
        allowed = {"chunked_parallel", "chunked_serial"} if case.split else {"chunked_parallel"}  # small: serial
        assert "chunked_parallel" in used and set(used) <= allowed


def spy_kernels(monkeypatch) -> list[str]:
    """Record the name of every fused kernel called."""
    used = []
    kernels = adamkit.engine._kernels

    class Spy:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __call__(self, *args):
            used.append(self.name)
            return self.kernel(*args)

        def __getattr__(self, attribute):  # compile_for, ...: the kernel's own
            return getattr(self.kernel, attribute)

    def spy(rule, n_slots):
        found = kernels(rule, n_slots)
        return type(found)(*(Spy(k, f) for k, f in found._asdict().items()))

    monkeypatch.setattr(adamkit.engine, "_kernels", spy)
    return used
