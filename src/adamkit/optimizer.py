"""The optimizer base class, shaped like ``torch.optim.Optimizer`` but over flat NumPy buffers.

Parameters given to an optimizer are copied into one contiguous buffer per (param group, dtype); the
container the caller passed (a dict or a list) then holds live views into that buffer. From then on those
views *are* the parameters, and a step updates them in place. A subclass supplies only:

- ``_check(group)``: validate the hyperparameters of one param group (raise, naming the argument);
- ``_plan(group, run, t)``: for step ``t``, the elementwise rule, the state slots it updates and the
  scalars it takes; ``run`` shows the dtype, state slots and host scalars of the tensors being stepped;
- ``_slot_fill(group, slot)`` (optional): a state slot's initial value.

Step counts are kept per parameter, as in torch.optim; hooks run before each update and a schedule sets each
group's lr. Everything is validated before anything is written: a refused step changes nothing.
"""

from __future__ import annotations

import copy
import inspect
import math
import operator
import warnings
import weakref
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import cache
from numbers import Real
from typing import Any, ClassVar

import numpy as np

from . import lowp
from ._checks import check_bool, check_choice, check_range
from .engine import ENGINES, Rule, prepare
from .flat import SUPPORTED_DTYPES, FlatBuffer, Run, Segment, Tensors
from .hooks import Hook
from .reduce import all_finite
from .schedules import Schedule

Params = MutableMapping[str, np.ndarray] | list | None
Grads = Mapping[str, Any] | Sequence[Any]
Plan = tuple[Rule, tuple[str, ...], tuple]


class NamedViews(Mapping):
    """Read-only mapping from parameter name to a view into a flat buffer; an int indexes by position."""

    def __init__(self, views: dict[str, np.ndarray]):
        self._views = views
        self._order = list(views)

    def __getitem__(self, key: str | int) -> np.ndarray:
        if isinstance(key, int):
            return self._views[self._order[key]]
        return self._views[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"NamedViews({', '.join(self._order)})"


class Optimizer:
    """Base of every adamkit optimizer (see the module docstring)."""

    #: Hyperparameters each param group carries; ``state_dict`` saves exactly these.
    defaults: dict[str, Any]
    #: Keys of a group that are structure, not hyperparameters.
    _STRUCTURE: ClassVar[tuple[str, ...]] = ("params", "param_names")

    #: Whether the update is elementwise, so its state may be stored in low precision (``state_dtype``).
    _LOW_PRECISION: ClassVar[bool] = False

    def __init__(
        self,
        params: Params,
        defaults: dict[str, Any],
        *,
        engine: str = "fused",
        nonfinite: str = "ignore",
        state_dtype: str | None = None,
        stochastic_rounding: bool = True,
        seed: int = 0,
    ):
        self.engine = check_choice("engine", engine, tuple(ENGINES))
        self._state_dtype = lowp.check_state_dtype(type(self).__name__, state_dtype, self._LOW_PRECISION)
        self._rounding = check_bool("stochastic_rounding", stochastic_rounding), _check_count("seed", seed)
        self.nonfinite = nonfinite
        self.skipped_steps = 0
        self.defaults = dict(defaults)
        self._schedule: Schedule | None = None
        self._schedule_t, self._base_lrs = 0, []
        schedule = self.defaults["lr"]
        if isinstance(schedule, Schedule):
            if schedule.lr is None:
                raise ValueError(
                    f"lr={schedule!r}: a schedule passed as lr needs its base lr, e.g. lr=StepLR(10, lr=0.1)"
                )
            self.defaults["lr"] = schedule.lr
        self.param_groups: list[dict[str, Any]] = []
        self._flats: list[list[FlatBuffer]] = []
        self._where: dict[str, tuple[FlatBuffer, Segment]] = {}
        self.hooks: list[Hook] = []
        self._param_views: dict[str, np.ndarray] = {}
        self._grad_views: dict[str, np.ndarray] = {}
        self._containers: list[tuple[Any, list | None]] = []  # each group's dict or list, and the dict's keys
        self._checked: dict[int, tuple] = {}
        self._shapes: list[tuple[tuple[int, ...], np.dtype]] = []
        _LIVE.add(self)
        self._check(self.defaults)
        if params is not None:  # else parameters come later: add_param_group, setup(model), minimize(...)
            for group in _as_groups(params):
                self.add_param_group(group)
            if not self._where:
                raise ValueError("params is empty: the optimizer needs at least one parameter")
        if isinstance(schedule, Schedule):
            self.schedule = schedule

    #: Public instance attributes; any other public name assigned on an optimizer is refused (a typo such as
    #: ``opt.learning_rate = 0.1`` must not pass silently). Subclasses extend it for attributes of their own.
    _ATTRIBUTES: ClassVar[frozenset[str]] = frozenset({"engine", "defaults", "param_groups", "hooks", "skipped_steps"})

    @property
    def state_dtype(self) -> str | None:
        """How state slots are stored: None (the parameters' dtype), ``"bfloat16"`` or ``"int8"`` (block-wise);
        see ``adamkit.lowp``. bf16 parameters are updated in float32 and written back with stochastic rounding
        (``stochastic_rounding=True``, reproducible from ``seed``) or rounded to nearest."""
        return self._state_dtype

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

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name in self._ATTRIBUTES or hasattr(type(self), name):
            return object.__setattr__(self, name, value)
        knobs = ", ".join(k for k in getattr(self, "defaults", {}) if k not in self._STRUCTURE)
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}. Its hyperparameters live in the param groups: "
            f"{knobs} (set opt.param_groups[i][name], or opt.lr for every group's learning rate)"
        )

    @property
    def lr(self) -> float:
        """The learning rate of every param group (refused where the groups' lrs differ)."""
        lrs = {group["lr"] for group in self.param_groups} or {self.defaults["lr"]}
        if len(lrs) > 1:
            raise AttributeError(
                f"opt.lr: the param groups have different learning rates {sorted(lrs)}; "
                "read opt.param_groups[i]['lr']"
            )
        return lrs.pop()

    @lr.setter
    def lr(self, value: float) -> None:
        if self._schedule is not None:
            raise AttributeError(
                f"opt.lr = {value!r}: a schedule ({type(self._schedule).__name__}) sets the learning rate before "
                "every step; detach it first (opt.schedule = None)"
            )
        for group in [self.defaults, *self.param_groups]:
            self._check({**group, "lr": value})
        for group in [self.defaults, *self.param_groups]:
            group["lr"] = value

    @property
    def schedule(self) -> Schedule | None:
        """The learning-rate schedule driving every group's ``lr`` before each step (None: lr as set)."""
        return self._schedule

    @schedule.setter
    def schedule(self, schedule: Schedule | None) -> None:
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be an adamkit.schedules.Schedule or None, got {type(schedule).__name__}")
        self._schedule, self._schedule_t, self._base_lrs = schedule, 0, []
        self._apply_schedule()

    def _apply_schedule(self) -> None:
        """Set each group's lr to the schedule's value for the next step (base lrs taken on first sight)."""
        if self._schedule is None:
            return
        for group in self.param_groups[len(self._base_lrs) :]:
            self._base_lrs.append(self._schedule.lr if self._schedule.lr is not None else group["lr"])
        for group, lr in zip(self.param_groups, self._schedule.lrs(self._base_lrs, self._schedule_t)):
            group["lr"] = lr

    # ----------------------------------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any], *, packed: bool = False) -> None:
        """Add a group ``{"params": dict or list of arrays, **hyperparameters}``.

        The arrays themselves are the parameters: every step updates them in place, wherever the caller keeps
        references to them (C-contiguous, writeable, not overlapping one another). If the caller later puts a
        new array into the dict or list (``params["w"] = params["w"] + 1``), the next step adopts it.

        ``packed=True`` (for front ends whose parameter objects may be rebound: DeZero, torch, minimize):
        adamkit copies the arrays into one flat buffer it owns and puts views of it back into the container.
        """
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError("a param group must be a dict with a 'params' entry")
        container = param_group["params"]
        named = _named_arrays(container, start=len(self._where), packed=packed)
        taken = [name for name, _ in named if name in self._where]
        if taken or len({n for n, _ in named}) != len(named):
            raise ValueError(f"parameter names must be unique across groups; repeated: {taken or named}")
        seen = {id(view) for view in self._param_views.values()}
        for name, array in named:
            if id(array) in seen:
                raise ValueError(f"parameter {name!r} appears more than once (in this or another param group)")
            seen.add(id(array))
        if not packed:
            _refuse_overlaps([*self._caller_arrays(), *named])
            _warn_if_shared(self, named)
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k not in self._STRUCTURE}}
        self._check(group)

        flats = [
            FlatBuffer.of([(n, a) for n, a in named if a.dtype == dtype], packed=packed)
            for dtype in dict.fromkeys(a.dtype for _, a in named)
        ]
        for flat in flats:
            self._low_precision(flat)
        for flat in flats:
            for i, seg in enumerate(flat.segments):
                self._where[seg.name] = (flat, seg)
                self._param_views[seg.name] = flat.params[i]
                self._grad_views[seg.name] = seg.view(flat.grad)
        names = [name for name, _ in named]
        if packed:
            _rebind(container, names, self._param_views)
        group["params"] = [self._param_views[n] for n in names]
        group["param_names"] = names
        self.param_groups.append(group)
        self._flats.append(flats)
        self._containers.append((container, list(container) if isinstance(container, Mapping) else None))

    def _low_precision(self, flat: FlatBuffer) -> None:
        """Give ``flat`` its low-precision storage (``state_dtype``, or bf16 parameters), or refuse it."""
        bf16 = flat.dtype == lowp.BFLOAT16
        if self._state_dtype is None and not bf16:
            return
        name = flat.segments[0].name
        if bf16 and not self._LOW_PRECISION:
            raise TypeError(
                f"parameter {name!r} is bfloat16: {type(self).__name__} supports float32 and float64 parameters "
                "(bfloat16 needs an elementwise optimizer)"
            )
        if flat.dtype == np.float64:
            raise TypeError(
                f"state_dtype={self._state_dtype!r} needs float32 or bfloat16 parameters; parameter {name!r} is "
                "float64"
            )
        flat.lowp = lowp.Precision.of(flat, self._state_dtype, *self._rounding)

    def __getstate__(self) -> dict:
        """For copy and pickle: the views into buffers are rebuilt on the other side (``__setstate__``)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_where", "_param_views", "_grad_views")}

    def __setstate__(self, state: dict) -> None:
        """Rebind the copy: its parameters, ``opt.grads`` and its groups' (and packed containers') entries are
        views of *its* buffers, never of the original's."""
        self.__dict__.update(state)
        self._where, self._param_views, self._grad_views = {}, {}, {}
        for group, flats, (container, keys) in zip(self.param_groups, self._flats, self._containers):
            for flat in flats:
                for seg, array in zip(flat.segments, flat.params):
                    self._where[seg.name] = (flat, seg)
                    self._param_views[seg.name] = array
                    self._grad_views[seg.name] = seg.view(flat.grad)
            group["params"] = [self._param_views[n] for n in group["param_names"]]
            if any(flat.data is not None for flat in flats):  # packed: the container holds views of the buffer
                for i, name in enumerate(group["param_names"]):
                    container[keys[i] if keys is not None else i] = self._param_views[name]

    def _caller_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` of every parameter that is a caller's own array (not a view of a packed buffer)."""
        for flats in self._flats:
            for flat in flats:
                if flat.data is None:
                    yield from zip((seg.name for seg in flat.segments), flat.params)

    def _adopt_rebound(self) -> None:
        """Adopt arrays the caller put into a group's dict or list in place of the ones it passed (a packed
        group copies them into its buffer and puts the view back).

        Every replacement is validated (shape, dtype, layout, overlaps) before any is adopted.
        """
        changes: list[tuple[int, int, np.ndarray]] = []  # (group index, position in the group, new array)
        for g, (group, (container, keys)) in enumerate(zip(self.param_groups, self._containers)):
            if _unchanged(container, keys, group["params"]):
                continue
            current = _entries(container, keys, len(group["params"]))
            for i, (array, old) in enumerate(zip(current, group["params"])):
                if array is not old:
                    name = group["param_names"][i]
                    flat, seg = self._where[name]
                    _check_array(name, array, packed=flat.data is not None)
                    if array.shape != seg.shape or array.dtype != flat.dtype:
                        raise ValueError(
                            f"parameter {name!r} was replaced by an array of shape {array.shape} and dtype "
                            f"{array.dtype}; expected shape {seg.shape} and dtype {flat.dtype}"
                        )
                    changes.append((g, i, array))
        if not changes:
            return
        new = {self.param_groups[g]["param_names"][i]: array for g, i, array in changes}
        caller_owned = [(n, a) for n, a in new.items() if self._where[n][0].data is None]
        _refuse_overlaps([(n, a) for n, a in self._caller_arrays() if n not in new] + caller_owned)
        for g, i, array in changes:
            group, (container, keys) = self.param_groups[g], self._containers[g]
            name = group["param_names"][i]
            flat, seg = self._where[name]
            flat.replace(flat.segments.index(seg), array)
            if flat.data is not None:
                container[keys[i] if keys is not None else i] = self._param_views[name]
            else:
                self._param_views[name] = array
            group["params"][i] = self._param_views[name]

    def setup(self, model: Any) -> Optimizer:
        """DeZero/Chainer style: take ``model.params()`` and bind their ``.data`` to flat views; returns self."""
        from .frontends.dezero import setup

        return setup(self, model)

    def update(self) -> None:
        """DeZero/Chainer style: one step from each bound parameter's ``.grad`` (None: skipped this step)."""
        from .frontends.dezero import update

        update(self)

    def add_hook(self, hook: Hook) -> None:
        """Run ``hook`` before every update, after the hooks added earlier (see ``adamkit.hooks``)."""
        if not isinstance(hook, Hook):
            raise TypeError(f"hook must be an adamkit.hooks.Hook, got {type(hook).__name__}")
        self.hooks.append(hook)

    def flat_buffers(self) -> Iterator[tuple[dict[str, Any], FlatBuffer]]:
        """``(param group, flat buffer)`` pairs: one buffer per group and dtype."""
        for group, flats in zip(self.param_groups, self._flats):
            for flat in flats:
                yield group, flat

    @property
    def params(self) -> NamedViews:
        """Every parameter, by name, as a live view into its flat buffer."""
        return NamedViews(self._param_views)

    @property
    def grads(self) -> NamedViews:
        """Every gradient, by name, as a writable view: fill them in place, then call ``step()``."""
        return NamedViews(self._grad_views)

    # ------------------------------------------------------------------------------------------- step
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
        if self._schedule is not None:
            self._schedule_t += 1
            self._apply_schedule()

    def _check_groups(self) -> None:
        """``_check`` every param group whose hyperparameters changed since they last passed (all, at first)."""
        checked = self._checked  # group index → (hyperparameter names, values that passed)
        for i, group in enumerate(self.param_groups):
            keys, passed = checked.get(i, ((), None))
            if len(keys) + len(self._STRUCTURE) != len(group):
                keys = tuple(k for k in group if k not in self._STRUCTURE)
            values = operator.itemgetter(*keys)(group) if len(keys) > 1 else None
            if values is None or values != passed:  # a list value never equals its stored tuple: checked again
                self._check(group)
                checked[i] = keys, tuple(tuple(v) if isinstance(v, list) else v for v in values or ())

    def _cast(self, flat: FlatBuffer, scalars: tuple, names: tuple[str, ...]) -> tuple:
        """``_cast`` for ``flat``, reusing its last result when the scalars are the same values of the same types
        (most steps of most optimizers; 0.0 and -0.0 count as the same)."""
        types = tuple(map(type, scalars))
        last = flat.last_cast
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

    def _buckets(self) -> Iterator[FlatBuffer]:
        for flats in self._flats:
            yield from flats

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
            view = Run(lowp.compute_dtype(flat.dtype), flat.state, dict(flat.scalars[first]))
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
                key = lowp.codecs.stream_key(self._rounding[1], flat.lowp.salt, t)
                job = LowPrecisionJob(flat, members, tensors, t, view.scalars, rule, g, arrays, scalars, new, key)
                jobs.append(job)
                continue
            packed = tensors.flat is not None and isinstance(g, np.ndarray)
            prepare(self.engine, rule, len(slots), flat.dtype, scalars, tensors.size, packed=packed)
            arrays = [state[n] if n in state else new.setdefault(n, _filled(flat, fill(group, n))) for n in slots]
            jobs.append(Job(flat, members, tensors, t, view.scalars, rule, g, arrays, scalars, new))
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

    def zero_grad(self) -> None:
        """Set every gradient to zero."""
        for flat in self._buckets():
            flat.grad.fill(0)

    def _match_grads(self, grads: Grads) -> dict[str, np.ndarray]:
        """``{name: gradient}``, each checked against its parameter (an ndarray of its shape and dtype)."""
        names = list(self._where)
        if isinstance(grads, Mapping):
            if len(grads) != len(names) or not all(map(grads.__contains__, names)):
                missing = [n for n in names if n not in grads]
                extra = [k for k in grads if k not in self._where]
                raise KeyError(f"grads must have exactly the parameter names; missing {missing}, extra {extra}")
            arrays = list(map(grads.__getitem__, names))
        elif isinstance(grads, Sequence) and not isinstance(grads, (str, bytes)):
            if len(grads) != len(names):
                raise ValueError(f"grads has {len(grads)} entries, expected {len(names)} (one per parameter)")
            arrays = list(grads)
        else:
            raise TypeError(f"grads must be a dict by name or a list in parameter order, got {type(grads)}")
        layout = self._layout()
        try:  # the common case, checked for all at once
            if [(g.shape, g.dtype) for g in arrays] == layout and all(isinstance(g, np.ndarray) for g in arrays):
                return dict(zip(names, arrays))
        except AttributeError:
            pass
        for name, g, (shape, dtype) in zip(names, arrays, layout):
            if not isinstance(g, (np.ndarray, np.generic)):
                raise TypeError(f"grads[{name!r}] must be a NumPy array, got {type(g).__name__}")
            if g.shape != shape:
                raise ValueError(f"grads[{name!r}] has shape {g.shape}, expected {shape}")
            if g.dtype != dtype and not (dtype == lowp.BFLOAT16 and g.dtype == np.float32):
                expected = f"{dtype} or float32" if dtype == lowp.BFLOAT16 else str(dtype)
                raise TypeError(f"grads[{name!r}] has dtype {g.dtype}, expected {expected}")
        return {name: np.asarray(g) for name, g in zip(names, arrays)}

    def _layout(self) -> list[tuple[tuple[int, ...], np.dtype]]:
        """``(shape, dtype)`` of every parameter, in name order (kept until a group is added)."""
        if len(self._shapes) != len(self._where):
            self._shapes = [(seg.shape, flat.dtype) for flat, seg in self._where.values()]
        return self._shapes

    # ---------------------------------------------------------------------------------- subclass API
    def _check(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        raise NotImplementedError

    def _slot_fill(self, group: dict[str, Any], slot: str) -> float:
        """Initial value of a state slot (0 unless the optimizer says otherwise)."""
        return 0.0

    def _state_keys(self, group: dict[str, Any], dtype: np.dtype) -> set[str]:
        """What a tensor's state entry may hold for ``group``: ``step``, its slots and its host scalars."""
        run = Run(dtype, {}, {})
        _, slots, _ = self._plan(group, run, 1)
        return {"step", *slots, *(s + lowp.SCALE for s in slots), *run.scalars}

    # ------------------------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {name: {"step": t, slot: array}}, "param_groups": [{hyper..., "params": [names]}]}``.

        Arrays are copies, keyed by parameter name (not position).
        """
        state: dict[str, dict[str, Any]] = {}
        for flats in self._flats:
            for flat in flats:
                for i, seg in enumerate(flat.segments):
                    if flat.steps[i] == 0 and not flat.state:
                        continue
                    entry: dict[str, Any] = {"step": flat.steps[i]}
                    for k, arr in flat.state.items():
                        entry.update(lowp.entries(flat, i, k, arr) if flat.lowp else {k: seg.view(arr).copy()})
                    entry.update(flat.scalars[i])
                    state[seg.name] = entry
        groups = []
        for group in self.param_groups:
            saved = copy.deepcopy({k: v for k, v in group.items() if k not in self._STRUCTURE})
            saved["params"] = list(group["param_names"])
            groups.append(saved)
        saved: dict[str, Any] = {"type": type(self).__name__, "state": state, "param_groups": groups}
        if self._schedule is not None:
            saved["schedule"] = {
                "type": type(self._schedule).__name__, "t": self._schedule_t, "base_lrs": list(self._base_lrs),
                "state": copy.deepcopy(self._schedule.state_dict()),
            }  # fmt: skip
        return saved

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters, step counts and state slots saved by ``state_dict``.

        Everything is checked first (names, shapes, consistent steps); on error nothing changes.
        """
        saved_type = state_dict.get("type", type(self).__name__)
        if saved_type != type(self).__name__:
            raise ValueError(f"state_dict is of a {saved_type} optimizer; this one is a {type(self).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups)} param groups, optimizer has {len(self.param_groups)}")
        new_groups = []
        for i, (ours, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if list(saved["params"]) != ours["param_names"]:
                raise ValueError(f"param group {i}: saved names {saved['params']} != {ours['param_names']}")
            hyper = copy.deepcopy({k: v for k, v in saved.items() if k not in self._STRUCTURE})
            group = {**ours, **hyper}
            self._check(group)
            new_groups.append(group)
        schedule = state_dict.get("schedule")
        trial = self._trial_schedule(schedule)
        saved_state = state_dict["state"]
        unknown = [n for n in saved_state if n not in self._where]
        if unknown:
            raise KeyError(f"state_dict has state for unknown parameters {unknown}")
        for group, flats in zip(new_groups, self._flats):
            for flat in flats:
                known = self._state_keys(group, flat.dtype)
                for seg in flat.segments:
                    extra = sorted(set(saved_state.get(seg.name, {})) - known)
                    if extra:
                        raise KeyError(
                            f"state[{seg.name!r}] has entries {extra} that {type(self).__name__} with these "
                            f"hyperparameters does not keep (it keeps {sorted(known)})"
                        )
        restored = [
            [_gather_state(flat, saved_state, lambda slot, g=group: self._slot_fill(g, slot)) for flat in flats]
            for group, flats in zip(new_groups, self._flats)
        ]
        for flats, states in zip(self._flats, restored):
            for flat, (steps, slots, scalars) in zip(flats, states):
                flat.steps, flat.state, flat.scalars = steps, slots, scalars
                flat.uniform = len(set(steps)) == 1 and all(s == scalars[0] for s in scalars)
        for ours, group in zip(self.param_groups, new_groups):
            ours.update(group)
        if schedule is not None:
            self._schedule_t, self._base_lrs = int(schedule["t"]), [float(x) for x in schedule["base_lrs"]]
            self._schedule.load_state_dict(trial)  # type: ignore[union-attr]
            self._apply_schedule()

    def _trial_schedule(self, saved: Any) -> Any:
        """Validate a saved schedule entry completely (on a copy of the schedule) before anything is replaced;
        returns the schedule state to load."""
        if saved is None:
            return None
        if not isinstance(saved, Mapping) or not {"type", "t", "base_lrs", "state"} <= set(saved):
            raise ValueError("state_dict['schedule'] must hold 'type', 't', 'base_lrs' and 'state'")
        if type(self._schedule).__name__ != saved["type"]:
            raise ValueError(f"state_dict has a {saved['type']} schedule: attach one (opt.schedule = ...) first")
        _check_count("state_dict['schedule']['t']", saved["t"])
        base = saved["base_lrs"]
        if not isinstance(base, (list, tuple)) or len(base) > len(self.param_groups):
            raise ValueError(f"state_dict['schedule']['base_lrs'] must be a list of at most one lr per group: {base!r}")
        for i, lr in enumerate(base):
            check_range(f"state_dict['schedule']['base_lrs'][{i}]", lr, 0.0)
        state = copy.deepcopy(saved["state"])
        try:
            copy.deepcopy(self._schedule).load_state_dict(copy.deepcopy(state))  # type: ignore[union-attr]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"state_dict['schedule']['state'] does not fit {saved['type']}: {err}") from err
        return state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} (engine={self.engine!r})"]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v!r}" for k, v in group.items() if k not in self._STRUCTURE)
            lines.append(f"  group {i}: {len(group['params'])} params; {hyper}")
        return "\n".join(lines)


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
            n = len(flat.segments)
            flat.steps, flat.scalars = [self.t] * n, [self.scalars_after] * n  # one dict, replaced, never mutated
            flat.uniform = True
            return
        for i in self.members:
            flat.steps[i] = self.t
            flat.scalars[i] = dict(self.scalars_after)
        flat.uniform = len(set(flat.steps)) == 1 and all(x == flat.scalars[0] for x in flat.scalars)


@dataclass
class LowPrecisionJob(Job):
    """A kernel call over a low-precision bucket (``adamkit.lowp``): ``slots`` are ``lowp.Coded`` slots, ``key``
    the step's stochastic-rounding key."""

    key: Any = None

    def run(self, engine: Any) -> None:
        step = lowp.step_numpy if engine is ENGINES["numpy"] else lowp.step_fused
        step(self.rule, self.flat, self.tensors, self.g, self.slots, self.args, self.key)

    @property
    def arrays(self) -> list[np.ndarray]:
        return [a for s in self.slots for a in s.arrays()]


def _filled(flat: FlatBuffer, fill: float) -> np.ndarray:
    return np.full(flat.size, fill, dtype=flat.dtype)


@cache
def _scalar_names(rule: Rule, n_slots: int) -> tuple[str, ...]:
    """The names of ``rule``'s scalar arguments (after ``p``, ``g`` and the slots)."""
    return tuple(inspect.signature(rule).parameters)[2 + n_slots :]


NONNEGATIVE_SLOTS = lowp.NONNEGATIVE_SLOTS
"""Slots that hold second moments or accumulators of squares: a negative value is corrupt (√ of it is NaN)."""


def _gather_state(
    flat: FlatBuffer, saved: Mapping[str, Any], fill: Any
) -> tuple[list[int], dict[str, np.ndarray], list[dict[str, float]]]:
    """Assemble the flat state of ``flat`` from per-name entries, validating each value.

    Array entries are state slots (a tensor without an entry gets the slot's initial value), plain numbers
    other than ``step`` are host scalars.
    """
    entries = [saved.get(seg.name) or {} for seg in flat.segments]
    for seg, e in zip(flat.segments, entries):
        if not isinstance(e, Mapping):
            raise TypeError(f"state[{seg.name!r}] must be a dict, got {type(e).__name__}")
    names = {k for e in entries for k, v in e.items() if isinstance(v, np.ndarray) and not k.endswith(lowp.SCALE)}
    slots = {}
    for slot in sorted(names):
        arr = np.full(flat.size, fill(slot), dtype=lowp.compute_dtype(flat.dtype))
        for seg, e in zip(flat.segments, entries):
            if slot not in e:
                continue
            where = f"state[{seg.name!r}][{slot!r}]"
            value = lowp.entry_values(e, slot, seg.shape, where)  # low-precision codes: dequantized, explicitly
            if value.shape != seg.shape:
                raise ValueError(f"{where} has shape {value.shape}, expected {seg.shape}")
            if value.dtype.kind != "f":
                raise TypeError(f"{where} has dtype {value.dtype}; a state slot holds real floating-point values")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{where} holds NaN or infinite values")
            if slot in NONNEGATIVE_SLOTS and np.any(value < 0):
                raise ValueError(f"{where} holds negative values; it accumulates squares, so it must be >= 0")
            seg.view(arr)[...] = value
        slots[slot] = lowp.quantize(flat, slot, arr) if flat.lowp else arr  # quantized, explicitly
    steps = [_check_count(f"state[{seg.name!r}]['step']", e.get("step", 0)) for seg, e in zip(flat.segments, entries)]
    scalars = []
    for seg, e in zip(flat.segments, entries):
        found = {}
        for k, v in e.items():
            if k == "step" or isinstance(v, np.ndarray):
                continue
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (Real, np.floating, np.integer)):
                raise TypeError(f"state[{seg.name!r}][{k!r}] must be a real number, got {v!r}")
            if not math.isfinite(float(v)):
                raise ValueError(f"state[{seg.name!r}][{k!r}] must be finite, got {v!r}")
            found[k] = float(v)
        scalars.append(found)
    return steps, slots, scalars


def _check_count(name: str, value: Any) -> int:
    """A step count: an integer >= 0 (not a bool, a float or a string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _cast(scalars: tuple, dtype: np.dtype, names: tuple[str, ...], owner: str) -> tuple:
    """Hyperparameters in the buffer's dtype (flags stay bool), so float32 math stays float32; a value that is
    not finite there (an overflow such as lr=1e39 in float32, or a bias correction that rounds to 0) is refused."""
    x, limit = dtype.type, _LARGEST[dtype]
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


def _as_groups(params: Params) -> list[dict[str, Any]]:
    if isinstance(params, Mapping) or isinstance(params, np.ndarray):
        return [{"params": params}]
    if isinstance(params, list):
        if params and all(isinstance(p, dict) for p in params):
            return list(params)
        return [{"params": params}]
    raise TypeError(
        "params must be a dict {name: array}, a list of arrays or a list of param-group dicts "
        f"(adamkit puts live views back into it); got {type(params).__name__}"
    )


def _named_arrays(container: Any, start: int, *, packed: bool) -> list[tuple[str, np.ndarray]]:
    if isinstance(container, MutableMapping):
        bad = [k for k in container if not isinstance(k, str)]
        if bad:
            raise TypeError(f"a params dict must be keyed by parameter names (str); got keys {bad}")
        items = list(container.items())
    elif isinstance(container, list):
        items = [(str(start + i), v) for i, v in enumerate(container)]
    else:
        raise TypeError(
            "a group's params must be a dict {name: array} or a list of arrays; "
            f"got {type(container).__name__}"
        )
    for name, array in items:
        _check_array(name, array, packed=packed)
    return items


def _check_array(name: str, array: Any, *, packed: bool) -> None:
    """A parameter must be a float32/float64 ndarray; one updated in place must be C-contiguous and writeable."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"parameter {name!r} must be a NumPy array, got {type(array).__name__}")
    if array.dtype not in SUPPORTED_DTYPES and array.dtype != lowp.BFLOAT16:
        raise TypeError(f"parameter {name!r} has dtype {array.dtype}; supported: float32, float64, ml_dtypes.bfloat16")
    if packed:
        return
    if not array.flags.c_contiguous:
        raise ValueError(
            f"parameter {name!r} is not C-contiguous (a strided view or a transposed array): adamkit updates "
            "parameters in place and cannot do so through a copy; pass np.ascontiguousarray(...) and keep that"
        )
    if not array.flags.writeable:
        raise ValueError(f"parameter {name!r} is read-only: adamkit updates parameters in place")


def _unchanged(container: Any, keys: list | None, params: list[np.ndarray]) -> bool:
    """The common case, cheaply: the container holds exactly the arrays the group steps."""
    if len(container) != len(params):
        return False
    try:
        entries = container if keys is None else map(container.__getitem__, keys)
        return all(map(operator.is_, entries, params))
    except KeyError:
        return False


def _entries(container: Any, keys: list | None, n: int) -> list:
    """A group's dict (by its original ``keys``) or list as it stands now; refuses added or removed entries."""
    if keys is None:
        if len(container) != n:
            raise ValueError(
                f"the params list of a param group changed length ({n} → {len(container)}); add new parameters "
                "with add_param_group"
            )
        return list(container)
    if len(container) != len(keys) or any(k not in container for k in keys):
        added, removed = [k for k in container if k not in keys], [k for k in keys if k not in container]
        raise KeyError(
            f"the params dict of a param group changed its keys since the optimizer took it (added {added}, "
            f"removed {removed}); add new parameters with add_param_group"
        )
    return [container[k] for k in keys]


def _refuse_overlaps(named: list[tuple[str, np.ndarray]]) -> None:
    """Refuse caller arrays whose memory overlaps (views of one array): one step would update it twice."""
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes, name) for name, a in named if a.size)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(
                f"parameters {first!r} and {second!r} share memory (views of one array); each element must "
                "belong to one parameter: pass the whole array, or separate copies"
            )


_LIVE: weakref.WeakSet[Optimizer] = weakref.WeakSet()
"""Every optimizer alive in this process, to warn when two step the same arrays."""


def _warn_if_shared(opt: Optimizer, named: list[tuple[str, np.ndarray]]) -> None:
    """Warn (not refuse: re-running ``opt = Adam(params)`` in a notebook keeps the old one alive a moment) when
    another live optimizer already steps memory of these arrays: both would update it."""
    for other in list(_LIVE):
        if other is opt:
            continue
        theirs = list(other._caller_arrays())
        try:
            _refuse_overlaps(theirs + list(named))
        except ValueError:
            warnings.warn(
                f"{type(opt).__name__}: these arrays are already stepped by another live optimizer "
                f"({type(other).__name__}); both will update them. Delete the other one if it is stale.",
                RuntimeWarning,
                stacklevel=4,
            )
            return


def _rebind(container: Any, names: list[str], views: Mapping[str, np.ndarray]) -> None:
    """Put the packed buffer's views back into the caller's dict or list."""
    if isinstance(container, MutableMapping):
        for key in list(container):
            container[key] = views[key]
    else:
        container[:] = [views[n] for n in names]
