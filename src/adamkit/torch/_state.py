"""torch.optim's state format ↔ the core's: integer-keyed entries of tensors ↔ name-keyed entries of arrays.

torch.optim keeps, per parameter, ``step`` as a 0-d float tensor (SGD keeps none), each slot as a tensor shaped
like the parameter (complex parameters: complex slots), and host scalars such as NAdam's ``mu_product`` as 0-d
tensors. The core keeps ``step`` as an int, slots as arrays of the real view, host scalars as floats.

Low-precision state (``state_dtype``, bfloat16 parameters) is shown as plain tensors too: bf16 slots as
``torch.bfloat16`` tensors (the core's uint16 words, same bits), int8 slots as ``torch.int8``/``torch.uint8``
codes beside a float32 ``"<slot>.scale"`` tensor of block scales. ``torch.save``/``torch.load(weights_only=True)``
take them as they are.
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


def hold(state: Mapping[Any, Any], ids: set[Any]) -> tuple[dict[Any, Any], dict[Any, dict[Any, Any]]]:
    """Split out the entries of the saved parameter ``ids`` (those the core holds), all but ``step``:
    ``torch.optim.Optimizer.load_state_dict`` would cast them to the parameter's dtype (int8 codes and float32
    block scales into floats, float32 state into bf16); the core converts explicitly instead. Returns the state
    without them, and them."""
    rest: dict[Any, Any] = {}
    held: dict[Any, dict[Any, Any]] = {}
    for pid, entry in state.items():
        if pid in ids and isinstance(entry, Mapping):
            rest[pid] = {k: v for k, v in entry.items() if k == "step"}
            held[pid] = {k: v for k, v in entry.items() if k != "step"}
        else:
            rest[pid] = entry
    return rest, held


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
            tensor = _words_to_tensor(np.asarray(value))
            entry[key] = torch.view_as_complex(tensor) if param.is_complex() else tensor
    for slot, fill in eager.items():
        entry.setdefault(slot, torch.full_like(param.detach(), fill))
    return entry or None


def _words_to_tensor(value: np.ndarray) -> torch.Tensor:
    """A state array as a tensor: bf16 words (uint16) as ``torch.bfloat16``, anything else as it is."""
    if value.dtype == np.uint16:
        return torch.from_numpy(value.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(value)


def _tensor_to_words(value: torch.Tensor) -> np.ndarray:
    """A state tensor as the core reads it: bf16 as its uint16 words, int8/uint8 codes and float32/64 as they
    are, other floats (float16) as float64."""
    if value.dtype == torch.bfloat16:
        return value.contiguous().view(torch.int16).numpy().view(np.uint16)
    if value.dtype in (torch.float32, torch.float64, torch.int8, torch.uint8):
        return value.numpy()
    return value.double().numpy()


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
            out[key] = _tensor_to_words(value)
        else:
            raise TypeError(f"state entry {key!r} must be a tensor, got {type(value).__name__}")
    return out
