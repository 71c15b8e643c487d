"""Signum (Bernstein et al., "signSGD"): the sign of a momentum. A complete adamkit optimizer in one file."""

from __future__ import annotations

import numpy as np

from adamkit import Optimizer
from adamkit.elementwise import elementwise
from adamkit.optim.common import check_common, check_unit, direction, lerp


@elementwise
def signum_rule(p, g, m, lr, momentum_c, decay, sign):
    """``m ← m + (1−μ)·(g − m);  p ← decay·p − lr·sign(m)``."""
    m = lerp(m, sign * g, momentum_c)
    return decay * p - lr * np.sign(m), m


class Signum(Optimizer):
    """Signum, as pytorch_optimizer's ``SignSGD``: ``p ← (1 − lr·λ)·p − lr·sign(m)``; slot ``momentum_buffer``."""

    def __init__(self, params=None, lr=1e-3, momentum=0.9, weight_decay=0.0, *, maximize=False, engine="fused"):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, maximize=maximize, convention="torch")
        super().__init__(params, defaults, engine=engine)

    def _check(self, group):
        check_common(group, ("torch",))  # lr ≥ 0, weight_decay ≥ 0, maximize a bool
        check_unit("momentum", group["momentum"])  # in [0, 1)

    def _plan(self, group, run, t):
        lr, decay = group["lr"], 1 - group["lr"] * group["weight_decay"]
        return signum_rule, ("momentum_buffer",), (lr, 1 - group["momentum"], decay, direction(group))
