"""State I/O: ``state_dict`` and ``load_state_dict``.

The state is saved by parameter name (not position): step counts, state slots (copies) and host scalars, the
groups' hyperparameters, and the schedule's position. Loading validates everything first (names, shapes,
dtypes, finite and non-negative values, the schedule on a trial copy); on error nothing changes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from numbers import Real
from typing import Any, ClassVar

import numpy as np

from . import lowp
from ._checks import check_range
from .flat import FlatBuffer, Run, Segment
from .schedules import Schedule


class StateIO:
    """Mixin of ``Optimizer``: saving and restoring its state (it uses the parameter store's buffers, the
    optimizer's ``_check``/``_plan``/``_slot_fill`` and its schedule)."""

    _STRUCTURE: ClassVar[tuple[str, ...]]
    param_groups: list[dict[str, Any]]
    _flats: list[list[FlatBuffer]]
    _where: dict[str, tuple[FlatBuffer, Segment]]
    _schedule: Schedule | None
    _schedule_t: int
    _base_lrs: list[float]
    kahan_sum: bool

    def _state_keys(self, group: dict[str, Any], dtype: np.dtype) -> set[str]:
        """What a tensor's state entry may hold for ``group``: ``step``, its slots and its host scalars."""
        run = Run(dtype, {}, {})
        _, slots, _ = self._plan(group, run, 1)
        comp = [lowp.KAHAN] if self.kahan_sum and dtype == lowp.BFLOAT16 else []
        return {"step", *slots, *(s + lowp.SCALE for s in slots), *run.scalars, *comp}

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {name: {"step": t, slot: array}}, "param_groups": [{hyper..., "params": [names]}]}``.

        Arrays are copies, keyed by parameter name (not position).
        """
        state: dict[str, dict[str, Any]] = {}
        for flats in self._flats:
            for flat in flats:
                for i, seg in enumerate(flat.segments):
                    if flat.steps[i] == 0 and not flat.state:
                        continue
                    entry: dict[str, Any] = {"step": flat.steps[i]}
                    for k, arr in flat.state.items():
                        entry.update(lowp.entries(flat, i, k, arr) if flat.lowp else {k: seg.view(arr).copy()})
                    entry.update(flat.scalars[i])
                    state[seg.name] = entry
        groups = []
        for group in self.param_groups:
            saved = copy.deepcopy({k: v for k, v in group.items() if k not in self._STRUCTURE})
            saved["params"] = list(group["param_names"])
            groups.append(saved)
        saved: dict[str, Any] = {"type": type(self).__name__, "state": state, "param_groups": groups}
        if self._schedule is not None:
            saved["schedule"] = {
                "type": type(self._schedule).__name__, "t": self._schedule_t, "base_lrs": list(self._base_lrs),
                "state": copy.deepcopy(self._schedule.state_dict()),
            }  # fmt: skip
        return saved

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters, step counts and state slots saved by ``state_dict``.

        Everything is checked first (names, shapes, consistent steps); on error nothing changes.
        """
        saved_type = state_dict.get("type", type(self).__name__)
        if saved_type != type(self).__name__:
            raise ValueError(f"state_dict is of a {saved_type} optimizer; this one is a {type(self).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups)} param groups, optimizer has {len(self.param_groups)}")
        new_groups = []
        for i, (ours, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if list(saved["params"]) != ours["param_names"]:
                raise ValueError(f"param group {i}: saved names {saved['params']} != {ours['param_names']}")
            hyper = copy.deepcopy({k: v for k, v in saved.items() if k not in self._STRUCTURE})
            group = {**ours, **hyper}
            self._check(group)
            new_groups.append(group)
        schedule = state_dict.get("schedule")
        trial = self._trial_schedule(schedule)
        saved_state = state_dict["state"]
        unknown = [n for n in saved_state if n not in self._where]
        if unknown:
            raise KeyError(f"state_dict has state for unknown parameters {unknown}")
        for group, flats in zip(new_groups, self._flats):
            for flat in flats:
                known = self._state_keys(group, flat.dtype)
                for seg in flat.segments:
                    extra = sorted(set(saved_state.get(seg.name, {})) - known)
                    if extra:
                        raise KeyError(
                            f"state[{seg.name!r}] has entries {extra} that {type(self).__name__} with these "
                            f"hyperparameters does not keep (it keeps {sorted(known)})"
                        )
        restored = [
            [_gather_state(flat, saved_state, lambda slot, g=group: self._slot_fill(g, slot)) for flat in flats]
            for group, flats in zip(new_groups, self._flats)
        ]
        for flats, states in zip(self._flats, restored):
            for flat, (steps, slots, scalars) in zip(flats, states):
                flat.steps, flat.state, flat.scalars = steps, slots, scalars
                flat.uniform = len(set(steps)) == 1 and all(s == scalars[0] for s in scalars)
        for ours, group in zip(self.param_groups, new_groups):
            ours.update(group)
        if schedule is not None:
            self._schedule_t, self._base_lrs = int(schedule["t"]), [float(x) for x in schedule["base_lrs"]]
            self._schedule.load_state_dict(trial)  # type: ignore[union-attr]
            self._apply_schedule()

    def _trial_schedule(self, saved: Any) -> Any:
        """Validate a saved schedule entry completely (on a copy of the schedule) before anything is replaced;
        returns the schedule state to load."""
        if saved is None:
            return None
        if not isinstance(saved, Mapping) or not {"type", "t", "base_lrs", "state"} <= set(saved):
            raise ValueError("state_dict['schedule'] must hold 'type', 't', 'base_lrs' and 'state'")
        if type(self._schedule).__name__ != saved["type"]:
            raise ValueError(f"state_dict has a {saved['type']} schedule: attach one (opt.schedule = ...) first")
        _check_count("state_dict['schedule']['t']", saved["t"])
        base = saved["base_lrs"]
        if not isinstance(base, (list, tuple)) or len(base) > len(self.param_groups):
            raise ValueError(f"state_dict['schedule']['base_lrs'] must be a list of at most one lr per group: {base!r}")
        for i, lr in enumerate(base):
            check_range(f"state_dict['schedule']['base_lrs'][{i}]", lr, 0.0)
        state = copy.deepcopy(saved["state"])
        try:
            copy.deepcopy(self._schedule).load_state_dict(copy.deepcopy(state))  # type: ignore[union-attr]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"state_dict['schedule']['state'] does not fit {saved['type']}: {err}") from err
        return state


NONNEGATIVE_SLOTS = lowp.NONNEGATIVE_SLOTS
"""Slots that hold second moments or accumulators of squares: a negative value is corrupt (√ of it is NaN)."""


def _gather_state(
    flat: FlatBuffer, saved: Mapping[str, Any], fill: Any
) -> tuple[list[int], dict[str, np.ndarray], list[dict[str, float]]]:
    """Assemble the flat state of ``flat`` from per-name entries, validating each value.

    Array entries are state slots (a tensor without an entry gets the slot's initial value), plain numbers
    other than ``step`` are host scalars.
    """
    entries = [saved.get(seg.name) or {} for seg in flat.segments]
    for seg, e in zip(flat.segments, entries):
        if not isinstance(e, Mapping):
            raise TypeError(f"state[{seg.name!r}] must be a dict, got {type(e).__name__}")
    names = {k for e in entries for k, v in e.items() if isinstance(v, np.ndarray) and not k.endswith(lowp.SCALE)}
    slots = {}
    for slot in sorted(names):
        arr = np.full(flat.size, fill(slot), dtype=lowp.compute_dtype(flat.dtype))
        for seg, e in zip(flat.segments, entries):
            if slot not in e:
                continue
            where = f"state[{seg.name!r}][{slot!r}]"
            value = lowp.entry_values(e, slot, seg.shape, where)  # low-precision codes: dequantized, explicitly
            if value.shape != seg.shape:
                raise ValueError(f"{where} has shape {value.shape}, expected {seg.shape}")
            if value.dtype.kind != "f":
                raise TypeError(f"{where} has dtype {value.dtype}; a state slot holds real floating-point values")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{where} holds NaN or infinite values")
            if slot in NONNEGATIVE_SLOTS and np.any(value < 0):
                raise ValueError(f"{where} holds negative values; it accumulates squares, so it must be >= 0")
            seg.view(arr)[...] = value
        slots[slot] = lowp.quantize(flat, slot, arr) if flat.lowp else arr  # quantized, explicitly
    steps = [_check_count(f"state[{seg.name!r}]['step']", e.get("step", 0)) for seg, e in zip(flat.segments, entries)]
    scalars = []
    for seg, e in zip(flat.segments, entries):
        found = {}
        for k, v in e.items():
            if k == "step" or isinstance(v, np.ndarray):
                continue
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (Real, np.floating, np.integer)):
                raise TypeError(f"state[{seg.name!r}][{k!r}] must be a real number, got {v!r}")
            if not math.isfinite(float(v)):
                raise ValueError(f"state[{seg.name!r}][{k!r}] must be finite, got {v!r}")
            found[k] = float(v)
        scalars.append(found)
    return steps, slots, scalars


def _check_count(name: str, value: Any) -> int:
    """A step count: an integer >= 0 (not a bool, a float or a string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)
