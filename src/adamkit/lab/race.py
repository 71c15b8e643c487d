"""A fair race: every optimizer on the same problem, from the same start, for the same number of steps.

Each run is a one-step loop through adamkit's optimizers with the loss recorded before every step (and once
after the last), so ``losses[k]`` is the loss after ``k`` steps. ``tune=True`` runs each optimizer at every
learning rate of a log grid and keeps the one with the lowest final loss (median over seeds); ``seeds=K``
repeats a stochastic problem K times and reports the median and the spread (min–max).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from autograd import value_and_grad

import adamkit

from ..frontends.minimize import optimizer_classes
from ..optimizer import Optimizer
from .problems import Problem, Surface, get_problem

#: The classic line-up: race label → (adamkit class name, keyword arguments).
CLASSIC: dict[str, tuple[str, dict[str, Any]]] = {
    "GD": ("SGD", {}),
    "Momentum": ("SGD", {"momentum": 0.9}),
    "Nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "AdaGrad": ("Adagrad", {}),
    "RMSprop": ("RMSprop", {}),
    "AdaDelta": ("Adadelta", {}),
    "Adam": ("Adam", {}),
    "AMSGrad": ("Adam", {"amsgrad": True}),
    "NAdam": ("NAdam", {}),
    "AdamW": ("AdamW", {}),
    "RAdam": ("RAdam", {}),
    "Adamax": ("Adamax", {}),
}
ALIASES = {"sgd": "GD"}
#: Keywords that carry a second learning rate: the race sets them to the raced lr as well, so that the whole optimizer
#: runs at it (Muon steps scalars and vectors with its auxiliary AdamW, at ``adamw_lr``).
LINKED_LR: dict[str, tuple[str, ...]] = {"Muon": ("adamw_lr",)}
CONVENTIONS = ("torch", "keras", "dezero", "scratch")  # adamkit's convention= values (scratch: SGD only)


def racers() -> dict[str, tuple[type[Optimizer], dict[str, Any]]]:
    """Label → (class, kwargs): the classic line-up, then every other optimizer adamkit exports, at its defaults."""
    classes = {cls.__name__: cls for cls in optimizer_classes().values()}
    line_up = {label: (classes[name], kwargs) for label, (name, kwargs) in CLASSIC.items() if name in classes}
    used = {name for name, _ in CLASSIC.values()}
    line_up.update({name: (cls, {}) for name, cls in classes.items() if name not in used})
    return line_up


def resolve_optimizers(names: Sequence[str] | None) -> list[str]:
    """Race labels for ``names`` (case-insensitive; None: all of them), or a ValueError listing the choices."""
    known = racers()
    if names is None:
        return list(known)
    by_lower = {label.lower(): label for label in known} | {a: t for a, t in ALIASES.items() if t in known}
    unknown = [n for n in names if n.strip().lower() not in by_lower]
    if unknown or not names:
        raise ValueError(f"unknown optimizer(s) {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    return list(dict.fromkeys(by_lower[n.strip().lower()] for n in names))


def refusal(cls: type[Optimizer], kwargs: dict[str, Any], convention: str) -> str | None:
    """Why ``cls(**kwargs)`` has no form in ``convention`` (its own error message), or None if it has one."""
    try:
        cls({"p": np.zeros(1)}, convention=convention, engine="numpy", **kwargs)
    except ValueError as err:
        return str(err)
    return None


@dataclass
class Run:
    """One optimizer at one lr and seed: ``losses[i]`` is the loss after ``loss_steps[i]`` steps (every step
    unless the problem's ``eval_every`` says otherwise); ``path[k]`` is the point after k steps (2-D problems)."""

    seed: int
    losses: list[float]
    loss_steps: list[int]
    final_loss: float
    steps_to_target: int | None
    wall_s: float
    step_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    path: list[list[float]] | None = None
    diverged: str | None = None


def run_once(
    problem: Problem,
    make: Callable[[dict[str, np.ndarray]], Optimizer],
    steps: int,
    seed: int,
    target: float,
) -> Run:
    """``steps`` optimizer steps from ``problem.init(seed)``; stops early only on a non-finite loss."""
    opt = make(problem.init(seed))
    params = dict(opt.params)  # the arrays that are the parameters: steps update them in place
    loss_and_grad = value_and_grad(problem.loss)
    rng = np.random.default_rng(seed)
    track = isinstance(problem, Surface)
    losses: list[float] = []
    at: list[int] = []
    path: list[list[float]] = []
    diverged, step_s = None, 0.0
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        for k in range(steps + 1):
            batch = problem.batch(rng) if k < steps else None
            value, grads = loss_and_grad(params, batch) if k < steps else (problem.loss(params), None)
            if k % problem.eval_every == 0 or k == steps:
                at.append(k)
                losses.append(float(value if batch is None else problem.loss(params)))
            if track:
                path.append([float(v) for v in params["xy"]])
            if not math.isfinite(value) or (grads and not all(np.all(np.isfinite(g)) for g in grads.values())):
                diverged = f"non-finite {'loss' if not math.isfinite(value) else 'gradient'} after {k} steps"
                if at[-1] != k:
                    at.append(k)
                    losses.append(float(value))
                break
            if k < steps:
                t0 = time.perf_counter()
                opt.step(grads)
                step_s += time.perf_counter() - t0
    wall_s = time.perf_counter() - start
    reached = next((k for k, v in zip(at, losses) if v <= target), None)
    return Run(
        seed=seed,
        losses=losses,
        loss_steps=at,
        final_loss=losses[-1] if diverged is None else math.inf,
        steps_to_target=reached,
        wall_s=wall_s,
        step_s=step_s,
        metrics={} if diverged else problem.metrics(params),
        path=path if track else None,
        diverged=diverged,
    )


def score(runs: list[Run]) -> float:
    """The median final loss over seeds (a diverged run counts as +inf): lower is better."""
    return statistics.median(r.final_loss if math.isfinite(r.final_loss) else math.inf for r in runs)


def summarize(runs: list[Run]) -> dict[str, Any]:
    """Median and min–max over seeds of what the table shows."""
    finals = [r.final_loss for r in runs]
    reached = [r.steps_to_target if r.steps_to_target is not None else math.inf for r in runs]
    metric_names = runs[0].metrics.keys() if all(r.metrics for r in runs) else ()
    median_reached = statistics.median(reached)
    return {
        "final_loss": statistics.median(finals),
        "final_loss_min": min(finals),
        "final_loss_max": max(finals),
        "steps_to_target": median_reached if math.isfinite(median_reached) else None,
        "reached_target": sum(math.isfinite(s) for s in reached),
        "wall_s": statistics.median(r.wall_s for r in runs),
        "step_s": statistics.median(r.step_s for r in runs),
        "metrics": {m: statistics.median(r.metrics[m] for r in runs) for m in metric_names},
        "diverged": sum(r.diverged is not None for r in runs),
    }


@dataclass
class RaceSettings:
    """What to race; None takes the problem's default."""

    problems: list[str] = field(default_factory=lambda: ["quadratic"])
    optimizers: list[str] | None = None
    steps: int | None = None
    seeds: int | None = None
    tune: bool = False
    grid: list[float] | None = None
    convention: str = "torch"
    engine: str = "fused"
    target: float | None = None

    def check(self) -> None:
        """Refuse bad settings, naming the argument and what it allows, before anything runs."""
        for name in ("steps", "seeds"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}; got {self.convention!r}")
        if self.engine not in ("fused", "numpy"):
            raise ValueError(f"engine must be 'fused' or 'numpy'; got {self.engine!r}")
        if self.grid is not None and (not self.grid or not all(math.isfinite(x) and x > 0 for x in self.grid)):
            raise ValueError(f"grid must be learning rates > 0, got {self.grid!r}")
        if self.target is not None and not math.isfinite(self.target):
            raise ValueError(f"target must be a finite loss, got {self.target!r}")
        if not self.problems:
            raise ValueError("problems must name at least one problem")


@dataclass
class Lane:
    """One problem's share of the race: its steps, seeds, lr grid (None: the problem's lr) and target."""

    problem: Problem
    steps: int
    seeds: int
    grid: list[float] | None
    target: float

    @property
    def runs_per_optimizer(self) -> int:
        return self.seeds * (len(self.grid) if self.grid else 1)


def race(settings: RaceSettings, progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Run the race; returns everything ``race.json`` holds. ``progress(message, total_runs)`` after each run."""
    settings.check()
    labels = resolve_optimizers(settings.optimizers)
    lanes = []
    for spec in settings.problems:
        problem = get_problem(spec)
        lanes.append(Lane(
            problem, settings.steps or problem.steps, (settings.seeds or 3) if problem.stochastic else 1,
            sorted(settings.grid or problem.lr_grid) if settings.tune else None,
            settings.target if settings.target is not None else problem.target,
        ))  # fmt: skip
    total = sum(len(labels) * lane.runs_per_optimizer for lane in lanes)

    def tick(message: str) -> None:
        if progress:
            progress(message, total)

    report: dict[str, Any] = {"settings": {**asdict(settings), "adamkit": adamkit.__version__}, "problems": []}
    line_up = racers()
    for spec, lane in zip(settings.problems, lanes):
        problem = lane.problem
        entry: dict[str, Any] = {
            "name": problem.name, "spec": spec, "description": problem.description, "steps": lane.steps,
            "seeds": lane.seeds, "target": lane.target, "log_scale": problem.log_scale,
            "stochastic": problem.stochastic, "surface": _surface(problem), "results": [], "skipped": [],
        }  # fmt: skip
        for label in labels:
            cls, kwargs = line_up[label]
            why = refusal(cls, kwargs, settings.convention)
            if why is None:
                try:
                    entry["results"].append(race_one(lane, label, cls, kwargs, settings, tick))
                    continue
                except Exception as err:  # a newer optimizer that cannot run this problem: noted, not fatal
                    if label in CLASSIC:
                        raise
                    why = f"failed: {type(err).__name__}: {err}"
            entry["skipped"].append({"optimizer": label, "reason": why})
            for _ in range(lane.runs_per_optimizer):
                tick(f"{problem.name} · {label} skipped")
        report["problems"].append(entry)
    return report


def race_one(
    lane: Lane,
    label: str,
    cls: type[Optimizer],
    kwargs: dict[str, Any],
    settings: RaceSettings,
    tick: Callable[[str], None],
) -> dict[str, Any]:
    """One optimizer on one problem: each lr of the grid (or the problem's lr) × each seed; the best lr's runs."""
    tried: dict[float, list[Run]] = {}
    for lr in lane.grid or [lane.problem.lr(label)]:

        def make(params: dict[str, np.ndarray], lr: float = lr) -> Optimizer:
            linked = {key: lr for key in LINKED_LR.get(cls.__name__, ())}
            return cls(params, lr=lr, convention=settings.convention, engine=settings.engine, **kwargs, **linked)

        tried[lr] = []
        for seed in range(lane.seeds):
            tried[lr].append(run_once(lane.problem, make, lane.steps, seed, lane.target))
            tick(f"{lane.problem.name} · {label} lr={lr:.3g} seed {seed}")
    best = min(tried, key=lambda lr: score(tried[lr]))
    return {
        "optimizer": label, "class": cls.__name__, "kwargs": kwargs, "lr": best, "tuned": bool(lane.grid),
        "tune_scores": {repr(lr): score(r) for lr, r in tried.items()} if lane.grid else None,
        **summarize(tried[best]), "runs": [asdict(r) for r in tried[best]],
    }  # fmt: skip


def _surface(problem: Problem) -> dict[str, Any] | None:
    if not isinstance(problem, Surface):
        return None
    return {"start": list(problem.start), "minimum": problem.minimum and list(problem.minimum),
            "bounds": [list(b) for b in problem.bounds]}  # fmt: skip
