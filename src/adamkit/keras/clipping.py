"""Keras's gradient clipping, as adamkit hooks (they run before each update, on the gradients being applied).

Keras's forms differ from torch's ``clip_grad_norm_`` (adamkit's ``ClipGradNorm``): ``clipnorm`` clips each
gradient by its *own* norm, and neither adds torch's 1e-6 to the norm. ``clipvalue`` is adamkit's
``ClipGradValue``. A non-finite norm makes the gradients NaN, as in Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..hooks import Hook

if TYPE_CHECKING:
    from ..optimizer import Optimizer


def _active(opt: Optimizer, skip: set[str]) -> list[np.ndarray]:
    return [g for name, g in opt.grads.items() if name not in skip]


class ClipByNorm(Hook):
    """Keras ``clipnorm``: each gradient ``g ← g·c / max(‖g‖, c)``, ``‖g‖`` its own 2-norm."""

    def __init__(self, clipnorm: float):
        self.clipnorm = clipnorm

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        for g in _active(opt, skip):
            x = g.dtype.type
            l2sum = np.sum(np.square(g), dtype=g.dtype)
            norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
            g *= x(self.clipnorm)
            g /= np.maximum(norm, x(self.clipnorm))


class ClipByGlobalNorm(Hook):
    """Keras ``global_clipnorm``: every gradient ``g ← g·c·min(1/‖G‖, 1/c)``, ``‖G‖`` the norm of all of them."""

    def __init__(self, global_clipnorm: float):
        self.global_clipnorm = global_clipnorm

    def __call__(self, opt: Optimizer, skip: set[str]) -> None:
        grads = _active(opt, skip)
        if not grads:
            return
        x = np.result_type(*grads).type
        norm = np.sqrt(np.sum([np.sum(np.square(g), dtype=x) for g in grads], dtype=x))
        c = self.global_clipnorm
        scale = x(c) * np.minimum(x(1.0) / norm, x(1.0 / c)) + (norm - norm)  # NaN for a non-finite norm
        for g in grads:
            g *= scale.astype(g.dtype)
