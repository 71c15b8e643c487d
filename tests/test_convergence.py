"""Every optimizer with its default settings reduces the loss on a parabola and on Rosenbrock (start (-1.5, 2))
by at least the factor torch.optim's same optimizer (or its reference package's) reaches in the same number of
steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from registry import CASES
from test_package_oracle import reference_class
from test_registry import exported_optimizers

STEPS = 500
CENTER = np.array([1.0, -2.0, 0.5])


def parabola(x):
    return ((x - torch.as_tensor(CENTER)) ** 2).sum()


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


PROBLEMS = {"parabola": (parabola, np.array([3.0, 1.0, -1.0])), "rosenbrock": (rosenbrock, np.array([-1.5, 2.0]))}


def reduction_adamkit(cls, fun, x0):
    params = {"x": x0.copy()}
    opt = cls(params)
    for _ in range(STEPS):
        x = torch.tensor(params["x"], requires_grad=True)
        fun(x).backward()
        opt.step({"x": x.grad.numpy()})
    return float(fun(torch.tensor(x0))) / float(fun(torch.tensor(params["x"])))


def reduction_torch(cls, fun, x0):
    x = torch.tensor(x0.copy(), requires_grad=True)
    package = [case for case in CASES if case.cls is cls and case.oracle == "package"]
    opt = reference_class(package[0])([x]) if package else getattr(torch.optim, cls.__name__)([x])
    if package and package[0].ref_setup:
        getattr(opt, package[0].ref_setup)()
    for _ in range(STEPS):
        opt.zero_grad()
        fun(x).backward()
        opt.step()
    return float(fun(torch.tensor(x0))) / float(fun(x.detach()))


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("cls", exported_optimizers(), ids=lambda c: c.__name__)
def test_reduces_loss_like_torch(cls, problem):
    fun, x0 = PROBLEMS[problem]
    ours, theirs = reduction_adamkit(cls, fun, x0), reduction_torch(cls, fun, x0)
    assert ours > 1.0, f"{cls.__name__} did not reduce the {problem} loss"
    assert ours >= 0.99 * theirs, (ours, theirs)
