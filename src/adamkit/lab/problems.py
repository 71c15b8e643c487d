"""Problems to race optimizers on: a small registry that a user's own module can extend.

A problem gives a starting point, a loss written with ``autograd.numpy`` (so gradients come from autograd) and
the race's defaults (steps, target loss, a learning rate per optimizer). Add one with ``@register`` on a
:class:`Problem` subclass, or name it on the command line as ``--problem mymodule:MyProblem``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import logsumexp

Params = dict[str, np.ndarray]


class Problem:
    """A loss to minimize from a given start.

    Subclasses set ``name`` and implement :meth:`init` and :meth:`loss`; the rest has defaults.
    ``lrs`` maps an optimizer's race label (``"GD"``, ``"Adam"``, ...) to its default learning rate; a label
    not in it uses ``default_lr``. A ``stochastic`` problem depends on the seed (initialization, minibatches),
    so ``--seeds K`` repeats it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    steps: ClassVar[int] = 1000
    target: ClassVar[float] = 1e-3
    lrs: ClassVar[dict[str, float]] = {}
    default_lr: ClassVar[float] = 1e-2
    lr_grid: ClassVar[tuple[float, ...]] = tuple(float(x) for x in np.logspace(-4, 1, 11))
    stochastic: ClassVar[bool] = False
    log_scale: ClassVar[bool] = True  # loss curves on a log axis (False: the loss may be negative)
    eval_every: ClassVar[int] = 1  # record the full loss every this many steps (and after the last)

    def init(self, seed: int) -> Params:
        """The starting parameters (float64 arrays by name); ``seed`` matters only if ``stochastic``."""
        raise NotImplementedError

    def loss(self, params: Params, batch: Any = None) -> Any:
        """The loss at ``params`` (autograd-differentiable); ``batch=None``: the full objective."""
        raise NotImplementedError

    def batch(self, rng: np.random.Generator) -> Any:
        """The next minibatch for a stochastic gradient (None: full batch)."""
        return None

    def metrics(self, params: Params) -> dict[str, float]:
        """Extra numbers to report at the end of a run (e.g. test accuracy)."""
        return {}

    def lr(self, label: str) -> float:
        return float(self.lrs.get(label, self.default_lr))


class Surface(Problem):
    """A 2-D test function ``f(x, y)``: one parameter ``xy``, and a picture of each optimizer's path."""

    start: ClassVar[tuple[float, float]] = (0.0, 0.0)
    minimum: ClassVar[tuple[float, float] | None] = None
    bounds: ClassVar[tuple[tuple[float, float], tuple[float, float]]] = ((-2.0, 2.0), (-2.0, 2.0))

    def f(self, x: Any, y: Any) -> Any:
        raise NotImplementedError

    def init(self, seed: int) -> Params:
        return {"xy": np.array(self.start, dtype=np.float64)}

    def loss(self, params: Params, batch: Any = None) -> Any:
        xy = params["xy"]
        return self.f(xy[0], xy[1])


PROBLEMS: dict[str, Callable[[], Problem]] = {}


def register(problem: type[Problem] | Callable[[], Problem], name: str | None = None) -> Any:
    """Add a Problem subclass (under its ``name``) or a factory of Problems (under ``name``) to the registry.

    Usable as a decorator: ``@register`` above ``class MyProblem(Problem): name = "mine"``.
    """
    if isinstance(problem, type):
        if not issubclass(problem, Problem):
            raise TypeError(f"register() takes a Problem subclass or a factory of Problems, got {problem!r}")
        name = name or problem.name
    elif not callable(problem):
        raise TypeError(f"register() takes a Problem subclass or a factory of Problems, got {problem!r}")
    if not name:
        raise ValueError(f"{problem!r} has no name: set the class attribute name = '...' or pass name=")
    PROBLEMS[name] = problem
    return problem


def get_problem(spec: str) -> Problem:
    """A registered problem by name, or ``module:Attr`` (a Problem subclass, instance or factory) imported
    from the current directory or ``sys.path``."""
    if spec in PROBLEMS:
        return PROBLEMS[spec]()
    if ":" not in spec:
        raise ValueError(
            f"unknown problem {spec!r}; choose from {', '.join(PROBLEMS)} or give module:Class (your own Problem)"
        )
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"problem {spec!r}: cannot import {attr!r} from module {module_name!r} ({err})") from err
    instance = obj if isinstance(obj, Problem) else obj() if callable(obj) else None
    if not isinstance(instance, Problem):
        raise ValueError(f"problem {spec!r} is not an adamkit.lab.Problem (subclass, instance or factory)")
    if not instance.name:
        instance.name = attr  # type: ignore[misc]
    return instance


# ------------------------------------------------------------------------------------------- problems
@register
class Quadratic(Problem):
    """The tutorial fit: ŷ = w1·x² + w2·x + b to y = 2x² + 3x + 5 on x = −5, −4.9, …, 4.9; RMSE; w = (1, 1, 1)."""

    name = "quadratic"
    description = "fit y = 2x² + 3x + 5 (RMSE) from w1 = w2 = b = 1"
    steps = 2000
    target = 0.1
    default_lr = 0.05
    lrs = {"GD": 0.01, "Momentum": 0.01, "Nesterov": 0.01, "AdaGrad": 0.5, "RMSprop": 0.01, "AdaDelta": 1.0}
    x = np.arange(-50, 50) / 10.0
    y = 2 * x**2 + 3 * x + 5
    features = np.stack([x**2, x, np.ones_like(x)], axis=1)  # ŷ = features @ (w1, w2, b)

    def init(self, seed: int) -> Params:
        return {"w": np.ones(3)}

    def loss(self, params: Params, batch: Any = None) -> Any:
        return anp.sqrt(anp.mean((self.features @ params["w"] - self.y) ** 2))


@register
class Elongated(Surface):
    """f(x, y) = x²/20 + y², the comparison picture of *Deep Learning from Scratch* ch. 6, with its lrs."""

    name = "elongated"
    description = "f = x²/20 + y² from (−7, 2), Deep Learning from Scratch ch. 6"
    steps = 30
    target = 1e-2
    start = (-7.0, 2.0)
    minimum = (0.0, 0.0)
    bounds = ((-10.0, 10.0), (-5.0, 5.0))
    default_lr = 0.3
    lrs = {"GD": 0.95, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 1.5, "RMSprop": 0.1, "AdaDelta": 1.0}

    def f(self, x: Any, y: Any) -> Any:
        return x**2 / 20 + y**2


@register
class Rosenbrock(Surface):
    """f(x, y) = (1 − x)² + 100(y − x²)², minimum at (1, 1)."""

    name = "rosenbrock"
    description = "f = (1 − x)² + 100(y − x²)² from (−1.5, 2)"
    steps = 2000
    target = 1e-3
    start = (-1.5, 2.0)
    minimum = (1.0, 1.0)
    bounds = ((-2.0, 2.0), (-1.0, 3.0))
    default_lr = 0.02
    lrs = {"GD": 5e-4, "Momentum": 1e-4, "Nesterov": 1e-4, "AdaGrad": 0.3, "RMSprop": 1e-3, "AdaDelta": 1.0,
           "RAdam": 5e-3}  # fmt: skip

    def f(self, x: Any, y: Any) -> Any:
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2


@register
class Beale(Surface):
    """f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)², minimum at (3, 0.5)."""

    name = "beale"
    description = "Beale's function from (1, 1.5)"
    steps = 1000
    target = 1e-3
    start = (1.0, 1.5)
    minimum = (3.0, 0.5)
    bounds = ((-1.0, 4.5), (-1.5, 2.0))
    default_lr = 0.05
    lrs = {"GD": 1e-3, "Momentum": 1e-4, "Nesterov": 1e-4, "AdaGrad": 0.5, "RMSprop": 1e-2, "AdaDelta": 1.0,
           "RAdam": 0.01}  # fmt: skip

    def f(self, x: Any, y: Any) -> Any:
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


@register
class Saddle(Surface):
    """f(x, y) = x² − y² from (1, 0.001), next to the saddle point: momentum escapes, plain GD stalls."""

    name = "saddle"
    description = "f = x² − y² from (1, 0.001): escape the saddle"
    steps = 100
    target = -1.0
    start = (1.0, 1e-3)
    bounds = ((-1.5, 1.5), (-1.5, 1.5))
    log_scale = False
    default_lr = 0.05
    lrs = {"GD": 0.01, "Momentum": 0.01, "Nesterov": 0.01, "AdaGrad": 0.3, "AdaDelta": 1.0}

    def f(self, x: Any, y: Any) -> Any:
        return x**2 - y**2


def _sigmoid(z: Any) -> Any:
    return 0.5 * (anp.tanh(0.5 * z) + 1)


def _dense_init(rng: np.random.Generator, sizes: list[int]) -> Params:
    """DeZero's Linear: ``W ~ N(0, 1/n_in)``, ``b = 0``."""
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        params[f"W{i}"] = rng.standard_normal((n_in, n_out)) * np.sqrt(1 / n_in)
        params[f"b{i}"] = np.zeros(n_out)
    return params


@register
class SineMLP(Problem):
    """DeZero's classic: a 1-10-1 sigmoid MLP fitted (MSE) to y = sin(2πx) + noise, 100 points, full batch.

    The data are DeZero's (``np.random.seed(0)``); the seed draws the initial weights.
    """

    name = "sine-mlp"
    description = "1-10-1 sigmoid MLP on y = sin(2πx) + noise (DeZero), MSE"
    steps = 2000
    target = 0.1
    stochastic = True
    default_lr = 0.02
    lrs = {"GD": 0.2, "Momentum": 0.2, "Nesterov": 0.2, "AdaGrad": 0.5, "RMSprop": 0.01, "AdaDelta": 1.0}

    def __init__(self) -> None:
        rng = np.random.RandomState(0)
        self.x = rng.rand(100, 1)
        self.y = np.sin(2 * np.pi * self.x) + rng.rand(100, 1)

    def init(self, seed: int) -> Params:
        return _dense_init(np.random.default_rng(seed), [1, 10, 1])

    def loss(self, params: Params, batch: Any = None) -> Any:
        h = _sigmoid(self.x @ params["W1"] + params["b1"])
        return anp.mean((h @ params["W2"] + params["b2"] - self.y) ** 2)


@register
class Digits(Problem):
    """A 64-32-10 tanh MLP classifier on scikit-learn's handwritten digits (8×8), cross-entropy, minibatches of 64.

    A fixed 80/20 split (1437 train, 360 test); the seed draws the weights and the minibatches. The loss
    curve is the full training loss, every 10 steps; ``test_accuracy`` is reported at the end.
    """

    name = "digits"
    description = "64-32-10 MLP on sklearn's digits, minibatches of 64, cross-entropy"
    steps = 600
    target = 0.1
    stochastic = True
    batch_size = 64
    eval_every = 10
    default_lr = 3e-3
    lrs = {"GD": 0.1, "Momentum": 0.02, "Nesterov": 0.02, "AdaGrad": 0.05, "RMSprop": 1e-3, "AdaDelta": 1.0}

    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        data = load_digits()
        x, y = data.data / 16.0, data.target
        order = np.random.default_rng(0).permutation(len(y))
        n_train = int(0.8 * len(y))
        train, test = order[:n_train], order[n_train:]
        self.x_train, self.y_train, self.x_test, self.y_test = x[train], y[train], x[test], y[test]
        self.onehot = np.eye(10)[self.y_train]

    def init(self, seed: int) -> Params:
        return _dense_init(np.random.default_rng(seed), [64, 32, 10])

    def logits(self, params: Params, x: np.ndarray) -> Any:
        return anp.tanh(x @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]

    def loss(self, params: Params, batch: Any = None) -> Any:
        index = slice(None) if batch is None else batch
        z = self.logits(params, self.x_train[index])
        return -anp.mean(anp.sum(self.onehot[index] * (z - logsumexp(z, axis=1, keepdims=True)), axis=1))

    def batch(self, rng: np.random.Generator) -> Any:
        return rng.choice(len(self.y_train), self.batch_size, replace=False)

    def metrics(self, params: Params) -> dict[str, float]:
        predicted = np.argmax(self.logits(params, self.x_test), axis=1)
        return {"test_accuracy": float(np.mean(predicted == self.y_test))}
