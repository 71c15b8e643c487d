"""Adam, AMSGrad and AdamW: one set of moment updates; torch, Keras and DeZero conventions."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan
from .common import Convention, check_betas, check_common, decay_scalars, direction, lerp, weight_decayed, with_defaults

CONVENTIONS = {
    "torch": Convention("torch", dict(lr=1e-3, eps=1e-8, weight_decay=0.0)),
    "keras": Convention(
        "Keras", dict(lr=1e-3, eps=1e-7, weight_decay=0.0), decoupled_decay=True, float32_decay=True,
        epsilon_hat=True, buffer_dtype_scalars=True,
    ),
    "dezero": Convention("DeZero", dict(lr=1e-3, eps=1e-8, weight_decay=0.0), epsilon_hat=True, dezero_order=True),
}  # fmt: skip


@elementwise
def adam_moments(g, m, v, beta1_c, beta2, beta2_c):
    """``m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²``  (``beta*_c`` are the complements 1 − β)."""
    return lerp(m, g, beta1_c), beta2 * v + beta2_c * g * g


@elementwise
def decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign):
    """Weight decay (decoupled or L2, see ``weight_decayed``), then the two moments; returns ``p, g, m, v``."""
    p, g = weight_decayed(p, g, l2, decay, sign)
    m, v = adam_moments(g, m, v, beta1_c, beta2, beta2_c)
    return p, g, m, v


@elementwise
def adam_step(p, m, v, step_size, bc2_sqrt, eps):
    """``p ← p − step_size · m / (√v / bc2_sqrt + ε)``."""
    return p - step_size * (m / (np.sqrt(v) / bc2_sqrt + eps))


@elementwise
def adam_rule(p, g, m, v, step_size, beta1_c, beta2, beta2_c, bc2_sqrt, eps, l2, decay, sign, folded):
    """Adam: moments, then ``p ← p − step_size · m / (√v / bc2_sqrt + ε)``.

    ``folded``: the bias correction folded into the scalars (the epsilon-hat form, ``bc2_sqrt = 1``): one
    division, ``v ← v + (1−β2)(g² − v)``, ``p ← p − (step_size·m)/(√v + ε)``. DeZero's order of operations (so
    float32 agrees with DeZero to the bit), and the low-precision path's form of every convention (see
    ``Adam._plan``: its trajectory is not a framework's to the rounding, and the second division is a fifth of
    its step).
    """
    if folded:
        p, g = weight_decayed(p, g, l2, decay, sign)
        m, v = lerp(m, g, beta1_c), lerp(v, g * g, beta2_c)
        return p - step_size * m / (np.sqrt(v) + eps), m, v
    p, _, m, v = decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign)
    return adam_step(p, m, v, step_size, bc2_sqrt, eps), m, v


@elementwise
def amsgrad_rule(p, g, m, v, v_max, step_size, beta1_c, beta2, beta2_c, bc2_sqrt, eps, l2, decay, sign):
    """AMSGrad: as Adam, with ``v_max ← max(v_max, v)`` (over the raw v) in the denominator."""
    p, _, m, v = decayed_moments(p, g, m, v, beta1_c, beta2, beta2_c, l2, decay, sign)
    v_max = np.maximum(v_max, v)
    return adam_step(p, m, v_max, step_size, bc2_sqrt, eps), m, v, v_max


def epsilon_hat_step_size(lr: float, beta1: float, beta2: float, t: int, dtype: np.dtype | None) -> Any:
    """``lr·√(1−β2ᵗ)/(1−β1ᵗ)`` computed in the buffer's dtype, as Keras does (``dtype=None``: in Python
    floats, as DeZero's ``Adam.lr`` does)."""
    if dtype is None:
        return lr * math.sqrt(1.0 - math.pow(beta2, t)) / (1.0 - math.pow(beta1, t))
    x = dtype.type
    return x(lr) * np.sqrt(x(1) - x(beta2) ** x(t)) / (x(1) - x(beta1) ** x(t))


class Adam(Optimizer):
    r"""Adam (Kingma & Ba); torch.optim.Adam's semantics and defaults unless a convention says otherwise.

    With ``g`` negated when ``maximize``, at step ``t``::

        m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²

    ``convention="torch"`` (default; PyTorch, optax, the paper's Algorithm 1), ``eps=1e-8``::

        g ← g + λ·p                                   (weight_decay: L2 into the gradient)
        p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)

    ``convention="keras"`` (Keras 3, TensorFlow: "epsilon hat", paper §2), ``eps=1e-7``::

        p ← (1 − lr·λ)·p                              (weight_decay: decoupled, as Keras does)
        p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε̂)

    ``convention="dezero"``: DeZero's Adam, the epsilon-hat update above with ``eps=1e-8`` and weight decay as
    L2 into the gradient (DeZero's WeightDecay hook); its step size in Python floats and its operations in
    DeZero's order, as DeZero computes them.

    ``decoupled_weight_decay=True`` (torch ≥ 2.6): weight decay as in :class:`AdamW`.
    ``amsgrad=True`` keeps ``v_max ← max(v_max, v)`` over the raw ``v`` and uses it in place of ``v``.
    State slots: ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``). ``None`` takes the convention's default.
    """

    _LOW_PRECISION = True

    _decoupled = False
    _conventions = CONVENTIONS

    def __init__(
        self,
        params: Params = None,
        lr: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | None = None,
        weight_decay: float | None = None,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        convention: str = "torch",
        engine: str = "fused",
        nonfinite: str = "ignore",
        state_dtype: str | None = None,
        stochastic_rounding: bool = True,
        seed: int = 0,
        kahan_sum: bool = False,
    ):
        defaults = with_defaults(
            self._conventions, convention, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay or self._decoupled,
        )  # fmt: skip
        super().__init__(
            params, defaults, engine=engine, nonfinite=nonfinite, state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding, seed=seed, kahan_sum=kahan_sum,
        )  # fmt: skip

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(self._conventions))
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        check_bool("amsgrad", group["amsgrad"])
        check_bool("decoupled_weight_decay", group["decoupled_weight_decay"])

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        lr, (beta1, beta2), form = group["lr"], group["betas"], self._conventions[group["convention"]]
        decoupled = group["decoupled_weight_decay"] or form.decoupled_decay
        l2, decay = decay_scalars(group, decoupled, form.float32_decay)
        eps = group["eps"]
        if form.epsilon_hat:
            dtype = run.dtype if form.buffer_dtype_scalars else None
            step_size, bc2_sqrt = epsilon_hat_step_size(lr, beta1, beta2, t, dtype), 1.0
        else:
            step_size, bc2_sqrt = lr / (1 - beta1**t), math.sqrt(1 - beta2**t)
            if run.low_precision and not group["amsgrad"]:  # the same update in one division: ε̂ = ε·√(1−β2ᵗ)
                step_size, eps, bc2_sqrt = step_size * bc2_sqrt, eps * bc2_sqrt, 1.0
        folded = form.dezero_order or run.low_precision
        scalars = (step_size, 1 - beta1, beta2, 1 - beta2, bc2_sqrt, eps, l2, decay, direction(group))
        if group["amsgrad"]:
            return amsgrad_rule, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), scalars
        return adam_rule, ("exp_avg", "exp_avg_sq"), (*scalars, folded)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter); torch.optim.AdamW's semantics.

    As :class:`Adam`, but weight decay shrinks the parameters before the update, in both conventions::

        p ← (1 − lr·λ)·p

    Default ``weight_decay``: 1e-2 (torch), 0.004 (keras).
    """

    _decoupled = True
    _conventions = {
        "torch": replace(CONVENTIONS["torch"], defaults=dict(lr=1e-3, eps=1e-8, weight_decay=1e-2)),
        "keras": replace(CONVENTIONS["keras"], defaults=dict(lr=1e-3, eps=1e-7, weight_decay=0.004)),
    }
