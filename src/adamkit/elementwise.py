"""The ``@elementwise`` marker for update rules.

A rule is a plain Python function of scalars, written like the paper's algorithm box. It stays a plain
function, so the NumPy engine calls it on whole arrays; numba's ``register_jitable`` additionally lets the
fused engine inline it into its per-element loop. The math therefore exists exactly once.

Rules must take every constant as an argument (no numeric literals such as ``1 - beta``): numba would
promote a float64 literal and turn float32 arithmetic into float64, while NumPy keeps float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from numba.extending import register_jitable

F = TypeVar("F", bound=Callable)


def elementwise(rule: F) -> F:
    """Mark ``rule`` as usable both on NumPy arrays and inside numba kernels."""
    return register_jitable(rule)
