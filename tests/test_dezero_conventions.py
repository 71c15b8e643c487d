"""Every oracle="dezero" case against the dezero package's optimizers (float32 and float64, to the bit), and
against a plain NumPy transcription of them (dezero/optimizers.py) as a second opinion."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build, grad_stream, make_params, rel_error
from registry import cases

import adamkit


class DeZeroSGD:
    def __init__(self, lr=0.01, momentum=0.0):
        self.lr, self.momentum, self.vs = lr, momentum, {}

    def update_one(self, name, param, grad):
        if self.momentum == 0:  # DeZero's SGD
            param -= self.lr * grad
            return
        v = self.vs.setdefault(name, np.zeros_like(param))  # DeZero's MomentumSGD
        v *= self.momentum
        v -= self.lr * grad
        param += v


class DeZeroAdaGrad:
    def __init__(self, lr=0.001, eps=1e-8):
        self.lr, self.eps, self.hs = lr, eps, {}

    def update_one(self, name, param, grad):
        h = self.hs.setdefault(name, np.zeros_like(param))
        h += grad * grad
        param -= self.lr * grad / (np.sqrt(h) + self.eps)


class DeZeroAdaDelta:
    def __init__(self, rho=0.95, eps=1e-6):
        self.rho, self.eps, self.msg, self.msdx = rho, eps, {}, {}

    def update_one(self, name, param, grad):
        msg = self.msg.setdefault(name, np.zeros_like(param))
        msdx = self.msdx.setdefault(name, np.zeros_like(param))
        msg *= self.rho
        msg += (1 - self.rho) * grad * grad
        dx = np.sqrt((msdx + self.eps) / (msg + self.eps)) * grad
        msdx *= self.rho
        msdx += (1 - self.rho) * dx * dx
        param -= dx


class DeZeroAdam:
    def __init__(self, alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        self.t, self.alpha, self.beta1, self.beta2, self.eps = 0, alpha, beta1, beta2, eps
        self.ms, self.vs = {}, {}

    def update(self, params, grads):
        self.t += 1
        for name in params:
            self.update_one(name, params[name], grads[name])

    @property
    def lr(self):
        fix1 = 1.0 - self.beta1**self.t
        fix2 = 1.0 - self.beta2**self.t
        return self.alpha * np.sqrt(fix2) / fix1

    def update_one(self, name, param, grad):
        m = self.ms.setdefault(name, np.zeros_like(param))
        v = self.vs.setdefault(name, np.zeros_like(param))
        m += (1 - self.beta1) * (grad - m)
        v += (1 - self.beta2) * (grad * grad - v)
        param -= self.lr * m / (np.sqrt(v) + self.eps)


def reference(case):
    kw = {k: v for k, v in case.kwargs.items() if k != "convention"}
    if case.cls is adamkit.SGD:
        return DeZeroSGD(**kw)
    if case.cls is adamkit.Adagrad:
        return DeZeroAdaGrad(**kw)
    if case.cls is adamkit.Adadelta:
        return DeZeroAdaDelta(**kw)
    if case.cls is adamkit.Adam:
        return DeZeroAdam(alpha=kw.pop("lr", 0.001), **kw)
    raise AssertionError(f"no DeZero transcription for {case.cls.__name__}")


@pytest.mark.parametrize("case", cases("dezero"), ids=lambda c: c.id)
def test_matches_dezero(case):
    params = make_params(np.float64)
    ref_params = {k: v.copy() for k, v in params.items()}
    ref = reference(case)
    opt = build(case, params)
    for grads in grad_stream(params, 200):
        opt.step(grads)
        if isinstance(ref, DeZeroAdam):
            ref.update(ref_params, grads)
        else:
            for name in ref_params:
                ref.update_one(name, ref_params[name], grads[name])
    for k in params:
        assert rel_error(params[k], ref_params[k]) <= 1e-12, k


def import_dezero():
    if not hasattr(np, "int"):
        np.int = int  # dezero 0.0.13 uses np.int, removed in NumPy 2
    import dezero
    import dezero.optimizers

    return dezero


class Target:
    """What DeZero's ``Optimizer.setup`` takes: an object whose ``params()`` yields its Parameters."""

    def __init__(self, params):
        dezero = import_dezero()
        self.parameters = {k: dezero.Parameter(np.array(v)) for k, v in params.items()}

    def params(self):
        yield from self.parameters.values()


def real_dezero(case):
    D = import_dezero().optimizers

    kw = {k: v for k, v in case.kwargs.items() if k != "convention"}
    if case.cls is adamkit.SGD:
        return D.MomentumSGD(**kw) if kw.get("momentum") else D.SGD(**kw)
    if case.cls is adamkit.Adagrad:
        return D.AdaGrad(**kw)
    if case.cls is adamkit.Adadelta:
        return D.AdaDelta(**kw)
    if case.cls is adamkit.Adam:
        return D.Adam(alpha=kw.pop("lr", 0.001), **kw)
    raise AssertionError(f"no DeZero optimizer for {case.cls.__name__}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", cases("dezero"), ids=lambda c: c.id)
def test_matches_the_dezero_package(case, dtype):
    dezero = import_dezero()
    params = make_params(dtype)
    target = Target(params)
    ref = real_dezero(case).setup(target)
    opt = build(case, params)
    for grads in grad_stream(params, 300):
        opt.step(grads)
        for name, p in target.parameters.items():
            p.grad = dezero.Variable(np.array(grads[name]))
        ref.update()
    for k, p in target.parameters.items():
        assert p.data.dtype == params[k].dtype
        np.testing.assert_array_equal(params[k], p.data, err_msg=k)


def test_dezero_defaults():
    p = {"w": np.zeros(2)}
    assert adamkit.SGD(dict(p), convention="dezero").defaults["lr"] == 0.01
    assert adamkit.Adagrad(dict(p), convention="dezero").defaults["lr"] == 0.001
    d = adamkit.Adadelta(dict(p), convention="dezero").defaults
    assert (d["lr"], d["rho"], d["eps"]) == (1.0, 0.95, 1e-6)
    assert adamkit.Adam(dict(p), convention="dezero").defaults["eps"] == 1e-8
