"""The textbook door: *Deep Learning from Scratch*'s optimizers (``common/optimizer.py``), by their names.

Created without parameters, each optimizer updates the dict ``params`` in place at every
``optimizer.update(params, grads)``, as the book's do::

    optimizer = adamkit.scratch.Adam(lr=0.001)
    for i in range(iters):
        grads = network.gradient(x_batch, t_batch)
        optimizer.update(network.params, grads)   # network.params["W1"] and every reference to it train

The first call binds the dict: its arrays are the parameters (adamkit keeps no copy). A later call must pass the
same keys and shapes; an array replaced in the dict (``params["W1"] = new``) is adopted. Plain Python numbers
(the book's chapter-6 ``params = {"x": -7.0, "y": 2.0}``) are read before each step and written back into the
dict after it. ``optimizer.lr`` (and ``momentum``, ``beta1``, ``beta2``, ``decay_rate``) read and write the
hyperparameter, as in the book. Each class is a convention of the adamkit optimizer; the math is not rewritten.

=============  ====================================================================================
``SGD``        ``p ← p − lr·g``
``Momentum``   ``v ← μv − lr·g;  p ← p + v``
``Nesterov``   ``v ← μv − lr·g;  p ← p + μ²v − (1 + μ)·lr·g``
``AdaGrad``    ``h ← h + g²;  p ← p − lr·g/(√h + 1e-7)``
``RMSprop``    ``h ← ρh + (1 − ρ)g²;  p ← p − lr·g/(√h + 1e-7)``
``Adam``       ``m ← m + (1 − β1)(g − m);  v ← v + (1 − β2)(g² − v);  p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ)·m/(√v + 1e-7)``
=============  ====================================================================================
"""

from __future__ import annotations

from collections.abc import MutableMapping
from numbers import Real
from typing import Any, ClassVar

import numpy as np

from .optim import adagrad, adam, rmsprop, sgd
from .optimizer import Optimizer

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

EPS = 1e-7  # the book's epsilon, in every adaptive method


class TextbookOptimizer:
    """Base of the book's optimizers: ``update(params, grads)`` over a dict, in place."""

    #: The book's hyperparameter names → (the adamkit optimizer's name, index in a pair such as ``betas``).
    _hyper: ClassVar[dict[str, tuple[str, int | None]]] = {"lr": ("lr", None)}

    def __init__(self, core: Optimizer):
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_keys", None)  # the dict's keys, bound at the first update
        object.__setattr__(self, "_arrays", [])  # what the core steps, in key order: the caller's arrays or 0-d boxes

    @property
    def optimizer(self) -> Optimizer:
        """The adamkit optimizer behind this one (its state, ``state_dict``, hooks)."""
        return self._core

    def update(self, params: MutableMapping[Any, Any], grads: MutableMapping[Any, Any]) -> None:
        """One step: every ``params[key]`` moves by ``grads[key]``, in place (numbers are written back)."""
        if not isinstance(params, MutableMapping) or not isinstance(grads, MutableMapping):
            raise TypeError(
                f"update(params, grads) takes two dicts keyed alike, got {type(params).__name__} and "
                f"{type(grads).__name__}"
            )
        if self._keys is None:
            self._bind(params)
        keys, arrays = self._keys, self._arrays
        if list(params) != keys:
            raise KeyError(
                f"update(params, grads): params has keys {list(params)}, but this optimizer was first used with "
                f"{keys}; use a new optimizer for another model"
            )
        if set(grads) != set(keys):
            raise KeyError(f"update(params, grads): grads has keys {list(grads)}, expected {keys}")
        numbers = {}
        for i, key in enumerate(keys):
            value = params[key]
            if _is_number(value):
                numbers[i] = value
                if arrays[i].ndim != 0:
                    raise ValueError(f"params[{key!r}] is a number now, but was an array of shape {arrays[i].shape}")
            elif isinstance(value, np.ndarray):
                arrays[i] = value  # a replaced array is adopted (and validated) by the step
            else:
                raise TypeError(f"params[{key!r}] must be a NumPy array or a number, got {type(value).__name__}")
        step_grads = []
        for key, target in zip(keys, arrays):
            g = np.asarray(grads[key])
            if g.shape != target.shape:
                raise ValueError(f"grads[{key!r}] has shape {g.shape}, expected {target.shape}")
            step_grads.append(g.astype(target.dtype, copy=False))
        before = {i: arrays[i].copy() for i in numbers}
        for i, value in numbers.items():
            arrays[i][...] = value
        try:
            self._core.step(step_grads)
        except BaseException:
            for i, value in before.items():
                arrays[i][...] = value
            raise
        for i in numbers:
            params[keys[i]] = float(arrays[i])

    def _bind(self, params: MutableMapping[Any, Any]) -> None:
        arrays = []
        for key, value in params.items():
            if isinstance(value, np.ndarray):
                arrays.append(value)
            elif _is_number(value):
                arrays.append(np.array(float(value)))
            else:
                raise TypeError(f"params[{key!r}] must be a NumPy array or a number, got {type(value).__name__}")
        self._core.add_param_group({"params": arrays})  # the core keeps this list: replacements in it are adopted
        object.__setattr__(self, "_keys", list(params))
        object.__setattr__(self, "_arrays", arrays)

    def __getattr__(self, name: str) -> Any:
        if name not in type(self)._hyper:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        key, index = type(self)._hyper[name]
        value = (self._core.param_groups or [self._core.defaults])[0][key]
        return value if index is None else value[index]

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in type(self)._hyper:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r}; its hyperparameters are "
                f"{', '.join(type(self)._hyper)}"
            )
        key, index = type(self)._hyper[name]
        core = self._core
        if key == "lr":
            core.lr = value
            return
        groups = [core.defaults, *core.param_groups]
        if index is not None:
            pair = list(groups[0][key])
            pair[index] = value
            value = tuple(pair)
        for group in groups:
            core._check({**group, key: value})
        for group in groups:
            group[key] = value

    def __repr__(self) -> str:
        hyper = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self)._hyper)
        return f"{type(self).__name__}({hyper})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (Real, np.number)) and not isinstance(value, (bool, np.bool_))


class SGD(TextbookOptimizer):
    """``p ← p − lr·g``."""

    def __init__(self, lr: float = 0.01):
        super().__init__(sgd.SGD(lr=lr, convention="scratch"))


class Momentum(TextbookOptimizer):
    """``v ← μv − lr·g;  p ← p + v``."""

    _hyper = {"lr": ("lr", None), "momentum": ("momentum", None)}

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(sgd.SGD(lr=lr, momentum=momentum, convention="scratch"))


class Nesterov(TextbookOptimizer):
    """``v ← μv − lr·g;  p ← p + μ²v − (1 + μ)·lr·g`` (the book's form of Nesterov's momentum)."""

    _hyper = Momentum._hyper

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(sgd.SGD(lr=lr, momentum=momentum, nesterov=True, convention="scratch"))


class AdaGrad(TextbookOptimizer):
    """``h ← h + g²;  p ← p − lr·g/(√h + 1e-7)``."""

    def __init__(self, lr: float = 0.01):
        super().__init__(adagrad.Adagrad(lr=lr, eps=EPS))


class RMSprop(TextbookOptimizer):
    """``h ← ρh + (1 − ρ)g²;  p ← p − lr·g/(√h + 1e-7)``, ρ = ``decay_rate``."""

    _hyper = {"lr": ("lr", None), "decay_rate": ("alpha", None)}

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99):
        super().__init__(rmsprop.RMSprop(lr=lr, alpha=decay_rate, eps=EPS))


class Adam(TextbookOptimizer):
    """``p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ)·m/(√v + 1e-7)`` (epsilon hat, as the book and Keras write it)."""

    _hyper = {"lr": ("lr", None), "beta1": ("betas", 0), "beta2": ("betas", 1)}

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999):
        super().__init__(adam.Adam(lr=lr, betas=(beta1, beta2), eps=EPS, convention="dezero"))
