"""Schedules equal torch.optim.lr_scheduler (and Keras's InverseTimeDecay) over 1000 steps; resume exactly."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as tls

import adamkit
from adamkit import schedules as S

STEPS = 1000
BASES = (0.1, 0.03)

PAIRS = [
    (lambda: S.ConstantLR(0.25, 40), lambda o: tls.ConstantLR(o, 0.25, 40)),
    (lambda: S.StepLR(30, 0.5), lambda o: tls.StepLR(o, 30, 0.5)),
    (lambda: S.MultiStepLR([100, 250, 600], 0.3), lambda o: tls.MultiStepLR(o, [100, 250, 600], 0.3)),
    (lambda: S.ExponentialLR(0.995), lambda o: tls.ExponentialLR(o, 0.995)),
    (lambda: S.LinearLR(0.05, 1.0, 200), lambda o: tls.LinearLR(o, 0.05, 1.0, 200)),
    (lambda: S.LinearLR(1.0, 0.1, 500), lambda o: tls.LinearLR(o, 1.0, 0.1, 500)),
    (lambda: S.PolynomialLR(800, 2.0), lambda o: tls.PolynomialLR(o, 800, 2.0)),
    (lambda: S.CosineAnnealingLR(300, 1e-4), lambda o: tls.CosineAnnealingLR(o, 300, 1e-4)),
    (
        lambda: S.CosineAnnealingLR(700, 1e-3, warmup_steps=100, warmup_start_factor=0.01),
        lambda o: tls.SequentialLR(
            o, [tls.LinearLR(o, 0.01, 1.0, 100), tls.CosineAnnealingLR(o, 700, 1e-3)], milestones=[100]
        ),
    ),
    (lambda: S.CosineAnnealingWarmRestarts(50, 2, 1e-4), lambda o: tls.CosineAnnealingWarmRestarts(o, 50, 2, 1e-4)),
    (lambda: S.CosineAnnealingWarmRestarts(77), lambda o: tls.CosineAnnealingWarmRestarts(o, 77)),
    (
        lambda: S.OneCycleLR(STEPS, max_lr=0.5),
        lambda o: tls.OneCycleLR(o, max_lr=0.5, total_steps=STEPS, cycle_momentum=False),
    ),
    (
        lambda: S.OneCycleLR(STEPS, max_lr=0.5, anneal_strategy="linear", three_phase=True),
        lambda o: tls.OneCycleLR(o, 0.5, STEPS, anneal_strategy="linear", three_phase=True, cycle_momentum=False),
    ),
]


def adamkit_lrs(schedule, steps=STEPS, metrics=None):
    opt = adamkit.SGD([{"params": [np.zeros(2)], "lr": BASES[0]}, {"params": [np.zeros(3)], "lr": BASES[1]}])
    opt.schedule = schedule
    out = []
    for k in range(steps):
        opt.step([np.ones(2), np.ones(3)])
        out.append([g["lr"] for g in opt.param_groups])  # the lr the next step will use
        if metrics is not None:
            schedule.step(metrics[k])
    return np.array(out)


def torch_lrs(make, steps=STEPS, metrics=None):
    params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    opt = torch.optim.SGD([{"params": [params[0]], "lr": BASES[0]}, {"params": [params[1]], "lr": BASES[1]}])
    sched = make(opt)
    out = []
    for k in range(steps):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[k])
        out.append([g["lr"] for g in opt.param_groups])
    return np.array(out)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("ours, theirs", PAIRS, ids=lambda f: repr(f()) if f.__code__.co_argcount == 0 else "")
def test_equals_torch(ours, theirs):
    a, b = adamkit_lrs(ours()), torch_lrs(theirs)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore")
def test_reduce_on_plateau_equals_torch():
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 200), 0.5 + 0.01 * rng.standard_normal(800)])
    kwargs = dict(factor=0.5, patience=7, threshold=1e-3, cooldown=3, min_lr=1e-4)
    a = adamkit_lrs(S.ReduceLROnPlateau(**kwargs), metrics=metrics)
    b = torch_lrs(lambda o: tls.ReduceLROnPlateau(o, **kwargs), metrics=metrics)
    # torch lowers the lr inside sched.step(metric), so its row k is our row k + 1
    np.testing.assert_allclose(a[1:], b[:-1], rtol=1e-12)
    assert a[-1, 0] < BASES[0]


def test_inverse_time_decay_equals_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    for staircase in (False, True):
        ref = keras.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=20, decay_rate=0.5, staircase=staircase)
        ours = S.InverseTimeDecay(20, 0.5, staircase)
        for t in range(STEPS):
            expected = 0.1 / (1 + 0.5 * ((t // 20) if staircase else t / 20))  # Keras's formula, in float64
            assert abs(0.1 * ours.factor(t) - expected) <= 1e-15
            # Keras computes in float32
            assert float(ref(t)) == pytest.approx(0.1 * ours.factor(t), rel=1e-6)


def test_lr_argument_and_resume_bit_for_bit():
    def fresh():
        params = {"w": np.linspace(-1, 1, 5)}
        return params, adamkit.Adam(params, lr=S.CosineAnnealingLR(50, warmup_steps=10, lr=0.05))

    rng = np.random.default_rng(1)
    grads = [{"w": rng.standard_normal(5)} for _ in range(40)]
    p1, o1 = fresh()
    for g in grads[:20]:
        o1.step(g)
    saved = copy.deepcopy(o1.state_dict())
    p2, o2 = fresh()
    p2["w"][...] = p1["w"]
    o2.load_state_dict(saved)
    for g in grads[20:]:
        o1.step(g)
        o2.step(g)
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
    assert np.array_equal(p1["w"], p2["w"])
    assert saved["schedule"]["t"] == 20


def test_plateau_state_resumes():
    s1 = S.ReduceLROnPlateau(patience=1)
    o1 = adamkit.SGD([np.zeros(1)], lr=1.0)
    o1.schedule = s1
    for m in [1.0, 1.0, 1.0, 1.0]:
        o1.step([np.ones(1)])
        s1.step(m)
    o2 = adamkit.SGD([np.zeros(1)], lr=1.0)
    o2.schedule = S.ReduceLROnPlateau(patience=1)
    o2.load_state_dict(o1.state_dict())
    assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.StepLR(0), "step_size"),
        (lambda: S.StepLR(10, -0.5), "gamma"),
        (lambda: S.CosineAnnealingLR(0), "T_max"),
        (lambda: S.CosineAnnealingWarmRestarts(-3), "T_0"),
        (lambda: S.LinearLR(0.0), "start_factor"),
        (lambda: S.PolynomialLR(total_iters=0), "total_iters"),
        (lambda: S.InverseTimeDecay(0, 0.5), "decay_steps"),
        (lambda: S.OneCycleLR(0), "total_steps"),
        (lambda: S.ReduceLROnPlateau(factor=1.5), "factor"),
        (lambda: S.MultiStepLR([10, -1]), "milestones"),
        (lambda: adamkit.SGD([np.zeros(1)], lr=S.StepLR(10)), "base lr"),
    ],
)
def test_bad_schedule_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
