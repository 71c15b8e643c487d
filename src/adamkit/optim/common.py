"""Pieces of math and checks that several optimizer families share."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_bool, check_choice, check_range
from ..elementwise import elementwise


@elementwise
def lerp(x, target, weight):
    """``x + w·(target − x)``: an exponential moving average step (torch's ``lerp_``)."""
    return x + weight * (target - x)


@elementwise
def weight_decayed(p, g, l2, decay, sign):
    """``p ← decay·p`` (decoupled decay), then the gradient ``sign·g + l2·p`` (L2 term, maximize-aware).

    One of the two is a no-op (``decay = 1`` or ``l2 = 0``), see :func:`decay_scalars`; with ``l2 = 0`` the term
    is left out, not added as ``0·p`` (which is NaN for an infinite parameter).
    """
    p = decay * p
    if l2 != 0:
        return p, sign * g + l2 * p
    return p, sign * g


def decay_scalars(group: dict[str, Any], decoupled: bool) -> tuple[float, float]:
    """``(l2, decay)`` for :func:`weight_decayed`: L2 into the gradient, or decoupled ``p ← (1 − lr·λ)p``.

    Keras keeps the learning rate in a float32 variable and forms ``1 − λ·lr`` in float32; the keras
    convention does the same.
    """
    wd, lr = group["weight_decay"], group["lr"]
    if not decoupled:
        return wd, 1.0
    if group["convention"] == "keras":
        f32 = np.float32
        return 0.0, float(f32(1) - f32(wd) * f32(lr))
    return 0.0, 1.0 - lr * wd


def direction(group: dict[str, Any]) -> float:
    """+1 to minimize, -1 to maximize."""
    return -1.0 if group["maximize"] else 1.0


def with_defaults(table: dict[str, dict[str, Any]], convention: str, **given: Any) -> dict[str, Any]:
    """The hyperparameters as given, each ``None`` replaced by the convention's default from ``table``."""
    check_choice("convention", convention, tuple(table))
    defaults = table[convention]
    resolved = {k: defaults[k] if v is None and k in defaults else v for k, v in given.items()}
    return {**resolved, "convention": convention}


def check_common(group: dict[str, Any], conventions: tuple[str, ...]) -> None:
    """Checks every optimizer shares: lr ≥ 0, weight_decay ≥ 0, maximize a bool, a known convention."""
    check_choice("convention", group["convention"], conventions)
    check_range("lr", group["lr"], 0.0)
    check_range("weight_decay", group["weight_decay"], 0.0)
    check_bool("maximize", group["maximize"])


def check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (
        check_range("betas[0]", betas[0], 0.0, 1.0, high_open=True),
        check_range("betas[1]", betas[1], 0.0, 1.0, high_open=True),
    )


def check_unit(name: str, value: Any) -> float:
    """A decay rate in [0, 1)."""
    return check_range(name, value, 0.0, 1.0, high_open=True)
