"""Muon (Jordan et al.): momentum, orthogonalized by a Newton–Schulz iteration, for 2-D parameters; AdamW for the
rest, inside one optimizer (so hooks, schedules, skips and state_dict see every parameter)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg

from .._checks import check_bool, check_choice, check_range
from ..elementwise import elementwise
from ..engine import run_fused, run_numpy
from ..factored import torch_lerp
from ..flat import FlatBuffer, Segment
from ..optimizer import Params, _cast, _scalar_names
from ..phases import PerTensorOptimizer
from ..reduce import sum_of_squares
from .adam import adam_rule
from .common import check_common, direction, with_defaults

DEFAULTS = {"torch": dict(lr=1e-3, weight_decay=0.1)}
ADJUST_LR = (None, "original", "match_rms_adamw")


@elementwise
def muon_momentum(u, g, buf, w, w_c, w_low, mu, mu_c, mu_low, nesterov, sign):
    """``buf ← lerp(buf, g, 1−μ)``; then ``u ← lerp(g, buf, μ)`` (nesterov) or ``u ← buf`` (torch's lerp, see
    ``factored.torch_lerp``). ``u`` is an output only."""
    g = sign * g
    buf = torch_lerp(buf, g, w, w_c, w_low)
    if nesterov:
        return torch_lerp(g, buf, mu, mu_c, mu_low), buf
    return buf, buf


@elementwise
def decayed_update(p, o, decay, step):
    """``p ← decay·p − step·o``."""
    return (decay * p - step * o,)


def newton_schulz(x: np.ndarray, coefficients: tuple[float, float, float], steps: int, eps: float) -> np.ndarray:
    """``steps`` quintic Newton–Schulz iterations towards the orthogonal factor of the 2-D ``x`` (torch's
    ``_zeropower_via_newtonschulz``, in ``x``'s dtype)::

        X ← X / max(‖X‖_F, ε)   (on the wide orientation: Xᵀ if rows > cols)
        A = X·Xᵀ;  X ← a·X + (b·A + c·A·A)·X

    Every iterate is ``X_k = q_k(A₀)·X₀``, a polynomial in the Gram matrix ``A₀ = X₀·X₀ᵀ``: with ``A₀ = V·Λ·Vᵀ``,
    ``q_{k+1}(λ) = (a + b·s + c·s²)·q_k(λ)`` where ``s = q_k(λ)²·λ`` (the iteration on each squared singular
    value). So the result is computed as ``V·q(Λ)·Vᵀ·X₀``: one symmetric eigendecomposition of the smaller Gram
    matrix and three matmuls, instead of three matmuls per iteration (equal in exact arithmetic; on a
    2560 × 4096 matrix, 2-3× fewer flops than five iterations). A non-finite ``X`` or a failed decomposition
    takes the iteration itself (:func:`newton_schulz_iteration`).
    """
    a, b, c = (x.dtype.type(k) for k in coefficients)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    norm = x.dtype.type(math.sqrt(sum_of_squares([np.ascontiguousarray(x).reshape(-1)])))
    x = x / max(norm, x.dtype.type(eps))
    spectrum = _gram_eigh(x) if math.isfinite(norm) else None
    if spectrum is None:
        out = newton_schulz_iteration(x, (a, b, c), steps)
    else:
        lam, v = spectrum
        q = np.ones_like(lam)
        for _ in range(steps):
            s = q * q * lam
            q = (a + b * s + c * (s * s)) * q
        if np.all(q >= 0):  # V·q·Vᵀ = W·Wᵀ with W = V·√q: the symmetric product, half the flops
            w = v * np.sqrt(q)
            out = (w @ w.T) @ x
        else:
            out = ((v * q) @ v.T) @ x
    return out.T if tall else out


def _gram_eigh(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(Λ, V)`` of ``x·xᵀ`` (LAPACK's divide and conquer), or None if it does not converge."""
    try:
        return scipy.linalg.eigh(x @ x.T, driver="evd", overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None


def newton_schulz_iteration(x: np.ndarray, coefficients: tuple, steps: int) -> np.ndarray:
    """The iteration of :func:`newton_schulz` on the normalized, wide ``x``, as torch writes it (BLAS matmuls;
    ``A·Aᵀ`` for ``A·A``, ``A`` being symmetric, so that NumPy takes the symmetric product)."""
    a, b, c = coefficients
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram.T)) @ x
    return x


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """torch's ``_adjust_lr``: ``lr·√max(1, A/B)`` ("original", default) or ``lr·0.2·√max(A, B)``."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, rows / cols))
    return lr * 0.2 * math.sqrt(max(rows, cols))


class Muon(PerTensorOptimizer):
    r"""Muon with torch.optim.Muon's semantics and defaults for 2-D parameters; every other parameter (0-d,
    1-D, ≥ 3-D) is stepped by AdamW (torch.optim.AdamW's update) with the ``adamw_*`` hyperparameters.

    2-D, with ``g`` negated when ``maximize``::

        B ← μ·B + (1−μ)·g          U = (1−μ)·g + μ·B  (nesterov)  or  U = B
        O = NS_k^{(a,b,c)}(U; ε)    (Newton–Schulz, see :func:`newton_schulz`)
        p ← (1 − lr·λ)·p − lr·adj(shape)·O

    torch runs the Newton–Schulz iteration in bfloat16; adamkit evaluates the same polynomial in the parameter's
    dtype, through the Gram matrix's eigendecomposition (see :func:`newton_schulz`). The others::

        p ← (1 − lr_w·λ_w)·p;  AdamW's moments and update with adamw_lr, adamw_betas, adamw_eps

    A schedule drives ``lr``; the AdamW part's learning rate follows it in proportion (``adamw_lr·lr/lr₀``).
    State: ``momentum_buffer`` for 2-D tensors; ``exp_avg``, ``exp_avg_sq`` for the others.
    """

    def __init__(
        self,
        params: Params = None,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        *,
        adamw_lr: float = 1e-3,
        adamw_betas: tuple[float, float] = (0.9, 0.999),
        adamw_eps: float = 1e-8,
        adamw_weight_decay: float = 0.01,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
        nonfinite: str = "ignore",
    ):
        defaults = with_defaults(
            DEFAULTS, convention, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
            adamw_lr=adamw_lr, adamw_betas=adamw_betas, adamw_eps=adamw_eps, adamw_weight_decay=adamw_weight_decay,
            maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults, engine=engine, nonfinite=nonfinite)

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(DEFAULTS))
        check_range("momentum", group["momentum"], 0.0, 1.0, high_open=True)
        check_bool("nesterov", group["nesterov"])
        coefficients = group["ns_coefficients"]
        if not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3:
            raise ValueError(f"ns_coefficients must be three numbers (a, b, c), got {coefficients!r}")
        for k, value in enumerate(coefficients):
            check_range(f"ns_coefficients[{k}]", value, -math.inf, math.inf, high_open=True)
        check_range("eps", group["eps"], 0.0)
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps < 100:
            raise ValueError(f"ns_steps must be an integer in [0, 100), got {steps!r}")
        check_choice("adjust_lr_fn", group["adjust_lr_fn"], ADJUST_LR)  # type: ignore[arg-type]
        check_range("adamw_lr", group["adamw_lr"], 0.0)
        betas = group["adamw_betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"adamw_betas must be a pair (beta1, beta2), got {betas!r}")
        for k, beta in enumerate(betas):
            check_range(f"adamw_betas[{k}]", beta, 0.0, 1.0, high_open=True)
        check_range("adamw_eps", group["adamw_eps"], 0.0)
        check_range("adamw_weight_decay", group["adamw_weight_decay"], 0.0)

    def _slot_shapes(self, group: dict[str, Any], shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        if len(shape) == 2:
            return {"momentum_buffer": shape}
        return {"exp_avg": shape, "exp_avg_sq": shape}

    def _lr_factor(self, group: dict[str, Any]) -> float:
        """How far a schedule has moved this group's lr from its base (1 without a schedule)."""
        if self._schedule is None:
            return 1.0
        i = next(k for k, other in enumerate(self.param_groups) if other is group)
        base = self._base_lrs[i] if i < len(self._base_lrs) else group["lr"]
        return group["lr"] / base if base else 1.0

    def _plans(self, group: dict[str, Any], shape: tuple[int, ...], t: int, decay: float) -> list[tuple]:
        """``(rule, n_slots, scalars)`` of the tensor's elementwise passes (2-D: momentum, then the update)."""
        if len(shape) != 2:
            lr = group["adamw_lr"] * self._lr_factor(group)
            beta1, beta2 = group["adamw_betas"]
            scalars = (lr / (1 - beta1**t), 1 - beta1, beta2, 1 - beta2, math.sqrt(1 - beta2**t), group["adamw_eps"],
                       0.0, decay * (1 - lr * group["adamw_weight_decay"]), direction(group), False)  # fmt: skip
            return [(adam_rule, 2, scalars)]
        mu, lr = group["momentum"], group["lr"]
        w = 1 - mu
        momentum = (w, 1 - w, w < 0.5, mu, 1 - mu, mu < 0.5, group["nesterov"], direction(group))
        step = adjusted_lr(lr, group["adjust_lr_fn"], shape)
        return [(muon_momentum, 1, momentum), (decayed_update, 0, ((1 - lr * group["weight_decay"]) * decay, step))]

    def _preflight(self, group: dict[str, Any], flat: FlatBuffer, seg: Segment, t: int, decay: float) -> None:
        for rule, n_slots, scalars in self._plans(group, seg.shape, t, decay):
            _cast(scalars, flat.dtype, _scalar_names(rule, n_slots), type(self).__name__)

    def _pass(self, rule: Any, p: np.ndarray, g: np.ndarray, slots: list, scalars: tuple) -> None:
        scalars = _cast(scalars, p.dtype, _scalar_names(rule, len(slots)), type(self).__name__)
        (run_numpy if self.engine == "numpy" else run_fused)(rule, p, g, slots, scalars)

    def _tensor_step(
        self, group: dict[str, Any], flat: FlatBuffer, i: int, seg: Segment, g: np.ndarray, slots: dict, t: int,
        decay: float,
    ) -> None:  # fmt: skip
        if seg.size == 0:
            return
        p = flat.params[i].reshape(-1)
        plans = self._plans(group, seg.shape, t, decay)
        if len(seg.shape) != 2:
            (rule, _, scalars), = plans
            return self._pass(rule, p, g, [slots["exp_avg"].reshape(-1), slots["exp_avg_sq"].reshape(-1)], scalars)
        (momentum, _, momentum_scalars), (update, _, update_scalars) = plans
        u = np.empty_like(p)
        self._pass(momentum, u, g, [slots["momentum_buffer"].reshape(-1)], momentum_scalars)
        o = newton_schulz(u.reshape(seg.shape), group["ns_coefficients"], group["ns_steps"], group["eps"])
        self._pass(update, p, np.ascontiguousarray(o).reshape(-1), [], update_scalars)
