"""``TorchOptimizer``: a ``torch.optim.Optimizer`` whose math is an adamkit core optimizer.

Where parameters live (per torch param group):

- CPU float32/float64 (and complex64/128, as real pairs like torch.optim), and bfloat16 for the optimizers
  whose update is elementwise: given to the core with ``add_param_group(..., packed=True)``, which copies them
  into one flat buffer per dtype; each ``p.data`` is rebound to ``torch.from_numpy`` of its view (bfloat16:
  through int16 words, as NumPy has no bfloat16), so the fused numba kernel updates the model's storage in
  place. bfloat16 parameters are updated in float32 and written back with stochastic rounding
  (``stochastic_rounding=True``, reproducible from ``seed``) or with Kahan compensation (``kahan_sum=True``);
  ``state_dtype="bfloat16"|"int8"`` stores the state slots in low precision (see ``adamkit.lowp``).
  Gradients: new grads from autograd (after ``zero_grad(set_to_none=True)``, torch's default) are read where
  they are, by address, by the same fused kernel (no copy). Grads kept between steps
  (``set_to_none=False``) are copied in once and rebound to views of the core's flat gradient buffer, so
  autograd accumulates into it in place from then on. Grads the kernel cannot read as they are (sparse, not
  contiguous, conjugate views, ...) are copied in and rebound. A ``p.data`` that is no longer our view is copied
  in and rebound;
  one on another device or of another dtype moves the parameter to the path below, with its state (refused
  with ``state_dtype``, whose codes live in the core only).
- Anything else (CUDA, fp16, bf16 with ``engine="torch"``): the same rule evaluated on whole torch tensors
  (:mod:`._tensor_rule`), state kept in ``self.state`` as torch.optim keeps it (``state_dtype`` is refused
  there).

torch's ``param_groups`` are the source of truth for hyperparameters: they are copied into the core's groups
before every step, so ``lr_scheduler`` and ``param_groups[i]["lr"] = ...`` work as with torch.optim.
``self.state`` shows torch.optim's format (:mod:`._state`); entries written into it are read back.
"""

from __future__ import annotations

import copy
import functools
import operator
import weakref
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any, ClassVar

import numpy as np
import torch
import torch.optim.optimizer as torch_optimizer

from .. import lowp
from .._checks import check_choice
from ..flat import GradAddresses, Run
from ..optimizer import Optimizer as CoreOptimizer
from ..optimizer import _cast, _scalar_names
from ._state import State, export_entry, hold, import_entry, scalar_tensor, steps_done
from ._tensor_rule import torch_rule

try:  # a private torch API (pinned torch 2.13.0); without it new grads take the per-parameter path
    from torch._C._dynamo.guards import TensorGuards
except ImportError:  # pragma: no cover
    TensorGuards = None

CORE_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
ENGINES = ("fused", "numpy", "torch")


def _real(t: torch.Tensor) -> torch.Tensor:
    """torch.optim steps complex tensors as real pairs; so do we."""
    return torch.view_as_real(t) if t.is_complex() else t


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A zero-copy NumPy view of a CPU tensor; bfloat16 as ``ml_dtypes.bfloat16`` (through int16 words)."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(lowp.BFLOAT16)
    return t.numpy()


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A zero-copy tensor of a NumPy array; ``ml_dtypes.bfloat16`` as ``torch.bfloat16``."""
    if a.dtype == lowp.BFLOAT16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _plain(value: Any) -> Any:
    """A hyperparameter as the core takes it: tensors (lr, betas) become Python numbers."""
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


_data_ptr = torch.Tensor.data_ptr
_grad_of = operator.attrgetter("grad")


class _Bound:
    """One CPU parameter whose storage is a view into the core's flat buffer."""

    __slots__ = ("name", "param", "data", "grad", "ptr", "group")

    def __init__(self, name: str, param: torch.Tensor, data: torch.Tensor, grad: torch.Tensor, group: int):
        self.name, self.param, self.data, self.grad, self.group = name, param, data, grad, group
        self.ptr = param.data_ptr()


class _Bindings:
    """What a step checks the parameters against, built after they were (re)bound: each core-held parameter, the
    address of its storage and its grad view; where the core can read gradients by address, a guard checking in
    C++ that new grads have our views' metadata (dynamo's ``TensorGuards``: dtype, shape, strides, layout, device,
    requires_grad, conj/neg bits; ~50 ns a tensor) and each core bucket's parameters as positions in ``params``."""

    __slots__ = ("params", "ptrs", "grads", "guard", "order")

    def __init__(self, bound: list[_Bound], core: CoreOptimizer):
        self.params, self.ptrs = [b.param for b in bound], [b.ptr for b in bound]
        self.grads = [b.grad for b in bound]
        self.guard: TensorGuards | None = None
        self.order: list[tuple[int, np.ndarray]] = []
        if TensorGuards is not None and core._reads_by_address():
            self.guard = TensorGuards(*self.grads, dynamic_dims_sizes=None, dynamic_dims_strides=None)
            where = {b.name: i for i, b in enumerate(bound)}  # a parameter moved off the core: always skipped
            self.order = [
                (id(flat), np.array([where.get(seg.name, 0) for seg in flat.segments], np.intp))
                for flat in core._buckets()
            ]


class TorchOptimizer(torch.optim.Optimizer):
    """Base of every ``adamkit.torch`` optimizer (see the module docstring)."""

    _core_class: ClassVar[type[CoreOptimizer]]
    _torch_class: ClassVar[type[torch.optim.Optimizer]]
    #: State entries that are host scalars (0-d tensors in torch's format), not slots.
    _host_scalars: ClassVar[tuple[str, ...]] = ()
    #: Host scalars kept as Python floats in torch's format (else 0-d tensors, as torch.optim keeps NAdam's).
    _host_scalars_as_floats: ClassVar[bool] = False
    #: torch keeps a ``step`` tensor per parameter (SGD does not).
    _stores_step: ClassVar[bool] = True
    #: Slots torch creates for every parameter at construction (Adagrad's ``sum``), with step 0.
    _eager_slots: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        params: Iterable[Any],
        hyper: dict[str, Any],
        torch_flags: dict[str, Any],
        *,
        convention: str,
        engine: str,
        precision: dict[str, Any] | None = None,
    ):
        name = type(self).__name__
        if torch_flags.get("differentiable"):
            raise ValueError(
                f"adamkit.torch.{name}: differentiable=True is not supported (the step runs outside autograd); "
                f"use torch.optim.{name} to differentiate through optimizer steps"
            )
        check_choice("engine", engine, ENGINES)
        given = {k: v for k, v in hyper.items() if v is not None}
        self._reference_checks(given, torch_flags)
        precision = precision or {}
        if engine == "torch" and precision.get("state_dtype") is not None:
            raise ValueError(
                f"adamkit.torch.{name}: state_dtype={precision['state_dtype']!r} needs the core (engine='fused' or "
                "'numpy'); engine='torch' keeps the state in the parameters' dtype"
            )
        if engine == "torch" and precision.get("kahan_sum"):
            raise ValueError(
                f"adamkit.torch.{name}: kahan_sum=True needs the core (engine='fused' or 'numpy'); engine='torch' "
                "rounds bfloat16 parameters stochastically or to nearest"
            )
        self._core = self._core_class(
            None, **{k: _plain(v) for k, v in given.items()}, convention=convention,
            engine="numpy" if engine == "numpy" else "fused", **precision,
        )  # fmt: skip
        self.engine = engine
        self._core_keys = tuple(self._core.defaults)
        defaults = {k: given.get(k, v) for k, v in self._core.defaults.items()}
        defaults.update(torch_flags)
        self._bound: list[_Bound] = []
        self._by_param: dict[int, _Bound] = {}
        self._core_index: list[int | None] = []  # torch group → core group
        self._tensor_params: list[list[torch.Tensor]] = []  # torch group → params stepped with torch ops
        self._stale = False  # core state changed since self.state was last exported
        self._evicted: frozenset[str] = frozenset()  # moved to another device/dtype: skipped by the core
        self._bindings: _Bindings | None = None  # rebuilt after (re)binding
        self._last_read: weakref.ref | None = None  # the first new grad the last step read in place
        self._synced: list[tuple | None] = []  # per torch group: the hyperparameter values last synced
        super().__init__(params, defaults)

    def _reference_checks(self, given: dict[str, Any], torch_flags: dict[str, Any]) -> None:
        """torch's own checks and messages: the torch.optim class built once on a probe tensor."""
        self._torch_class([torch.zeros(1)], **given, **torch_flags)

    @staticmethod
    def profile_hook_step(func: Callable[..., Any]) -> Callable[..., Any]:
        """torch.optim's step wrapper (profiler label, step pre/post hooks), entered only when there is something
        for it to do: a profiler running or a hook registered (it costs ~10 µs a step otherwise)."""
        hooked = torch.optim.Optimizer.profile_hook_step(func)

        @functools.wraps(func)
        def wrapper(self: TorchOptimizer, *args: Any, **kwargs: Any) -> Any:
            if (
                self._optimizer_step_pre_hooks
                or self._optimizer_step_post_hooks
                or torch_optimizer._global_optimizer_pre_hooks
                or torch_optimizer._global_optimizer_post_hooks
                or torch._C._autograd._profiler_enabled()
            ):
                return hooked(self, *args, **kwargs)
            return func(self, *args, **kwargs)

        return wrapper

    # ------------------------------------------------------------------------------------- state
    @property  # type: ignore[override]
    def state(self) -> State:
        """torch.optim's per-parameter state; entries of core-held parameters are exported on demand."""
        if self._stale:
            self._export()
        return self._state

    @state.setter
    def state(self, value: Any) -> None:
        self._state = State(value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        torch_state = state.pop("state", None)
        defaults = self.__dict__.get("defaults") or state.get("defaults", {})
        for group in state.get("param_groups", []):
            for key, value in defaults.items():  # keys a torch.optim state_dict lacks, e.g. convention
                group.setdefault(key, value)
        super().__setstate__(state)
        if torch_state is not None:
            self.state = torch_state
            self._state.replaced = True

    def _export(self) -> None:
        """Write the core's state for every core-held parameter into ``self._state`` (torch's format)."""
        saved = self._core.state_dict()["state"]
        fill = self._core._slot_fill
        eager = [{s: fill(self._core_hyper(g), s) for s in self._eager_slots} for g in self.param_groups]
        for b in self._bound:
            entry = export_entry(
                saved.get(b.name), b.param, self._host_scalars, self._stores_step, eager[b.group],
                self._host_scalars_as_floats,
            )  # fmt: skip
            if entry is None:
                dict.pop(self._state, b.param, None)
            else:
                dict.__setitem__(self._state, b.param, entry)
        self._state.written.clear()
        self._state.replaced = False
        self._stale = False

    def _import(self) -> None:
        """Read entries written into ``self.state`` (by load_state_dict, ZeRO, a user) into the core."""
        st = self._state
        if not (st.replaced or st.written):
            return
        current = self._core.state_dict()
        core_state = {} if st.replaced else current["state"]
        for b in self._bound:
            if st.replaced or id(b.param) in st.written:
                entry = dict.get(st, b.param)
                if entry:
                    core_state[b.name] = import_entry(entry, self._host_scalars)
                else:
                    core_state.pop(b.name, None)
        current["state"] = core_state
        self._core.load_state_dict(current)
        st.written.clear()
        st.replaced = False
        self._stale = True

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's ``load_state_dict`` (integer ids, torch's slot names), then the core takes the state.
        The entries of core-held parameters skip torch's cast to the parameter's dtype (it would turn int8
        codes into floats, float32 state of a bf16 parameter into bf16): the core decodes or quantizes them
        explicitly where the saved and the new storage differ."""
        before = (copy.copy(self.param_groups), [dict(g) for g in self.param_groups], self._state)
        pairs = list(zip([i for g in state_dict["param_groups"] for i in g["params"]],
                         [p for g in self.param_groups for p in g["params"]]))  # fmt: skip
        rest, held = hold(state_dict["state"], {pid for pid, p in pairs if id(p) in self._by_param})
        super().load_state_dict({**state_dict, "state": rest})
        try:
            for pid, p in pairs:
                if pid in held:
                    dict.__setitem__(self._state, p, {**dict.get(self._state, p, {}), **held[pid]})
            self._sync_groups()
            self._import()
        except BaseException:
            groups, contents, self._state = before
            for g, c in zip(groups, contents):
                g.clear()
                g.update(c)
            self.param_groups = groups
            raise
        self._export()

    # ------------------------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``; CPU float params are then packed into the core's flat buffers."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            hyper = self._core_hyper(group)
            self._core._check(hyper)
            unique = list({id(p): p for p in group["params"]}.values())
            fast = [p for p in unique if self._core_held(p)]
            self._tensor_params.append([p for p in unique if not self._core_held(p)])
            self._refuse_low_precision(self._tensor_params[-1])
            if not fast:
                self._core_index.append(None)
                return
            arrays = [_numpy(_real(p.detach())) for p in fast]  # a list: the core names them, uniquely
            self._core.add_param_group({"params": arrays, **hyper}, packed=True, watch=False)
            self._core_index.append(len(self._core.param_groups) - 1)
            names = self._core.param_groups[-1]["param_names"]
        except BaseException:
            self.param_groups.pop()
            del self._tensor_params[len(self.param_groups) :], self._core_index[len(self.param_groups) :]
            raise
        for name, p in zip(names, fast):
            self._bind(name, p)
        self._stale = True

    def _core_held(self, p: torch.Tensor) -> bool:
        on_cpu = p.device.type == "cpu" and p.layout == torch.strided
        bf16 = p.dtype == torch.bfloat16 and self._core._LOW_PRECISION
        return self.engine != "torch" and on_cpu and (p.dtype in CORE_DTYPES or bf16)

    def _refuse_low_precision(self, params: list[torch.Tensor]) -> None:
        """Low-precision state lives in the core's buffers only: refuse it for parameters stepped with torch ops."""
        state_dtype = self._core.state_dtype
        if state_dtype is not None and params:
            p = params[0]
            raise ValueError(
                f"adamkit.torch.{type(self).__name__}: state_dtype={state_dtype!r} needs parameters on the CPU, "
                f"float32 or bfloat16; got a {p.dtype} parameter on {p.device}"
            )
        bf16 = [p for p in params if p.dtype == torch.bfloat16]
        if self._core.kahan_sum and bf16:
            raise ValueError(
                f"adamkit.torch.{type(self).__name__}: kahan_sum=True keeps its compensation in the core's CPU "
                f"buffers; got a bfloat16 parameter on {bf16[0].device}"
            )

    def _bind(self, name: str, p: torch.Tensor) -> None:
        data, grad = _tensor(self._core.params[name]), _tensor(self._core.grads[name])
        if p.is_complex():
            data, grad = torch.view_as_complex(data), torch.view_as_complex(grad)
        p.data = data
        if p.grad is not None:
            grad.copy_(p.grad.to_dense() if p.grad.is_sparse else p.grad)
            p.grad = grad
        b = _Bound(name, p, data, grad, len(self.param_groups) - 1)
        self._bound.append(b)
        self._bindings = None
        self._by_param[id(p)] = b

    # ---------------------------------------------------------------------- adamkit.save / adamkit.load
    def _checkpoint_core(self) -> CoreOptimizer:
        """For ``adamkit.save``/``load``: the core optimizer, with torch's groups and ``opt.state`` edits synced
        into it. Parameters stepped with torch ops (CUDA, bf16, ...) live outside the core: refused."""
        if any(self._tensor_params):
            raise TypeError(
                "adamkit.save/load: this optimizer has parameters off the CPU float32/float64 buffers (another "
                "device or dtype); save those with torch.save(opt.state_dict())"
            )
        with torch.no_grad():
            self._import()
            self._sync_groups()
        return self._core

    def _checkpoint_loaded(self) -> None:
        """After ``adamkit.load``: torch's groups take the restored hyperparameters; ``opt.state`` is re-read."""
        for group, ci in zip(self.param_groups, self._core_index):
            if ci is not None:
                restored = self._core.param_groups[ci]
                group.update({k: restored[k] for k in self._core_keys})
        self._stale = True

    def _core_hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        """The core's hyperparameters of a torch group (tensor lr/betas as numbers)."""
        return {k: _plain(group[k]) for k in self._core_keys}

    def _sync_groups(self) -> None:
        """torch's param_groups are the truth: copy their hyperparameters into the core's groups (checked first).

        A group whose values are the very ones synced last time (same objects, none a tensor: a tensor lr may
        change in place) is skipped: most steps, where nothing but a scheduler's lr changes, or nothing at all.
        """
        synced = self._synced
        del synced[len(self.param_groups) :]
        synced += [None] * (len(self.param_groups) - len(synced))
        for i, (group, ci) in enumerate(zip(self.param_groups, self._core_index)):
            values = tuple(map(group.get, self._core_keys))
            last = synced[i]
            if last is not None and all(map(operator.is_, last, values)):
                continue
            hyper = self._core_hyper(group)
            self._core._check(hyper)
            if ci is not None:
                self._core.param_groups[ci].update(hyper)
            plain = not any(isinstance(v, (torch.Tensor, list)) or type(v) is tuple and any(
                isinstance(x, (torch.Tensor, list)) for x in v) for v in values)  # fmt: skip
            synced[i] = values if plain else None

    # -------------------------------------------------------------------------------------- step
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient (grad None: skipped, as torch.optim)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self._import()
            self._sync_groups()
            if self._bound:
                grads, skip = self._gradients()
                self._core._step(grads, skip=skip | self._evicted)
            for group, params in zip(self.param_groups, self._tensor_params):
                if params:
                    hyper = self._core_hyper(group)
                    for p in params:
                        if p.grad is not None:
                            self._tensor_step(hyper, p)
        self._stale = True
        return loss

    def _gradients(self) -> tuple[GradAddresses | None, frozenset[str]]:
        """Where the core reads this step's gradients, and the names to skip (grad None).

        - Every ``p.data`` and ``p.grad`` still our views (grads kept: ``zero_grad(set_to_none=False)``): the
          flat gradient buffer (None). Two C-level passes over the parameters, ``data_ptr()`` and ``.grad``.
        - New grads from autograd (after ``set_to_none``): read where they are, by address (no copy), once one
          C-level check (``_Bindings.guard``) found each dense, contiguous, of its parameter's shape and dtype.
        - Anything else (a ``p.data`` replaced, a sparse or strided grad, the same foreign grads as at the last
          step, i.e. kept between steps): the per-parameter path, which copies the grads in and rebinds them.
        """
        b = self._bindings
        if b is None:
            b = self._bindings = _Bindings(self._bound, self._core)
        if list(map(_data_ptr, b.params)) == b.ptrs:
            new = list(map(_grad_of, b.params))
            if all(map(operator.is_, new, b.grads)):
                return None, frozenset()
            found = self._in_place(b, new)
            if found is not None:
                return found
        return None, frozenset(self._collect(self._bound))

    def _in_place(self, b: _Bindings, new: list[torch.Tensor | None]) -> tuple[GradAddresses, frozenset[str]] | None:
        """The addresses of grads that are not our views, by core bucket (None grads: skipped), or None for the
        per-parameter path: where the core cannot read by address, where a grad fails the check, and where the
        grads are the very tensors read in place at the last step (kept between steps: copied in and rebound once,
        so that the next steps find them bound)."""
        if b.guard is None:
            return None
        skip: frozenset[str] = frozenset()
        if not b.guard.check(*new):
            if all(map(operator.is_not, new, repeat(None))):
                return None
            skip = frozenset(x.name for x, g in zip(self._bound, new) if g is None)
            new = [g if g is not None else own for g, own in zip(new, b.grads)]  # skipped: never read
            if not b.guard.check(*new):
                return None
        first = next((g for g, own in zip(new, b.grads) if g is not own), None)  # the first new one
        if first is not None and self._last_read is not None and self._last_read() is first:
            self._last_read = None
            return None
        self._last_read = None if first is None else weakref.ref(first)
        at = np.fromiter(map(_data_ptr, new), np.int64, len(new))
        return GradAddresses({key: at[order] for key, order in b.order}), skip

    def _collect(self, bound: list[_Bound]) -> list[str]:
        """Copy grads that are not our views into the core's buffer and rebind them (parameter by parameter);
        names whose grad is None."""
        self._bindings = None  # rebuilt at the next step, after the rebinding below
        skip, dst, src, rebind = [], [], [], []
        for b in list(bound):
            p = b.param
            if p.data_ptr() != b.ptr and not self._repair(b):
                continue  # moved off the flat buffer: stepped with torch ops from now on
            g = p.grad
            if g is None:
                skip.append(b.name)
            elif g is not b.grad:
                dst.append(_real(b.grad))
                src.append(_real(g.to_dense() if g.is_sparse else g))
                rebind.append(b)
        if src:
            torch._foreach_copy_(dst, src)
            for b in rebind:
                b.param.grad = b.grad
        return skip

    def _repair(self, b: _Bound) -> bool:
        """``p.data`` was replaced (``p.data = ...``, ``model.to(...)``). Same dtype on the CPU: copy the new
        values in and rebind (True). Another device or dtype: the parameter leaves the flat buffer for the
        torch-ops path, taking its state along, cast as ``load_state_dict`` casts it (False)."""
        new = b.param.data
        if new.shape != b.data.shape:
            raise RuntimeError(
                f"adamkit.torch: a parameter of shape {tuple(b.data.shape)} now has shape {tuple(new.shape)}; "
                "an optimizer's parameters cannot change shape"
            )
        if new.device.type == "cpu" and new.dtype == b.data.dtype:
            b.data.copy_(new)
            b.param.data = b.data
            b.ptr = b.param.data_ptr()
            return True
        core = self._core
        if core.state_dtype is not None or (core.kahan_sum and b.data.dtype == torch.bfloat16):
            raise RuntimeError(
                f"adamkit.torch: a parameter was moved to {new.dtype} on {new.device}; its low-precision state "
                f"(state_dtype={core.state_dtype!r}, kahan_sum={core.kahan_sum}) lives in the CPU buffers only, so "
                "it cannot follow: build a new optimizer for the moved model"
            )
        saved = self._core.state_dict()["state"].get(b.name)
        entry = export_entry(saved, b.param, self._host_scalars, self._stores_step, {}, self._host_scalars_as_floats)
        if entry:
            cast = {k: v if k == "step" or k in self._host_scalars else v.to(new.device, new.dtype)
                    for k, v in entry.items()}  # fmt: skip
            dict.__setitem__(self._state, b.param, cast)
        self._evicted = self._evicted | {b.name}
        self._bound.remove(b)
        del self._by_param[id(b.param)]
        self._tensor_params[b.group].append(b.param)
        return False

    def _tensor_step(self, hyper: dict[str, Any], p: torch.Tensor) -> None:
        """One step of ``p`` with the rule evaluated on torch tensors (its state in ``self._state``)."""
        state = dict.get(self._state, p)
        if state is None:
            state = {}
            dict.__setitem__(self._state, p, state)
        g = p.grad.to_dense() if p.grad.is_sparse else p.grad
        pr, gr = _real(p.detach()), _real(g)
        work = pr.dtype if pr.dtype in (torch.float32, torch.float64) else torch.float32
        t = steps_done(state) + 1
        scalars = {k: float(state[k]) for k in self._host_scalars if k in state}
        run = Run(np.dtype(str(work).removeprefix("torch.")), state, scalars)
        rule, slots, args = self._core._plan(hyper, run, t)
        args = _cast(args, run.dtype, _scalar_names(rule, len(slots)), type(self).__name__)
        args = tuple(a if isinstance(a, (bool, np.bool_)) else float(a) for a in args)
        tensors = []
        for s in slots:
            if s not in state:
                state[s] = torch.full_like(p.detach(), self._core._slot_fill(hyper, s))
            tensors.append(_real(state[s]))
        out = torch_rule(rule)(*(x.to(work) for x in (pr, gr, *tensors)), *args)
        for target, value in zip((pr, *tensors), out):
            target.copy_(value)
        if self._stores_step:
            state["step"] = scalar_tensor(t)
        for k, v in run.scalars.items():
            state[k] = scalar_tensor(v)

    def _step_one(self, p: torch.Tensor) -> None:
        """Step only ``p`` (used by :func:`step_in_backward`); its grad is then zeroed in place."""
        with torch.no_grad():
            self._import()
            self._sync_groups()
            b = self._by_param.get(id(p))
            skip = self._collect([b]) if b is not None else []
            if id(p) in self._by_param:  # still on the flat buffer
                if not skip:
                    others = frozenset(x.name for x in self._bound if x is not b)
                    self._core._step(None, skip=others | self._evicted)
                    b.grad.zero_()
            elif p.grad is not None:
                pairs = zip(self.param_groups, self._tensor_params)
                group = next(g for g, params in pairs if any(q is p for q in params))
                self._tensor_step(self._core_hyper(group), p)
                p.grad.zero_()
        self._stale = True

    def __repr__(self) -> str:
        return super().__repr__().replace(type(self).__name__, f"adamkit.torch.{type(self).__name__}", 1)
