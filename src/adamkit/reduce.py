"""Reductions with a fixed order: the same bytes whatever the thread count or BLAS.

Each array is cut into chunks of ``flat.CHUNK`` elements; each chunk is summed serially in float64 (threads take
whole chunks), and the chunk sums are added in order. ``np.linalg.norm`` instead uses BLAS, whose blocking (and
so rounding) depends on the number of BLAS threads.
"""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np

from .flat import CHUNK


@numba.njit(parallel=True, nogil=True, cache=True)
def _chunk_sums_of_squares(x: np.ndarray, chunk: int) -> np.ndarray:  # pragma: no cover (numba)
    n = (x.shape[0] + chunk - 1) // chunk
    out = np.zeros(n, dtype=np.float64)
    for c in numba.prange(n):
        total = 0.0
        for i in range(c * chunk, min((c + 1) * chunk, x.shape[0])):
            v = np.float64(x[i])
            total += v * v
        out[c] = total
    return out


def sum_of_squares(arrays: Iterable[np.ndarray]) -> float:
    """``Σ x²`` over every element of ``arrays`` (1-D), in float64, in a fixed order."""
    total = 0.0
    for x in arrays:
        if x.size:
            for part in _chunk_sums_of_squares(np.ascontiguousarray(x).reshape(-1), CHUNK):
                total += float(part)
    return total


@numba.njit(parallel=True, nogil=True, cache=True)
def _count_nonfinite(x: np.ndarray, chunk: int) -> int:  # pragma: no cover (numba)
    n = (x.shape[0] + chunk - 1) // chunk
    bad = 0
    for c in numba.prange(n):
        for i in range(c * chunk, min((c + 1) * chunk, x.shape[0])):
            if not np.isfinite(x[i]):
                bad += 1
    return bad


def all_finite(x: np.ndarray) -> bool:
    """Whether every element of the 1-D ``x`` is finite (one parallel read)."""
    return x.size == 0 or _count_nonfinite(np.ascontiguousarray(x).reshape(-1), CHUNK) == 0
