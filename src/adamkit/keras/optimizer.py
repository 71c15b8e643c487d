"""The Keras 3 optimizer base (``keras.optimizers.Optimizer``'s behaviour) over NumPy arrays.

An optimizer is created without variables and binds them at the first ``apply`` (or ``build(var_list)``), as
Keras does. Each step follows Keras's ``apply``: drop ``None`` gradients (with Keras's warning), unscale by
``loss_scale_factor``, accumulate (``gradient_accumulation_steps``), clip, decay, update — the update itself being
the adamkit optimizer of the same name with ``convention="keras"`` over the caller's own arrays, updated in
place — then the moving average of the weights (``use_ema``) and the iteration count. Hyperparameters are read
from the attributes (``opt.beta_1 = 0.8`` takes effect at the next step, as in Keras).
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Real
from typing import Any, ClassVar

import numpy as np

from .._checks import check_range
from ..hooks import ClipGradValue
from ..optimizer import Optimizer as CoreOptimizer
from .clipping import ClipByGlobalNorm, ClipByNorm

Variables = Sequence[np.ndarray] | Mapping[str, np.ndarray]
_NAME_UIDS: defaultdict[str, int] = defaultdict(int)


def _auto_name(cls_name: str) -> str:
    """Keras's ``auto_name``: the snake-case class name, ``_1``, ``_2``, ... for later instances."""
    base = re.sub(r"(?<!^)(?=[A-Z])", "_", cls_name).lower()
    name = f"{base}_{_NAME_UIDS[base]}" if base in _NAME_UIDS else base
    _NAME_UIDS[base] += 1
    return name


def is_schedule(value: Any) -> bool:
    """An adamkit.keras schedule, or Keras's own (any ``LearningRateSchedule``): called with the iteration."""
    return any(c.__name__ == "LearningRateSchedule" for c in type(value).__mro__)


def _optional_number(name: str, value: Any) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
        raise TypeError(f"`{name}` must be a number or None. Received: {name}={value!r}")
    return value


class Optimizer:
    """Base of adamkit.keras's optimizers: Keras 3's ``BaseOptimizer`` arguments and methods.

    Subclasses name their adamkit optimizer (``_core``), translate their hyperparameters (``_hyper``) and check
    them (``_validate``).
    """

    _core: ClassVar[type[CoreOptimizer]]
    _config: ClassVar[tuple[str, ...]] = ()  # the subclass's own hyperparameters, by their Keras names

    def __init__(
        self,
        learning_rate: Any,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        self.name = _auto_name(type(self).__name__) if name is None else name
        if weight_decay is not None:
            check_range("weight_decay", weight_decay, 0.0)
        self.weight_decay = weight_decay
        self.clipnorm = _optional_number("clipnorm", clipnorm)
        self.clipvalue = _optional_number("clipvalue", clipvalue)
        self.global_clipnorm = _optional_number("global_clipnorm", global_clipnorm)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        self.loss_scale_factor = _optional_number("loss_scale_factor", loss_scale_factor)
        if gradient_accumulation_steps and not (
            isinstance(gradient_accumulation_steps, int) and gradient_accumulation_steps >= 2
        ):
            raise ValueError(
                "`gradient_accumulation_steps` must be an integer >= 2. "
                f"Received: gradient_accumulation_steps={gradient_accumulation_steps}"
            )
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.use_ema = use_ema
        if use_ema:
            check_range("ema_momentum", ema_momentum, 0.0, 1.0)
            if ema_overwrite_frequency and (
                not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    "`ema_overwrite_frequency` must be an integer >= 1 or None. "
                    f"Received: ema_overwrite_frequency={ema_overwrite_frequency}"
                )
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self._learning_rate = self._checked_learning_rate(learning_rate)
        self._validate()

        self.built = False
        self._iterations = 0
        self._vars: list[np.ndarray] = []  # the caller's arrays, in build order
        self._names: list[str] = []
        self._index: dict[int, int] = {}  # id(array) -> position
        self._exclude_ids: set[int] = set()
        self._exclude_pattern: re.Pattern[str] | None = None
        self._group_decayed: list[bool] = []  # per param group of the adamkit optimizer: weight decay on?
        self._behind: set[str] = set()  # variables that missed updates (their step count lags the optimizer's)
        self._accumulated: list[np.ndarray] = []
        self._averages: list[np.ndarray] = []
        self.optimizer: CoreOptimizer | None = None  # the adamkit optimizer doing the updates, once built
        self._clip: Any = None  # (hook class, threshold) in the core's hooks

    # ------------------------------------------------------------------------------- subclass API
    def _validate(self) -> None:
        """Check the subclass's hyperparameters (Keras names in every message)."""

    def _hyper(self) -> dict[str, Any]:
        """The subclass's hyperparameters in the adamkit optimizer's names (lr and weight_decay excluded)."""
        return {}

    # --------------------------------------------------------------------------------- learning rate
    @staticmethod
    def _checked_learning_rate(learning_rate: Any) -> Any:
        if is_schedule(learning_rate) or callable(learning_rate):
            return learning_rate
        if not isinstance(learning_rate, float):
            raise ValueError(
                "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, or a callable "
                "(that takes in the current iteration value and returns the corresponding learning rate value). "
                f"Received instead: learning_rate={learning_rate}"
            )
        check_range("learning_rate", learning_rate, 0.0)
        return np.float32(learning_rate)  # Keras keeps it in a float32 variable

    def _current_learning_rate(self) -> np.float32:
        """The learning rate for this iteration: Keras calls a schedule with the iteration, a callable with nothing."""
        lr = self._learning_rate
        if is_schedule(lr):
            lr = lr(self._iterations)
        elif callable(lr):
            lr = lr()
        value = np.float32(np.asarray(lr))
        if not value >= 0:
            raise ValueError(f"learning_rate must be >= 0; {self._learning_rate!r} gave {value} at iteration "
                             f"{self._iterations}")  # fmt: skip
        return value

    @property
    def learning_rate(self) -> np.float32:
        """The current learning rate (a schedule's value at the current iteration); settable as in Keras."""
        return self._current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        if not (is_schedule(learning_rate) or callable(learning_rate)) and (
            is_schedule(self._learning_rate) or callable(self._learning_rate)
        ):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` (or a callable) as its `learning_rate` "
                "constructor argument, hence its learning rate is not settable. If you need the learning rate to be "
                "settable, you should instantiate the optimizer with a float `learning_rate` argument."
            )
        if is_schedule(learning_rate) or callable(learning_rate):
            self._learning_rate = learning_rate
            return
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, Real):
            raise TypeError(f"learning_rate must be a float, a schedule or a callable, got {learning_rate!r}")
        check_range("learning_rate", learning_rate, 0.0)
        self._learning_rate = np.float32(learning_rate)

    @property
    def iterations(self) -> int:
        """Updates applied so far (with gradient accumulation: applies // gradient_accumulation_steps)."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    # ---------------------------------------------------------------------------------------- build
    def build(self, var_list: Variables) -> None:
        """Bind the variables (NumPy arrays, a list or a dict by name); the first ``apply`` does it otherwise."""
        if self.built:
            return
        names, arrays = _named(var_list)
        if not arrays:
            raise ValueError("var_list is empty: the optimizer needs at least one variable")
        decayed = [self._use_weight_decay(n, a) for n, a in zip(names, arrays)]
        core = self._core(**{"lr": float(self._current_learning_rate()), "convention": "keras", **self._hyper()})
        for flag in (True, False):
            members = {n: a for n, a, d in zip(names, arrays, decayed) if d is flag}
            if members:
                core.add_param_group({"params": members, "weight_decay": self._weight_decay(flag)})
                self._group_decayed.append(flag)
        self.optimizer = core
        self._vars, self._names = list(arrays), list(names)
        self._index = {id(a): i for i, a in enumerate(arrays)}
        if self.gradient_accumulation_steps:
            self._accumulated = [np.zeros_like(a) for a in arrays]
        if self.use_ema:
            self._averages = [np.zeros_like(a) for a in arrays]
        self.built = True

    def _set_clip_hook(self, core: CoreOptimizer) -> None:
        """Put the clipping the attributes ask for first among the core's hooks (Keras reads them every step and
        clips only with a positive setting: 0 or negative, no clipping)."""
        if self.clipnorm and self.clipnorm > 0:
            clip: Any = (ClipByNorm, self.clipnorm)
        elif self.global_clipnorm and self.global_clipnorm > 0:
            clip = (ClipByGlobalNorm, self.global_clipnorm)
        elif self.clipvalue and self.clipvalue > 0:
            clip = (ClipGradValue, self.clipvalue)
        else:
            clip = None
        if clip == self._clip:
            return
        others = [h for h in core.hooks if not isinstance(h, (ClipByNorm, ClipByGlobalNorm, ClipGradValue))]
        core.hooks[:] = ([clip[0](clip[1])] if clip else []) + others
        self._clip = clip

    def _weight_decay(self, decayed: bool) -> float:
        return float(self.weight_decay) if decayed and self.weight_decay is not None else 0.0

    def exclude_from_weight_decay(self, var_list: Iterable[np.ndarray] | None = None,
                                  var_names: Iterable[str] | None = None) -> None:  # fmt: skip
        """Exclude variables from weight decay: those in ``var_list`` (the arrays), and those whose name contains
        any of ``var_names`` (``re.search``; names are a dict's keys, or positions "0", "1", ... for a list).
        Call it before the optimizer is built."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.")
        self._exclude_ids = {id(v) for v in var_list} if var_list else set()
        names = list(var_names) if var_names else []
        self._exclude_pattern = re.compile("|".join(set(names))) if names else None

    def _use_weight_decay(self, name: str, array: np.ndarray) -> bool:
        if id(array) in self._exclude_ids:
            return False
        return not (self._exclude_pattern is not None and self._exclude_pattern.search(name))

    # ---------------------------------------------------------------------------------------- apply
    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, np.ndarray]]) -> int:
        """``apply(grads, vars)`` from ``(gradient, variable)`` pairs; returns the raw iteration count."""
        grads, trainable_variables = zip(*grads_and_vars)
        self.apply(list(grads), list(trainable_variables))
        return self._iterations

    def apply(self, grads: Sequence[Any] | Mapping[str, Any], trainable_variables: Variables | None = None) -> None:
        """One Keras step: ``grads`` (arrays or None, in the order of ``trainable_variables``, or a dict by name
        when the variables are a dict) update the variables in place. Without ``trainable_variables``, the grads
        go to the variables the optimizer was built with, in order."""
        if len(grads) == 0:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                    "variables. Call `optimizer.build(trainable_variables)` first."
                )
            if len(grads) != len(self._vars):
                raise ValueError(
                    f"When passing `grads` as a list of gradient tensors, the gradients must match "
                    f"`optimizer.variables` one-to-one. Received a list of {len(grads)} gradients, but the "
                    f"optimizer is tracking {len(self._vars)} trainable variables."
                )
            positions = list(range(len(self._vars)))
        else:
            names, arrays = _named(trainable_variables)
            if isinstance(grads, Mapping):
                if not isinstance(trainable_variables, Mapping) or set(grads) != set(names):
                    raise ValueError(f"grads given by name must have exactly the variables' names {names}")
                grads = [grads[n] for n in names]
            elif len(grads) != len(arrays):
                raise ValueError(f"got {len(grads)} gradients for {len(arrays)} variables")
            if not self.built:
                self.build(trainable_variables)
            positions = []
            for array in arrays:
                if id(array) not in self._index:
                    raise ValueError(
                        f"Unknown variable: {_describe(array)}. This optimizer can only be called for the variables "
                        "it was originally built with. When working with a new set of variables, you should "
                        "recreate a new optimizer instance."
                    )
                positions.append(self._index[id(array)])
        if isinstance(grads, Mapping):
            grads = [grads[self._names[i]] for i in positions]
        present = self._checked_grads(list(grads), positions)
        self._step(present)

    def _checked_grads(self, grads: list[Any], positions: list[int]) -> dict[int, np.ndarray]:
        """``{position: gradient}`` for the non-None gradients, each checked and cast to its variable's dtype."""
        present, missing = {}, []
        for g, i in zip(grads, positions):
            if g is None:
                missing.append(self._names[i])
                continue
            array = np.asarray(g)
            var = self._vars[i]
            if array.shape != var.shape:
                raise ValueError(f"the gradient for variable {self._names[i]!r} has shape {array.shape}, "
                                 f"expected {var.shape}")  # fmt: skip
            present[i] = array.astype(var.dtype, copy=False)
        if not present:
            raise ValueError("No gradients provided for any variable.")
        if missing:
            warnings.warn(
                f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                "`model.compile()`, did you forget to provide a `loss` argument?",
                stacklevel=4,
            )
        return present

    def _step(self, present: dict[int, np.ndarray]) -> None:
        core = self.optimizer
        assert core is not None
        lr = float(self._current_learning_rate())
        hyper = self._hyper()
        for group, decayed in zip(core.param_groups, self._group_decayed):
            group.update(hyper, lr=lr, weight_decay=self._weight_decay(decayed))
        self._set_clip_hook(core)
        if self.loss_scale_factor is not None:
            present = {i: g / g.dtype.type(self.loss_scale_factor) for i, g in present.items()}
        k = self.gradient_accumulation_steps
        if k and (self._iterations + 1) % k != 0:
            for i, g in present.items():
                self._accumulated[i] += g
        else:
            if k:
                present = {i: (g + self._accumulated[i]) / g.dtype.type(k) for i, g in present.items()}
            # the core reads the gradients where they are; a skipped variable's entry is never read
            grads = {n: present[i] if i in present else core.grads[n] for i, n in enumerate(self._names)}
            skip = frozenset(self._names[i] for i in range(len(self._vars)) if i not in present)
            returning = [n for i, n in enumerate(self._names) if i in present and n in self._behind]
            if returning:  # they missed updates: give them the optimizer's count first, as Keras has one count
                self._share_step_count(returning, next(n for n in self._names if n not in self._behind))
                self._behind.difference_update(returning)
            core._step(grads, skip=skip)
            self._behind.update(skip)
            for acc in self._accumulated:
                acc.fill(0)
        if self.use_ema:
            self._update_moving_average()
        self._iterations += 1

    def _share_step_count(self, behind: list[str], current: str) -> None:
        """Keras counts steps per optimizer, adamkit per parameter: give the variables ``behind`` (they had no
        gradient at some updates) the step count and host scalars (e.g. Nadam's μ product) of ``current``, a
        variable that took every update. Done when they come back, so a variable that never has a gradient
        costs nothing."""
        core = self.optimizer
        assert core is not None
        state = core.state_dict()
        shared = {k: v for k, v in state["state"].get(current, {}).items() if not isinstance(v, np.ndarray)}
        for name in behind:
            state["state"].setdefault(name, {}).update(shared)
        core.load_state_dict(state)

    # ------------------------------------------------------------------------------------------ EMA
    def _update_moving_average(self) -> None:
        """``average ← μ·average + (1 − μ)·variable`` with ``μ = 0`` at iteration 0, then overwrite the variables
        every ``ema_overwrite_frequency`` iterations (Keras's order and float arithmetic)."""
        for var, average in zip(self._vars, self._averages):
            x = var.dtype.type
            mu = x(self.iterations != 0) * x(self.ema_momentum)
            np.add(mu * average, (x(1) - mu) * var, out=average)
        freq = self.ema_overwrite_frequency
        if freq and (self.iterations + 1) % freq == 0:
            for var, average in zip(self._vars, self._averages):
                var[...] = average

    def finalize_variable_values(self, var_list: Variables) -> None:
        """With ``use_ema``: overwrite the variables (in place, in build order) with their moving averages."""
        if not self.use_ema:
            return
        _, arrays = _named(var_list)
        if len(arrays) != len(self._averages):
            raise ValueError(
                f"The length of model variables ({len(arrays)}) to override does not match the length of model "
                f"variables stored in the optimizer ({len(self._averages)}). Please check if the optimizer was "
                "called on your model."
            )
        for var, average in zip(arrays, self._averages):
            var[...] = average

    # ------------------------------------------------------------------------------------- minimize
    def minimize(self, loss: Callable[..., Any], var_list: Variables) -> float:
        """One step on ``loss``'s gradient (from autograd): ``loss(*var_list)`` for a list, ``loss(**var_list)``
        for a dict — write it with ``autograd.numpy``. Returns the loss before the step.

        Keras's ``loss`` takes no arguments (TensorFlow's tape watches the variables); autograd differentiates
        a function of its arguments, so here the variables are passed in.
        """
        from autograd import value_and_grad

        if not callable(loss):
            raise TypeError(f"loss must be a callable of the variables, got {type(loss).__name__}")
        if _takes_no_arguments(loss):
            raise TypeError(
                "loss takes no arguments: autograd needs the variables passed in. Write loss(w1, w2, ...) taking "
                "the arrays of var_list in order (with autograd.numpy), e.g. "
                "opt.minimize(lambda w, b: anp.mean((w * x + b - y) ** 2), [w, b])"
            )
        if isinstance(var_list, Mapping):
            value, grads = value_and_grad(lambda d: loss(**d))(dict(var_list))
            grads = [grads[k] for k in var_list]
        else:
            value, grads = value_and_grad(lambda vs: loss(*vs))(list(var_list))
        self.apply(list(grads), var_list)
        return float(value)

    # --------------------------------------------------------------------------------------- misc
    @property
    def variables(self) -> list[np.ndarray]:
        """The optimizer's state, as Keras lists it: the iteration count, the learning rate (if a float), then
        per variable its moving average (``use_ema``), gradient accumulator and the update's slots (copies)."""
        out = [np.array(self._iterations)]
        if not (is_schedule(self._learning_rate) or callable(self._learning_rate)):
            out.append(np.array(self._learning_rate))
        out += self._averages + self._accumulated
        if self.optimizer is not None:
            state = self.optimizer.state_dict()["state"]
            for name in self._names:
                out += [v for v in state.get(name, {}).values() if isinstance(v, np.ndarray)]
        return out

    def scale_loss(self, loss: Any) -> Any:
        """``loss · loss_scale_factor`` (unchanged without one)."""
        return loss if self.loss_scale_factor is None else loss * self.loss_scale_factor

    def get_config(self) -> dict[str, Any]:
        """Keras's config dict: the constructor's arguments (a schedule as ``{"class_name", "config"}``)."""
        lr = self._learning_rate
        if is_schedule(lr):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        elif not callable(lr):
            lr = float(lr)
        return {
            "name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue, "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum, "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            **{key: getattr(self, key) for key in self._config},
        }  # fmt: skip

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """The optimizer ``get_config`` describes (a schedule given as ``{"class_name", "config"}``)."""
        from . import schedules

        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, Mapping):
            config["learning_rate"] = getattr(schedules, lr["class_name"]).from_config(lr["config"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"<adamkit.keras.{type(self).__name__} name={self.name!r} iterations={self.iterations}>"


def _named(var_list: Variables) -> tuple[list[str], list[np.ndarray]]:
    """Names and arrays: a dict's keys, or positions "0", "1", ... for a list."""
    if isinstance(var_list, Mapping):
        names, arrays = [str(k) for k in var_list], list(var_list.values())
    elif isinstance(var_list, (list, tuple)):
        names, arrays = [str(i) for i in range(len(var_list))], list(var_list)
    else:
        raise TypeError(f"variables must be a list of NumPy arrays (or a dict by name), got {type(var_list).__name__}")
    for name, array in zip(names, arrays):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"variable {name!r} must be a NumPy array (updated in place), got {type(array).__name__}")
    return names, arrays


def _describe(array: np.ndarray) -> str:
    return f"array(shape={array.shape}, dtype={array.dtype})"


def _takes_no_arguments(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return not params
