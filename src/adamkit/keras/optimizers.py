"""Keras 3's optimizers by name (``keras.optimizers.X``): signatures, defaults and behaviour as in Keras.

Each class translates its arguments to the adamkit optimizer of the same name with ``convention="keras"``
(whose docstring states the formula) and checks them under Keras's names. Beyond Keras's own checks, values
that make the update meaningless (a negative learning rate, epsilon or weight decay, betas or rho outside
[0, 1)) are refused with an error naming the argument, where Keras would run on and produce NaN or ascend.
"""

from __future__ import annotations

from typing import Any

from .._checks import check_range
from ..optim.adadelta import Adadelta as CoreAdadelta
from ..optim.adagrad import Adagrad as CoreAdagrad
from ..optim.adam import Adam as CoreAdam
from ..optim.adam import AdamW as CoreAdamW
from ..optim.adamax import Adamax as CoreAdamax
from ..optim.nadam import NAdam as CoreNAdam
from ..optim.rmsprop import RMSprop as CoreRMSprop
from ..optim.sgd import SGD as CoreSGD
from . import schedules
from .optimizer import Optimizer


def _check_betas(beta_1: Any, beta_2: Any) -> tuple[float, float]:
    return (
        check_range("beta_1", beta_1, 0.0, 1.0, high_open=True),
        check_range("beta_2", beta_2, 0.0, 1.0, high_open=True),
    )


class SGD(Optimizer):
    """Gradient descent with momentum: ``v ← μ·v − lr·g;  p ← p + v`` (Nesterov: ``p ← p − lr·g + μ·v``);
    plain ``p ← p − lr·g`` when ``momentum = 0`` (then ``nesterov`` changes nothing, as in Keras)."""

    _core = CoreSGD
    _config = ("momentum", "nesterov")

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
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
        self.momentum, self.nesterov = momentum, nesterov
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip

    def _validate(self) -> None:
        if not isinstance(self.momentum, float) or not 0 <= self.momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={self.momentum!r}")

    def _hyper(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": bool(self.nesterov) and self.momentum > 0}


class RMSprop(Optimizer):
    """RMSprop, Keras's form: ``s ← ρ·s + (1−ρ)·g²``; ``p ← p − lr·g/√(s + ε)`` (ε inside the root; centered:
    ``s − ḡ²``); with momentum ``b ← μ·b + lr·g/√(s + ε);  p ← p − b``."""

    _core = CoreRMSprop
    _config = ("rho", "momentum", "epsilon", "centered")

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-07,
        centered: bool = False,
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
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip

    def _validate(self) -> None:
        check_range("rho", self.rho, 0.0, 1.0, high_open=True)
        check_range("momentum", self.momentum, 0.0)
        check_range("epsilon", self.epsilon, 0.0)

    def _hyper(self) -> dict[str, Any]:
        return {"alpha": self.rho, "momentum": self.momentum, "eps": self.epsilon, "centered": bool(self.centered)}


class Adagrad(Optimizer):
    """AdaGrad, Keras's form: ``h ← h + g²;  p ← p − lr·g/√(h + ε)``, ``h`` starting at
    ``initial_accumulator_value``."""

    _core = CoreAdagrad
    _config = ("initial_accumulator_value", "epsilon")

    def __init__(
        self,
        learning_rate: Any = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-07,
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
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip

    def _validate(self) -> None:
        check_range("initial_accumulator_value", self.initial_accumulator_value, 0.0)
        check_range("epsilon", self.epsilon, 0.0)

    def _hyper(self) -> dict[str, Any]:
        return {"initial_accumulator_value": self.initial_accumulator_value, "eps": self.epsilon}


class Adadelta(Optimizer):
    """AdaDelta: ``s ← ρs + (1−ρ)g²;  Δ = √(a + ε)/√(s + ε)·g;  a ← ρa + (1−ρ)Δ²;  p ← p − lr·Δ``."""

    _core = CoreAdadelta
    _config = ("rho", "epsilon")

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-07,
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
        self.rho, self.epsilon = rho, epsilon
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip

    def _validate(self) -> None:
        check_range("rho", self.rho, 0.0, 1.0)
        check_range("epsilon", self.epsilon, 0.0)

    def _hyper(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps": self.epsilon}


class Adam(Optimizer):
    """Adam, Keras's "epsilon hat" form: ``p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m/(√v + ε̂)``; ``amsgrad`` uses the
    running maximum of ``v``."""

    _core = CoreAdam
    _config = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        amsgrad: bool = False,
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
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip

    def _validate(self) -> None:
        _check_betas(self.beta_1, self.beta_2)
        check_range("epsilon", self.epsilon, 0.0)

    def _hyper(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "amsgrad": bool(self.amsgrad)}


class AdamW(Adam):
    """Adam with decoupled weight decay ``p ← (1 − lr·λ)·p`` (λ = ``weight_decay``, required, default 0.004)."""

    _core = CoreAdamW

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        amsgrad: bool = False,
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
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue, global_clipnorm,
            use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name,
            **kwargs,
        )  # fmt: skip


class _Moments(Optimizer):
    """What Adamax and Nadam share: their signature (the same defaults in Keras), and ``beta_1``, ``beta_2``,
    ``epsilon`` as the core's ``betas`` and ``eps``."""

    _config = ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
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
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip

    def _validate(self) -> None:
        _check_betas(self.beta_1, self.beta_2)
        check_range("epsilon", self.epsilon, 0.0)

    def _hyper(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}


class Adamax(_Moments):
    """Adamax, Keras's form: ``u ← max(β2·u, |g|);  p ← p − lr/(1−β1ᵗ) · m/(u + ε)``."""

    _core = CoreAdamax


class Nadam(_Moments):
    """NAdam, Keras's form: Adam's moments with the momentum schedule ``μ_t = β1·(1 − ½·0.96ᵗ)``."""

    _core = CoreNAdam


__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam", "schedules"]
