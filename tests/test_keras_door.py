"""adamkit.keras against Keras 3 (torch backend): every optimizer × option, the same gradient stream, float32 ≤ 1e-6.

Our side is always the caller's own NumPy arrays, updated in place by ``apply``. The "tiny" stream makes every
epsilon placement visible; ``test_stream_tells_conventions_apart`` checks that each test would fail if a
convention detail were flipped.
"""

from __future__ import annotations

import numpy as np
import pytest
from keras_door_util import STREAMS, TOL32, keras, race, worst

import adamkit
import adamkit.keras as ak

# learning rates that move the parameters well on each stream (everything else: Keras's defaults)
LR = {
    "SGD": {"unit": 0.05, "tiny": 10.0},
    "RMSprop": {"unit": 0.01, "tiny": 1e-4},
    "Adagrad": {"unit": 0.05, "tiny": 1e-2},
    "Adadelta": {"unit": 1.0, "tiny": 1.0},
    "Adam": {"unit": 0.01, "tiny": 1e-4},
    "AdamW": {"unit": 0.01, "tiny": 1e-4},
    "Adamax": {"unit": 0.01, "tiny": 1e-4},
    "Nadam": {"unit": 0.01, "tiny": 1e-4},
}
# the optimizers' own options (each also run on both streams)
OWN = {
    "SGD": [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"momentum": 0.0, "nesterov": True},
            {"momentum": 1.0}],
    "RMSprop": [{}, {"momentum": 0.5}, {"centered": True}, {"centered": True, "momentum": 0.5},
                {"rho": 0.8, "epsilon": 1e-5}],
    "Adagrad": [{}, {"initial_accumulator_value": 0.0}, {"initial_accumulator_value": 1.0, "epsilon": 1e-4}],
    "Adadelta": [{}, {"rho": 0.9, "epsilon": 1e-6}],
    "Adam": [{}, {"amsgrad": True}, {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}],
    "AdamW": [{}, {"amsgrad": True, "weight_decay": 0.05}, {"beta_1": 0.5, "beta_2": 0.9}],
    "Adamax": [{}, {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}],
    "Nadam": [{}, {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}],
}  # fmt: skip


def tol(name: str) -> float:
    """1e-6 for every optimizer (Nadam too: its keras convention runs Keras's own order of operations, which the
    folded torch form misses by ~1.2e-6 after 100 steps on some streams; the convention itself, ψ = 1, is 1e-3
    away: see FLIPS)."""
    return TOL32


def _options(g: float) -> dict[str, dict]:
    """The base optimizer's options, thresholds scaled to the stream's gradient size ``g`` so that some steps and
    some tensors are clipped and some are not."""
    return {
        "weight_decay": {"weight_decay": 0.05},
        "clipnorm": {"clipnorm": 1.5 * g},
        "global_clipnorm": {"global_clipnorm": 3.0 * g},
        "clipvalue": {"clipvalue": 0.8 * g},
        "ema": {"use_ema": True, "ema_momentum": 0.9},
        "ema_overwrite": {"use_ema": True, "ema_momentum": 0.8, "ema_overwrite_frequency": 7},
        "accumulation": {"gradient_accumulation_steps": 3, "weight_decay": 0.02},
        "accumulation_ema_clip": {"gradient_accumulation_steps": 2, "use_ema": True, "ema_overwrite_frequency": 3,
                                  "global_clipnorm": 2.0 * g},
        "loss_scale": {"loss_scale_factor": 8.0},
    }  # fmt: skip


OPTIONS = [*_options(1.0), "none_grads", "callable_lr"]
# on the tiny stream, the options whose arithmetic meets epsilon or the step count (the rest are covered on "unit")
TINY = {"weight_decay", "clipnorm", "global_clipnorm", "ema_overwrite", "accumulation", "none_grads"}
CASES = [(o, s) for o in OPTIONS for s in STREAMS if s == "unit" or o in TINY]


def _kwargs(name: str, stream: str, option: str) -> tuple[dict, int]:
    lr = LR[name][stream]
    if option == "callable_lr":
        return {"learning_rate": lambda: lr}, 0
    if option == "none_grads":
        return {"learning_rate": lr}, 3
    return {"learning_rate": lr, **_options(STREAMS[stream][1])[option]}, 0


@pytest.mark.parametrize("option, stream", CASES, ids=[f"{o}-{s}" for o, s in CASES])
@pytest.mark.parametrize("name", list(LR))
def test_option_matches_keras(name, option, stream):
    kwargs, none_every = _kwargs(name, stream, option)
    ours, ref, opt, keras_opt = race(name, kwargs, stream, none_every=none_every)
    assert worst(ours, ref) <= tol(name)
    assert opt.iterations == int(keras_opt.iterations)


@pytest.mark.parametrize("stream", list(STREAMS))
@pytest.mark.parametrize("name, own", [(n, o) for n, opts in OWN.items() for o in opts], ids=str)
def test_own_options_match_keras(name, own, stream):
    ours, ref, _, _ = race(name, {"learning_rate": LR[name][stream], **own}, stream)
    assert worst(ours, ref) <= tol(name)


def test_keras_defaults_match_keras():
    """Every argument left at its default, Keras's learning rate included."""
    for name in LR:
        ours, ref, _, _ = race(name, {}, "unit")
        assert worst(ours, ref) <= tol(name), name


SCHEDULES = {
    "InverseTimeDecay": lambda lr: ak.schedules.InverseTimeDecay(lr, 10, 0.5),
    "InverseTimeDecay-staircase": lambda lr: ak.schedules.InverseTimeDecay(lr, 7, 0.5, staircase=True),
    "ExponentialDecay": lambda lr: ak.schedules.ExponentialDecay(lr, 20, 0.5),
    "PiecewiseConstantDecay": lambda lr: ak.schedules.PiecewiseConstantDecay([20, 50], [lr, lr / 3, lr / 10]),
    "PolynomialDecay-cycle": lambda lr: ak.schedules.PolynomialDecay(lr, 30, lr / 10, power=2.0, cycle=True),
    "CosineDecay-warmup": lambda lr: ak.schedules.CosineDecay(lr / 10, 50, 0.1, warmup_target=lr, warmup_steps=20),
    # restarts at steps 7, 17.5, 33.25, ...: not on an integer step, where Keras's float32 log (torch's) and NumPy's
    # may round the restart index differently (see test_keras_door_schedules.py)
    "CosineDecayRestarts": lambda lr: ak.schedules.CosineDecayRestarts(lr, 7, t_mul=1.5, m_mul=0.8, alpha=0.05),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("name", list(LR))
def test_schedule_drives_optimizer_as_in_keras(name, schedule):
    lr = SCHEDULES[schedule](LR[name]["unit"])
    ours, ref, opt, keras_opt = race(name, {"learning_rate": lr, "weight_decay": 0.05}, "unit")
    assert worst(ours, ref) <= tol(name)
    assert np.float32(opt.learning_rate) == pytest.approx(float(keras_opt.learning_rate), rel=1e-6)


def test_schedule_with_accumulation_sees_every_apply():
    """Keras evaluates a schedule at the raw apply count (not the update count) under gradient accumulation."""
    lr = ak.schedules.ExponentialDecay(0.05, 5, 0.5)
    ours, ref, opt, _ = race("SGD", {"learning_rate": lr, "momentum": 0.9, "gradient_accumulation_steps": 4}, "unit")
    assert worst(ours, ref) <= TOL32
    assert opt.iterations == 25 and opt.learning_rate == lr(100)


def test_keras_own_schedule_is_accepted():
    """A keras.optimizers.schedules object works as learning_rate too (called with the iteration)."""
    opt = ak.Adam(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5))
    ours, ref, _, _ = race("Adam", {"learning_rate": 0.01}, "unit", ours=opt)  # Keras side: a constant 0.01
    assert worst(ours, ref) > 1e-3  # the schedule took effect
    assert opt.learning_rate == pytest.approx(0.01 * 0.5**10, rel=1e-6)


def test_float64_variables_match_keras():
    """Keras keeps the learning rate in float32 and computes in the variable's dtype: so does adamkit.keras."""
    for name in LR:
        ours, ref, _, _ = race(name, {"learning_rate": LR[name]["unit"], "weight_decay": 0.01}, dtype=np.float64)
        assert ours[0].dtype == np.float64
        assert worst(ours, ref) <= 1e-6, name


# --------------------------------------------------------------------------------------------------
# Each convention detail, flipped, must break the tests above: the streams make every one of them visible.


def _flipped(cls, learning_rate, weight_decay=None, **core):
    """adamkit.keras's machinery over the core optimizer ``cls`` with torch's conventions and ``core`` kwargs."""

    class Flipped(ak.Optimizer):
        _core = cls

        def _hyper(self):
            return {**core, "convention": "torch"}

    return Flipped(learning_rate, weight_decay)


def _decay(lr):
    return ak.schedules.ExponentialDecay(lr, 10, 0.5)


FLIPS = {
    # name: (optimizer, Keras kwargs, stream, the same run with one convention detail flipped)
    "adam epsilon hat → paper's epsilon": (
        "Adam", {"learning_rate": 1e-4}, "tiny", lambda: _flipped(adamkit.Adam, 1e-4, eps=1e-7)),
    "adam decoupled weight decay → L2": (
        "Adam", {"learning_rate": 0.01, "weight_decay": 0.05}, "unit",
        lambda: _flipped(adamkit.Adam, 0.01, 0.05, eps=1e-7)),
    "adagrad epsilon inside the root → outside": (
        "Adagrad", {"learning_rate": 1e-2, "initial_accumulator_value": 0.0}, "tiny",
        lambda: _flipped(adamkit.Adagrad, 1e-2, eps=1e-7, initial_accumulator_value=0.0)),
    "adagrad accumulator starts at 0.1 → 0": (
        "Adagrad", {"learning_rate": 1e-2}, "unit",
        lambda: _flipped(adamkit.Adagrad, 1e-2, eps=1e-7, initial_accumulator_value=0.0)),
    "adamax epsilon on u → on |g|": (
        "Adamax", {"learning_rate": 1e-4}, "tiny", lambda: _flipped(adamkit.Adamax, 1e-4, eps=1e-7)),
    "rmsprop epsilon inside the root → outside": (
        "RMSprop", {"learning_rate": 1e-4}, "tiny", lambda: _flipped(adamkit.RMSprop, 1e-4, alpha=0.9, eps=1e-7)),
    "sgd lr inside the velocity → outside (under a schedule)": (
        "SGD", {"learning_rate": _decay(0.05), "momentum": 0.9}, "unit",
        lambda: _flipped(adamkit.SGD, _decay(0.05), momentum=0.9)),
    "rmsprop lr inside the momentum → outside (under a schedule)": (
        "RMSprop", {"learning_rate": _decay(0.01), "momentum": 0.5}, "unit",
        lambda: _flipped(adamkit.RMSprop, _decay(0.01), alpha=0.9, eps=1e-7, momentum=0.5)),
    "nadam momentum schedule ψ = 1 → torch's ψ = 4e-3": (
        "Nadam", {"learning_rate": 0.01}, "unit",
        lambda: _flipped(adamkit.NAdam, 0.01, eps=1e-7, momentum_decay=4e-3)),
}  # fmt: skip


@pytest.mark.parametrize("flip", list(FLIPS))
def test_stream_tells_conventions_apart(flip):
    name, kwargs, stream, flipped = FLIPS[flip]
    ours, ref, _, _ = race(name, kwargs, stream)
    assert worst(ours, ref) <= tol(name)
    theirs, ref, _, _ = race(name, kwargs, stream, ours=flipped())
    assert worst(theirs, ref) > 100 * TOL32, flip


def test_per_tensor_clipnorm_is_not_global():
    """Keras's clipnorm clips each gradient by its own norm: the global form on the same stream is far off."""
    ours, ref, _, _ = race("Adam", {"learning_rate": 0.01, "clipnorm": 1.5})
    assert worst(ours, ref) <= TOL32
    theirs, ref, _, _ = race("Adam", {"learning_rate": 0.01, "clipnorm": 1.5}, ours=ak.Adam(0.01, global_clipnorm=1.5))
    assert worst(theirs, ref) > 100 * TOL32


def test_global_step_count_for_none_gradients():
    """Keras counts steps per optimizer: a variable that missed steps is bias-corrected with the global count.
    Counting per parameter (torch's way, the core's default) is visibly different."""
    ours, ref, _, _ = race("Adam", {"learning_rate": 0.01}, none_every=3)
    assert worst(ours, ref) <= TOL32
    opt = ak.Adam(learning_rate=0.01)
    opt._share_step_count = lambda *args: None  # torch's per-parameter count
    theirs, ref, _, _ = race("Adam", {"learning_rate": 0.01}, none_every=3, ours=opt)
    assert worst(theirs, ref) > 100 * TOL32
