"""Optimizer step in backward: each parameter is stepped as soon as autograd has accumulated its gradient."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ._base import TorchOptimizer


def step_in_backward(
    model: torch.nn.Module | Iterable[torch.Tensor], optimizer: TorchOptimizer
) -> list[torch.utils.hooks.RemovableHandle]:
    """Step each of ``model``'s parameters inside ``loss.backward()``, right after its gradient is accumulated
    (``register_post_accumulate_grad_hook``); its gradient is then zeroed in place, ready for the next backward.

    The training loop becomes ``loss.backward()`` alone (no ``optimizer.step()``, no ``zero_grad()``); the
    result equals the ordinary loop's. Parameters that get no gradient in a backward are not stepped, as
    torch.optim skips grad-None parameters. Returns the hook handles (``handle.remove()`` undoes it).
    """
    if not isinstance(optimizer, TorchOptimizer):
        raise TypeError(f"optimizer must be an adamkit.torch optimizer, got {type(optimizer).__name__}")
    params = model.parameters() if isinstance(model, torch.nn.Module) else model
    owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
    handles = []
    for p in params:
        if not p.requires_grad:
            continue
        if id(p) not in owned:
            raise ValueError(f"a parameter of shape {tuple(p.shape)} is not in the optimizer's param_groups")
        handles.append(p.register_post_accumulate_grad_hook(optimizer._step_one))
    return handles
