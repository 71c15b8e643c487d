"""Pieces of math and checks that several optimizer families share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Convention:
    """One framework's form of an optimizer as explicit knobs; a plan reads the knobs, never a convention's name.

    Each optimizer declares its presets once, ``CONVENTIONS = {"torch": Convention(...), "keras": ...}``; users
    pick one by name (``convention="keras"``). Knobs an optimizer does not use stay at their defaults; one with
    knobs of its own subclasses this (``SGD``'s velocity form, ``RMSprop``'s lr inside the momentum buffer).
    """

    name: str  #: the framework, for messages
    defaults: Mapping[str, Any]  #: hyperparameter defaults under this convention (a ``None`` given → these)
    decoupled_decay: bool = False  #: weight decay ``p ← (1 − lr·λ)p`` before the update (else L2, ``g + λp``)
    float32_decay: bool = False  #: ``1 − λ·lr`` formed in float32 (Keras keeps lr in a float32 variable)
    eps_in_root: bool = False  #: ε inside the root, ``√(s + ε)`` (else outside, ``√s + ε``)
    epsilon_hat: bool = False  #: Adam's step size ``lr·√(1−β2ᵗ)/(1−β1ᵗ)`` with ``ε̂`` added to ``√v`` (paper §2)
    buffer_dtype_scalars: bool = False  #: host scalars computed in the buffer's dtype (else Python floats)
    dezero_order: bool = False  #: the same formula in DeZero's order of operations (so float32 agrees bit for bit)
    keras_order: bool = False  #: the same formula in Keras's order of operations (NAdam: float32 agrees to rounding)


def decay_scalars(group: dict[str, Any], decoupled: bool, float32: bool = False) -> tuple[float, float]:
    """``(l2, decay)`` for :func:`weight_decayed`: L2 into the gradient, or decoupled ``p ← (1 − lr·λ)p``
    (``float32``: ``1 − λ·lr`` formed in float32, as Keras does with its float32 learning rate)."""
    wd, lr = group["weight_decay"], group["lr"]
    if not decoupled:
        return wd, 1.0
    if float32:
        f32 = np.float32
        return 0.0, float(f32(1) - f32(wd) * f32(lr))
    return 0.0, 1.0 - lr * wd


def direction(group: dict[str, Any]) -> float:
    """+1 to minimize, -1 to maximize."""
    return -1.0 if group["maximize"] else 1.0


def with_defaults(table: Mapping[str, Convention | Mapping[str, Any]], convention: str, **given: Any) -> dict[str, Any]:
    """The hyperparameters as given, each ``None`` replaced by the convention's default from ``table`` (of
    :class:`Convention` presets, or of plain defaults for an optimizer with one form)."""
    check_choice("convention", convention, tuple(table))
    preset = table[convention]
    defaults = preset.defaults if isinstance(preset, Convention) else preset
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
