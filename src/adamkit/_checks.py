"""Argument checks shared by every optimizer: each error names the argument and its allowed range."""

from __future__ import annotations

import math
from numbers import Real


def check_range(name: str, value: object, low: float, high: float = math.inf, *, high_open: bool = False) -> float:
    """Return ``value`` as a float if ``low <= value <= high`` (``< high`` when ``high_open``).

    NaN fails every comparison, so it is refused too; an unbounded range ``[low, inf)`` refuses inf itself.
    """
    high_open = high_open or high == math.inf
    bracket = ")" if high_open or high == math.inf else "]"
    allowed = f"[{low:g}, {high:g}{bracket}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number in {allowed}, got {value!r}")
    v = float(value)
    above = v >= high if high_open else v > high
    if not (v >= low) or above:
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return v


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value  # type: ignore[return-value]


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value
