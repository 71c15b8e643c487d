"""The storage codecs of adamkit.codecs: error bounds, monotonicity, zero, no zero-point, bf16 against ml_dtypes,
NumPy ≡ numba bit for bit, stochastic rounding unbiased and reproducible."""

from __future__ import annotations

import ml_dtypes
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adamkit import codecs as C

FLOATS = st.floats(width=32, allow_nan=False, allow_infinity=False)
BF16 = np.dtype(ml_dtypes.bfloat16)


@numba.njit
def _numba_bf16(x, out):
    for i in range(x.size):
        out[i] = C.bf16_encode(x[i])


@numba.njit
def _numba_bf16_decode(w, out):
    for i in range(w.size):
        out[i] = C.bf16_decode(w[i])


@numba.njit
def _numba_int8(x, inv, scale, signed, codes, out):
    for i in range(x.size):
        if signed:
            c = C.signed8_encode(x[i], inv[i])
            codes[i] = c
            out[i] = C.signed8_decode(np.int8(c), scale[i])
        else:
            c = C.unsigned8_encode(x[i], inv[i])
            codes[i] = c
            out[i] = C.unsigned8_decode(np.uint8(c), scale[i])


@numba.njit
def _numba_stochastic(x, key, field, out):
    for i in range(x.size):
        out[i] = C.bf16_round_stochastic(x[i], C.random16(C.counter_hash(key, i, field // 2), field % 2))


def _wide_floats(n: int, seed: int = 0) -> np.ndarray:
    """float32 values of both signs over the whole exponent range (subnormals and zeros included)."""
    bits = np.random.default_rng(seed).integers(0, 0x7F800000, n, dtype=np.uint32)
    x = bits.view(np.float32) * np.where(np.arange(n) % 2, -1, 1).astype(np.float32)
    x[:4] = [0.0, -0.0, np.finfo(np.float32).tiny, -np.finfo(np.float32).max]
    return x


# -------------------------------------------------------------------------------------------------- bf16
def test_bf16_round_to_nearest_even_matches_ml_dtypes_over_the_float_range():
    x = np.concatenate([_wide_floats(1 << 18), [np.inf, -np.inf, np.nan], np.arange(-300, 300, dtype=np.float32)])
    x = x.astype(np.float32)
    expected = x.astype(BF16).view(np.uint16)  # ml_dtypes' own conversion: the independent oracle
    ours = C.bf16_encode(x)
    fused = np.empty_like(ours)
    _numba_bf16(x, fused)
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(fused, expected)
    decoded = np.empty(x.size, np.float32)
    _numba_bf16_decode(expected, decoded)
    oracle = expected.view(BF16).astype(np.float32)
    np.testing.assert_array_equal(C.bf16_decode(expected).view(np.uint32), oracle.view(np.uint32))
    np.testing.assert_array_equal(decoded.view(np.uint32), C.bf16_decode(expected).view(np.uint32))


def test_bf16_ties_go_to_even():
    one_and_half_unit = np.array([1 + 2**-8, 1 + 3 * 2**-8], np.float32)  # halfway between bf16 neighbours
    np.testing.assert_array_equal(C.bf16_decode(C.bf16_encode(one_and_half_unit)), [1.0, 1 + 2 * 2**-7])


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 64), elements=FLOATS))
def test_bf16_round_trip_within_its_bound(x):
    y = C.bf16_decode(C.bf16_encode(x))
    normal = np.abs(x) >= np.finfo(np.float32).tiny
    finite = np.isfinite(y)
    ok = normal & finite
    assert np.all(np.abs(y[ok].astype(np.float64) - x[ok]) <= 2.0**-8 * np.abs(x[ok].astype(np.float64)))
    assert np.all(np.sign(y[normal]) == np.sign(x[normal]))


# -------------------------------------------------------------------------------------------------- int8
def _int8_round_trip(x: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Encode ``x`` as one block (absmax scale) with the NumPy code, decode; check numba gives the same bits."""
    scale = np.float32(np.max(np.abs(x))) if x.size else np.float32(0)
    inv = C.inverse_scale(scale)
    encode, decode = (C.signed8_encode, C.signed8_decode) if signed else (C.unsigned8_encode, C.unsigned8_decode)
    codes = encode(x, np.full(x.size, inv, np.float32))
    y = decode(codes, np.full(x.size, scale, np.float32))
    fused_codes, fused = np.empty_like(codes), np.empty(x.size, np.float32)
    _numba_int8(x, np.full(x.size, inv, np.float32), np.full(x.size, scale, np.float32), signed, fused_codes, fused)
    np.testing.assert_array_equal(fused_codes, codes)
    np.testing.assert_array_equal(fused.view(np.uint32), y.view(np.uint32))
    return codes, y, float(scale)


def _subnormal_block(x64: np.ndarray, y64: np.ndarray, s: float) -> bool:
    """A block with a subnormal absmax decodes within absmax of its values (see inverse_scale), no better."""
    if s >= np.finfo(np.float32).tiny:
        return False
    assert np.all(np.abs(y64 - x64) <= s)
    return True


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=FLOATS))
def test_signed8_within_documented_bound(x):
    codes, y, s = _int8_round_trip(x, signed=True)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    if _subnormal_block(x64, y64, s):
        return
    large = np.abs(x64) >= C.S8_SMALLEST * s
    err = np.abs(y64 - x64)
    assert np.all(err[large] <= 2.0**-4 * np.abs(x64[large]) + 2.0**-20 * s)
    assert np.all(err[~large] <= C.S8_SMALLEST * s * (1 + 2.0**-20))
    assert np.all((np.sign(y) == np.sign(x)) | (y == 0))
    assert codes.dtype == np.int8 and np.all(np.abs(codes.astype(int)) <= 127)


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(0, 3.0000000054977558e38, width=32)))
def test_unsigned8_within_documented_bound_and_never_zero(x):
    codes, y, s = _int8_round_trip(x, signed=False)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    if _subnormal_block(x64, y64, s):
        return
    assert np.all((y > 0) == (x > 0))  # the zero-point problem: a non-zero second moment never decodes to 0
    large = x64 >= C.U8_SMALLEST * s
    assert np.all(np.abs(y64 - x64)[large] <= 2.0**-4 * x64[large] + 2.0**-20 * s)
    assert np.all(y64[~large & (x64 > 0)] == np.float32(C.U8_SMALLEST) * np.float32(s))  # raised, never 0
    assert codes.dtype == np.uint8


def test_int8_codes_are_monotone_and_zero_maps_to_zero():
    x = np.sort(_wide_floats(1 << 16, seed=1))
    x = x[np.isfinite(x)] / np.float32(4)  # absmax inside the range: every code reachable
    inv = np.full(x.size, C.inverse_scale(np.float32(np.max(np.abs(x)))), np.float32)
    signed = C.signed8_encode(x, inv).astype(int)
    assert np.all(np.diff(signed) >= 0)
    positive = x[x >= 0]
    unsigned = C.unsigned8_encode(positive, inv[: positive.size]).astype(int)
    assert np.all(np.diff(unsigned) >= 0)
    assert set(np.unique(signed)) == set(range(-127, 128))  # every code in use over the whole float range
    for encode in (C.signed8_encode, C.unsigned8_encode):
        assert encode(np.zeros(3, np.float32), np.full(3, 5.0, np.float32)).tolist() == [0, 0, 0]
    assert C.signed8_decode(np.int8(0), np.float32(7)) == 0 and C.unsigned8_decode(np.uint8(0), np.float32(7)) == 0
    assert C.unsigned8_decode(np.uint8(255), np.float32(3)) == 3
    assert C.signed8_decode(np.int8(-127), np.float32(3)) == -3


def test_all_zero_block_has_zero_scale_and_codes():
    codes, y, s = _int8_round_trip(np.zeros(256, np.float32), signed=False)
    assert s == 0 and not codes.any() and not y.any()


# ------------------------------------------------------------------------------------- stochastic rounding
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.77])
def test_stochastic_rounding_is_unbiased(fraction):
    """The mean of many roundings of x (at ``fraction`` of the way between two bf16 neighbours) is x within a
    tolerance of 0.01 unit; round to nearest or truncation would be off by ``min(f, 1 - f)`` ≥ 0.1 unit."""
    n = 1 << 18
    lo = np.float32(1.5)
    unit = np.float32(2.0**-7)  # bf16 spacing in [1, 2)
    x = np.full(n, lo + np.float32(fraction) * unit, np.float32)
    for field in range(4):
        h = C.counter_hash(C.stream_key(7, 3, 11), np.arange(n, dtype=np.int64), field // 2)
        r = C.random16(h, field % 2)
        y = C.bf16_decode(C.bf16_round_stochastic(x, r)).astype(np.float64)
        assert set(np.unique(y)) == {float(lo), float(lo + unit)}
        bias = (y.mean() - float(x[0])) / float(unit)
        assert abs(bias) < 0.01, (field, bias)  # σ of the mean ≈ 0.001 unit: a 10 σ tolerance
    rne = C.bf16_decode(C.bf16_encode(x[:1])).astype(np.float64)
    assert abs(rne[0] - float(x[0])) / float(unit) >= 0.09  # the biased rounding this test tells apart


def test_stochastic_rounding_fused_matches_numpy_and_is_reproducible():
    x = _wide_floats(5000, seed=3)
    x = x[np.isfinite(x)]
    key = C.stream_key(seed=123, salt=9, step=4)
    for field in range(4):
        h = C.counter_hash(key, np.arange(x.size, dtype=np.int64), field // 2)
        ours = C.bf16_round_stochastic(x, C.random16(h, field % 2))
        fused = np.empty(x.size, np.uint16)
        _numba_stochastic(x, key, field, fused)
        np.testing.assert_array_equal(fused, ours)
        down = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation; the other neighbour is one word up
        assert np.all((ours == down) | (ours == down + 1))
    again = np.empty(x.size, np.uint16)
    _numba_stochastic(x, C.stream_key(seed=123, salt=9, step=4), 0, again)
    other_step = np.empty(x.size, np.uint16)
    _numba_stochastic(x, C.stream_key(seed=123, salt=9, step=5), 0, other_step)
    first = np.empty(x.size, np.uint16)
    _numba_stochastic(x, key, 0, first)
    np.testing.assert_array_equal(again, first)  # same seed, salt, step: the same bits
    assert (other_step != first).sum() > x.size // 10  # another step: other roundings


def _decisions(key, index, field, fraction=0.5):
    """Whether stochastic rounding of a value at ``fraction`` of a unit rounds up, per element ``index``."""
    r = C.random16(C.counter_hash(key, index, field // 2), field % 2)
    x = np.full(np.shape(index), np.float32(1.5) + np.float32(fraction * 2.0**-7), np.float32)
    return (C.bf16_round_stochastic(x, r) != C.bf16_round_stochastic(x, np.zeros_like(r))).astype(np.float64)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.77])
def test_stochastic_rounding_of_one_element_is_unbiased_over_steps(fraction):
    """One element rounded at every step (the keys of 20,000 steps): the fraction of steps that round up is
    ``fraction`` within 5 σ, for each of a few elements and each field."""
    steps = 20_000
    keys = [C.stream_key(3, 8, t) for t in range(steps)]
    sigma = np.sqrt(fraction * (1 - fraction) / steps)
    for index in (0, 1, 4097, 1 << 20):
        for field in range(4):
            ups = np.array([_decisions(k, np.array([index]), field, fraction)[0] for k in keys])
            assert abs(ups.mean() - fraction) < 5 * sigma, (index, field, ups.mean())


def test_stochastic_rounding_decisions_are_uncorrelated():
    """Rounding decisions (x halfway between neighbours) of elements ``lag`` apart within one step, of the four
    fields of one element, and of two elements over many steps: correlations within 5 σ of 0. (A Weyl sequence
    with a single multiply, ``((i·φ) ⊕ k)·M``, fails this: its bits repeat with period 2¹⁶ in the index.)"""
    n = 1 << 20
    index = np.arange(n, dtype=np.int64)
    for t in range(3):
        key = C.stream_key(5, 2, t)
        fields = [_decisions(key, index, field) for field in range(4)]
        for lag in (1, 2, 3, 256, 4096, 1 << 16, 3 << 16):
            for d in fields:
                assert abs(np.corrcoef(d[:-lag], d[lag:])[0, 1]) < 5 / np.sqrt(n - lag), (t, lag)
        for a in range(4):
            for b in range(a + 1, 4):
                assert abs(np.corrcoef(fields[a], fields[b])[0, 1]) < 5 / np.sqrt(n), (t, a, b)
    steps = 20_000
    pairs = np.array([_decisions(C.stream_key(5, 2, t), np.array([7, 8, 7 + (1 << 16)]), 0) for t in range(steps)])
    for j in (1, 2):
        assert abs(np.corrcoef(pairs[:, 0], pairs[:, j])[0, 1]) < 5 / np.sqrt(steps), j
