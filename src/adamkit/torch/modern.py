"""adamkit's newer optimizers as ``torch.optim.Optimizer`` subclasses, with their reference's signatures.

| class | reference (its constructor arguments) |
|---|---|
| ``Lion`` | lion-pytorch 0.2.5 ``Lion`` |
| ``LAMB`` | pytorch_optimizer 4.1.0 ``Lamb`` |
| ``Adafactor`` | ``torch.optim.Adafactor`` (state_dicts interchangeable) |
| ``Muon`` | ``torch.optim.Muon`` on 2-D parameters, AdamW (``adamw_*``) on the rest (state_dicts of 2-D parameters
  interchangeable) |
| ``ScheduleFreeAdamW`` | schedulefree 1.4.1 ``AdamWScheduleFree``, with ``train()`` / ``eval()`` |

The math is the core class's (:mod:`adamkit.optim`); these classes translate arguments and state, as
:mod:`.optimizers` does for torch.optim's classic family. A reference's option the core does not offer is
accepted at its default and refused otherwise, naming it. They step CPU float32/float64 parameters (packed into
flat buffers, as the classic classes): a parameter elsewhere (CUDA, bf16, complex) is refused, not stepped
another way, because their per-tensor phases (norms, factored moments, Newton–Schulz) run on the core's buffers.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch

from ..optim.adafactor import Adafactor as _Adafactor
from ..optim.lamb import LAMB as _LAMB
from ..optim.lion import Lion as _Lion
from ..optim.muon import Muon as _Muon
from ..optim.schedulefree import ScheduleFreeAdamW as _ScheduleFreeAdamW
from ._base import TorchOptimizer, _Bound
from .optimizers import Lr, Params, _precision


class ReferenceDoor(TorchOptimizer):
    """Base of the doors above: the reference's options, CPU float32/float64 parameters only (Lion, whose update
    is elementwise: bfloat16 too, and ``state_dtype``)."""

    #: The reference's options, at their defaults, that the core may not offer (refused unless at the default).
    _reference_options: ClassVar[dict[str, Any]] = {}
    #: Options that change nothing here (kept in the param groups whatever their value).
    _inert: ClassVar[tuple[str, ...]] = ("foreach",)
    #: A parameter shape the reference accepts, for building it once to borrow its checks (None: no reference
    #: class at hand; the core's checks name the argument).
    _probe: ClassVar[tuple[int, ...] | None] = None

    def __init__(
        self, params: Params, hyper: dict[str, Any], *, convention: str, engine: str,
        precision: dict[str, Any] | None = None,
    ):  # fmt: skip
        name = type(self).__name__
        if engine not in ("fused", "numpy"):
            raise ValueError(f"adamkit.torch.{name}: engine must be 'fused' or 'numpy', got {engine!r}")
        takes = inspect.signature(self._core_class).parameters
        flags = {k: hyper.pop(k) for k in list(hyper) if k not in takes}
        for key, value in flags.items():
            if key not in self._inert and value != self._reference_options[key]:
                raise ValueError(
                    f"adamkit.torch.{name}: {key}={value!r} is not supported (adamkit.{self._core_class.__name__} "
                    f"has no such option); leave it at {self._reference_options[key]!r}"
                )
        super().__init__(params, hyper, flags, convention=convention, engine=engine, precision=precision)

    def _reference_checks(self, given: dict[str, Any], torch_flags: dict[str, Any]) -> None:
        if self._probe is None:
            return
        takes = inspect.signature(self._torch_class).parameters
        args = {k: v for k, v in {**given, **torch_flags}.items() if k in takes}
        self._torch_class([torch.zeros(self._probe)], **args)

    def _core_held(self, p: torch.Tensor) -> bool:
        if p.is_complex():  # torch's words for it (torch.optim.Adafactor and Muon raise them at their step)
            raise RuntimeError(
                f"{type(self).__name__} does not support complex parameters (adamkit.torch.{type(self).__name__} "
                "steps real CPU float32/float64 parameters)"
            )
        if not super()._core_held(p):
            raise TypeError(
                f"adamkit.torch.{type(self).__name__} steps real CPU float32/float64 parameters only (and bfloat16 "
                f"where the core has a low-precision form); got a {p.dtype} parameter on {p.device}"
            )
        return True

    def _repair(self, b: _Bound) -> bool:
        new = b.param.data
        if new.shape == b.data.shape and (new.device.type != "cpu" or new.dtype != b.data.dtype):
            raise TypeError(
                f"adamkit.torch.{type(self).__name__}: a parameter moved to {new.device} / {new.dtype}; it steps "
                "CPU float32/float64 parameters only (move the model before creating the optimizer)"
            )
        return super()._repair(b)


class Lion(ReferenceDoor):
    __doc__ = f"lion-pytorch's ``Lion`` interface over adamkit.Lion.\n\n{_Lion.__doc__}"
    _core_class = _Lion
    _reference_options = dict(use_triton=False, decoupled_weight_decay=False)

    def __init__(
        self, params: Params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
        use_triton: bool = False, decoupled_weight_decay: bool = False, *, maximize: bool = False,
        convention: str = "torch", engine: str = "fused", state_dtype: str | None = None,
        stochastic_rounding: bool = True, seed: int = 0, kahan_sum: bool = False,
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, weight_decay=weight_decay, use_triton=use_triton,
                     decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)  # fmt: skip
        super().__init__(params, hyper, convention=convention, engine=engine,
                         precision=_precision(state_dtype, stochastic_rounding, seed, kahan_sum))


class LAMB(ReferenceDoor):
    __doc__ = f"pytorch_optimizer's ``Lamb`` interface over adamkit.LAMB.\n\n{_LAMB.__doc__}"
    _core_class = _LAMB

    def __init__(
        self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
        weight_decouple: bool = True, fixed_decay: bool = False, rectify: bool = False,
        degenerated_to_sgd: bool = False, n_sma_threshold: int = 5, grad_averaging: bool = True,
        max_grad_norm: float = 1.0, adam: bool = False, pre_norm: bool = False, eps: float = 1e-6,
        foreach: bool | None = None, maximize: bool = False, *, convention: str = "torch", engine: str = "fused",
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, weight_decay=weight_decay, weight_decouple=weight_decouple,
                     fixed_decay=fixed_decay, rectify=rectify, degenerated_to_sgd=degenerated_to_sgd,
                     n_sma_threshold=n_sma_threshold, grad_averaging=grad_averaging, max_grad_norm=max_grad_norm,
                     adam=adam, pre_norm=pre_norm, eps=eps, foreach=foreach, maximize=maximize)  # fmt: skip
        super().__init__(params, hyper, convention=convention, engine=engine)


class Adafactor(ReferenceDoor):
    __doc__ = f"torch.optim.Adafactor's interface over adamkit.Adafactor.\n\n{_Adafactor.__doc__}"
    _core_class, _torch_class, _probe = _Adafactor, torch.optim.Adafactor, (1,)

    def __init__(
        self, params: Params, lr: Lr = 1e-2, beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
        foreach: bool | None = None, maximize: bool = False, convention: str = "torch", engine: str = "fused",
    ):  # fmt: skip
        hyper = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, foreach=foreach,
                     maximize=maximize)  # fmt: skip
        super().__init__(params, hyper, convention=convention, engine=engine)


class Muon(ReferenceDoor):
    __doc__ = f"torch.optim.Muon's interface over adamkit.Muon.\n\n{_Muon.__doc__}"
    _core_class, _torch_class, _probe = _Muon, torch.optim.Muon, (1, 1)

    def __init__(
        self, params: Params, lr: Lr = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
        nesterov: bool = True, ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None, *, adamw_lr: float = 1e-3,
        adamw_betas: tuple[float, float] = (0.9, 0.999), adamw_eps: float = 1e-8, adamw_weight_decay: float = 0.01,
        maximize: bool = False, convention: str = "torch", engine: str = "fused",
    ):  # fmt: skip
        hyper = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                     ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
                     adamw_lr=adamw_lr, adamw_betas=adamw_betas, adamw_eps=adamw_eps,
                     adamw_weight_decay=adamw_weight_decay, maximize=maximize)  # fmt: skip
        super().__init__(params, hyper, convention=convention, engine=engine)


class ScheduleFreeAdamW(ReferenceDoor):
    __doc__ = f"schedulefree's ``AdamWScheduleFree`` interface over its adamkit class.\n\n{_ScheduleFreeAdamW.__doc__}"
    _core_class, _host_scalars = _ScheduleFreeAdamW, ("lr_max", "weight_sum")
    _host_scalars_as_floats = True  # as the reference keeps them: a float32 copy would not resume bit for bit

    def __init__(
        self, params: Params, lr: Lr = 0.0025, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0, warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0,
        foreach: bool | None = None, *, maximize: bool = False, convention: str = "torch", engine: str = "fused",
    ):  # fmt: skip
        hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
                     weight_lr_power=weight_lr_power, foreach=foreach, maximize=maximize)  # fmt: skip
        super().__init__(params, hyper, convention=convention, engine=engine)

    def train(self) -> None:
        """Put the training point ``y`` into the parameters (where gradients are taken); no-op if there."""
        self._swap(True)

    def eval(self) -> None:
        """Put the averaged point ``x`` into the parameters, to evaluate or save the model; no-op if there."""
        self._swap(False)

    def _swap(self, train: bool) -> None:
        with torch.no_grad():
            self._import()
            self._sync_groups()
            self._core.train() if train else self._core.eval()
        for group in self.param_groups:
            group["train_mode"] = train
        self._stale = True
