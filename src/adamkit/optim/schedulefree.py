"""Schedule-Free AdamW (Defazio et al., "The Road Less Scheduled"): no learning-rate schedule; the parameters
interpolate between a fast iterate ``z`` and their running average ``x``. ``train()``/``eval()`` swap between
the point gradients are taken at (``y``) and the averaged point to evaluate (``x``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..engine import ENGINES
from ..factored import torch_lerp
from ..flat import Run
from ..optimizer import Optimizer, Params, Plan, _cast
from .common import check_betas, check_common, direction, with_defaults

DEFAULTS = {"torch": dict(lr=0.0025, eps=1e-8, weight_decay=0.0)}


@elementwise
def schedulefree_adamw_rule(y, g, z, v, first, ckp1, ckp1_c, ckp1_low, y_coef, lr, beta2, beta2_c, bc2, eps, wd,
                            decay, sign):  # fmt: skip
    """``v ← β2·v + (1−β2)·g²;  ĝ = g/(√(v/bc2) + ε) + λ·y;  y ← lerp(y, z, c) + y_coef·ĝ;  z ← z − lr·ĝ``
    (``z ← y`` first, on a tensor's first step)."""
    y, g = decay * y, sign * g
    if first:
        z = y
    v = beta2 * v + beta2_c * g * g
    gn = g / (np.sqrt(v / bc2) + eps)
    if wd != 0:
        gn = gn + wd * y
    y = torch_lerp(y, z, ckp1, ckp1_c, ckp1_low) + y_coef * gn
    return y, z - lr * gn, v


@elementwise
def toward_z(p, g, z, w, w_c, low):
    """``p ← lerp(p, z, w)`` (``g`` unused): the swap between the training and the averaged point."""
    return torch_lerp(p, z, w, w_c, low), z


class ScheduleFreeAdamW(Optimizer):
    r"""Schedule-Free AdamW; the semantics and defaults of schedulefree 1.4's ``AdamWScheduleFree``.

    At step ``t = k+1`` with ``lr_t = lr·min(1, t/warmup_steps)``, ``lr_max = max_{s≤t} lr_s``,
    ``w_t = t^r · lr_max^weight_lr_power`` and ``c_t = w_t / Σ_{s≤t} w_s``::

        v ← β2·v + (1−β2)·g²            ĝ = g/(√(v/(1−β2ᵗ)) + ε) + λ·y
        y ← (1−c_t)·y + c_t·z + lr_t·(β1·(1−c_t) − 1)·ĝ
        z ← z − lr_t·ĝ                  (z starts as a copy of y)

    ``y`` (the parameters while training) is where gradients are taken; ``x = (y − (1−β1)·z)/β1`` is the average
    to evaluate. ``opt.eval()`` puts ``x`` into the parameters, ``opt.train()`` puts ``y`` back (call ``eval()``
    before evaluating or saving a checkpoint). Unlike the reference, a new optimizer starts in training mode
    (the reference requires ``train()`` first, which is a no-op before the first step); a step in eval mode is
    refused. State slots: ``z``, ``exp_avg_sq``; host scalars ``lr_max``, ``weight_sum``.
    """

    def __init__(
        self,
        params: Params = None,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        *,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
        nonfinite: str = "ignore",
    ):
        defaults = with_defaults(
            DEFAULTS, convention, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power, maximize=maximize, train_mode=True,
        )  # fmt: skip
        super().__init__(params, defaults, engine=engine, nonfinite=nonfinite)

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(DEFAULTS))
        check_betas(group["betas"])
        if group["betas"][0] == 0:
            raise ValueError("betas[0] must be in (0, 1) for ScheduleFreeAdamW (eval() divides by it), got 0")
        check_range("eps", group["eps"], 0.0)
        steps = group["warmup_steps"]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {steps!r}")
        check_range("r", group["r"], 0.0)
        check_range("weight_lr_power", group["weight_lr_power"], 0.0)
        check_bool("train_mode", group["train_mode"])

    def _step(self, grads: Any, skip: frozenset[str]) -> None:
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(
                "ScheduleFreeAdamW is in eval mode (its parameters hold the averaged point): call opt.train() "
                "before stepping"
            )
        super()._step(grads, skip)

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        (beta1, beta2), warmup = group["betas"], group["warmup_steps"]
        lr = group["lr"] * (t / warmup if t - 1 < warmup else 1.0)
        lr_max = max(lr, run.scalars.get("lr_max", -1.0))
        weight = t ** group["r"] * lr_max ** group["weight_lr_power"]
        weight_sum = run.scalars.get("weight_sum", 0.0) + weight
        ckp1 = weight / weight_sum if weight_sum else 0.0
        run.scalars.update(lr_max=lr_max, weight_sum=weight_sum)
        scalars = (
            t == 1, ckp1, 1 - ckp1, ckp1 < 0.5, lr * (beta1 * (1 - ckp1) - 1), lr, beta2, 1 - beta2,
            1 - beta2**t, group["eps"], group["weight_decay"], 1.0, direction(group),
        )  # fmt: skip
        return schedulefree_adamw_rule, ("z", "exp_avg_sq"), scalars

    def train(self) -> None:
        """Put the training point ``y = (1−β1)·z + β1·x`` into the parameters (no-op if already training)."""
        self._swap(True)

    def eval(self) -> None:
        """Put the averaged point ``x`` into the parameters, for evaluation or a checkpoint (no-op if there)."""
        self._swap(False)

    def _swap(self, train: bool) -> None:
        for group, flats in zip(self.param_groups, self._flats):
            if group["train_mode"] == train:
                continue
            beta1 = group["betas"][0]
            w = 1 - beta1 if train else 1 - 1 / beta1
            for flat in flats:
                members = [i for i, step in enumerate(flat.steps) if step > 0]
                if members and "z" in flat.state:
                    scalars = _cast((w, 1 - w, abs(w) < 0.5), flat.dtype, ("w", "w_c", "low"), type(self).__name__)
                    ENGINES[self.engine](toward_z, flat.tensors(members), flat.grad, [flat.state["z"]], scalars)
            group["train_mode"] = train
