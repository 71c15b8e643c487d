"""Learning-rate schedules: the lr of every param group as a function of the step count ``t`` (0, 1, ...).

Attach to any optimizer with ``opt.schedule = StepLR(...)`` or ``Adam(params, lr=StepLR(..., lr=1e-3))``.
Before each step the optimizer sets every group's ``lr`` from the schedule; like torch's schedulers, most
schedules scale each group's base lr (its lr when the schedule was attached, or the schedule's ``lr``).
Values equal ``torch.optim.lr_scheduler``'s (stepped once after each optimizer step) and Keras's
``InverseTimeDecay``; the schedule's position is part of the optimizer's ``state_dict``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from ._checks import check_bool, check_choice, check_range


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class Schedule:
    """Base: ``lrs(base_lrs, t)`` gives each group's lr at step ``t``; ``lr`` is an optional base lr."""

    def __init__(self, lr: float | None = None):
        self.lr = None if lr is None else check_range("lr", lr, 0.0)

    def factor(self, t: int) -> float:
        raise NotImplementedError

    def lrs(self, base_lrs: Sequence[float], t: int) -> list[float]:
        return [base * self.factor(t) for base in base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved; a schedule with no running state takes exactly ``{}``."""
        if state != {}:
            raise ValueError(f"{type(self).__name__} keeps no running state; got {state!r}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class ConstantLR(Schedule):
    """``lr = base · factor`` for ``t < total_iters``, then ``base``."""

    def __init__(self, factor: float = 1 / 3, total_iters: int = 5, *, lr: float | None = None):
        super().__init__(lr)
        self.factor_ = check_range("factor", factor, 0.0, 1.0)
        self.total_iters = _positive_int("total_iters", total_iters)

    def factor(self, t: int) -> float:
        return self.factor_ if t < self.total_iters else 1.0


class StepLR(Schedule):
    """``lr = base · γ^⌊t / step_size⌋``."""

    def __init__(self, step_size: int, gamma: float = 0.1, *, lr: float | None = None):
        super().__init__(lr)
        self.step_size = _positive_int("step_size", step_size)
        self.gamma = check_range("gamma", gamma, 0.0)

    def factor(self, t: int) -> float:
        return self.gamma ** (t // self.step_size)


class MultiStepLR(Schedule):
    """``lr = base · γ^(number of milestones ≤ t)``."""

    def __init__(self, milestones: Sequence[int], gamma: float = 0.1, *, lr: float | None = None):
        super().__init__(lr)
        self.milestones = sorted(_positive_int("milestones[i]", m) for m in milestones)
        self.gamma = check_range("gamma", gamma, 0.0)

    def factor(self, t: int) -> float:
        return self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(Schedule):
    """``lr = base · γ^t``."""

    def __init__(self, gamma: float, *, lr: float | None = None):
        super().__init__(lr)
        self.gamma = check_range("gamma", gamma, 0.0)

    def factor(self, t: int) -> float:
        return self.gamma**t


class InverseTimeDecay(Schedule):
    """Keras's ``InverseTimeDecay``: ``lr = base / (1 + decay_rate · t / decay_steps)`` (⌊t / decay_steps⌋
    when ``staircase``)."""

    def __init__(self, decay_steps: int, decay_rate: float, staircase: bool = False, *, lr: float | None = None):
        super().__init__(lr)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        self.decay_rate = check_range("decay_rate", decay_rate, 0.0)
        self.staircase = check_bool("staircase", staircase)

    def factor(self, t: int) -> float:
        p = t / self.decay_steps
        return 1.0 / (1.0 + self.decay_rate * (math.floor(p) if self.staircase else p))


class LinearLR(Schedule):
    """``lr = base · (start + (end − start) · min(t, total_iters) / total_iters)`` (linear warmup)."""

    def __init__(
        self, start_factor: float = 1 / 3, end_factor: float = 1.0, total_iters: int = 5, *, lr: float | None = None
    ):
        super().__init__(lr)
        if not 0 < start_factor <= 1:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor!r}")
        self.start_factor = float(start_factor)
        self.end_factor = check_range("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = _positive_int("total_iters", total_iters)

    def factor(self, t: int) -> float:
        done = min(t, self.total_iters) / self.total_iters
        return self.start_factor + (self.end_factor - self.start_factor) * done


class PolynomialLR(Schedule):
    """``lr = base · (1 − min(t, total_iters) / total_iters)^power``."""

    def __init__(self, total_iters: int = 5, power: float = 1.0, *, lr: float | None = None):
        super().__init__(lr)
        self.total_iters = _positive_int("total_iters", total_iters)
        self.power = check_range("power", power, 0.0)

    def factor(self, t: int) -> float:
        return (1.0 - min(t, self.total_iters) / self.total_iters) ** self.power


def _cosine(base: float, eta_min: float, t: float, period: float) -> float:
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / period)) / 2


class CosineAnnealingLR(Schedule):
    """``lr = η_min + (base − η_min)·(1 + cos(π·t/T_max))/2``; with ``warmup_steps = w > 0``, first a linear
    warmup from ``warmup_start_factor · base`` (torch's LinearLR), then the cosine over ``t − w``."""

    def __init__(
        self,
        T_max: int,  # noqa: N803 (torch's name)
        eta_min: float = 0.0,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.1,
        *,
        lr: float | None = None,
    ):
        super().__init__(lr)
        self.T_max = _positive_int("T_max", T_max)
        self.eta_min = check_range("eta_min", eta_min, 0.0)
        if not (isinstance(warmup_steps, int) and warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        self._warmup = LinearLR(warmup_start_factor, 1.0, warmup_steps) if warmup_steps else None

    def lrs(self, base_lrs: Sequence[float], t: int) -> list[float]:
        if self._warmup is not None and t < self.warmup_steps:
            return self._warmup.lrs(base_lrs, t)
        return [_cosine(base, self.eta_min, t - self.warmup_steps, self.T_max) for base in base_lrs]


class CosineAnnealingWarmRestarts(Schedule):
    """SGDR: the cosine restarts after ``T_0`` steps, each period ``T_mult`` times longer than the last."""

    def __init__(self, T_0: int, T_mult: int = 1, eta_min: float = 0.0, *, lr: float | None = None):  # noqa: N803
        super().__init__(lr)
        self.T_0 = _positive_int("T_0", T_0)
        self.T_mult = _positive_int("T_mult", T_mult)
        self.eta_min = check_range("eta_min", eta_min, 0.0)

    def position(self, t: int) -> tuple[int, int]:
        """``(T_cur, T_i)``: steps since the last restart and the current period."""
        t_cur, t_i = t, self.T_0
        while t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, t_i * self.T_mult
        return t_cur, t_i

    def lrs(self, base_lrs: Sequence[float], t: int) -> list[float]:
        t_cur, t_i = self.position(t)
        return [_cosine(base, self.eta_min, t_cur, t_i) for base in base_lrs]


class OneCycleLR(Schedule):
    """The 1cycle policy (torch's OneCycleLR, lr only): from ``max_lr/div_factor`` up to ``max_lr`` over
    ``pct_start·total_steps`` steps, then down to ``max_lr/(div_factor·final_div_factor)`` (cosine or linear;
    ``three_phase`` returns to the start before the final descent). ``max_lr=None``: each group's base lr.
    Past ``total_steps`` the final lr holds (torch raises). Momentum is not cycled."""

    def __init__(
        self,
        total_steps: int,
        max_lr: float | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        *,
        lr: float | None = None,
    ):
        super().__init__(lr)
        self.total_steps = _positive_int("total_steps", total_steps)
        self.max_lr = None if max_lr is None else check_range("max_lr", max_lr, 0.0)
        self.pct_start = check_range("pct_start", pct_start, 0.0, 1.0)
        self.anneal_strategy = check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
        self.div_factor = check_range("div_factor", div_factor, 0.0)
        self.final_div_factor = check_range("final_div_factor", final_div_factor, 0.0)
        self.three_phase = check_bool("three_phase", three_phase)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def lrs(self, base_lrs: Sequence[float], t: int) -> list[float]:
        t = min(t, self.total_steps)  # torch raises past total_steps; here the last value holds
        up = float(self.pct_start * self.total_steps) - 1
        out = []
        for base in base_lrs:
            peak = self.max_lr if self.max_lr is not None else base
            initial = peak / self.div_factor
            low = initial / self.final_div_factor
            if self.three_phase:
                phases = [(up, initial, peak), (float(2 * self.pct_start * self.total_steps) - 2, peak, initial)]
                phases.append((self.total_steps - 1, initial, low))
            else:
                phases = [(up, initial, peak), (self.total_steps - 1, peak, low)]
            start_step = 0.0
            for i, (end_step, a, b) in enumerate(phases):
                if t <= end_step or i == len(phases) - 1:
                    out.append(self._anneal(a, b, (t - start_step) / (end_step - start_step)))
                    break
                start_step = end_step
        return out


class ReduceLROnPlateau(Schedule):
    """torch's ReduceLROnPlateau: call ``step(metric)`` after each evaluation; once the metric has not improved
    (by ``threshold``, relative or absolute) for more than ``patience`` calls, ``lr ← max(lr·factor, min_lr)``,
    then wait ``cooldown`` calls. Between calls the optimizer keeps the current lrs."""

    def __init__(
        self,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        *,
        lr: float | None = None,
    ):
        super().__init__(lr)
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.factor_ = check_range("factor", factor, 0.0, 1.0, high_open=True)
        if not (isinstance(patience, int) and patience >= 0):
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        self.patience = patience
        self.threshold = check_range("threshold", threshold, 0.0)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = int(check_range("cooldown", cooldown, 0.0))
        self.min_lr = check_range("min_lr", min_lr, 0.0)
        self.eps = check_range("eps", eps, 0.0)
        self._current: list[float] | None = None
        self._best = math.inf if mode == "min" else -math.inf
        self._bad, self._cooldown_left = 0, 0

    def lrs(self, base_lrs: Sequence[float], t: int) -> list[float]:
        if self._current is None or len(self._current) != len(base_lrs):
            self._current = list(base_lrs)
        return list(self._current)

    def _better(self, value: float) -> bool:
        rel, t = self.threshold_mode == "rel", self.threshold
        if self.mode == "min":
            return value < (self._best * (1 - t) if rel else self._best - t)
        return value > (self._best * (1 + t) if rel else self._best + t)

    def step(self, metric: float) -> None:
        """Report a metric (e.g. validation loss); may lower the learning rates."""
        value = float(metric)
        if self._better(value):
            self._best, self._bad = value, 0
        else:
            self._bad += 1
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            self._bad = 0
        if self._bad > self.patience and self._current is not None:
            for i, old in enumerate(self._current):
                new = max(old * self.factor_, self.min_lr)
                if old - new > self.eps:
                    self._current[i] = new
            self._cooldown_left, self._bad = self.cooldown, 0

    def state_dict(self) -> dict[str, Any]:
        return {"current": self._current, "best": self._best, "bad": self._bad, "cooldown_left": self._cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"current", "best", "bad", "cooldown_left"}:
            raise ValueError(
                f"ReduceLROnPlateau state must hold current, best, bad, cooldown_left; got {sorted(state)}"
            )
        current = state["current"]
        self._current = None if current is None else list(current)
        self._best, self._bad, self._cooldown_left = state["best"], state["bad"], state["cooldown_left"]


__all__ = [
    "Schedule", "ConstantLR", "StepLR", "MultiStepLR", "ExponentialLR", "InverseTimeDecay", "LinearLR",
    "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "ReduceLROnPlateau",
]  # fmt: skip
