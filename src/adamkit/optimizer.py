"""The optimizer base class, shaped like ``torch.optim.Optimizer`` over flat NumPy buffers.

The parameters are the caller's own arrays (or, ``packed``, views of one adamkit-owned buffer put back into the
caller's container), stepped in place; state slots live in one flat buffer per (param group, dtype). A subclass
supplies only:

- ``_check(group)``: validate the hyperparameters of one param group (raise, naming the argument);
- ``_plan(group, run, t)``: for step ``t``, the elementwise rule, the state slots it updates and the
  scalars it takes; ``run`` shows the dtype, state slots and host scalars of the tensors being stepped;
- ``_slot_fill(group, slot)`` (optional): a state slot's initial value.

Step counts are kept per parameter, as in torch.optim; hooks run before each update and a schedule sets each
group's lr. Everything is validated before anything is written: a refused step changes nothing.

``Optimizer`` is composed of three mixins, one module each: ``store.ParamStore`` (parameters, buffers, the
caller's containers), ``stepping.Stepping`` (the atomic step) and ``state_io.StateIO`` (``state_dict``,
``load_state_dict``); this module keeps construction, hyperparameters (lr, schedule, hooks) and the subclass
API. Mixins rather than collaborator objects: they share one set of attributes (the buffers) with no hop
through another object on the hot per-step path, and subclasses (phases.py, the doors) keep overriding
``_jobs``, ``_state_keys``, ``load_state_dict`` ... as methods of one class, as before the split.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from . import lowp
from ._checks import check_bool, check_choice
from .engine import ENGINES, Rule
from .flat import FlatBuffer, Run, Segment
from .hooks import Hook
from .schedules import Schedule
from .state_io import NONNEGATIVE_SLOTS, StateIO, _check_count, _gather_state
from .stepping import Job, Stepping, _cast, _filled, _scalar_names
from .store import _LIVE, Grads, NamedViews, Params, ParamStore, _as_groups

Plan = tuple[Rule, tuple[str, ...], tuple]

__all__ = [
    "NONNEGATIVE_SLOTS", "Grads", "Job", "NamedViews", "Optimizer", "Params", "Plan", "_cast", "_check_count",
    "_filled", "_gather_state", "_scalar_names",
]  # fmt: skip


class Optimizer(ParamStore, Stepping, StateIO):
    """Base of every adamkit optimizer (see the module docstring)."""

    #: Hyperparameters each param group carries; ``state_dict`` saves exactly these.
    defaults: dict[str, Any]
    #: Keys of a group that are structure, not hyperparameters.
    _STRUCTURE: ClassVar[tuple[str, ...]] = ("params", "param_names")

    #: Whether the update is elementwise, so its state may be stored in low precision (``state_dtype``).
    _LOW_PRECISION: ClassVar[bool] = False

    #: Rules whose scalars ``_plan`` computes from the group's hyperparameters and the bucket's dtype alone (not
    #: the step count, the state or host scalars): while a group's hyperparameters stay the same, a plain step
    #: reuses them without planning again. tests/test_stationary_plans.py checks every declaration.
    _STATIONARY: ClassVar[frozenset[Any]] = frozenset()

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
        kahan_sum: bool = False,
    ):
        self.engine = check_choice("engine", engine, tuple(ENGINES))
        self._state_dtype = lowp.check_state_dtype(type(self).__name__, state_dtype, self._LOW_PRECISION)
        self._rounding = check_bool("stochastic_rounding", stochastic_rounding), _check_count("seed", seed)
        self._kahan = lowp.check_kahan(type(self).__name__, kahan_sum, self._LOW_PRECISION)
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
        self._watched: list[int] = []  # the groups whose containers steps check for replaced arrays
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

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name in self._ATTRIBUTES or hasattr(type(self), name):
            return object.__setattr__(self, name, value)
        knobs = ", ".join(k for k in getattr(self, "defaults", {}) if k not in self._STRUCTURE)
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}. Its hyperparameters live in the param groups: "
            f"{knobs} (set opt.param_groups[i][name], or opt.lr for every group's learning rate)"
        )

    @property
    def state_dtype(self) -> str | None:
        """How state slots are stored: None (the parameters' dtype), ``"bfloat16"`` or ``"int8"`` (block-wise);
        see ``adamkit.lowp``. bf16 values (parameters, bf16 state) are written back with stochastic rounding
        (``stochastic_rounding=True``, reproducible from ``seed``) or rounded to nearest."""
        return self._state_dtype

    @property
    def kahan_sum(self) -> bool:
        """Whether bf16 parameters are written with Kahan compensation (a bf16 ``kahan_comp`` slot carrying each
        write's rounding error into the next update; round to nearest) instead of stochastic rounding; see
        ``adamkit.lowp``. Parameters of other dtypes are not affected."""
        return self._kahan

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
        flat.lowp = lowp.Precision.of(flat, self._state_dtype, *self._rounding, self._kahan)

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

    # ---------------------------------------------------------------------------------- subclass API
    def _check(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        raise NotImplementedError

    def _slot_fill(self, group: dict[str, Any], slot: str) -> float:
        """Initial value of a state slot (0 unless the optimizer says otherwise)."""
        return 0.0

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} (engine={self.engine!r})"]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v!r}" for k, v in group.items() if k not in self._STRUCTURE)
            lines.append(f"  group {i}: {len(group['params'])} params; {hyper}")
        return "\n".join(lines)
