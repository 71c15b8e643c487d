"""Adafactor (Shazeer & Stern), as torch.optim.Adafactor: a factored second moment for tensors of 2 or more
dimensions, relative step sizes and update clipping. Each tensor is one job: its norm, its row/column (or full)
second moment, the norm of its direction, then ``p ← decay·p − coef·u``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_range
from ..factored import (
    decayed_step,
    factored_apply,
    factored_direction_norm2,
    full_apply,
    full_direction_norm2,
    row_col_sums_of_squares,
    rows_sum_of_squares,
    scaled_direction,
    torch_lerp,
)
from ..flat import FlatBuffer, Segment
from ..optimizer import Params, _cast
from ..phases import PerTensorOptimizer
from ..reduce import sum_of_squares
from .common import check_common, direction, with_defaults

DEFAULTS = {"torch": dict(lr=1e-2, weight_decay=0.0)}


def factored_shapes(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The state slots of a tensor and their shapes (torch's): row and column factors for ≥ 2-D, else full."""
    if len(shape) >= 2:
        return {"row_var": (*shape[:-1], 1), "col_var": (*shape[:-2], 1, shape[-1])}
    return {"variance": shape}


class Adafactor(PerTensorOptimizer):
    r"""Adafactor; torch.optim.Adafactor's semantics and defaults. At step ``t`` of a tensor of ``n`` elements,
    with ``g`` negated when ``maximize`` and ``ε1`` the dtype's machine epsilon unless given::

        β2_t = t^beta2_decay      ρ_t = min(lr, 1/√t)      α = max(ε2, ‖p‖/√n) · ρ_t
        p ← (1 − lr·λ)·p                                            (weight_decay: decoupled)
        ≥ 2-D, as B matrices R × C:   r ← lerp(r, mean_j g², β2_t);  c ← lerp(c, mean_i g², β2_t)
                                      v̂ = r·cᵀ / max(mean_i r, ε1)
        else:                         v ← lerp(v, g², β2_t);  v̂ = v
        u = g / √max(v̂, ε1²)          p ← p − α / max(1, ‖u‖/(√n·d)) · u

    State: ``row_var`` (shape ``(..., R, 1)``) and ``col_var`` (``(..., 1, C)``) for ≥ 2-D tensors, ``variance``
    for the others (torch's names and shapes). Empty tensors are left alone (torch divides by zero on them).
    """

    _NONNEGATIVE = frozenset({"row_var", "col_var", "variance"})

    def __init__(
        self,
        params: Params = None,
        lr: float = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
        nonfinite: str = "ignore",
    ):
        defaults = with_defaults(
            DEFAULTS, convention, lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
            maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults, engine=engine, nonfinite=nonfinite)

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(DEFAULTS))
        check_range("beta2_decay", group["beta2_decay"], -math.inf, 0.0)
        eps = group["eps"]
        if not isinstance(eps, (tuple, list)) or len(eps) != 2:
            raise ValueError(f"eps must be a pair (eps1 or None, eps2), got {eps!r}")
        if eps[0] is not None:
            check_range("eps[0]", eps[0], 0.0)
        check_range("eps[1]", eps[1], 0.0)
        check_range("d", group["d"], 1.0)

    def _slot_shapes(self, group: dict[str, Any], shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return factored_shapes(shape)

    def _preflight(self, group: dict[str, Any], flat: FlatBuffer, seg: Segment, t: int, decay: float) -> None:
        eps1 = group["eps"][0] if group["eps"][0] is not None else float(np.finfo(flat.dtype).eps)
        names = ("decay", "eps1_sq", "lr")
        _cast(((1 - group["lr"] * group["weight_decay"]) * decay, eps1 * eps1, group["lr"]), flat.dtype, names,
              type(self).__name__)  # fmt: skip

    def _tensor_step(
        self, group: dict[str, Any], flat: FlatBuffer, i: int, seg: Segment, g: np.ndarray, factors: dict, t: int,
        decay_hooks: float,
    ) -> None:  # fmt: skip
        """One torch.optim.Adafactor update of tensor ``i``."""
        n = seg.size
        if n == 0:
            return
        x = flat.dtype.type
        p = flat.params[i].reshape(-1)
        g = g.reshape(-1)
        lr, (eps1, eps2) = group["lr"], group["eps"]
        eps1 = float(np.finfo(flat.dtype).eps) if eps1 is None else eps1
        w = float(t) ** group["beta2_decay"]
        rho = min(lr, 1 / float(t) ** 0.5)
        alpha = max(eps2, math.sqrt(sum_of_squares([p])) / n**0.5) * rho
        decay = (1 - lr * group["weight_decay"]) * decay_hooks
        common = (x(eps1 * eps1), x(1), x(direction(group)))
        lerp_args = (x(w), x(1 - w), w < 0.5)
        numpy = self.engine == "numpy"
        if len(seg.shape) >= 2:
            b, r, c = math.prod(seg.shape[:-2]), seg.shape[-2], seg.shape[-1]
            row_sq, col_sq = row_col_sums_of_squares(g, b, r, c)
            row_mean = np.sqrt(row_sq).astype(flat.dtype) ** 2 / x(c)  # torch: norm(dim=-1).square_().div_(C)
            col_mean = np.sqrt(col_sq).astype(flat.dtype) ** 2 / x(r)
            rows, cols = factors["row_var"].reshape(-1), factors["col_var"].reshape(-1)
            rows[...] = torch_lerp(rows, row_mean, *lerp_args)
            cols[...] = torch_lerp(cols, col_mean, *lerp_args)
            rmean = np.maximum(rows.reshape(b, r).astype(np.float64).sum(axis=1) / r, eps1).astype(flat.dtype)
            if numpy:
                var = factors["row_var"].reshape(b, r, 1) * factors["col_var"].reshape(b, 1, c) / rmean[:, None, None]
                u = scaled_direction(g.reshape(b, r, c), var, *common).reshape(-1)
            else:
                norm2 = factored_direction_norm2(g, rows, cols, rmean, r, c, *common)
        else:
            v = factors["variance"].reshape(-1)
            if numpy:
                v[...] = torch_lerp(v, g * g, *lerp_args)
                u = scaled_direction(g, v, *common)
            else:
                norm2 = full_direction_norm2(g, v, *lerp_args, *common)
        if numpy:
            norm2 = rows_sum_of_squares(u, b, r, c) if len(seg.shape) >= 2 else sum_of_squares([u])
        coef = alpha / max(1.0, math.sqrt(norm2) / (n**0.5 * group["d"]))
        if numpy:
            p[...] = decayed_step(p, u, x(decay), x(coef))
        elif len(seg.shape) >= 2:
            factored_apply(p, g, rows, cols, rmean, r, c, *common, x(decay), x(coef))
        else:
            full_apply(p, g, v, *common, x(decay), x(coef))
