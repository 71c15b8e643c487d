"""Keras's gradient clipping, as adamkit hooks (they transform the step's gradients before the update).

Keras's forms differ from torch's ``clip_grad_norm_`` (adamkit's ``ClipGradNorm``): ``clipnorm`` clips each
gradient by its *own* norm, and neither adds torch's 1e-6 to the norm. ``clipvalue`` is adamkit's
``ClipGradValue``. A non-finite norm makes the gradients NaN, as in Keras. Norms are adamkit's fixed-order
float64 reductions (Keras sums in the gradient's dtype: the two differ in the last bit of the norm).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..hooks import Hook, active_arrays
from ..reduce import sum_of_squares

if TYPE_CHECKING:
    from ..optimizer import Optimizer


class ClipByNorm(Hook):
    """Keras ``clipnorm``: each gradient ``g ← g·c / max(‖g‖, c)``, ``‖g‖`` its own 2-norm."""

    def __init__(self, clipnorm: float):
        self.clipnorm = clipnorm

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        for _, _, g in active_arrays(opt, skip, per_tensor=True):
            c = g.dtype.type(self.clipnorm)
            norm = g.dtype.type(math.sqrt(sum_of_squares([g])))
            g *= c
            g /= max(norm, c) if norm == norm else norm  # NaN stays NaN (max() would drop it)


class ClipByGlobalNorm(Hook):
    """Keras ``global_clipnorm``: every gradient ``g ← g·c·min(1/‖G‖, 1/c)``, ``‖G‖`` the norm of all of them."""

    def __init__(self, global_clipnorm: float):
        self.global_clipnorm = global_clipnorm

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        grads = [g for _, _, g in active_arrays(opt, skip)]
        norm = math.sqrt(sum_of_squares(grads))
        c = self.global_clipnorm
        scale = c * min(1.0 / norm, 1.0 / c) if 0 < norm < math.inf else (1.0 if norm == 0 else math.nan)
        for g in grads:
            g *= g.dtype.type(scale)
