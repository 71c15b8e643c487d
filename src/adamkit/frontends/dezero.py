"""DeZero / Chainer-style front end: ``opt.setup(model)``, then ``opt.update()`` each iteration.

``model.params()`` yields parameter objects with a ``.data`` ndarray and a ``.grad`` that is None, an ndarray,
or an object with ``.data`` (a DeZero Variable). ``setup`` packs the parameters into the optimizer's flat
buffers and **rebinds** each ``param.data`` to its view, so ``update()`` is one fused step with no copies
of parameters. If a caller later replaces ``param.data`` with a new array, ``update()`` copies it into the
buffer and rebinds it (a gather for that parameter only).

Parameters whose grad is None are skipped that step, their state and step count untouched, as in DeZero.
Step counts are kept per parameter, as torch.optim does (DeZero's Adam counts updates per optimizer; the two
differ only for parameters that skipped steps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..optimizer import Optimizer


def setup(opt: Optimizer, model: Any) -> Optimizer:
    """Take ``model``'s parameters (one new param group) and bind their ``.data`` to flat-buffer views."""
    if not callable(getattr(model, "params", None)):
        raise TypeError(
            f"setup(model): model must have a params() method yielding parameters with .data and .grad "
            f"(DeZero/Chainer style); got {type(model).__name__}"
        )
    params = list({id(p): p for p in model.params()}.values())
    if not params:
        raise ValueError("setup(model): model.params() yielded no parameters")
    for i, p in enumerate(params):
        if not isinstance(getattr(p, "data", None), np.ndarray):
            raise TypeError(f"setup(model): parameter {i} has no ndarray .data (got {type(p).__name__})")
    paths = attribute_paths(model)
    names = [paths.get(id(p), f"param{i}") for i, p in enumerate(params)]
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    arrays = {name: p.data for name, p in zip(names, params)}
    opt.add_param_group({"params": arrays}, packed=True)
    for name, p in zip(names, params):
        p.data = arrays[name]
    opt._bound = getattr(opt, "_bound", []) + list(zip(names, params))
    return opt


def update(opt: Optimizer) -> None:
    """One step over the bound parameters; those with ``grad is None`` are skipped."""
    bound = getattr(opt, "_bound", None)
    if not bound:
        raise RuntimeError("update(): call opt.setup(model) first")
    views, grad_views = opt.params, opt.grads
    grads, skip, rebind = {}, set(), []
    for name, p in bound:
        if p.data is not views[name]:
            data = np.asarray(p.data)
            if data.shape != views[name].shape:
                raise ValueError(f"parameter {name!r}: .data has shape {data.shape}, expected {views[name].shape}")
            rebind.append((name, p, data))
        g = p.grad
        if g is None:
            skip.add(name)
            continue
        g = np.asarray(getattr(g, "data", g))
        if g.shape != views[name].shape:
            raise ValueError(f"parameter {name!r}: grad has shape {g.shape}, expected {views[name].shape}")
        if g.dtype.kind != "f":
            raise TypeError(f"parameter {name!r}: grad has dtype {g.dtype}, expected floating point")
        grads[name] = g
    for name, p, data in rebind:
        views[name][...] = data
        p.data = views[name]
    for name, g in grads.items():
        grad_views[name][...] = g
    opt._step(None, skip=frozenset(skip))


def attribute_paths(model: Any, max_depth: int = 8) -> dict[int, str]:
    """``id(parameter) → "layer.W"``: dotted attribute paths found by walking the model's attributes."""
    found: dict[int, str] = {}
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > max_depth:
            return
        seen.add(id(obj))
        if isinstance(getattr(obj, "data", None), np.ndarray) and path:
            found.setdefault(id(obj), path)
            return
        items = obj.items() if isinstance(obj, dict) else None
        if items is None and isinstance(obj, (list, tuple)):
            items = ((str(i), v) for i, v in enumerate(obj))
        if items is None and hasattr(obj, "__dict__") and not isinstance(obj, type):
            items = vars(obj).items()
        for key, value in items or ():
            if isinstance(value, (str, bytes, int, float, np.ndarray)) or value is None:
                continue
            walk(value, f"{path}.{key}" if path else str(key).lstrip("_"), depth + 1)

    walk(model, "", 0)
    return found
