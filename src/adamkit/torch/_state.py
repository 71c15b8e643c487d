"""torch.optim's state format ↔ the core's: integer-keyed entries of tensors ↔ name-keyed entries of arrays.

torch.optim keeps, per parameter, ``step`` as a 0-d float tensor (SGD keeps none), each slot as a tensor shaped
like the parameter (complex parameters: complex slots), and host scalars such as NAdam's ``mu_product`` as 0-d
tensors. The core keeps ``step`` as an int, slots as arrays of the real view, host scalars as floats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.optim.optimizer import _get_scalar_dtype


class State(defaultdict):
    """``defaultdict(dict)`` keyed by parameter, as torch.optim's ``self.state``, remembering which
    entries were assigned from outside (ZeroRedundancyOptimizer writes ``optim.state[p] = ...``)."""

    def __init__(self, value: Any = None):
        super().__init__(dict)
        if isinstance(value, Mapping):
            dict.update(self, value)
        self.written: set[int] = set()
        self.replaced = False  # the whole mapping came from load_state_dict

    def __setitem__(self, key: Any, value: Any) -> None:
        self.written.add(id(key))
        super().__setitem__(key, value)


def scalar_tensor(value: float) -> torch.Tensor:
    """A 0-d tensor in torch.optim's scalar dtype (float32, float64 when that is the default dtype)."""
    return torch.tensor(float(value), dtype=_get_scalar_dtype())


def steps_done(entry: Mapping[str, Any]) -> int:
    """The number of steps a state entry has taken. torch's SGD keeps no step count: an entry (its momentum
    buffer) exists only after a step, and SGD needs no more than that."""
    step = entry.get("step")
    if step is None:
        return 1 if entry else 0
    return int(step.item() if isinstance(step, torch.Tensor) else step)


def export_entry(
    core: Mapping[str, Any] | None,
    param: torch.Tensor,
    host_scalars: tuple[str, ...],
    stores_step: bool,
    eager: dict[str, float],
    floats: bool = False,
) -> dict[str, Any] | None:
    """torch.optim's entry for ``param`` from the core's (None: torch would have no entry); host scalars as 0-d
    tensors, or as Python floats (``floats``: torch's ``load_state_dict`` would cast a tensor to the parameter's
    dtype)."""
    step = int(core["step"]) if core else 0
    if step == 0 and not eager:
        return None
    entry: dict[str, Any] = {"step": scalar_tensor(step)} if stores_step else {}
    for key, value in (core or {}).items():
        if key == "step":
            continue
        if key in host_scalars:
            entry[key] = float(value) if floats else scalar_tensor(value)
        else:
            tensor = torch.from_numpy(np.asarray(value))
            entry[key] = torch.view_as_complex(tensor) if param.is_complex() else tensor
    for slot, fill in eager.items():
        entry.setdefault(slot, torch.full_like(param.detach(), fill))
    return entry or None


def import_entry(entry: Mapping[str, Any], host_scalars: tuple[str, ...]) -> dict[str, Any]:
    """The core's entry (``step`` int, slots as arrays, host scalars as floats) from torch.optim's."""
    out: dict[str, Any] = {"step": steps_done(entry)}
    for key, value in entry.items():
        if key == "step":
            continue
        if key in host_scalars:
            out[key] = float(value)
        elif isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            value = torch.view_as_real(value) if value.is_complex() else value
            out[key] = (value if value.dtype in (torch.float32, torch.float64) else value.double()).numpy()
        else:
            raise TypeError(f"state entry {key!r} must be a tensor, got {type(value).__name__}")
    return out
