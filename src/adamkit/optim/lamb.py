"""LAMB (You et al., "Large Batch Optimization for Deep Learning"): Adam's direction, scaled per tensor by a
trust ratio ‖p‖/‖u‖. Three phases: an elementwise pass writes the direction ``u``, a per-tensor reduction takes
``‖p‖`` and ``‖u‖``, and a per-tensor map applies ``p ← p − lr_t·r_k·u``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Job, Params, Plan
from ..phases import PhasedOptimizer, prepare_segment_map, segment_map, segment_sums_of_squares
from .common import check_betas, check_common, direction, with_defaults

DEFAULTS = {"torch": dict(lr=1e-3, eps=1e-6, weight_decay=0.0)}
CLAMP = 10.0
"""The weight norm is clamped to at most this (pytorch_optimizer's ``Lamb.clamp``)."""


@elementwise
def lamb_direction(p, g, m, v, u, beta1, beta3, beta2, beta2_c, eps, l2, decay, sign):
    """``p ← decay·p;  m ← β1·m + β3·g;  v ← β2·v + (1−β2)·g²;  u ← m/(√v + ε) + l2·p``."""
    p, g = decay * p, sign * g
    m = beta1 * m + beta3 * g
    v = beta2 * v + beta2_c * g * g
    u = m / (np.sqrt(v) + eps)
    if l2 != 0:
        u = u + l2 * p
    return p, m, v, u


@elementwise
def trust_step(p, u, coef):
    """``p ← p − coef·u`` (``coef = lr_t·r``, one value per tensor)."""
    return p - coef * u, u


def trust_ratios(weight_norm: np.ndarray, update_norm: np.ndarray, eps: float) -> np.ndarray:
    """``r = min(‖p‖, 10)/(‖u‖ + ε)``, and 1 where either norm is 0."""
    weight_norm = np.minimum(weight_norm, CLAMP)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = weight_norm / (update_norm + eps)
    return np.where((weight_norm != 0) & (update_norm != 0), ratio, 1.0)


class LAMB(PhasedOptimizer):
    r"""LAMB; the semantics and defaults of pytorch_optimizer 4.1's ``Lamb`` (version 3 of the paper, no second
    moment bias correction). With ``g`` negated when ``maximize`` and ``β3 = 1−β1`` (``grad_averaging``) or 1::

        p ← (1 − lr·λ)·p                 (weight_decouple, default; (1 − λ)·p with fixed_decay)
        m ← β1·m + β3·g                  v ← β2·v + (1−β2)·g²
        u ← m/(√v + ε)  (+ λ·p when not weight_decouple)
        r ← min(‖p‖, 10)/(‖u‖ + ε)   per tensor; 1 where ‖p‖ or ‖u‖ is 0, or always with adam=True
        p ← p − lr/(1−β1ᵗ) · r · u

    State slots: ``exp_avg``, ``exp_avg_sq`` (``u`` is scratch, never saved). pytorch_optimizer's ``rectify``
    and ``pre_norm`` options are not offered (use the ``ClipGradNorm`` hook for gradient clipping).
    """

    _SCRATCH = frozenset({"update"})

    def __init__(
        self,
        params: Params = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        weight_decouple: bool = True,
        fixed_decay: bool = False,
        grad_averaging: bool = True,
        adam: bool = False,
        eps: float = 1e-6,
        *,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
        nonfinite: str = "ignore",
    ):
        defaults = with_defaults(
            DEFAULTS, convention, lr=lr, betas=betas, weight_decay=weight_decay,
            weight_decouple=weight_decouple, fixed_decay=fixed_decay, grad_averaging=grad_averaging, adam=adam,
            eps=eps, maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults, engine=engine, nonfinite=nonfinite)

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(DEFAULTS))
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        for flag in ("weight_decouple", "fixed_decay", "grad_averaging", "adam"):
            check_bool(flag, group[flag])

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        (beta1, beta2), wd = group["betas"], group["weight_decay"]
        beta3 = 1 - beta1 if group["grad_averaging"] else 1.0
        if group["weight_decouple"]:
            l2, decay = 0.0, 1.0 - wd * (1.0 if group["fixed_decay"] else group["lr"])
        else:
            l2, decay = wd, 1.0
        scalars = (beta1, beta3, beta2, 1 - beta2, group["eps"], l2, decay, direction(group))
        return lamb_direction, ("exp_avg", "exp_avg_sq", "update"), scalars

    def _prepare_finish(self, group: dict[str, Any], dtype: np.dtype) -> None:
        prepare_segment_map(self.engine, trust_step, 1, ("coef",))

    def _finish(self, group: dict[str, Any], job: Job) -> None:
        tensors, u = job.flat.tensors(job.members), job.slots[2]
        weight_sq, update_sq = segment_sums_of_squares(tensors, [None, u])
        ratio = trust_ratios(np.sqrt(weight_sq), np.sqrt(update_sq), group["eps"])
        if group["adam"]:
            ratio = np.ones_like(ratio)
        step_size = group["lr"] / (1.0 - math.pow(group["betas"][0], job.t))
        coef = (step_size * ratio).astype(job.flat.dtype)
        segment_map(self.engine, trust_step, tensors, [u], {"coef": coef})
