"""The adamkit optimizers as ``torch.optim.Optimizer`` subclasses: torch.optim's signatures and defaults.

A hyperparameter left at ``None`` takes the convention's default (torch.optim's for ``convention="torch"``).
``foreach``, ``fused`` and ``capturable`` are accepted and kept in the param groups (adamkit's kernel is fused
whatever they say); ``differentiable=True`` is refused. adamkit's own keywords: ``convention``, ``engine``, and the
storage options ``state_dtype`` (None, ``"bfloat16"``, ``"int8"``), ``stochastic_rounding``, ``seed`` and
``kahan_sum`` (for bfloat16 parameters), see ``adamkit.lowp``. Each class's formula is its core class's docstring.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..optim.adadelta import Adadelta as _Adadelta
from ..optim.adagrad import Adagrad as _Adagrad
from ..optim.adam import Adam as _Adam
from ..optim.adam import AdamW as _AdamW
from ..optim.adamax import Adamax as _Adamax
from ..optim.nadam import NAdam as _NAdam
from ..optim.radam import RAdam as _RAdam
from ..optim.rmsprop import RMSprop as _RMSprop
from ..optim.sgd import SGD as _SGD
from ._base import TorchOptimizer

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, torch.Tensor]]
Lr = float | torch.Tensor | None


def _flags(**flags: Any) -> dict[str, Any]:
    return flags


def _precision(state_dtype: str | None, stochastic_rounding: bool, seed: int, kahan_sum: bool) -> dict[str, Any]:
    """The core's storage keywords (see ``adamkit.lowp``): ``state_dtype`` None (the parameters' dtype),
    ``"bfloat16"`` or ``"int8"``; bfloat16 parameters rounded stochastically (from ``seed``) or to nearest, or
    to nearest with Kahan compensation (``kahan_sum=True``, torch-optimi's option and state name ``kahan_comp``)."""
    return dict(state_dtype=state_dtype, stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum)


class SGD(TorchOptimizer):
    __doc__ = f"torch.optim.SGD's interface over adamkit.SGD.\n\n{_SGD.__doc__}"
    _core_class, _torch_class, _stores_step = _SGD, torch.optim.SGD, False

    def __init__(
        self, params: Params, lr: Lr = None, momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
        nesterov: bool = False, *, maximize: bool = False, foreach: bool | None = None, differentiable: bool = False,
        fused: bool | None = None, convention: str = "torch", engine: str = "fused", state_dtype: str | None = None,
        stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                     maximize=maximize)  # fmt: skip
        flags = _flags(foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class Adagrad(TorchOptimizer):
    __doc__ = f"torch.optim.Adagrad's interface over adamkit.Adagrad.\n\n{_Adagrad.__doc__}"
    _core_class, _torch_class, _eager_slots = _Adagrad, torch.optim.Adagrad, ("sum",)

    def __init__(
        self, params: Params, lr: Lr = None, lr_decay: float = 0, weight_decay: float = 0,
        initial_accumulator_value: float | None = None, eps: float | None = None, foreach: bool | None = None, *,
        maximize: bool = False, differentiable: bool = False, fused: bool | None = None, convention: str = "torch",
        engine: str = "fused", state_dtype: str | None = None, stochastic_rounding: bool = True, seed: int = 0,
        kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                     initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)  # fmt: skip
        flags = _flags(foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class RMSprop(TorchOptimizer):
    __doc__ = f"torch.optim.RMSprop's interface over adamkit.RMSprop.\n\n{_RMSprop.__doc__}"
    _core_class, _torch_class = _RMSprop, torch.optim.RMSprop

    def __init__(
        self, params: Params, lr: Lr = None, alpha: float | None = None, eps: float | None = None,
        weight_decay: float = 0, momentum: float = 0, centered: bool = False, capturable: bool = False,
        foreach: bool | None = None, maximize: bool = False, differentiable: bool = False, *,
        convention: str = "torch", engine: str = "fused", state_dtype: str | None = None,
        stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                     maximize=maximize)  # fmt: skip
        flags = _flags(capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class Adadelta(TorchOptimizer):
    __doc__ = f"torch.optim.Adadelta's interface over adamkit.Adadelta.\n\n{_Adadelta.__doc__}"
    _core_class, _torch_class = _Adadelta, torch.optim.Adadelta

    def __init__(
        self, params: Params, lr: Lr = None, rho: float | None = None, eps: float | None = None,
        weight_decay: float = 0, foreach: bool | None = None, *, capturable: bool = False, maximize: bool = False,
        differentiable: bool = False, convention: str = "torch", engine: str = "fused", state_dtype: str | None = None,
        stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        flags = _flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class Adam(TorchOptimizer):
    __doc__ = f"torch.optim.Adam's interface over adamkit.Adam.\n\n{_Adam.__doc__}"
    _core_class, _torch_class = _Adam, torch.optim.Adam

    def __init__(
        self, params: Params, lr: Lr = None, betas: tuple[Any, Any] = (0.9, 0.999), eps: float | None = None,
        weight_decay: float | None = None, amsgrad: bool = False, *, foreach: bool | None = None,
        maximize: bool = False, capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
        decoupled_weight_decay: bool = False, convention: str = "torch", engine: str = "fused",
        state_dtype: str | None = None, stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                     decoupled_weight_decay=decoupled_weight_decay)  # fmt: skip
        flags = _flags(foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class AdamW(Adam):
    __doc__ = f"torch.optim.AdamW's interface over adamkit.AdamW.\n\n{_AdamW.__doc__}"
    _core_class, _torch_class = _AdamW, torch.optim.AdamW

    def __init__(
        self, params: Params, lr: Lr = None, betas: tuple[Any, Any] = (0.9, 0.999), eps: float | None = None,
        weight_decay: float | None = None, amsgrad: bool = False, *, maximize: bool = False,
        foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
        fused: bool | None = None, convention: str = "torch", engine: str = "fused", state_dtype: str | None = None,
        stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        flags = _flags(foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused)
        TorchOptimizer.__init__(self, params, hyper, flags, convention=convention, engine=engine,
                                precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class Adamax(TorchOptimizer):
    __doc__ = f"torch.optim.Adamax's interface over adamkit.Adamax.\n\n{_Adamax.__doc__}"
    _core_class, _torch_class = _Adamax, torch.optim.Adamax

    def __init__(
        self, params: Params, lr: Lr = None, betas: tuple[float, float] = (0.9, 0.999), eps: float | None = None,
        weight_decay: float = 0, foreach: bool | None = None, *, maximize: bool = False,
        differentiable: bool = False, capturable: bool = False, convention: str = "torch", engine: str = "fused",
        state_dtype: str | None = None, stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        flags = _flags(foreach=foreach, differentiable=differentiable, capturable=capturable)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class NAdam(TorchOptimizer):
    __doc__ = f"torch.optim.NAdam's interface over adamkit.NAdam.\n\n{_NAdam.__doc__}"
    _core_class, _torch_class, _host_scalars = _NAdam, torch.optim.NAdam, ("mu_product",)

    def __init__(
        self, params: Params, lr: Lr = None, betas: tuple[float, float] = (0.9, 0.999), eps: float | None = None,
        weight_decay: float = 0, momentum_decay: float | None = None, decoupled_weight_decay: bool = False, *,
        foreach: bool | None = None, maximize: bool = False, capturable: bool = False, differentiable: bool = False,
        convention: str = "torch", engine: str = "fused", state_dtype: str | None = None,
        stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                     decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)  # fmt: skip
        flags = _flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class RAdam(TorchOptimizer):
    __doc__ = f"torch.optim.RAdam's interface over adamkit.RAdam.\n\n{_RAdam.__doc__}"
    _core_class, _torch_class = _RAdam, torch.optim.RAdam

    def __init__(
        self, params: Params, lr: Lr = None, betas: tuple[float, float] = (0.9, 0.999), eps: float | None = None,
        weight_decay: float = 0, decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
        maximize: bool = False, capturable: bool = False, differentiable: bool = False, convention: str = "torch",
        engine: str = "fused", state_dtype: str | None = None, stochastic_rounding: bool = True, seed: int = 0,
        kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                     decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)  # fmt: skip
        flags = _flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, hyper, flags, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))
