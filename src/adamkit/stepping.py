"""Stepping: one atomic update of every parameter.

``_step`` validates everything (bindings, hyperparameters, gradients, hooks' settings), lets hooks transform a
scratch copy of the gradients, plans every kernel call (a ``Job``: the rule, slots and scalars cast to the
buffer's dtype) before the first runs, runs them, then records step counts and advances the schedule. A
refused step changes nothing. The per-step path lives here and only here; keep it free of indirection.
"""

from __future__ import annotations

import inspect
import math
import operator
from dataclasses import dataclass
from functools import cache
from itertools import repeat
from typing import Any, ClassVar

import numba
import numpy as np

from . import lowp
from ._checks import check_choice
from .engine import ENGINES, Rule, fused_call, prepare
from .flat import SUPPORTED_DTYPES, FlatBuffer, GradAddresses, GradAt, Run, Tensors
from .hooks import Hook
from .reduce import all_finite
from .schedules import Schedule
from .store import Grads


class Stepping:
    """Mixin of ``Optimizer``: ``step`` and the machinery behind it (it uses the parameter store's buffers,
    the optimizer's ``_check``/``_plan``/``_slot_fill``, its hooks and schedule)."""

    _STRUCTURE: ClassVar[tuple[str, ...]]
    engine: str
    hooks: list[Hook]
    skipped_steps: int
    param_groups: list[dict[str, Any]]
    _flats: list[list[FlatBuffer]]
    _checked: dict[int, tuple]  # group index → (hyperparameter names, their itemgetter, values that passed)
    _schedule: Schedule | None
    _schedule_t: int

    @property
    def nonfinite(self) -> str:
        """What a step does with a NaN or infinite gradient (after hooks): ``"ignore"`` (default, as torch.optim
        and Keras: no check, no cost), ``"raise"`` (``FloatingPointError`` naming the first such parameter,
        nothing changed) or ``"skip"`` (nothing changed, ``skipped_steps`` counts it: the AMP habit). The check
        reads every gradient once more, about 1/7 of an Adam step's memory traffic."""
        return self._nonfinite

    @nonfinite.setter
    def nonfinite(self, value: str) -> None:
        self._nonfinite = check_choice("nonfinite", value, ("ignore", "raise", "skip"))

    def step(self, grads: Grads | None = None) -> None:
        """Apply one update from ``grads`` (a dict by name or a list in parameter order, read where they are),
        or without it from the gradients in ``opt.grads``.

        Everything is validated and every failure surfaces before anything is written: a refused step leaves
        parameters, ``opt.grads``, state, step counts and schedule exactly as they were.
        """
        self._step(grads, skip=frozenset())

    def _step(self, grads: Grads | None, skip: frozenset[str]) -> None:
        """One update of every parameter not named in ``skip`` (their value, state and step are untouched).

        Phases: validate (bindings, hyperparameters, gradients, hooks' settings); hooks transform a scratch copy
        of the gradients (so ``opt.grads`` and the caller's arrays never see a refused step); plan every
        kernel call and check its scalars; run the kernels; record steps and advance the schedule.
        """
        self._adopt_rebound()
        self._apply_schedule()
        self._check_groups()
        by_address = isinstance(grads, GradAddresses)
        if (grads is None or by_address) and not skip and not self.hooks and self._nonfinite == "ignore":
            launches = self._launches(by_address)
            if launches is not None:  # every bucket as the last step left it: no re-planning of arrays
                if by_address:  # the chunked kernels, reading the front end's gradients (prepared before any runs)
                    calls = [launch.by_address(flat, grads, scalars) for flat, launch, scalars, _, _ in launches]
                    for (kernel, arrays), (_, _, scalars, _, _) in zip(calls, launches):
                        kernel(*arrays, *scalars)
                else:
                    for _, launch, scalars, _, _ in launches:
                        launch.kernel(*launch.arrays, *scalars)
                for flat, _, _, t, after in launches:
                    flat.stepped(t, after)
                self._advance_schedule()
                return
        if by_address:
            sources: Any = grads  # checked by the front end that made them
        else:
            sources = self._match_grads(grads) if grads is not None else None
        skipped = set(skip)
        for hook in self.hooks:
            hook.check(self, skipped)
        skip = frozenset(skipped)
        scratch = any(hook.transforms_grads for hook in self.hooks)
        for flat in self._buckets():
            flat.work = flat.scratch(sources) if scratch else None
        try:
            for hook in self.hooks:
                hook(self, set(skip))
            if self._nonfinite != "ignore" and not self._gradients_finite(skip, sources):
                self.skipped_steps += 1
                return
            jobs = [job for group, flat in self.flat_buffers() for job in self._jobs(group, flat, skip, sources)]
            self._run(jobs)
        finally:
            for flat in self._buckets():
                flat.work = None
        for job in jobs:
            job.commit()
        self._advance_schedule()

    def _advance_schedule(self) -> None:
        if self._schedule is not None:
            self._schedule_t += 1
            self._apply_schedule()

    def _reads_by_address(self) -> bool:
        """Whether ``step`` may be given ``GradAddresses`` (gradients read where a front end's tensors hold them):
        the fused engine, no hooks or finiteness check, and the base class's planning (a subclass's own ``_jobs``
        may read gradients as arrays)."""
        return (
            self.engine == "fused" and type(self)._jobs is Stepping._jobs and not self.hooks
            and self._nonfinite == "ignore"
        )  # fmt: skip

    def _launches(self, by_address: bool = False) -> list[tuple] | None:
        """The fast path of a plain step (all gradients in ``opt.grads`` or given by address, no skip, hooks or
        finiteness check, the fused engine): each bucket's ``Launch`` from an earlier step with this step's
        scalars, planned and cast for every bucket before any runs; None where some bucket needs the full path (a
        tensor skipped a step, the state or the tensors were replaced, the rule, slots or scalar types changed; the
        launch was made by a step ``by_address`` and this one reads the flat gradient).

        A launch of a stationary rule (``_STATIONARY``) keeps its cast scalars while its group's hyperparameters
        are those that last passed ``_check_groups`` (the same ``_checked`` entry): no planning at all."""
        if self.engine != "fused" or type(self)._jobs is not Stepping._jobs:
            return None
        out = []
        checked, stationary = self._checked, self._STATIONARY
        for i, (group, flats) in enumerate(zip(self.param_groups, self._flats)):
            hyper = checked[i]
            for flat in flats:
                launch = flat.launch
                if launch is None or not flat.uniform or (launch.kernel is None and not by_address):
                    return None
                if launch.state is not flat.state or launch.tensors is not flat._all:
                    return None
                t = flat.steps[0] + 1
                if launch.hyper is hyper:  # a stationary rule, the same hyperparameters: the same scalars
                    out.append((flat, launch, launch.scalars, t, flat.scalars[0]))
                    continue
                view = launch.run  # the state dict is the bucket's (checked above); the scalars are this step's
                view.scalars = dict(flat.scalars[0])
                rule, slots, scalars = self._plan(group, view, t)
                if rule is not launch.rule or slots != launch.slots:
                    return None
                scalars = self._cast(flat, scalars, launch.names)
                if flat.last_cast[1] != launch.types:  # the plan's scalar types (kept by _cast)
                    return None
                launch.scalars, launch.hyper = scalars, hyper if rule in stationary else None
                out.append((flat, launch, scalars, t, view.scalars))
        return out

    def _check_groups(self) -> None:
        """``_check`` every param group whose hyperparameters changed since they last passed (all, at first)."""
        checked = self._checked  # group index → (hyperparameter names, values that passed)
        for i, group in enumerate(self.param_groups):
            keys, get, passed = checked.get(i, ((), None, None))
            if len(keys) + len(self._STRUCTURE) != len(group):
                keys = tuple(k for k in group if k not in self._STRUCTURE)
                get = operator.itemgetter(*keys) if len(keys) > 1 else None
            values = get(group) if get is not None else None
            if values is None or values != passed:  # a list value never equals its stored tuple: checked again
                self._check(group)
                checked[i] = keys, get, tuple(tuple(v) if isinstance(v, list) else v for v in values or ())

    def _cast(self, flat: FlatBuffer, scalars: tuple, names: tuple[str, ...]) -> tuple:
        """``_cast`` for ``flat``, reusing its last result when the scalars are the same values of the same types
        (most steps of most optimizers; 0.0 and -0.0 count as the same)."""
        last = flat.last_cast
        if last is not None and len(scalars) == len(last[0]) and all(map(operator.is_, scalars, last[0])):
            return last[2]  # the very same objects (constants, hyperparameters passed through): nothing to check
        types = tuple(map(type, scalars))
        if last is None or last[0] != scalars or last[1] != types:
            dtype = lowp.compute_dtype(flat.dtype)
            last = flat.last_cast = scalars, types, _cast(scalars, dtype, names, type(self).__name__)
        return last[2]

    def _gradients_finite(self, skip: frozenset[str], sources: dict[str, np.ndarray] | None) -> bool:
        """Whether every active gradient (as the kernels will read it) is finite; raises under ``"raise"``."""
        for flat in self._buckets():
            for seg in flat.segments:
                if seg.name in skip:
                    continue
                if flat.work is not None or sources is None:
                    g = (flat.work if flat.work is not None else flat.grad)[seg.offset : seg.offset + seg.size]
                else:
                    g = sources[seg.name]
                if not all_finite(g):
                    if self._nonfinite == "raise":
                        raise FloatingPointError(
                            f"the gradient of parameter {seg.name!r} has NaN or infinite values; step refused, "
                            "nothing updated (nonfinite='raise')"
                        )
                    return False
        return True

    def _jobs(
        self, group: dict[str, Any], flat: FlatBuffer, skip: frozenset[str], sources: dict[str, np.ndarray] | None
    ) -> list[Job]:
        """The kernel calls that step the active tensors of ``flat``: one per set of tensors that share their
        step count and host scalars (one call in all, unless some tensors skipped steps)."""
        if flat.uniform and not (skip and any(seg.name in skip for seg in flat.segments)):
            runs: list[list[int] | None] = [None]
        else:
            together: dict[tuple, list[int]] = {}
            for i, seg in enumerate(flat.segments):
                if seg.name not in skip:
                    together.setdefault((flat.steps[i], *sorted(flat.scalars[i].items())), []).append(i)
            runs = list(together.values())
        decay = math.prod(hook.decay(group) for hook in self.hooks) if self.hooks else 1.0
        jobs, new = [], {}  # new: slots this step creates, kept out of the state until the step commits
        for members in runs:
            first = members[0] if members else 0
            t = flat.steps[first] + 1
            view = Run(lowp.compute_dtype(flat.dtype), flat.state, dict(flat.scalars[first]), flat.lowp is not None)
            rule, slots, scalars = self._plan(group, view, t)
            names = _scalar_names(rule, len(slots))
            if decay != 1.0:
                i = names.index("decay")
                scalars = (*scalars[:i], scalars[i] * decay, *scalars[i + 1 :])
            scalars = self._cast(flat, scalars, names)
            if flat.work is not None:
                g: Any = flat.work
            elif sources is not None:
                g = flat.gradients(sources, members)
            else:
                g = flat.grad
            tensors = flat.tensors(members)
            state, fill = flat.state, self._slot_fill
            if flat.lowp is not None:
                lowp.prepare(self.engine, rule, flat, tuple(map(flat.lowp.kind, slots)), g, tensors, scalars)
                arrays = [state.get(n) or new.setdefault(n, lowp.new_slot(flat, n, fill(group, n))) for n in slots]
                comp = None
                if flat.lowp.kahan:  # the bf16 parameters' compensation, zero at first
                    comp = state.get(lowp.KAHAN) or new.setdefault(lowp.KAHAN, lowp.new_slot(flat, lowp.KAHAN, 0.0))
                key = lowp.codecs.stream_key(self._rounding[1], flat.lowp.salt, t)
                job = LowPrecisionJob(flat, members, tensors, t, view.scalars, rule, g, arrays, scalars, new, key, comp)
                jobs.append(job)
                continue
            packed = tensors.flat is not None and isinstance(g, np.ndarray)
            prepare(self.engine, rule, len(slots), flat.dtype, scalars, tensors.size, packed=packed)
            arrays = [state[n] if n in state else new.setdefault(n, _filled(flat, fill(group, n))) for n in slots]
            jobs.append(Job(flat, members, tensors, t, view.scalars, rule, g, arrays, scalars, new))
            by_address = isinstance(g, GradAt)
            if members is None and (g is flat.grad or by_address) and not new and self.engine == "fused":
                kernel, args = None, ()  # by address: the flat gradient's kernel is not prepared, see _launches
                if not by_address:
                    kernel, args = fused_call(rule, tensors, g, arrays)
                    if kernel.serial is None:  # a serial kernel, compiled by prepare: no guard, no dispatch needed
                        kernel = compiled(kernel.dispatcher, (*args, *scalars))
                run_view = Run(flat.dtype, state, {})
                flat.launch = Launch(rule, slots, names, flat.last_cast[1], state, tensors, kernel, args, run_view)
        return jobs

    def _run(self, jobs: list[Job]) -> None:
        """Run every job's kernel; the NumPy engine (which can raise midway, e.g. under ``np.errstate``) restores
        every parameter and slot it touched if any job fails."""
        run = ENGINES[self.engine]
        saved = [job.snapshot() for job in jobs] if self.engine == "numpy" else []
        try:
            for job in jobs:
                job.run(run)
        except BaseException:
            for restore in saved:
                restore()
            raise


@dataclass
class Job:
    """One kernel call of a step: tensors ``members`` of ``flat`` (None: all) to step ``t``, with ``rule``."""

    flat: FlatBuffer
    members: list[int] | None
    tensors: Tensors  # the members in the engines' form
    t: int
    scalars_after: dict[str, float]  # the host scalars the tensors carry once stepped
    rule: Rule
    g: Any  # the bucket's flat gradient (or scratch), or one 1-D gradient per member
    slots: list[np.ndarray]
    args: tuple
    new_slots: dict[str, np.ndarray]

    def run(self, engine: Any) -> None:
        engine(self.rule, self.tensors, self.g, self.slots, self.args)

    @property
    def arrays(self) -> list[np.ndarray]:
        """Every state array ``run`` may write."""
        return self.slots

    def snapshot(self) -> Any:
        """A function that puts back what ``run`` may write (parameters and slots)."""
        params = [v.copy() for v in self.tensors.views]
        slots = [s.copy() for s in self.arrays]

        def restore() -> None:
            for view, saved in zip(self.tensors.views, params):
                view[...] = saved
            for slot, saved in zip(self.arrays, slots):
                slot[...] = saved

        return restore

    def commit(self) -> None:
        """Record the step: new slots join the state, step counts and host scalars advance."""
        flat = self.flat
        flat.state.update(self.new_slots)
        if self.members is None:
            flat.stepped(self.t, self.scalars_after)
            return
        for i in self.members:
            flat.steps[i] = self.t
            flat.scalars[i] = dict(self.scalars_after)
        flat.uniform = len(set(flat.steps)) == 1 and all(x == flat.scalars[0] for x in flat.scalars)


@dataclass
class LowPrecisionJob(Job):
    """A kernel call over a low-precision bucket (``adamkit.lowp``): ``slots`` are ``lowp.Coded`` slots, ``key``
    the step's stochastic-rounding key, ``comp`` the bf16 parameters' Kahan compensation (None without)."""

    key: Any = None
    comp: Any = None

    def run(self, engine: Any) -> None:
        step = lowp.step_numpy if engine is ENGINES["numpy"] else lowp.step_fused
        step(self.rule, self.flat, self.tensors, self.g, self.slots, self.args, self.key, self.comp)

    @property
    def arrays(self) -> list[np.ndarray]:
        return [a for s in [*self.slots, *([self.comp] if self.comp else [])] for a in s.arrays()]


@dataclass
class Launch:
    """A whole bucket's kernel call as a step prepared it (``engine.fused_call``): later steps call ``kernel``
    on ``arrays`` with their own scalars while the bucket keeps this ``state`` dict and ``tensors`` and the plan
    gives the same rule, slots and scalar types (see ``Stepping._launches``)."""

    rule: Rule
    slots: tuple[str, ...]
    names: tuple[str, ...]  # the rule's scalar names
    types: tuple[type, ...]  # the types of the plan's scalars (before the cast) the kernel was prepared for
    state: dict[str, np.ndarray]
    tensors: Tensors
    kernel: Any  # over the flat gradient (None when a step by address made the launch: not prepared)
    arrays: tuple
    run: Run  # what the plan sees of the bucket, reused step after step (its scalars replaced each step)
    scalars: tuple = ()  # the last step's, cast
    hyper: tuple | None = None  # the group's ``_checked`` entry those scalars hold for (stationary rules only)

    def by_address(self, flat: FlatBuffer, grads: GradAddresses, scalars: tuple) -> tuple[Any, tuple]:
        """This bucket's kernel call with the gradients read where ``grads`` says (the chunked kernel, its machine
        code loaded or compiled now, before any kernel of the step runs) instead of from the flat gradient."""
        slots = [self.state[n] for n in self.slots]
        prepare("fused", self.rule, len(slots), flat.dtype, scalars, self.tensors.size, packed=False)
        return fused_call(self.rule, self.tensors, flat.gradients(grads, None), slots)


def compiled(dispatcher: Any, args: tuple) -> Any:
    """The machine code ``dispatcher`` runs for ``args`` (their numba types), called without type dispatch
    (a third of the call's cost on small buckets); the dispatcher itself when it has no such overload. A
    ``Launch`` only calls it with arrays and scalar types of the same kinds: the scalar types are checked
    before each call, and the code checks each array's dtype and layout as it unboxes it."""
    entry = dispatcher.overloads.get(tuple(map(numba.typeof, args)))
    return dispatcher if entry is None else entry.entry_point


def _filled(flat: FlatBuffer, fill: float) -> np.ndarray:
    return np.full(flat.size, fill, dtype=flat.dtype)


@cache
def _scalar_names(rule: Rule, n_slots: int) -> tuple[str, ...]:
    """The names of ``rule``'s scalar arguments (after ``p``, ``g`` and the slots)."""
    return tuple(inspect.signature(rule).parameters)[2 + n_slots :]


def _cast(scalars: tuple, dtype: np.dtype, names: tuple[str, ...], owner: str) -> tuple:
    """Hyperparameters in the buffer's dtype (flags stay bool), so float32 math stays float32; a value that is
    not finite there (an overflow such as lr=1e39 in float32, or a bias correction that rounds to 0) is refused."""
    x, limit = dtype.type, _LARGEST[dtype]
    if all(map(operator.le, map(abs, scalars), repeat(limit))):  # the common case: every value fits (NaN fails)
        return tuple([v if v.__class__ in _FLAGS else x(v) for v in scalars])
    out = []
    for name, value in zip(names, scalars):
        if isinstance(value, (bool, np.bool_)):
            out.append(value)
            continue
        if abs(value) <= limit:  # the common case: the cast cannot overflow (no warning to silence)
            cast = x(value)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                cast = x(value)
        if not math.isfinite(cast):
            raise ValueError(
                f"{owner}: the step's scalar {name!r} is {value!r}, which is not finite in {dtype}: a hyperparameter "
                f"is out of the range {dtype} can represent (e.g. lr too large, or a beta so close to 1 that it "
                "rounds to 1)"
            )
        out.append(cast)
    return tuple(out)


_LARGEST = {dtype: float(np.finfo(dtype).max) for dtype in SUPPORTED_DTYPES}
_FLAGS = frozenset({bool, np.bool_})
