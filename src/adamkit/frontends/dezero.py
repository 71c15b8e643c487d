"""DeZero / Chainer-style front end: ``opt.setup(model)``, then ``opt.update()`` each iteration.

``model.params()`` yields parameter objects with a ``.data`` (an ndarray, or None until a lazy layer such as
DeZero's ``Linear`` sees its first input) and a ``.grad`` that is None, an ndarray, or an object with ``.data``
(a DeZero Variable). Each parameter is packed into the optimizer's flat buffers (``add_param_group(...,
packed=True)``) and its ``.data`` **rebound** to its view, so ``update()`` is one fused step with no copies of
parameters. A parameter whose ``.data`` is None at ``setup`` is bound at the first ``update()`` where it has
data (when any parameter is lazy, all are bound then, together: one buffer per dtype). If a caller later
replaces ``param.data`` with a new array, ``update()`` copies it into the buffer and rebinds it.

``update()`` does what DeZero's ``Optimizer.update`` does: collect the parameters whose grad is not None, run
the DeZero-style hooks ``f(params)`` on them (they may change ``p.grad.data`` in place, replace ``p.grad``, or
set it to None to skip the parameter), then step them. The gradients are gathered only after those hooks, so
their effect reaches the step (copied into the gradient buffer: one copy per buffer, or one assignment per
gradient when a buffer holds few; from ``IN_PLACE_MIN_SIZE`` elements on, those of the parameter's dtype are
read where they are); adamkit's own hooks then run on the flat buffers. Nothing is written to the
parameters or the optimizer's state before every check has passed, so a hook or check that raises leaves
them as they were.

Parameters without a gradient are skipped that step, their state and step count untouched, as in DeZero.
Step counts are kept per parameter, as torch.optim does (DeZero's Adam counts updates per optimizer; the two
differ only for parameters that skipped steps).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..flat import FlatBuffer
    from ..optimizer import Optimizer

HookFn = Callable[[list], Any]
IN_PLACE_MIN_SIZE = 1 << 16
"""From this many parameter elements on, ``update()`` reads gradients where they are rather than copying them
(below it, one copy per buffer costs less than the per-gradient checks of reading them in place)."""
FLOATS = frozenset(map(np.dtype, (np.float16, np.float32, np.float64, np.longdouble)))
NOTHING: frozenset[str] = frozenset()
SMALL_COPIES = 4
"""Up to this many tensors per flat buffer, ``copied_in`` assigns each gradient to its view (~0.2 µs each)
rather than concatenating them into the buffer (~1 µs a call)."""
_data, _grad_data = operator.attrgetter("data"), operator.attrgetter("grad.data")
_shape_dtype = operator.attrgetter("shape", "dtype")


@dataclass
class BoundFlat:
    """The parameter objects living in one flat buffer, in segment order, with their views (cached)."""

    flat: FlatBuffer
    names: list[str]
    objects: list[Any]
    views: list[np.ndarray]
    shapes: list[tuple[int, ...]]
    grad_views: list[np.ndarray]
    start: int = 0  # where its objects begin in Binding.bound_objects
    stop: int = 0


@dataclass
class Binding:
    """What ``setup(model)`` took: every parameter object (in ``model.params()`` order, as DeZero's hooks see
    them), its name, the ones still waiting for data, and the bound ones grouped by flat buffer."""

    objects: list[Any] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    pending: list[Any] = field(default_factory=list)
    bound: list[BoundFlat] = field(default_factory=list)
    # every bound parameter, its view and shape, flat after flat (for one cheap check of all of them)
    bound_objects: list[Any] = field(default_factory=list)
    bound_views: list[np.ndarray] = field(default_factory=list)
    bound_shapes: list[tuple[int, ...]] = field(default_factory=list)
    bound_grad_views: list[np.ndarray] = field(default_factory=list)
    size: int = 0  # elements bound
    grad_kinds: list[tuple] = field(default_factory=list)  # (shape, dtype) of each grad at the last update: all good


def binding(opt: Optimizer) -> Binding | None:
    return opt.__dict__.get("_dezero_binding")


def setup(opt: Optimizer, model: Any) -> Optimizer:
    """Take ``model``'s parameters and bind their ``.data`` to flat-buffer views (now, or at the first
    ``update()`` where every lazy one has data); returns ``opt``."""
    if not callable(getattr(model, "params", None)):
        raise TypeError(
            f"setup(model): model must have a params() method yielding parameters with .data and .grad "
            f"(DeZero/Chainer style); got {type(model).__name__}"
        )
    params = list({id(p): p for p in model.params()}.values())
    if not params:
        raise ValueError("setup(model): model.params() yielded no parameters")
    b = binding(opt) or Binding()
    paths = attribute_paths(model, {id(p) for p in params})
    names = [paths.get(id(p), f"param{len(b.objects) + i}") for i, p in enumerate(params)]
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    for name, p in zip(names, params):
        if not hasattr(p, "data"):
            raise TypeError(f"setup(model): parameter {name!r} has no .data (got {type(p).__name__})")
        if p.data is not None and not isinstance(p.data, np.ndarray):
            raise TypeError(
                f"setup(model): parameter {name!r}: .data must be a NumPy array or None (lazy), "
                f"got {type(p.data).__name__}"
            )
        if id(p) in b.names:
            raise ValueError(f"setup(model): parameter {name!r} is already set up in this optimizer")
        if name in b.names.values() or name in opt.params:
            raise ValueError(f"setup(model): parameter name {name!r} is already taken in this optimizer")
    b.objects += params
    b.names.update((id(p), n) for n, p in zip(names, params))
    b.pending += params
    opt.__dict__["_dezero_binding"] = b
    opt.__dict__["target"] = model  # DeZero's attribute
    if all(p.data is not None for p in params):
        bind_ready(opt, b)
    return opt


def bind_ready(opt: Optimizer, b: Binding) -> None:
    """Pack every pending parameter that has data into one new param group and rebind its ``.data``."""
    ready = [p for p in b.pending if p.data is not None]
    if not ready:
        return
    arrays = {b.names[id(p)]: p.data for p in ready}
    opt.add_param_group({"params": arrays}, packed=True, watch=False)  # validates (dtype, ...) before anything changes
    group = opt.param_groups[-1]
    by_name = {b.names[id(p)]: p for p in ready}
    for name, p in by_name.items():
        p.data = arrays[name]
    b.pending = [p for p in b.pending if p.data is None]
    for g, flat in opt.flat_buffers():
        if g is group:
            names = [seg.name for seg in flat.segments]
            views = [opt.params[n] for n in names]  # the arrays the parameters are bound to
            grads = [opt.grads[n] for n in names]
            bf = BoundFlat(flat, names, [by_name[n] for n in names], views, [v.shape for v in views], grads)
            bf.start, bf.stop = len(b.bound_objects), len(b.bound_objects) + len(names)
            b.size += flat.size
            b.bound.append(bf)
            b.bound_objects += bf.objects
            b.bound_views += bf.views
            b.bound_shapes += bf.shapes
            b.bound_grad_views += grads


def update(opt: Optimizer, hooks: list[HookFn] = ()) -> None:
    """One step: DeZero-style ``hooks`` on the parameters with a grad, then the step of those (see module)."""
    b = binding(opt)
    if b is None:
        raise RuntimeError("update(): call opt.setup(model) first")
    if b.pending:
        bind_ready(opt, b)
    if not hooks and b.size < IN_PLACE_MIN_SIZE and copied_in(b):
        opt._step(None, skip=NOTHING)
        return
    active = None
    if hooks:
        params = [p for p in b.objects if p.grad is not None]  # DeZero's update(): these, in this order
        for f in hooks:
            f(params)
        active = {id(p) for p in params}
    skip, writes, sources = gather(b, active)
    for write in writes:
        write()
    opt._step(sources, skip=skip)


def copied_in(b: Binding) -> bool:
    """The book-sized common case, checked in C-level passes over the parameters: every ``.data`` still bound,
    every grad a DeZero Variable of float data of the right shape. Then its gradients are copied into the
    flat gradient buffers (one assignment per gradient where a buffer holds at most ``SMALL_COPIES``, else one
    ``concatenate`` per buffer) and True is returned; otherwise nothing is written."""
    objects = b.bound_objects
    if not all(map(operator.is_, map(_data, objects), b.bound_views)):
        return False
    try:
        arrays = list(map(_grad_data, objects))
        kinds = list(map(_shape_dtype, arrays))
    except AttributeError:  # a grad is None, or a plain ndarray (its .data is a memoryview): see gather
        return False
    if kinds != b.grad_kinds:  # first step, or new grad dtypes: check the shapes and that the dtypes are float
        if [k[0] for k in kinds] != b.bound_shapes or not FLOATS.issuperset(k[1] for k in kinds):
            return False
        b.grad_kinds = kinds
    if len(arrays) <= SMALL_COPIES * len(b.bound):  # a few tensors per buffer: one assignment each
        list(map(operator.setitem, b.bound_grad_views, repeat(...), arrays))
    else:
        for bf in b.bound:
            np.concatenate(arrays[bf.start : bf.stop], axis=None, out=bf.flat.grad, casting="same_kind")
    return True


def gather(
    b: Binding, active: set[int] | None
) -> tuple[frozenset[str], list[Callable[[], None]], dict[str, np.ndarray] | None]:
    """Check every bound parameter's binding and gradient (no writes); return the names to skip, the writes to
    do, and the gradients to read where they are (None: from ``opt.grads``, which the writes fill).

    Common case, checked in one pass: every grad a DeZero Variable of float data of the right shape. Then a
    large model's gradients of the parameter's dtype are read where they are (no copy); the others are copied,
    one ``concatenate`` per flat buffer. Otherwise: per parameter.
    """
    if active is None and all(map(operator.is_, [p.data for p in b.bound_objects], b.bound_views)):
        try:
            arrays = [p.grad.data for p in b.bound_objects]
            if [a.shape for a in arrays] == b.bound_shapes and {a.dtype for a in arrays} <= FLOATS:
                writes = []
                if b.size >= IN_PLACE_MIN_SIZE:
                    sources = {}
                    for bf in b.bound:
                        for name, a, view in zip(bf.names, arrays[bf.start : bf.stop], bf.grad_views):
                            if a.dtype == view.dtype and a.flags.c_contiguous:
                                sources[name] = a
                            else:
                                sources[name] = view
                                writes.append(_copy(view, a))
                    return frozenset(), writes, sources
                for bf in b.bound:
                    writes.append(_concatenate(arrays[bf.start : bf.stop], bf.flat.grad))
                return frozenset(), writes, None
        except AttributeError:  # a grad is None (or a plain ndarray: the general path below)
            pass
    skip: list[str] = []
    writes = []
    for bf in b.bound:
        for name, p, view, shape, gview in zip(bf.names, bf.objects, bf.views, bf.shapes, bf.grad_views):
            if p.data is not view:
                data = np.asarray(p.data)
                if data.shape != shape:
                    raise ValueError(f"parameter {name!r}: .data has shape {data.shape}, expected {shape}")
                writes.append(_rebind(p, view, data))
            g = p.grad
            if g is None or (active is not None and id(p) not in active):
                skip.append(name)
                continue
            g = np.asarray(g if isinstance(g, np.ndarray) else getattr(g, "data", g))
            if g.shape != shape:
                raise ValueError(f"parameter {name!r}: grad has shape {g.shape}, expected {shape}")
            if g.dtype.kind != "f":
                raise TypeError(f"parameter {name!r}: grad has dtype {g.dtype}, expected floating point")
            writes.append(_copy(gview, g))
    return frozenset(skip), writes, None


def _concatenate(arrays: list[np.ndarray], out: np.ndarray) -> Callable[[], None]:
    return lambda: np.concatenate(arrays, axis=None, out=out, casting="same_kind")


def _copy(target: np.ndarray, source: np.ndarray) -> Callable[[], None]:
    return lambda: np.copyto(target, source, casting="same_kind")


def _rebind(p: Any, view: np.ndarray, data: np.ndarray) -> Callable[[], None]:
    def write() -> None:
        view[...] = data
        p.data = view

    return write


def attribute_paths(model: Any, targets: set[int], max_depth: int = 8) -> dict[int, str]:
    """``id(parameter) → "l1.W"``: the dotted attribute path to each object in ``targets``, found by walking
    the model's attributes (a DeZero ``Layer``'s registered ``_params`` first, so ``MLP`` gives ``l0.W``
    rather than ``layers.0.W``; lists and dicts by index and key)."""
    found: dict[int, str] = {}
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > max_depth:
            return
        seen.add(id(obj))
        if id(obj) in targets:
            if path:
                found.setdefault(id(obj), path)
            return
        items = obj.items() if isinstance(obj, dict) else None
        if items is None and isinstance(obj, (list, tuple)):
            items = ((str(i), v) for i, v in enumerate(obj))
        if items is None and hasattr(obj, "__dict__") and not isinstance(obj, type):
            attrs = vars(obj)
            registered = getattr(obj, "_params", None)
            first = sorted(k for k in registered if k in attrs) if isinstance(registered, (set, frozenset)) else []
            items = [(k, attrs[k]) for k in first] + [(k, v) for k, v in attrs.items() if k not in first]
        for key, value in items or ():
            if isinstance(value, (str, bytes, int, float, np.ndarray)) or value is None:
                continue
            walk(value, f"{path}.{key}" if path else str(key).lstrip("_"), depth + 1)

    walk(model, "", 0)
    return found
