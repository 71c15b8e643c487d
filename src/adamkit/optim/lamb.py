"""LAMB (You et al., "Large Batch Optimization for Deep Learning"): Adam's direction, scaled per tensor by a
trust ratio ‖p‖/‖u‖. Three phases: an elementwise pass writes the direction ``u``, a per-tensor reduction takes
``‖p‖`` and ``‖u‖``, and a per-tensor map applies ``p ← p − lr_t·r_k·u``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_bool, check_range
from ..elementwise import elementwise
from ..flat import Run
from ..optimizer import Job, Params, Plan
from ..phases import PhasedOptimizer, member_gradient, prepare_segment_map, segment_map, segment_sums_of_squares
from ..reduce import sum_of_squares
from .common import check_betas, check_common, direction, with_defaults

DEFAULTS = {"torch": dict(lr=1e-3, eps=1e-6, weight_decay=0.0)}
CLAMP = 10.0
"""The weight norm is clamped to at most this (pytorch_optimizer's ``Lamb.clamp``)."""
REFUSED = {"foreach": "adamkit's LAMB always runs its own kernels; drop the argument"}
"""pytorch_optimizer ``Lamb`` arguments adamkit refuses, and why."""


@elementwise
def lamb_update(p, m, v, eps, l2, adaptive, rectified, shift):
    """``d = m/(√v + ε)`` (or ``d = m`` when not ``adaptive``); ``u = d + l2·p``, or ``u = p − shift·d`` when
    ``rectified`` (the vector whose norm enters the trust ratio)."""
    d = m / (np.sqrt(v) + eps) if adaptive else m
    if rectified:
        return p - shift * d
    if l2 != 0:
        d = d + l2 * p
    return d


@elementwise
def lamb_direction(p, g, m, v, u, beta1, beta3, beta2, beta2_c, eps, l2, decay, gscale, adaptive, rectified, shift,
                   adanorm):  # fmt: skip
    """``p ← decay·p;  g ← gscale·g;  v ← β2·v + (1−β2)·g²;  m ← β1·m + β3·g;  u ← lamb_update(p, m, v)``. With
    ``adanorm`` the first moment waits for the tensor's AdaNorm scale (:func:`adanorm_direction`): ``u ← g``."""
    p, g = decay * p, gscale * g
    v = beta2 * v + beta2_c * g * g
    if adanorm:
        return p, m, v, g
    m = beta1 * m + beta3 * g
    return p, m, v, lamb_update(p, m, v, eps, l2, adaptive, rectified, shift)


@elementwise
def adanorm_direction(p, m, v, u, beta1, beta3, e, norm, scaled, eps, l2, adaptive, rectified, shift):
    """AdaNorm: ``m ← β1·m + β3·s`` with ``s = g·e/‖g‖`` where ``scaled`` (``‖g‖ > 0`` and ``e > ‖g‖``), else
    ``s = g`` (``u`` holds ``g``, ``e`` and ``‖g‖`` are the tensor's); then ``u ← lamb_update(p, m, v)``."""
    s = u * e / norm if scaled else u
    m = beta1 * m + beta3 * s
    return p, m, v, lamb_update(p, m, v, eps, l2, adaptive, rectified, shift)


@elementwise
def trust_step(p, u, coef):
    """``p ← p − coef·u`` (``coef = lr_t·r``, one value per tensor; ``u`` only read)."""
    return (p - coef * u,)


@elementwise
def rectified_trust_step(p, m, v, coef, eps, adaptive):
    """``p ← p − coef·m/(√v + ε)`` (``adaptive``) or ``p ← p − coef·m`` (``coef = step·r``, one per tensor;
    ``m``, ``v`` only read)."""
    if adaptive:
        return (p - coef * m / (np.sqrt(v) + eps),)
    return (p - coef * m,)


def trust_ratios(weight_norm: np.ndarray, update_norm: np.ndarray, eps: float) -> np.ndarray:
    """``r = min(‖p‖, 10)/(‖u‖ + ε)``, and 1 where either norm is 0."""
    weight_norm = np.minimum(weight_norm, CLAMP)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = weight_norm / (update_norm + eps)
    return np.where((weight_norm != 0) & (update_norm != 0), ratio, 1.0)


def moment_and_decay(group: dict[str, Any]) -> tuple[float, float, float]:
    """``(β3, l2, decay)``: the gradient's weight in ``m`` (``1−β1`` with grad_averaging, else 1), the coupled
    decay added to ``u`` (none when rectified, as the reference) and the factor on ``p``."""
    beta3 = 1 - group["betas"][0] if group["grad_averaging"] else 1.0
    wd = group["weight_decay"]
    if group["weight_decouple"]:
        return beta3, 0.0, 1.0 - wd * (1.0 if group["fixed_decay"] else group["lr"])
    return beta3, (0.0 if group["rectify"] else wd), 1.0


def rectified_step_size(lr: float, beta2: float, t: int, n_sma_threshold: float, degenerated_to_sgd: bool) -> tuple:
    """RAdam's rectification (pytorch_optimizer's ``get_rectify_step_size``): ``(lr·r_t, adaptive)``, where
    ``ρ_∞ = 2/(1−β2) − 1``, ``ρ_t = ρ_∞ − 2t·β2ᵗ/(1−β2ᵗ)``; ``adaptive = ρ_t ≥ threshold`` and then
    ``r_t = √((1−β2ᵗ)·(ρ_t−4)/(ρ_∞−4)·(ρ_t−2)/ρ_t·ρ_∞/(ρ_∞−2))``, else 1 (``degenerated_to_sgd``) or −1."""
    n_sma_max = 2.0 / (1.0 - beta2) - 1.0
    beta2_t = beta2**t
    n_sma = n_sma_max - 2 * t * beta2_t / (1.0 - beta2_t)
    if n_sma >= n_sma_threshold:
        rt = math.sqrt(
            (1.0 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max / (n_sma_max - 2)
        )
        return lr * rt, True
    return lr * (1.0 if degenerated_to_sgd else -1.0), False


class LAMB(PhasedOptimizer):
    r"""LAMB; the semantics, defaults and options of pytorch_optimizer 4.1's ``Lamb`` (version 3 of the paper, no
    second moment bias correction). With ``g`` negated when ``maximize`` and ``β3 = 1−β1`` (``grad_averaging``)
    or 1; ``s = lr/(1−β1ᵗ)`` (``lr`` with ``adam_debias``)::

        g ← g·min(1, max_grad_norm/(‖g‖_global + ε))     (pre_norm, the norm over every parameter, in float32)
        p ← (1 − lr·λ)·p                 (weight_decouple, default; (1 − λ)·p with fixed_decay)
        m ← β1·m + β3·g                  v ← β2·v + (1−β2)·g²
        u ← m/(√v + ε)  (+ λ·p when not weight_decouple)
        r ← min(‖p‖, 10)/(‖u‖ + ε)   per tensor; 1 where ‖p‖ or ‖u‖ is 0, or always with adam=True
        p ← p − s·r·u

    ``rectify=True`` (RAdam's rectification, :func:`rectified_step_size`): ``s`` is multiplied by ``r_t``; while
    ``ρ_t < n_sma_threshold`` the direction is ``m`` itself (``degenerated_to_sgd``) or the update is skipped
    (only the moments and the decay happen); the trust ratio takes the norm of ``p − s·d`` instead of ``u``, and
    coupled weight decay (``weight_decouple=False``) has no effect — all as the reference does.

    State slots: ``exp_avg``, ``exp_avg_sq`` (``u`` is scratch, never saved). Differences from the reference:
    ``pre_norm`` takes each group's ``max_grad_norm`` and ``eps`` (the reference: the constructor's);
    ``foreach`` is refused (``REFUSED``).

    ``adanorm=True`` (AdaNorm, the reference's keyword): per tensor, ``e ← r·e + (1−r)·‖g‖`` (``adanorm_r``,
    ``e`` from 0, kept as the host scalar ``exp_grad_adanorm``), and the first moment takes ``g·e/‖g‖`` instead
    of ``g`` where ``e > ‖g‖ > 0``.
    """

    _SCRATCH = frozenset({"update"})

    def __init__(
        self,
        params: Params = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        weight_decouple: bool = True,
        fixed_decay: bool = False,
        rectify: bool = False,
        degenerated_to_sgd: bool = False,
        n_sma_threshold: float = 5,
        grad_averaging: bool = True,
        max_grad_norm: float = 1.0,
        adam: bool = False,
        pre_norm: bool = False,
        eps: float = 1e-6,
        *,
        adam_debias: bool = False,
        adanorm: bool = False,
        adanorm_r: float = 0.95,
        maximize: bool = False,
        convention: str = "torch",
        engine: str = "fused",
        nonfinite: str = "ignore",
        **unsupported: Any,
    ):
        refuse_unsupported(unsupported)
        defaults = with_defaults(
            DEFAULTS, convention, lr=lr, betas=betas, weight_decay=weight_decay,
            weight_decouple=weight_decouple, fixed_decay=fixed_decay, rectify=rectify,
            degenerated_to_sgd=degenerated_to_sgd, n_sma_threshold=n_sma_threshold, grad_averaging=grad_averaging,
            max_grad_norm=max_grad_norm, adam=adam, pre_norm=pre_norm, eps=eps, adam_debias=adam_debias,
            adanorm=adanorm, adanorm_r=adanorm_r, maximize=maximize,
        )  # fmt: skip
        self._grad_sq: float | None = None
        super().__init__(params, defaults, engine=engine, nonfinite=nonfinite)

    def _check(self, group: dict[str, Any]) -> None:
        check_common(group, tuple(DEFAULTS))
        check_betas(group["betas"])
        check_range("eps", group["eps"], 0.0)
        check_range("max_grad_norm", group["max_grad_norm"], 0.0)
        check_range("n_sma_threshold", group["n_sma_threshold"], 0.0)
        check_range("adanorm_r", group["adanorm_r"], 0.0, 1.0)
        flags = ("weight_decouple", "fixed_decay", "rectify", "degenerated_to_sgd", "grad_averaging", "adam",
                 "pre_norm", "adam_debias", "adanorm")  # fmt: skip
        for flag in flags:
            check_bool(flag, group[flag])

    def _step(self, grads: Any, skip: frozenset[str]) -> None:
        self._grad_sq = None  # the global gradient norm of this step, taken by the first _jobs (after the hooks)
        try:
            super()._step(grads, skip)
        finally:
            self._grad_sq = None

    def _jobs(self, group, flat, skip, sources):  # noqa: ANN001, ANN202 (as Optimizer._jobs)
        if self._grad_sq is None and any(g["pre_norm"] for g in self.param_groups):
            self._grad_sq = self._global_grad_sq(skip, sources)
        return super()._jobs(group, flat, skip, sources)

    def _global_grad_sq(self, skip: frozenset[str], sources: Any) -> float:
        """pytorch_optimizer's ``get_global_gradient_norm``: each tensor's norm rounded to float32 and squared, the
        squares summed in float32 in the order torch sums a short vector (see :func:`float32_sum`)."""
        squares = [
            np.float32(math.sqrt(sum_of_squares([member_gradient(flat, i, sources)]))) ** 2
            for _, flat in self.flat_buffers()
            for i, seg in enumerate(flat.segments)
            if seg.name not in skip
        ]
        return float32_sum(squares)

    def _grad_scale(self, group: dict[str, Any]) -> float:
        """The ``pre_norm`` factor ``min(1, max_grad_norm/(√Σ + ε))`` in float32, as torch evaluates it (a scalar
        over a tensor is the tensor's reciprocal times the scalar); 1 without pre_norm."""
        if not group["pre_norm"] or group["max_grad_norm"] == 0.0 or self._grad_sq is None:
            return 1.0
        f32 = np.float32
        norm = f32(np.sqrt(f32(self._grad_sq))) + f32(group["eps"])
        return float(min(f32(1.0), (f32(1.0) / norm) * f32(group["max_grad_norm"])))

    def _step_size(self, group: dict[str, Any], t: int) -> tuple[float, bool]:
        """``(s, adaptive)``: the step size ``lr·r_t/(1−β1ᵗ)`` and whether the direction divides by ``√v + ε``."""
        (beta1, beta2), lr = group["betas"], group["lr"]
        step, adaptive = lr, True
        if group["rectify"]:
            step, adaptive = rectified_step_size(lr, beta2, t, group["n_sma_threshold"], group["degenerated_to_sgd"])
        return (step if group["adam_debias"] else step / (1.0 - math.pow(beta1, t))), adaptive

    def _plan(self, group: dict[str, Any], run: Run, t: int) -> Plan:
        beta1, beta2 = group["betas"]
        beta3, l2, decay = moment_and_decay(group)
        step, adaptive = self._step_size(group, t)
        gscale = direction(group) * self._grad_scale(group)
        if group["adanorm"]:
            run.scalars.setdefault("exp_grad_adanorm", 0.0)  # per tensor: the later phase sets it (member_scalars)
        scalars = (beta1, beta3, beta2, 1 - beta2, group["eps"], l2, decay, gscale, adaptive, group["rectify"], step,
                   group["adanorm"])  # fmt: skip
        return lamb_direction, ("exp_avg", "exp_avg_sq", "update"), scalars

    def _prepare_finish(self, group: dict[str, Any], dtype: np.dtype) -> None:
        if group["adanorm"]:
            prepare_segment_map(self.engine, adanorm_direction, 3, ("e", "norm", "scaled"))
        if group["rectify"]:
            prepare_segment_map(self.engine, rectified_trust_step, 2, ("coef",), writes=1)
        else:
            prepare_segment_map(self.engine, trust_step, 1, ("coef",), writes=1)

    def _finish(self, group: dict[str, Any], job: Job) -> None:
        step, adaptive = self._step_size(group, job.t)
        (m, v, u), x = job.slots, job.flat.dtype.type
        tensors = job.flat.tensors(job.members)
        if group["adanorm"]:
            self._adanorm(group, job, tensors, step, adaptive)
        if group["rectify"] and step <= 0:  # the reference stops after the moments and the decay
            return
        weight_sq, update_sq = segment_sums_of_squares(tensors, [None, u])
        ratio = trust_ratios(np.sqrt(weight_sq), np.sqrt(update_sq), group["eps"])
        if group["adam"]:
            ratio = np.ones_like(ratio)
        coef = (step * ratio).astype(job.flat.dtype)
        if group["rectify"]:
            scalars = {"coef": coef, "eps": x(group["eps"]), "adaptive": adaptive}
            segment_map(self.engine, rectified_trust_step, tensors, [m, v], scalars, writes=1)
        else:
            segment_map(self.engine, trust_step, tensors, [u], {"coef": coef}, writes=1)

    def _adanorm(self, group: dict[str, Any], job: Job, tensors: Any, step: float, adaptive: bool) -> None:
        """AdaNorm's phase: ``‖g‖`` per tensor (``u`` holds ``g``), ``e ← r·e + (1−r)·‖g‖`` in the parameters'
        dtype (the reference keeps ``e`` in a tensor), then the first moment and ``u`` (``adanorm_direction``)."""
        flat, x = job.flat, job.flat.dtype.type
        members = job.members if job.members is not None else range(len(flat.segments))
        (norm_sq,) = segment_sums_of_squares(tensors, [job.slots[2]])
        norm = np.sqrt(norm_sq).astype(flat.dtype)
        r = group["adanorm_r"]
        e = np.array([flat.scalars[i].get("exp_grad_adanorm", 0.0) for i in members], dtype=flat.dtype)
        e = e * x(r) + x(1.0 - r) * norm
        beta3, l2, _ = moment_and_decay(group)
        scalars = {"beta1": x(group["betas"][0]), "beta3": x(beta3), "e": e, "norm": norm,
                   "scaled": (norm > 0) & (e > norm), "eps": x(group["eps"]), "l2": x(l2), "adaptive": adaptive,
                   "rectified": group["rectify"], "shift": x(step)}  # fmt: skip
        segment_map(self.engine, adanorm_direction, tensors, job.slots, scalars)
        job.member_scalars = {i: {"exp_grad_adanorm": float(value)} for i, value in zip(members, e)}


def float32_sum(values: list) -> float:
    """``Σ values`` in float32 in torch's order for a short CPU vector: four interleaved partial sums
    (``acc[i mod 4]``), then ``((acc0 + acc1) + acc2) + acc3``. (Past a few dozen values torch vectorizes and the
    last bit may differ.)"""
    acc = [np.float32(0.0)] * 4
    for i, value in enumerate(values):
        acc[i % 4] = np.float32(acc[i % 4] + np.float32(value))
    return float(np.float32(np.float32(np.float32(acc[0] + acc[1]) + acc[2]) + acc[3]))


def refuse_unsupported(options: dict[str, Any]) -> None:
    """Refuse pytorch_optimizer ``Lamb`` options adamkit does not offer, and unknown names."""
    for name, value in options.items():
        if name in REFUSED:
            raise ValueError(f"LAMB: {name}={value!r} is not supported ({REFUSED[name]})")
        raise TypeError(f"LAMB got an unexpected keyword argument {name!r}")
