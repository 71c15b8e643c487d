"""``minimize(fun, x0, optimizer)``: Keras's ``opt.minimize(loss, var_list)`` habit, shaped like scipy."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..optimizer import Optimizer
from ..schedules import ReduceLROnPlateau


class MinimizeResult(dict):
    """The result, like ``scipy.optimize.OptimizeResult``: a dict whose keys are also attributes.

    ``x`` (final parameters, same structure as ``x0``), ``fun`` (loss at ``x``), ``nit`` (steps taken),
    ``success``, ``message``, ``history`` (loss before each step).
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err

    __setattr__ = dict.__setitem__  # type: ignore[assignment]

    def __repr__(self) -> str:
        width = max(map(len, self)) + 1
        return "\n".join(f"{k.rjust(width)}: {v!r}" for k, v in self.items() if k != "history")


def optimizer_classes() -> dict[str, type[Optimizer]]:
    """Every optimizer adamkit exports, by lower-case name."""
    import adamkit

    return {
        name.lower(): obj
        for name in adamkit.__all__
        if isinstance(obj := getattr(adamkit, name), type) and issubclass(obj, Optimizer) and obj is not Optimizer
    }


def minimize(
    fun: Callable[[Any], Any],
    x0: np.ndarray | Sequence[float] | Mapping[Hashable, np.ndarray],
    optimizer: str | Optimizer = "adam",
    *,
    steps: int = 1000,
    jac: Callable[[Any], Any] | None = None,
    tol: float | None = None,
    patience: int = 10,
    callback: Callable[[Any], Any] | None = None,
    restore_best: bool = True,
    progress: bool = False,
    **optimizer_kwargs: Any,
) -> MinimizeResult:
    """Minimize the scalar ``fun(x)`` from ``x0`` with a first-order optimizer.

    ``x0`` is an array (or a list or tuple of numbers) or a dict of arrays with keys of any hashable type (it
    is copied, never changed; ``x`` comes back in the same form). ``jac=None`` takes the gradient
    from the ``autograd`` package (write ``fun`` with ``autograd.numpy``); a callable ``jac(x)`` returns
    gradients shaped like ``x``. ``optimizer`` is a name (``"sgd"``, ``"adam"``, … any adamkit optimizer,
    case-insensitive) built with ``optimizer_kwargs``, or an optimizer created without params.
    With ``tol``, stop once the loss has not improved by more than ``tol`` for ``patience`` steps.
    ``callback(x)`` runs after each step; any truthy return stops. A non-finite loss or gradient stops
    before the step, with ``success=False``. A ``ReduceLROnPlateau`` schedule attached to the optimizer is
    fed the loss before every step.

    ``restore_best=True`` (default) returns the point with the lowest loss seen (and that loss), not the last
    iterate: a first-order method's last step can overshoot, and early stopping by design stops ``patience``
    steps after the best. ``False`` returns the last iterate, as a hand-written loop leaves it.
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(patience, int) and patience >= 1):
        raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
    if tol is not None:
        check_range("tol", tol, 0.0)
    check_bool("restore_best", restore_best)
    named = isinstance(x0, Mapping)
    keys = list(x0) if named else ["x"]
    names = [f"x{i}" for i in range(len(keys))] if named else ["x"]  # the optimizer's names for any hashable keys
    values = list(x0.values()) if named else [x0]
    params = {n: _as_float_array(f"x0[{k!r}]" if named else "x0", v) for n, k, v in zip(names, keys, values)}
    opt = _make_optimizer(optimizer, params, optimizer_kwargs)

    def view(source: Mapping[str, np.ndarray] = params) -> Any:
        return {k: source[n] for k, n in zip(keys, names)} if named else source["x"]

    plateau = opt.schedule if isinstance(opt.schedule, ReduceLROnPlateau) else None
    _scalar(fun(view()))  # fun must return a scalar: say so before autograd does, less clearly
    value_and_grad = _value_and_grad(fun, jac)

    history: list[float] = []
    best, since_best, nit = math.inf, 0, 0
    lowest, lowest_x = math.inf, None
    success, message = True, f"reached steps={steps}"
    bar = _progress_bar(steps) if progress else None
    try:
        for k in range(steps):
            value, grad = value_and_grad(view())
            loss = _scalar(value)
            grads = _match(grad, keys, names, params, named)
            if not math.isfinite(loss) or not all(np.all(np.isfinite(g)) for g in grads.values()):
                what = "loss" if not math.isfinite(loss) else "gradient"
                success, message = False, f"non-finite {what} at step {k} (loss {loss}); stopped before updating"
                history.append(loss)
                break
            history.append(loss)
            if restore_best and loss < lowest:
                lowest, lowest_x = loss, {n: v.copy() for n, v in params.items()}
            if plateau is not None:
                plateau.step(loss)
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.6g}")
                bar.update()
            if tol is not None:
                if loss < best - tol:
                    best, since_best = loss, 0
                else:
                    since_best += 1
                    if since_best >= patience:
                        message = f"loss improved by no more than tol={tol} for {patience} steps"
                        break
            opt.step(grads)
            nit += 1
            if callback is not None and callback(view()):
                message = "stopped by callback"
                break
    finally:
        if bar is not None:
            bar.close()
    x = view({n: v.copy() for n, v in params.items()})
    final = _scalar(fun(x))
    if lowest_x is not None and lowest < final:
        x, final = view(lowest_x), lowest
    return MinimizeResult(x=x, fun=final, nit=nit, success=success, message=message, history=np.array(history))


def _as_float_array(name: str, value: Any) -> np.ndarray:
    array = np.array(value, copy=True)
    if array.dtype.kind in "iub":
        array = array.astype(np.float64)
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 array (or integers), got dtype {array.dtype}")
    return array


def _make_optimizer(optimizer: str | Optimizer, params: dict, kwargs: dict) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        if kwargs:
            raise TypeError(f"optimizer keyword arguments {sorted(kwargs)} go with an optimizer name, not an instance")
        if optimizer.param_groups:
            raise ValueError("optimizer must be created without params (e.g. adamkit.Adam(lr=0.1)): minimize adds x0")
        optimizer.add_param_group({"params": params}, packed=True)
        return optimizer
    classes = optimizer_classes()
    if not isinstance(optimizer, str) or optimizer.lower() not in classes:
        raise ValueError(f"optimizer must be one of {', '.join(sorted(classes))} or an Optimizer; got {optimizer!r}")
    return classes[optimizer.lower()](params, **kwargs)


def _value_and_grad(fun: Callable, jac: Callable | None) -> Callable:
    if jac is None:
        from autograd import value_and_grad

        return value_and_grad(fun)
    if not callable(jac):
        raise TypeError(f"jac must be None (use autograd) or a callable, got {type(jac).__name__}")
    return lambda x: (fun(x), jac(x))


def _scalar(value: Any) -> float:
    value = getattr(value, "_value", value)  # an autograd box
    if np.ndim(value) != 0:
        raise ValueError(f"fun must return a scalar, got an array of shape {np.shape(value)}")
    return float(value)


def _match(
    grad: Any, keys: list, names: list[str], params: dict[str, np.ndarray], named: bool
) -> dict[str, np.ndarray]:
    if named:
        if not isinstance(grad, Mapping) or set(grad) != set(keys):
            got = list(grad) if isinstance(grad, Mapping) else type(grad).__name__
            raise ValueError(f"jac must return gradients for exactly the keys {keys}, got {got}")
        grads = {n: grad[k] for k, n in zip(keys, names)}
    else:
        grads = {"x": grad}
    out = {}
    for k, (n, g) in zip(keys, grads.items()):
        g = np.asarray(g)
        if g.shape != params[n].shape:
            raise ValueError(f"jac returned shape {g.shape} for {k!r}, expected {params[n].shape}")
        out[n] = g.astype(params[n].dtype, copy=False)
    return out


def _progress_bar(steps: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="minimize", unit="step")
