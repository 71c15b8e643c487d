"""Factored second moments (Adafactor): per-row and per-column statistics of a tensor's trailing 2-D view.

A tensor of shape ``(..., R, C)`` is seen as ``B`` matrices ``R × C``. Its second moment is kept as a row factor
``r`` (``B·R`` values) and a column factor ``c`` (``B·C`` values); the estimate at ``(b, i, j)`` is
``r[b,i]·c[b,j] / mean_i r[b,i]``. Everything here reduces in float64 in a fixed order (rows: left to right;
columns: top to bottom; whole tensors: ``flat.CHUNK`` chunks, serially inside, added in order, as
``adamkit.reduce``), so both engines and every thread count give the same bytes. The elementwise maps exist once
(``@elementwise``): the NumPy engine calls them on arrays, the fused kernels here call them per element.
"""

from __future__ import annotations

import numba
import numpy as np

from .elementwise import elementwise
from .engine import PARALLEL_MIN_SIZE, process_safe
from .flat import CHUNK

BLOCK = 64
"""Columns per parallel task when summing columns (contiguous reads, a fixed order down each column)."""


@elementwise
def torch_lerp(x, end, w, w_c, low):
    """torch's ``lerp``: ``x + w·(end − x)`` for ``|w| < ½`` (``low``), else ``end − (end − x)·(1 − w)``."""
    if low:
        return x + w * (end - x)
    return end - (end - x) * w_c


@elementwise
def scaled_direction(g, var, eps1_sq, one, sign):
    """``u = (sign·g) / √max(var, ε1²)`` (torch: ``clamp(var, ε1²).rsqrt() · g``)."""
    return (one / np.sqrt(np.maximum(var, eps1_sq))) * (sign * g)


@elementwise
def decayed_step(p, u, decay, coef):
    """``p ← decay·p − coef·u``."""
    return decay * p - coef * u


def _row_col_sums(g: np.ndarray, b: int, r: int, c: int) -> tuple:  # pragma: no cover (numba)
    """``(rows[b·R], cols[b·C])``: Σ g² along each row and each column of the ``B × R × C`` view of 1-D ``g``."""
    rows = np.zeros(b * r, dtype=np.float64)
    cols = np.zeros(b * c, dtype=np.float64)
    for bi in numba.prange(b * r):
        total = 0.0
        for j in range(c):
            v = np.float64(g[bi * c + j])
            total += v * v
        rows[bi] = total
    blocks = (c + BLOCK - 1) // BLOCK
    for task in numba.prange(b * blocks):
        k, start = task // blocks, (task % blocks) * BLOCK
        stop = min(start + BLOCK, c)
        acc = np.zeros(BLOCK, dtype=np.float64)
        for i in range(r):
            base = (k * r + i) * c
            for j in range(start, stop):
                v = np.float64(g[base + j])
                acc[j - start] += v * v
        for j in range(start, stop):
            cols[k * c + j] = acc[j - start]
    return rows, cols


# safe after fork and across threads (see adamkit.engine), with a serial twin (not disk-cached, as adamkit.reduce)
row_col_sums_of_squares = process_safe(
    numba.njit(parallel=True, nogil=True, cache=True)(_row_col_sums), numba.njit(nogil=True)(_row_col_sums)
)


@numba.njit(inline="always")
def _factored_var(rows, cols, rmean, idx, r, c):  # noqa: ANN001, ANN202 (numba)
    bi, j = idx // c, idx % c
    k = bi // r
    return rows[bi] * cols[k * c + j] / rmean[k]


@numba.njit(inline="always")
def _factored_sums(ch, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    total = 0.0
    for idx in range(ch * CHUNK, min((ch + 1) * CHUNK, g.shape[0])):
        u = np.float64(scaled_direction(g[idx], _factored_var(rows, cols, rmean, idx, r, c), eps1_sq, one, sign))
        total += u * u
    out[ch] = total


@numba.njit(inline="always")
def _factored_apply(ch, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202
    for idx in range(ch * CHUNK, min((ch + 1) * CHUNK, g.shape[0])):
        var = _factored_var(rows, cols, rmean, idx, r, c)
        p[idx] = decayed_step(p[idx], scaled_direction(g[idx], var, eps1_sq, one, sign), decay, coef)


@numba.njit(inline="always")
def _full_sums(ch, out, g, v, w, w_c, low, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    total = 0.0
    for i in range(ch * CHUNK, min((ch + 1) * CHUNK, g.shape[0])):
        v[i] = torch_lerp(v[i], g[i] * g[i], w, w_c, low)
        u = np.float64(scaled_direction(g[i], v[i], eps1_sq, one, sign))
        total += u * u
    out[ch] = total


@numba.njit(inline="always")
def _full_apply(ch, p, g, v, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for i in range(ch * CHUNK, min((ch + 1) * CHUNK, g.shape[0])):
        p[i] = decayed_step(p[i], scaled_direction(g[i], v[i], eps1_sq, one, sign), decay, coef)


def _chunks(n: int) -> int:
    return (n + CHUNK - 1) // CHUNK


@numba.njit(nogil=True, cache=True)
def _factored_sums_serial(out, g, rows, cols, rmean, r, c, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for ch in range(out.shape[0]):
        _factored_sums(ch, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign)


@numba.njit(parallel=True, nogil=True, cache=True)
def _factored_sums_parallel(out, g, rows, cols, rmean, r, c, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for ch in numba.prange(out.shape[0]):
        _factored_sums(ch, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign)


@numba.njit(nogil=True, cache=True)
def _factored_apply_serial(n, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for ch in range(n):
        _factored_apply(ch, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef)


@numba.njit(parallel=True, nogil=True, cache=True)
def _factored_apply_parallel(n, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for ch in numba.prange(n):
        _factored_apply(ch, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef)


@numba.njit(nogil=True, cache=True)
def _full_sums_serial(out, g, v, w, w_c, low, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for ch in range(out.shape[0]):
        _full_sums(ch, out, g, v, w, w_c, low, eps1_sq, one, sign)


@numba.njit(parallel=True, nogil=True, cache=True)
def _full_sums_parallel(out, g, v, w, w_c, low, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for ch in numba.prange(out.shape[0]):
        _full_sums(ch, out, g, v, w, w_c, low, eps1_sq, one, sign)


@numba.njit(nogil=True, cache=True)
def _full_apply_serial(n, p, g, v, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for ch in range(n):
        _full_apply(ch, p, g, v, eps1_sq, one, sign, decay, coef)


@numba.njit(parallel=True, nogil=True, cache=True)
def _full_apply_parallel(n, p, g, v, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for ch in numba.prange(n):
        _full_apply(ch, p, g, v, eps1_sq, one, sign, decay, coef)


_factored_sums_parallel = process_safe(_factored_sums_parallel, _factored_sums_serial)
_factored_apply_parallel = process_safe(_factored_apply_parallel, _factored_apply_serial)
_full_sums_parallel = process_safe(_full_sums_parallel, _full_sums_serial)
_full_apply_parallel = process_safe(_full_apply_parallel, _full_apply_serial)


def factored_direction_norm2(g, rows, cols, rmean, r, c, eps1_sq, one, sign) -> float:  # noqa: ANN001
    """``Σ u²`` (fixed order) with ``u = scaled_direction(g, r·c/mean r)``; ``u`` is not stored."""
    out = np.zeros(_chunks(g.shape[0]))
    kernel = _factored_sums_parallel if g.shape[0] >= PARALLEL_MIN_SIZE else _factored_sums_serial
    kernel(out, g, rows, cols, rmean, r, c, eps1_sq, one, sign)
    return ordered_total(out)


def factored_apply(p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef) -> None:  # noqa: ANN001
    """``p ← decay·p − coef·u``, ``u`` recomputed as in :func:`factored_direction_norm2`."""
    kernel = _factored_apply_parallel if g.shape[0] >= PARALLEL_MIN_SIZE else _factored_apply_serial
    kernel(_chunks(g.shape[0]), p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef)


def full_direction_norm2(g, v, w, w_c, low, eps1_sq, one, sign) -> float:  # noqa: ANN001
    """``v ← lerp(v, g², w)``, then ``Σ u²`` (fixed order) with ``u = scaled_direction(g, v)``."""
    out = np.zeros(_chunks(g.shape[0]))
    kernel = _full_sums_parallel if g.shape[0] >= PARALLEL_MIN_SIZE else _full_sums_serial
    kernel(out, g, v, w, w_c, low, eps1_sq, one, sign)
    return ordered_total(out)


def full_apply(p, g, v, eps1_sq, one, sign, decay, coef) -> None:  # noqa: ANN001
    """``p ← decay·p − coef·u``, ``u = scaled_direction(g, v)``."""
    kernel = _full_apply_parallel if g.shape[0] >= PARALLEL_MIN_SIZE else _full_apply_serial
    kernel(_chunks(g.shape[0]), p, g, v, eps1_sq, one, sign, decay, coef)


def ordered_total(chunk_sums: np.ndarray) -> float:
    """The chunk sums added in order (as ``adamkit.reduce.sum_of_squares``)."""
    total = 0.0
    for part in chunk_sums:
        total += float(part)
    return total
