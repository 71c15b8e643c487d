"""Factored second moments (Adafactor): per-row and per-column statistics of a tensor's trailing 2-D view.

A tensor of shape ``(..., R, C)`` is seen as ``B`` matrices ``R × C``. Its second moment is kept as a row factor
``r`` (``B·R`` values) and a column factor ``c`` (``B·C`` values); the estimate at ``(b, i, j)`` is
``r[b,i]·c[b,j] / mean_i r[b,i]``. Everything here reduces in float64 in a fixed order (a row: eight lanes,
``reduce.lane_sum_of_squares``; columns: bands of ``BAND`` rows top to bottom, the bands added in order; a
factored direction's norm: its rows in order; 1-D tensors: ``flat.CHUNK`` chunks added in order, as
``adamkit.reduce``), so both engines and every thread count give the same bytes. Parallel tasks are whole bands
of rows or chunks; ``g`` is read once per pass (row/column sums, the direction's norm, the update). The
elementwise maps exist once (``@elementwise``): the NumPy engine calls them on arrays, the fused kernels here
call them per element.
"""

from __future__ import annotations

import numba
import numpy as np

from .elementwise import elementwise
from .engine import PARALLEL_MIN_SIZE, process_safe
from .flat import CHUNK
from .reduce import lane_sum_of_squares

BAND = 16
"""Rows per parallel task of the row/column sums (each band's column sums are added band after band)."""


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


_jit = numba.njit(nogil=True, cache=True, error_model="numpy")  # row helpers: called (not inlined) from the
# parallel loops, so that LLVM vectorizes them as ordinary functions (inlined into a prange body, it did not)


@_jit
def _add_sq(acc, x):  # noqa: ANN001, ANN202 (numba)
    """``acc[j] += x[j]²`` in float64."""
    for j in range(x.shape[0]):
        v = np.float64(x[j])
        acc[j] += v * v


@_jit
def _direction_row(u, g, col, rv, rm, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    """``u = scaled_direction(g, rv·col/rm)`` over one row."""
    for j in range(g.shape[0]):
        u[j] = scaled_direction(g[j], rv * col[j] / rm, eps1_sq, one, sign)


@_jit
def _apply_row(p, g, col, rv, rm, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    """``p ← decayed_step(p, u)`` over one row, ``u`` as in ``_direction_row``."""
    for j in range(g.shape[0]):
        p[j] = decayed_step(p[j], scaled_direction(g[j], rv * col[j] / rm, eps1_sq, one, sign), decay, coef)


def _bands(b: int, r: int) -> int:
    """How many parallel tasks (bands of ``BAND`` rows, none across matrices) a ``B × R × C`` tensor has."""
    return b * ((r + BAND - 1) // BAND)


@numba.njit(inline="always")
def _band(task, r):  # noqa: ANN001, ANN202 (numba)
    """``(k, first row, end row)`` of band ``task``: rows ``k·R + i`` for ``i`` in ``[first, end)``."""
    per = (r + BAND - 1) // BAND
    k, band = task // per, task % per
    return k, band * BAND, min((band + 1) * BAND, r)


def _row_col_sums(g: np.ndarray, b: int, r: int, c: int) -> tuple:  # pragma: no cover (numba)
    """``(rows[b·R], cols[b·C])``: Σ g² along each row and each column of the ``B × R × C`` view of 1-D ``g``:
    bands of ``BAND`` rows in parallel, each band's column sums kept apart and added in band order."""
    per = (r + BAND - 1) // BAND
    rows = np.zeros(b * r, dtype=np.float64)
    partial = np.zeros((b * per, c), dtype=np.float64)
    for task in numba.prange(b * per):
        k, first, end = _band(task, r)
        for i in range(first, end):
            row = g[(k * r + i) * c : (k * r + i + 1) * c]
            rows[k * r + i] = lane_sum_of_squares(row)
            _add_sq(partial[task], row)
    cols = np.zeros(b * c, dtype=np.float64)
    for k in range(b):
        for band in range(per):
            part = partial[k * per + band]
            for j in range(c):
                cols[k * c + j] += part[j]
    return rows, cols


# safe after fork and across threads (see adamkit.engine), with a serial twin (not disk-cached, as adamkit.reduce)
row_col_sums_of_squares = process_safe(
    numba.njit(parallel=True, nogil=True, cache=True)(_row_col_sums), numba.njit(nogil=True)(_row_col_sums)
)


@numba.njit(inline="always")
def _rows_sq(task, out, u, r, c):  # noqa: ANN001, ANN202 (numba)
    """``out[row]``: Σ u² over each row of band ``task`` of ``u`` (1-D, rows of ``c``)."""
    k, first, end = _band(task, r)
    for i in range(k * r + first, k * r + end):
        out[i] = lane_sum_of_squares(u[i * c : (i + 1) * c])


@numba.njit(inline="always")
def _factored_sums(task, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    """As ``_rows_sq`` over ``u = scaled_direction(g, r·c/mean r)``, ``u`` kept one row at a time."""
    k, first, end = _band(task, r)
    u = np.empty(c, dtype=g.dtype)
    for i in range(k * r + first, k * r + end):
        _direction_row(u, g[i * c : (i + 1) * c], cols[k * c : (k + 1) * c], rows[i], rmean[k], eps1_sq, one, sign)
        out[i] = lane_sum_of_squares(u)


@numba.njit(inline="always")
def _factored_apply(task, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202
    k, first, end = _band(task, r)
    for i in range(k * r + first, k * r + end):
        a, b = i * c, (i + 1) * c
        _apply_row(p[a:b], g[a:b], cols[k * c : (k + 1) * c], rows[i], rmean[k], eps1_sq, one, sign, decay, coef)


@_jit
def _full_direction(u, g, v, w, w_c, low, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    """``v ← lerp(v, g², w)``, ``u = scaled_direction(g, v)`` over one chunk."""
    for i in range(g.shape[0]):
        v[i] = torch_lerp(v[i], g[i] * g[i], w, w_c, low)
        u[i] = scaled_direction(g[i], v[i], eps1_sq, one, sign)


@_jit
def _full_apply_chunk(p, g, v, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for i in range(g.shape[0]):
        p[i] = decayed_step(p[i], scaled_direction(g[i], v[i], eps1_sq, one, sign), decay, coef)


@numba.njit(inline="always")
def _full_sums(ch, out, g, v, w, w_c, low, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    """``out[ch]``: Σ u² over chunk ``ch`` (as ``reduce.lane_sum_of_squares``), ``v`` updated on the way."""
    a, b = ch * CHUNK, min((ch + 1) * CHUNK, g.shape[0])
    u = np.empty(b - a, dtype=g.dtype)
    _full_direction(u, g[a:b], v[a:b], w, w_c, low, eps1_sq, one, sign)
    out[ch] = lane_sum_of_squares(u)


@numba.njit(inline="always")
def _full_apply(ch, p, g, v, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    a, b = ch * CHUNK, min((ch + 1) * CHUNK, g.shape[0])
    _full_apply_chunk(p[a:b], g[a:b], v[a:b], eps1_sq, one, sign, decay, coef)


def _chunks(n: int) -> int:
    return (n + CHUNK - 1) // CHUNK


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _rows_sq_serial(n, out, u, r, c):  # noqa: ANN001, ANN202 (numba)
    for task in range(n):
        _rows_sq(task, out, u, r, c)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _rows_sq_parallel(n, out, u, r, c):  # noqa: ANN001, ANN202 (numba)
    for task in numba.prange(n):
        _rows_sq(task, out, u, r, c)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _factored_sums_serial(n, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for task in range(n):
        _factored_sums(task, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _factored_sums_parallel(n, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for task in numba.prange(n):
        _factored_sums(task, out, g, rows, cols, rmean, r, c, eps1_sq, one, sign)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _factored_apply_serial(n, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for task in range(n):
        _factored_apply(task, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _factored_apply_parallel(n, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for task in numba.prange(n):
        _factored_apply(task, p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _full_sums_serial(out, g, v, w, w_c, low, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for ch in range(out.shape[0]):
        _full_sums(ch, out, g, v, w, w_c, low, eps1_sq, one, sign)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _full_sums_parallel(out, g, v, w, w_c, low, eps1_sq, one, sign):  # noqa: ANN001, ANN202 (numba)
    for ch in numba.prange(out.shape[0]):
        _full_sums(ch, out, g, v, w, w_c, low, eps1_sq, one, sign)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _full_apply_serial(n, p, g, v, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for ch in range(n):
        _full_apply(ch, p, g, v, eps1_sq, one, sign, decay, coef)


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _full_apply_parallel(n, p, g, v, eps1_sq, one, sign, decay, coef):  # noqa: ANN001, ANN202 (numba)
    for ch in numba.prange(n):
        _full_apply(ch, p, g, v, eps1_sq, one, sign, decay, coef)


_rows_sq_parallel = process_safe(_rows_sq_parallel, _rows_sq_serial)
_factored_sums_parallel = process_safe(_factored_sums_parallel, _factored_sums_serial)
_factored_apply_parallel = process_safe(_factored_apply_parallel, _factored_apply_serial)
_full_sums_parallel = process_safe(_full_sums_parallel, _full_sums_serial)
_full_apply_parallel = process_safe(_full_apply_parallel, _full_apply_serial)


def rows_sum_of_squares(u: np.ndarray, b: int, r: int, c: int) -> float:
    """``Σ u²`` over the 1-D ``u`` seen as ``B × R × C``: each row by ``reduce.lane_sum_of_squares``, the rows
    added in order (the order :func:`factored_direction_norm2` uses; for the NumPy engine)."""
    out = np.zeros(b * r)
    (_rows_sq_parallel if u.shape[0] >= PARALLEL_MIN_SIZE else _rows_sq_serial)(_bands(b, r), out, u, r, c)
    return ordered_total(out)


def factored_direction_norm2(g, rows, cols, rmean, r, c, eps1_sq, one, sign) -> float:  # noqa: ANN001
    """``Σ u²`` (as :func:`rows_sum_of_squares`) with ``u = scaled_direction(g, r·c/mean r)``; ``u`` not stored."""
    out = np.zeros(rows.shape[0])
    kernel = _factored_sums_parallel if g.shape[0] >= PARALLEL_MIN_SIZE else _factored_sums_serial
    kernel(_bands(rows.shape[0] // r, r), out, g, rows, cols, rmean, r, c, eps1_sq, one, sign)
    return ordered_total(out)


def factored_apply(p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef) -> None:  # noqa: ANN001
    """``p ← decay·p − coef·u``, ``u`` recomputed as in :func:`factored_direction_norm2`."""
    kernel = _factored_apply_parallel if g.shape[0] >= PARALLEL_MIN_SIZE else _factored_apply_serial
    kernel(_bands(rows.shape[0] // r, r), p, g, rows, cols, rmean, r, c, eps1_sq, one, sign, decay, coef)


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


@numba.njit(nogil=True, cache=True, error_model="numpy")
def ordered_total(chunk_sums: np.ndarray) -> float:  # pragma: no cover (numba)
    """The chunk (or row) sums added in order (as ``adamkit.reduce.sum_of_squares``)."""
    total = 0.0
    for part in chunk_sums:
        total += part
    return total
