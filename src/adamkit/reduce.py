"""Reductions with a fixed order: the same bytes whatever the thread count or BLAS.

Each array is cut into chunks of ``flat.CHUNK`` elements; each chunk is summed by :func:`lane_sum_of_squares`
in float64 (threads take whole chunks), and the chunk sums are added in order. ``np.linalg.norm`` instead uses
BLAS, whose blocking (and so rounding) depends on the number of BLAS threads.
"""

from __future__ import annotations

from collections.abc import Iterable

import ml_dtypes
import numba
import numpy as np

from .codecs import as_float
from .engine import PARALLEL_MIN_SIZE, process_safe
from .flat import CHUNK

LANES = 8
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def lane_sum_of_squares(x: np.ndarray) -> float:  # pragma: no cover (numba)
    """``Σ x²`` of the 1-D ``x`` in float64, in a fixed order: element ``j`` into lane ``j mod 8`` (the tail
    into lane 0), the lanes added pairwise (eight sums in flight: SIMD, not one long dependency chain)."""
    acc = np.zeros(LANES)
    tail = x.shape[0] - x.shape[0] % LANES
    for j0 in range(0, tail, LANES):
        for lane in range(LANES):
            v = np.float64(x[j0 + lane])
            acc[lane] += v * v
    for j in range(tail, x.shape[0]):
        v = np.float64(x[j])
        acc[0] += v * v
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


def _chunk_sums(x: np.ndarray, chunk: int) -> np.ndarray:  # pragma: no cover (numba)
    n = (x.shape[0] + chunk - 1) // chunk
    out = np.zeros(n, dtype=np.float64)
    for c in numba.prange(n):
        out[c] = lane_sum_of_squares(x[c * chunk : min((c + 1) * chunk, x.shape[0])])
    return out


# The parallel kernel, made safe after fork and across threads (see adamkit.engine) with a serial twin (same
# order of additions; not disk-cached: numba would key both compilations of one function to the same cache entry).
_chunk_sums_of_squares = process_safe(
    numba.njit(parallel=True, nogil=True, cache=True)(_chunk_sums), numba.njit(nogil=True)(_chunk_sums)
)


@numba.njit(nogil=True, cache=True)
def _small_chunk_sums(x: np.ndarray, chunk: int) -> np.ndarray:  # pragma: no cover (numba)
    """``_chunk_sums`` for arrays below ``PARALLEL_MIN_SIZE`` (waking the thread pool costs more than the sum)."""
    n = (x.shape[0] + chunk - 1) // chunk
    out = np.zeros(n, dtype=np.float64)
    for c in range(n):
        out[c] = lane_sum_of_squares(x[c * chunk : min((c + 1) * chunk, x.shape[0])])
    return out


def sum_of_squares(arrays: Iterable[np.ndarray]) -> float:
    """``Σ x²`` over every element of ``arrays`` (1-D), in float64, in a fixed order."""
    total = 0.0
    for x in arrays:
        if x.size:
            kernel = _chunk_sums_of_squares if x.size >= PARALLEL_MIN_SIZE else _small_chunk_sums
            for part in kernel(np.ascontiguousarray(x).reshape(-1), CHUNK):
                total += float(part)
    return total


def _nonfinite(x: np.ndarray, chunk: int) -> int:  # pragma: no cover (numba)
    n = (x.shape[0] + chunk - 1) // chunk
    bad = 0
    for c in numba.prange(n):
        for i in range(c * chunk, min((c + 1) * chunk, x.shape[0])):
            if not np.isfinite(as_float(x[i])):
                bad += 1
    return bad


_count_nonfinite = process_safe(  # as _chunk_sums_of_squares
    numba.njit(parallel=True, nogil=True, cache=True)(_nonfinite), numba.njit(nogil=True)(_nonfinite)
)


def all_finite(x: np.ndarray) -> bool:
    """Whether every element of the 1-D ``x`` is finite (one parallel read; bf16 arrays read as their words)."""
    if x.dtype == BFLOAT16:
        x = x.view(np.uint16)
    return x.size == 0 or _count_nonfinite(np.ascontiguousarray(x).reshape(-1), CHUNK) == 0
