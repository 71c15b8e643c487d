"""Pieces of math and checks that several optimizer families share."""

from __future__ import annotations

from typing import Any

from .._checks import check_bool, check_choice, check_range
from ..elementwise import elementwise

CONVENTIONS = ("torch", "keras")


@elementwise
def l2_gradient(p, g, sign, weight_decay):
    """``sign·g + λ·p``: the (maximize-aware) gradient with an L2 term folded in, as torch.optim does."""
    return sign * g + weight_decay * p


def direction(group: dict[str, Any]) -> float:
    """+1 to minimize, -1 to maximize."""
    return -1.0 if group["maximize"] else 1.0


def check_common(group: dict[str, Any], conventions: tuple[str, ...] = CONVENTIONS) -> None:
    """Checks every optimizer shares: lr ≥ 0, weight_decay ≥ 0, maximize a bool, a known convention."""
    check_range("lr", group["lr"], 0.0)
    check_range("weight_decay", group["weight_decay"], 0.0)
    check_bool("maximize", group["maximize"])
    check_choice("convention", group["convention"], conventions)


def check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (
        check_range("betas[0]", betas[0], 0.0, 1.0, high_open=True),
        check_range("betas[1]", betas[1], 0.0, 1.0, high_open=True),
    )
