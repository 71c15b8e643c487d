"""adamkit.keras.schedules against keras.optimizers.schedules: same arguments, same values, over many steps."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from keras_door_util import keras

import adamkit.keras as ak

S, KS = ak.schedules, keras.optimizers.schedules

CONFIGS = [
    ("InverseTimeDecay", (0.1, 20, 0.5)),
    ("InverseTimeDecay", (0.1, 7, 0.3, True)),
    ("ExponentialDecay", (0.1, 20, 0.5)),
    ("ExponentialDecay", (1.0, 13, 0.9, True)),
    ("PiecewiseConstantDecay", ([100, 250, 600], [1.0, 0.5, 0.1, 0.01])),
    ("PiecewiseConstantDecay", ([300, 100], [1.0, 0.5, 0.1])),  # unsorted: Keras sums masks, so do we
    ("PolynomialDecay", (0.1, 300)),
    ("PolynomialDecay", (0.1, 300, 0.001, 2.0)),
    ("PolynomialDecay", (0.1, 70, 0.01, 0.5, True)),
    ("CosineDecay", (0.1, 400)),
    ("CosineDecay", (0.1, 400, 0.1)),
    ("CosineDecay", (0.0, 300, 0.05, "warm", 0.2, 100)),
    ("CosineDecay", (0.01, 300, 0.0, "warm", 0.1, 50)),
    ("CosineDecayRestarts", (0.1, 20)),
    ("CosineDecayRestarts", (0.1, 30, 1.0, 0.7, 0.1)),
    ("CosineDecayRestarts", (0.1, 7, 1.5, 0.8, 0.05)),
]


@pytest.mark.parametrize("name, args", CONFIGS, ids=lambda x: str(x))
def test_schedule_equals_keras(name, args):
    ours, ref = getattr(S, name)(*args), getattr(KS, name)(*args)
    steps = np.arange(1000)
    got = np.array([ours(t) for t in steps])
    want = np.array([float(ref(int(t))) for t in steps])
    assert got.dtype == np.float32
    # relative to the schedule's scale: near a zero of the cosine, float32 cos(π·1) itself differs by an ulp of 1
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()


def test_cosine_decay_is_flat_after_decay_steps():
    """Unlike torch's CosineAnnealingLR (periodic), Keras's CosineDecay holds α·lr after decay_steps."""
    sched = S.CosineDecay(0.1, 100, alpha=0.2)
    assert sched(100) == sched(150) == sched(10_000) == pytest.approx(0.02, rel=1e-6)
    warm = S.CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=10)
    assert warm(0) == 0 and warm(5) == np.float32(0.05) and warm(10) == np.float32(0.1) and warm(500) == 0


def test_signatures_are_keras():
    for name in ("InverseTimeDecay", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "CosineDecay",
                 "CosineDecayRestarts"):  # fmt: skip
        ours = inspect.signature(getattr(S, name))
        ref = inspect.signature(getattr(KS, name))
        assert [(p.name, p.default) for p in ours.parameters.values()] == [
            (p.name, p.default) for p in ref.parameters.values()
        ], name


def test_config_round_trips_into_keras():
    sched = S.PolynomialDecay(0.1, 70, 0.01, 0.5, True)
    assert KS.PolynomialDecay.from_config(sched.get_config()).get_config() == sched.get_config()
    assert S.PolynomialDecay.from_config(sched.get_config()).get_config() == sched.get_config()


@pytest.mark.parametrize(
    "name, args",
    [
        ("InverseTimeDecay", (0.1, 0, 0.5)),
        ("InverseTimeDecay", (0.1, -3, 0.5)),
        ("ExponentialDecay", (0.1, 0, 0.5)),
        ("PolynomialDecay", (0.1, 0)),
        ("CosineDecay", (0.1, 0)),
        ("CosineDecayRestarts", (0.1, 0)),
        ("PiecewiseConstantDecay", ([10, 20], [1.0, 0.5])),
    ],
)
def test_refuses_what_keras_refuses(name, args):
    with pytest.raises(ValueError) as theirs:
        getattr(KS, name)(*args)
    with pytest.raises(ValueError) as ours:
        getattr(S, name)(*args)
    key = "steps" if "steps" in str(theirs.value) else "boundaries"
    assert key in str(ours.value)


def test_refuses_an_empty_piecewise_schedule():
    """Keras accepts boundaries=[] and fails with IndexError when called; refused here when created."""
    with pytest.raises(IndexError):
        KS.PiecewiseConstantDecay([], [0.1])(3)
    with pytest.raises(ValueError, match="boundaries"):
        S.PiecewiseConstantDecay([], [0.1])


def test_non_numbers_refused_by_name():
    with pytest.raises(TypeError, match="decay_steps"):
        S.InverseTimeDecay(0.1, "10", 0.5)
    with pytest.raises(TypeError, match="initial_learning_rate"):
        S.ExponentialDecay(None, 10, 0.5)
