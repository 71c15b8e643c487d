"""Stochastic gradient descent, with optional (Nesterov) momentum."""

from __future__ import annotations

from typing import Any

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import FlatBuffer
from ..optimizer import Optimizer, Params, Plan
from .common import check_common, direction, l2_gradient


@elementwise
def sgd_rule(p, g, lr, weight_decay, sign):
    """``p ← p − lr·(sign·g + λp)``."""
    return (p - lr * l2_gradient(p, g, sign, weight_decay),)


@elementwise
def momentum_rule(p, g, buf, lr, weight_decay, sign, decay, keep, momentum, nesterov):
    """``d = sign·g + λp;  b ← decay·b + keep·d;  p ← p − lr·(d + μb if nesterov else b)``.

    torch: ``decay = μ`` and ``keep = 1 − dampening``, except on the first step, where ``b = d``
    (``decay = 0, keep = 1``).
    """
    d = l2_gradient(p, g, sign, weight_decay)
    buf = decay * buf + keep * d
    if nesterov:
        d = d + momentum * buf
    else:
        d = buf
    return p - lr * d, buf


class SGD(Optimizer):
    r"""Stochastic gradient descent, torch.optim.SGD's semantics and defaults.

    With ``d = g + λp`` (``g`` negated when ``maximize``)::

        momentum = 0:   p ← p − lr·d
        momentum > 0:   b ← μ·b + (1 − dampening)·d       (b = d on the first step)
                        p ← p − lr·b                      (nesterov: p ← p − lr·(d + μ·b))

    State slot: ``momentum_buffer`` (only when momentum > 0).
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            convention=convention,
        )
        super().__init__(params, defaults, engine=engine)

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, ("torch",))
        momentum = check_range("momentum", group["momentum"], 0.0)
        dampening = check_range("dampening", group["dampening"], 0.0, 1.0)
        if check_bool("nesterov", group["nesterov"]) and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")

    def _plan(self, group: dict[str, Any], flat: FlatBuffer, t: int) -> Plan:
        lr, wd, sign, mu = group["lr"], group["weight_decay"], direction(group), group["momentum"]
        if mu == 0:
            return sgd_rule, (), (lr, wd, sign)
        first = "momentum_buffer" not in flat.state
        decay, keep = (0.0, 1.0) if first else (mu, 1.0 - group["dampening"])
        return momentum_rule, ("momentum_buffer",), (lr, wd, sign, decay, keep, mu, group["nesterov"])
