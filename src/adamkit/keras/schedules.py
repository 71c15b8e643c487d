"""Keras 3's learning-rate schedules (``keras.optimizers.schedules``): same names, argument order and values.

Each schedule is a function of the optimizer's iteration count: ``schedule(step)`` returns the learning rate for
that step. Like Keras, each computes in float32 (Keras converts the initial learning rate to a float32 tensor),
step for step in Keras's order of operations, so the values equal Keras's to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np

F32 = np.float32


def _positive(name: str, value: Any) -> Any:
    """Keras's check on ``decay_steps``: a number > 0."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"Argument `{name}` must be a number > 0. Received: {name}={value!r}")
    if not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")
    return value


def _number(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    return value


class LearningRateSchedule:
    """Base class: ``schedule(step)`` gives the learning rate at iteration ``step`` (a float32 scalar)."""

    def __call__(self, step: Any) -> np.float32:
        raise NotImplementedError(f"schedule '{type(self).__name__}' must override `__call__(self, step)`.")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _RateDecay(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: their arguments and the progress ``step / decay_steps``
    (floored if ``staircase``), in float32 as Keras computes it."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool,
        name: str,
    ):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _number("decay_rate", decay_rate)
        self.staircase = staircase
        self.name = name

    def _progress(self, step: Any) -> np.float32:
        p = F32(step) / F32(self.decay_steps)
        return np.floor(p) if self.staircase else p

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name,
        }  # fmt: skip


class ExponentialDecay(_RateDecay):
    """``lr = initial_learning_rate · decay_rate^(step / decay_steps)`` (the exponent floored if ``staircase``)."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step: Any) -> np.float32:
        return F32(self.initial_learning_rate) * np.power(F32(self.decay_rate), self._progress(step))


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``,
    ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries: Sequence[Any], values: Sequence[float], name: str = "PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}."
            )
        if not boundaries:
            raise ValueError("boundaries must hold at least one step (Keras fails on an empty list when called)")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step: Any) -> np.float32:
        # Keras sums one mask per interval (so unsorted boundaries give what Keras gives)
        values = [F32(v) for v in self.values]
        result = F32(0) + F32(step <= self.boundaries[0]) * values[0] + F32(step > self.boundaries[-1]) * values[-1]
        for low, high, value in zip(self.boundaries[:-1], self.boundaries[1:], values[1:-1]):
            result = result + F32(low < step <= high) * value
        return result

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``lr = (initial − end) · (1 − step/decay_steps)^power + end``, ``step`` held at ``decay_steps`` after it;
    with ``cycle``, ``decay_steps`` grows to the next multiple of itself past ``step`` instead."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str = "PolynomialDecay",
    ):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.end_learning_rate = _number("end_learning_rate", end_learning_rate)
        self.power = _number("power", power)
        self.cycle = cycle
        self.name = name

    def __call__(self, step: Any) -> np.float32:
        initial, end, power = F32(self.initial_learning_rate), F32(self.end_learning_rate), F32(self.power)
        t, decay_steps = F32(step), F32(self.decay_steps)
        if self.cycle:
            multiplier = F32(1.0) if t == 0 else np.ceil(t / F32(self.decay_steps))
            decay_steps = decay_steps * multiplier
        else:
            t = min(t, decay_steps)
        p = t / decay_steps
        return (initial - end) * np.power(F32(1) - p, power) + end

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle, "name": self.name,
        }  # fmt: skip


class InverseTimeDecay(_RateDecay):
    """``lr = initial_learning_rate / (1 + decay_rate · step / decay_steps)`` (the ratio floored if ``staircase``)."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "InverseTimeDecay",
    ):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step: Any) -> np.float32:
        return F32(self.initial_learning_rate) / (F32(1) + F32(self.decay_rate) * self._progress(step))


def _cosine_decay(t: np.float32, period: np.float32, start: np.float32, alpha: float) -> np.float32:
    """``start · ((1 − α) · ½(1 + cos(π·t/period)) + α)``, in Keras's order of float32 operations."""
    cosine = F32(0.5) * (F32(1.0) + np.cos(F32(math.pi) * (t / period)))
    return start * (F32(1 - alpha) * cosine + F32(alpha))


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha·initial_learning_rate`` over ``decay_steps``, then
    flat (not periodic, unlike torch's CosineAnnealingLR). With ``warmup_target``: first a linear warmup from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then the cosine from ``warmup_target``."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha = _number("alpha", alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else _number("warmup_target", warmup_target)
        self.warmup_steps = _number("warmup_steps", warmup_steps)

    def __call__(self, step: Any) -> np.float32:
        initial, decay_steps, t = F32(self.initial_learning_rate), F32(self.decay_steps), F32(step)
        alpha = self.alpha  # a Python number: Keras forms 1 − α in double, then rounds
        if self.warmup_target is None:
            return _cosine_decay(min(t, decay_steps), decay_steps, initial, alpha)
        target, warmup_steps = F32(self.warmup_target), F32(self.warmup_steps)
        t = min(t, decay_steps + warmup_steps)
        if t < warmup_steps:
            return (target - initial) * (t / warmup_steps) + initial
        return _cosine_decay(t - warmup_steps, decay_steps, target, alpha)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }  # fmt: skip


class CosineDecayRestarts(LearningRateSchedule):
    """SGDR: cosine decay over ``first_decay_steps``, then restarts; each period ``t_mul`` times longer and each
    restart's peak ``m_mul`` times the last; ``alpha`` is the floor as a fraction of the initial rate."""

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: int,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str = "SGDRDecay",
    ):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _positive("first_decay_steps", first_decay_steps)
        self.t_mul = _number("t_mul", t_mul)
        self.m_mul = _number("m_mul", m_mul)
        self.alpha = _number("alpha", alpha)
        self.name = name

    def __call__(self, step: Any) -> np.float32:
        initial, t_mul, m_mul = F32(self.initial_learning_rate), F32(self.t_mul), F32(self.m_mul)
        fraction = F32(step) / F32(self.first_decay_steps)
        if t_mul == 1:
            restart = np.floor(fraction)
            fraction = fraction - restart
        else:
            restart = np.floor(np.log(F32(1.0) - fraction * (F32(1.0) - t_mul)) / np.log(t_mul))
            done = (F32(1.0) - np.power(t_mul, restart)) / (F32(1.0) - t_mul)
            fraction = (fraction - done) / np.power(t_mul, restart)
        cosine = F32(0.5) * np.power(m_mul, restart) * (F32(1.0) + np.cos(F32(math.pi) * fraction))
        return initial * ((F32(1) - F32(self.alpha)) * cosine + F32(self.alpha))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name,
        }  # fmt: skip


__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
    "CosineDecay", "CosineDecayRestarts",
]  # fmt: skip
