"""DeZero's optimizers by DeZero's names, over adamkit's fused core: a DeZero program runs unchanged.

    from adamkit import dezero as optimizers      # instead of: from dezero import optimizers
    optimizer = optimizers.SGD(lr).setup(model)  # before the first forward pass, as the book does
    optimizer.add_hook(dezero.optimizers.WeightDecay(1e-4))
    ...
    model.cleargrads(); loss.backward(); optimizer.update()

Each class is the ``convention="dezero"`` form of the adamkit optimizer (same rule, same kernel), with DeZero's
signature and defaults; results equal DeZero's to the bit in float32 and float64 when both see the same
gradients (host scalars in Python floats, operations in DeZero's order):

- ``SGD(lr=0.01)``: ``p ← p − lr·g`` (core ``SGD``);
- ``MomentumSGD(lr=0.01, momentum=0.9)``: ``v ← μv − lr·g;  p ← p + v`` (core ``SGD(momentum=μ)``);
- ``AdaGrad(lr=0.001, eps=1e-8)``: ``h ← h + g²;  p ← p − lr·g/(√h + ε)`` (core ``Adagrad``);
- ``AdaDelta(rho=0.95, eps=1e-6)``: ``s ← ρs + (1−ρ)g²;  Δ = √((a + ε)/(s + ε))·g;  a ← ρa + (1−ρ)Δ²;
  p ← p − Δ`` (core ``Adadelta``);
- ``Adam(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8)``: ``m ← m + (1−β1)(g − m);  v ← v + (1−β2)(g² − v);
  p ← p − α·√(1−β2ᵗ)/(1−β1ᵗ) · m/(√v + ε)`` (core ``Adam``).

DeZero's habits kept: ``setup(model)`` returns the optimizer and may come before the first forward pass (lazy
parameters are bound at the first ``update()`` where they have data); ``add_hook`` takes DeZero's hooks
(``dezero.optimizers.WeightDecay``, ``ClipGrad``) and any callable ``f(params)``, called exactly as DeZero calls
them, as well as adamkit's hooks (``adamkit.hooks``); hyperparameters are attributes (``opt.lr = 0.0``,
``opt.momentum``, ``opt.alpha``, ...), read and written; ``opt.target`` is the model.
"""

from __future__ import annotations

from typing import Any

from .frontends import dezero as frontend
from .hooks import Hook
from .optim import adadelta, adagrad, adam, sgd
from .optimizer import Optimizer

__all__ = ["SGD", "MomentumSGD", "AdaGrad", "AdaDelta", "Adam"]


def hyperparameter(key: str, index: int | None = None, doc: str = "") -> property:
    """A read/write attribute for the param-group entry ``key`` (``index``: one element of a tuple entry such
    as ``betas``). Writes are validated, then applied to every param group and to the defaults (used by
    parameters bound later)."""

    def get(self: Optimizer) -> Any:
        value = self.defaults[key]
        return value if index is None else value[index]

    def set(self: Optimizer, value: Any) -> None:
        if key == "lr" and self.schedule is not None:
            raise AttributeError("a schedule sets the learning rate before every step; detach it (opt.schedule = None)")
        groups = [self.defaults, *self.param_groups]
        new = [value if index is None else _replaced(g[key], index, value) for g in groups]
        for g, v in zip(groups, new):
            self._check({**g, key: v})  # raises naming the argument; nothing written yet
        for g, v in zip(groups, new):
            g[key] = v

    return property(get, set, doc=doc or f"DeZero's ``{key}``, read and written (every param group).")


def _replaced(pair: Any, index: int, value: Any) -> tuple:
    items = list(pair)
    items[index] = value
    return tuple(items)


class DeZeroOptimizer(Optimizer):
    """DeZero's ``Optimizer`` protocol over an adamkit optimizer: ``setup``, ``update``, ``add_hook``."""

    def setup(self, target: Any) -> DeZeroOptimizer:
        """Take ``target.params()`` (DeZero's ``Model``/``Layer``); works before the first forward pass."""
        return frontend.setup(self, target)

    def update(self) -> None:
        """DeZero's ``update()``: hooks ``f(params)`` on the parameters with a grad, then one fused step."""
        frontend.update(self, self.__dict__.get("_dezero_hooks", ()))

    def add_hook(self, f: Any) -> None:
        """DeZero's hooks (``WeightDecay``, ``ClipGrad``, any callable ``f(params)``) run first, in the order
        added, on the parameter objects, as DeZero runs them; adamkit's hooks (``adamkit.hooks``) then run on
        the flat buffers. A DeZero-style hook added after an adamkit hook is refused (it could not run in
        the order added)."""
        if isinstance(f, Hook):
            super().add_hook(f)
            return
        if not callable(f):
            raise TypeError(f"hook must be a callable f(params) (DeZero) or an adamkit.hooks.Hook, got {f!r}")
        if self.hooks:
            raise ValueError(
                f"add_hook({f!r}): DeZero-style hooks run on the parameter objects before adamkit's hooks "
                f"({self.hooks}) run on the flat buffers; add it before them"
            )
        self.__dict__.setdefault("_dezero_hooks", []).append(f)


class SGD(DeZeroOptimizer, sgd.SGD):
    """DeZero's ``SGD``: ``p ← p − lr·g``."""


    def __init__(self, lr: float = 0.01, *, engine: str = "fused"):
        sgd.SGD.__init__(self, None, lr=lr, convention="dezero", engine=engine)


class MomentumSGD(DeZeroOptimizer, sgd.SGD):
    """DeZero's ``MomentumSGD``: ``v ← μ·v − lr·g;  p ← p + v`` (state slot ``velocity``)."""

    momentum = hyperparameter("momentum")

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, *, engine: str = "fused"):
        sgd.SGD.__init__(self, None, lr=lr, momentum=momentum, convention="dezero", engine=engine)


class AdaGrad(DeZeroOptimizer, adagrad.Adagrad):
    """DeZero's ``AdaGrad``: ``h ← h + g²;  p ← p − lr·g/(√h + ε)`` (state slot ``sum``)."""

    eps = hyperparameter("eps")

    def __init__(self, lr: float = 0.001, eps: float = 1e-8, *, engine: str = "fused"):
        adagrad.Adagrad.__init__(self, None, lr=lr, eps=eps, convention="dezero", engine=engine)


class AdaDelta(DeZeroOptimizer, adadelta.Adadelta):
    """DeZero's ``AdaDelta`` (no learning rate): ``s ← ρs + (1−ρ)g²;  Δ = √((a + ε)/(s + ε))·g;
    a ← ρa + (1−ρ)Δ²;  p ← p − Δ`` (state slots ``square_avg``, ``acc_delta``)."""

    rho = hyperparameter("rho")
    eps = hyperparameter("eps")

    def __init__(self, rho: float = 0.95, eps: float = 1e-6, *, engine: str = "fused"):
        adadelta.Adadelta.__init__(self, None, rho=rho, eps=eps, convention="dezero", engine=engine)

    @property
    def lr(self) -> float:
        raise AttributeError("DeZero's AdaDelta has no learning rate (its step is Δ itself); see rho and eps")

    @lr.setter
    def lr(self, value: float) -> None:
        raise AttributeError("DeZero's AdaDelta has no learning rate (its step is Δ itself); see rho and eps")


class Adam(DeZeroOptimizer, adam.Adam):
    """DeZero's ``Adam``: ``m ← m + (1−β1)(g − m);  v ← v + (1−β2)(g² − v);  p ← p − lr_t·m/(√v + ε)`` with
    ``lr_t = α·√(1−β2ᵗ)/(1−β1ᵗ)`` (read as ``opt.lr``; set ``opt.alpha``). State slots ``exp_avg``, ``exp_avg_sq``."""

    alpha = hyperparameter("lr", doc="DeZero's ``alpha``, the learning rate, read and written.")
    beta1 = hyperparameter("betas", 0, doc="DeZero's ``beta1``, read and written.")
    beta2 = hyperparameter("betas", 1, doc="DeZero's ``beta2``, read and written.")
    eps = hyperparameter("eps")

    def __init__(
        self, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
        engine: str = "fused",
    ):  # fmt: skip
        adam.Adam.__init__(
            self, None, lr=alpha, betas=(beta1, beta2), eps=eps, convention="dezero", engine=engine
        )

    @property
    def t(self) -> int:
        """Updates done (DeZero's ``t``): the largest step count of any parameter."""
        return max((max(flat.steps, default=0) for _, flat in self.flat_buffers()), default=0)

    @property
    def lr(self) -> float:
        """DeZero's ``Adam.lr``: the step size ``α·√(1−β2ᵗ)/(1−β1ᵗ)`` of update ``t`` (read only: set ``alpha``)."""
        beta1, beta2 = self.defaults["betas"]
        return adam.epsilon_hat_step_size(self.alpha, beta1, beta2, self.t, None)

    @lr.setter
    def lr(self, value: float) -> None:
        raise AttributeError("DeZero's Adam.lr is the bias-corrected step size, read only; set opt.alpha instead")
