"""Storage codecs for low-precision optimizer state and bf16 parameters: float32 ↔ a few bits, cheaply.

Every codec is written once and runs in both engines: on whole NumPy arrays (the reference engine) and on
scalars inside a numba kernel (inlined into the fused loop). The bit reinterpretation float32 ↔ uint32 is an
LLVM ``bitcast`` in numba (``bits``/``from_bits``: a scalar, no memory, the loop stays vectorized) and
``ndarray.view`` in NumPy. All integer work is exact, so both engines agree bit for bit.

Codecs (``x`` a float32, codes are plain NumPy integer arrays):

- **bf16** (``bf16_encode``/``bf16_decode``): the top 16 bits of the float32, rounded to nearest, ties to even.
  Relative error ≤ 2⁻⁸ for normal values; decode is a shift and exact.
- **bf16 with stochastic rounding** (``bf16_round_stochastic``): rounds up with probability equal to the
  discarded fraction, from a counter-based hash of (key, element index, step): unbiased, reproducible.
- **int8 block-wise** (``unsigned8_encode`` for non-negative slots, ``signed8_encode`` for the others): the value
  divided by its block's absmax, then an fp8-like code made of the float's exponent and top 3 mantissa bits
  (the float's bit pattern minus a bias, shifted: an integer subtraction, no search).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload, register_jitable

BLOCK = 256
"""Elements per block of the int8 codes (one float32 absmax scale each)."""

MANTISSA = 3
"""Mantissa bits kept by the int8 codes: relative spacing 2⁻³, so a relative rounding error ≤ 2⁻⁴."""
_SHIFT = 23 - MANTISSA
_HALF = 1 << (_SHIFT - 1)
_ONE = 0x3F800000  # bits of 1.0f
U8_BASE = _ONE - (255 << _SHIFT)
"""Bits of the unsigned code 0's virtual value: code ``c ≥ 1`` decodes to ``from_bits(U8_BASE + c << 20)``."""
S8_BASE = _ONE - (127 << _SHIFT)
"""As ``U8_BASE`` for the signed codes' magnitude ``k = |c|`` (127 ↔ 1.0)."""
U8_SMALLEST = float(np.array([U8_BASE + (1 << _SHIFT)], np.uint32).view(np.float32)[0])
"""The smallest non-zero unsigned code value, × the block's absmax (≈ 2⁻³¹·⁷⁵ ≈ 2.9e-10)."""
S8_SMALLEST = float(np.array([S8_BASE + (1 << _SHIFT)], np.uint32).view(np.float32)[0])
"""The smallest non-zero signed code magnitude, × the block's absmax (≈ 2⁻¹⁵·⁷⁵ ≈ 1.8e-5)."""


# ------------------------------------------------------------------------------------ bit reinterpretation
def bits(x: Any) -> Any:
    """The bit pattern of float32 ``x`` as uint32 (``x.view(np.uint32)`` on arrays; a bitcast in numba)."""
    return np.asarray(x, np.float32).view(np.uint32)


def from_bits(u: Any) -> Any:
    """The float32 whose bit pattern is ``u`` (uint32)."""
    return np.asarray(u, np.uint32).view(np.float32)


def _bitcast(source: Any, target: Any, caller: str) -> Any:
    """An intrinsic that reinterprets a ``source`` scalar's bits as ``target`` (one LLVM ``bitcast``)."""

    @intrinsic
    def bitcast(typingctx: Any, x: Any) -> Any:
        if x != source:
            raise TypingError(f"{caller}() takes a {source}, got {x}")

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(x), codegen

    return bitcast


_bitcast_f32_u32 = _bitcast(types.float32, types.uint32, "bits")
_bitcast_u32_f32 = _bitcast(types.uint32, types.float32, "from_bits")


@overload(bits, inline="always")
def _bits_numba(x):  # noqa: ANN001, ANN202 (numba matches the signature)
    if isinstance(x, types.Float):
        return lambda x: _bitcast_f32_u32(np.float32(x))
    return None


@overload(from_bits, inline="always")
def _from_bits_numba(u):  # noqa: ANN001, ANN202 (numba matches the signature)
    if isinstance(u, types.Integer):
        return lambda u: _bitcast_u32_f32(np.uint32(u))
    return None


# --------------------------------------------------------------------------------------------------- bf16
@register_jitable
def bf16_encode(x):  # noqa: ANN001, ANN201 (numba)
    """float32 → bf16 word (uint16), round to nearest, ties to even: ``(u + 0x7FFF + ((u >> 16) & 1)) >> 16``.

    Error bound: ``|decode(encode(x)) − x| ≤ 2⁻⁸·|x|`` for normal ``x`` (half a unit in the 8th significant bit);
    ±0 and ±inf are exact; beyond bf16's largest finite value (≈ 3.39e38) a value rounds to ±inf, as ml_dtypes'
    conversion does. A NaN stays NaN unless its payload lies only in the 16 dropped bits (→ ±inf) or its top
    mantissa bits are all ones (the carry wraps: → ±0); the quiet NaN arithmetic makes is kept (README: a guard
    cost the bf16 steps 10-25 %).
    """
    u = np.uint64(bits(x))
    return np.uint16((u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16))


@register_jitable
def bf16_decode(w):  # noqa: ANN001, ANN201 (numba)
    """bf16 word → float32: ``w << 16`` reinterpreted (exact)."""
    return from_bits(np.uint32(w) << np.uint32(16))


def stream_key(seed: int, salt: int, step: int) -> np.uint64:
    """The per-step key of ``counter_hash``: a splitmix64 mix of (seed, salt, step), on the host (Python ints)."""
    mask = (1 << 64) - 1
    x = (seed * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03 + step * 0xAF251AF3B0F025B5) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return np.uint64(x ^ (x >> 31))


@register_jitable
def _stream(key, n):  # noqa: ANN001, ANN202 (numba)
    """The 32-bit key of stream ``n``: a half of the 64-bit ``key`` (mixed with a constant for n ≥ 2)."""
    k = np.uint32((np.uint64(key) >> np.uint64(32 * (n % 2))) & np.uint64(0xFFFFFFFF))
    return k ^ np.uint32((0x632BE5AB * (n // 2)) & 0xFFFFFFFF)


_M1, _M2, _M3 = 0x85EBCA6B, 0xC2B2AE35, 0x846CA68B


def counter_hash(key: Any, index: Any, n: Any) -> Any:
    """32 pseudo-random bits from (key, element index), stream ``n`` (0, 1, ...). Stream 0: murmur3's 32-bit
    finaliser of ``index xor k``, ``k`` a 32-bit half of the 64-bit ``key`` (a multiply of the index by φ
    before it, as murmur's keyed use has, cost a bf16 step ~3 % for no quality the tests can see). Stream ``n ≥ 1``: one
    multiply-xorshift of stream 0's hash keyed by its own ``k``, ``x = (h₀ xor kₙ)·M; x xor x≫16`` (a full
    second finaliser made a bf16 step rounding three values stochastically about 6 % slower, for no quality
    tests/test_lowp_codecs.py can see). Counter-based: no state, the same bits in both engines whatever the
    threads or chunking. In numba it is 32-bit LLVM arithmetic (numba would widen uint32 to 64 bits), so the loop
    vectorizes 16 wide; stream 0's hash is computed once per element. One hash serves two stochastic roundings."""
    x = np.asarray(index).astype(np.uint32) ^ _stream(key, 0)
    x = (x ^ (x >> np.uint32(16))) * np.uint32(_M1)
    x = (x ^ (x >> np.uint32(13))) * np.uint32(_M2)
    x = x ^ (x >> np.uint32(16))
    if n == 0:
        return x
    x = (x ^ _stream(key, n)) * np.uint32(_M3)
    return x ^ (x >> np.uint32(16))


@intrinsic
def _hash32(typingctx: Any, index: Any, k: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = context.get_value_type(types.uint32)
        x = builder.xor(builder.trunc(args[0], i32), args[1])
        for shift, factor in ((16, _M1), (13, _M2)):
            x = builder.mul(builder.xor(x, builder.lshr(x, i32(shift))), i32(factor))
        return builder.xor(x, builder.lshr(x, i32(16)))

    return types.uint32(types.int64, types.uint32), codegen


@intrinsic
def _remix32(typingctx: Any, h: Any, k: Any, n: Any) -> Any:
    """Stream ``n``'s hash from stream 0's ``h``: ``h`` itself for n = 0 (a select, not a branch: constant-folded
    where ``n`` is a constant)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = context.get_value_type(types.uint32)
        x = builder.mul(builder.xor(args[0], args[1]), i32(_M3))
        x = builder.xor(x, builder.lshr(x, i32(16)))
        return builder.select(builder.icmp_signed("==", args[2], args[2].type(0)), args[0], x)

    return types.uint32(types.uint32, types.uint32, types.int64), codegen


@overload(counter_hash, inline="always")
def _counter_hash_numba(key, index, n):  # noqa: ANN001, ANN202 (numba matches the signature)
    def impl(key, index, n):  # noqa: ANN001, ANN202
        return _remix32(_hash32(np.int64(index), _stream(key, 0)), _stream(key, n), np.int64(n))

    return impl


@register_jitable
def random16(h, k):  # noqa: ANN001, ANN201 (numba)
    """The ``k``-th 16-bit half (k = 0: the high one, 1: the low one) of the 32-bit hash ``h``."""
    return (h >> np.uint32(16 - 16 * k)) & np.uint32(0xFFFF)


@register_jitable
def bf16_round_stochastic(x, r):  # noqa: ANN001, ANN201 (numba)
    """float32 → bf16 word, rounded up with probability (dropped 16 bits)/2¹⁶: ``(u + r) >> 16`` with ``r``
    16 random bits (``random16(counter_hash(key, index, n), k)``, ``key = stream_key(seed, salt, step)``).
    Unbiased: ``E[decode] = x`` (bits are linear in the value within a binade); the error is below one bf16
    unit (``|decode − x| < 2⁻⁷·|x|``)."""
    return np.uint16((np.uint64(bits(x)) + np.uint64(r)) >> np.uint64(16))


@register_jitable
def bf16_kahan(p, pn, c):  # noqa: ANN001, ANN201 (numba)
    """A bf16 parameter's compensated write (Kahan summation, as torch-optimi's ``kahan_sum``): ``p`` the old
    value (decoded), ``pn`` the rule's new value, ``c`` the decoded compensation, all float32. With the update
    ``u = (pn − p) + c``, returns the words of ``w = rn(p + u)`` and of the new compensation
    ``rn(u − (w − p))``: what rounding the parameter lost is added to the next step's update. The arithmetic is
    float32 (``w − p`` is exact: two nearby bf16 values), both words rounded to nearest."""
    u = (pn - p) + c
    w = bf16_encode(p + u)
    return w, bf16_encode(u - (bf16_decode(w) - p))


# --------------------------------------------------------------------------------------------- int8 codes
@register_jitable
def magnitude_bits(x):  # noqa: ANN001, ANN201 (numba)
    """The bits of ``|x|`` (float32), as uint32: ordered as the magnitudes are, so a block's absmax is an integer
    maximum (which vectorizes; a float maximum does not without fastmath)."""
    return bits(x) & np.uint32(0x7FFFFFFF)


def unsigned8_encode(x: Any, inv_scale: Any) -> Any:
    """A non-negative float32 → uint8 code of ``y = x·inv_scale`` (``inv_scale = 1/absmax``, so ``y ∈ [0, 1]``).

    Code ``c ≥ 1`` stands for ``from_bits(U8_BASE + c·2²⁰)``: an unsigned fp8 with 5 exponent bits' worth of
    range (31.75 binades, down to ``U8_SMALLEST ≈ 2.9e-10``) and 3 mantissa bits; 255 ↔ 1.0. Rounded to nearest
    by adding half a code to the bit pattern. ``y = 0`` ↔ code 0; **no non-zero value gets code 0**: values
    below the smallest code are raised to it, so in a block whose absmax is a normal float no non-zero value
    decodes to 0 (the second moment's ``1/√v`` can never blow up).

    Error bound (relative to the block's absmax ``s``): ``|decode − x| ≤ 2⁻⁴·x + 2⁻²⁰·s`` for
    ``x ≥ U8_SMALLEST·s``; below it ``decode = U8_SMALLEST·s`` (never 0, never more than that).
    """
    u = np.int64(magnitude_bits(x * inv_scale))  # the sign ignored: −0 → code 0
    c = (u + np.int64(_HALF - U8_BASE)) >> np.int64(_SHIFT)
    nonzero = np.minimum(np.int64(magnitude_bits(x)), np.int64(1))  # x ≠ 0 (even if x·inv_scale underflows)
    return np.uint8(np.minimum(np.maximum(c, nonzero), np.int64(255)))


def unsigned8_decode(c: Any, scale: Any) -> Any:
    """uint8 code → float32 ``value(c)·scale`` (``value(0) = 0``)."""
    c = np.uint32(c)
    return from_bits((np.uint32(U8_BASE) + (c << np.uint32(_SHIFT))) * np.minimum(c, np.uint32(1))) * scale


def signed8_encode(x: Any, inv_scale: Any) -> Any:
    """A float32 → int8 code ``±k`` of ``y = x·inv_scale ∈ [−1, 1]``; the magnitude ``k ≥ 1`` stands for
    ``from_bits(S8_BASE + k·2²⁰)``: a signed fp8 (4 exponent bits' worth: 15.75 binades, down to
    ``S8_SMALLEST ≈ 1.8e-5``; 3 mantissa bits); 127 ↔ 1.0. Rounded to nearest in the bit pattern; magnitudes
    below ``(15/16)·S8_SMALLEST`` become 0 (a first moment that small moves nothing).

    Error bound (``s`` the block's absmax): ``|decode − x| ≤ 2⁻⁴·|x| + 2⁻²⁰·s`` for ``|x| ≥ S8_SMALLEST·s``,
    and ``≤ S8_SMALLEST·s`` below it; the sign is kept (or the code is 0).
    """
    u = np.int64(bits(x * inv_scale))
    magnitude = u & np.int64(0x7FFFFFFF)
    k = np.minimum(np.maximum((magnitude + np.int64(_HALF - S8_BASE)) >> np.int64(_SHIFT), np.int64(0)), np.int64(127))
    return np.int8(k - ((u >> np.int64(31)) & np.int64(1)) * (k + k))


def signed8_decode(c: Any, scale: Any) -> Any:
    """int8 code → float32 ``±value(|c|)·scale`` (``value(0) = 0``)."""
    c = np.int32(c)
    k = np.uint32(np.abs(c))
    sign = np.uint32(c < 0) << np.uint32(31)
    return from_bits(((np.uint32(S8_BASE) + (k << np.uint32(_SHIFT))) * np.minimum(k, np.uint32(1))) | sign) * scale


def max_magnitude(acc: Any, x: Any) -> Any:
    """``max(acc, magnitude_bits(x))`` (uint32): one step of a block's absmax, as integers."""
    return np.maximum(acc, magnitude_bits(x))


# In numba the int8 encoders and the absmax step are 32-bit LLVM code: numba's own typing widens uint32/int32
# arithmetic to 64 bits, which halves the vector width of the encode loop. Same formulas, same bits.
def _clamp(builder: Any, x: Any, low: Any, high: Any) -> Any:
    x = builder.select(builder.icmp_signed("<", x, low), low, x)
    return builder.select(builder.icmp_signed(">", x, high), high, x)


def _magnitude(builder: Any, x: Any) -> Any:
    i32 = ir.IntType(32)
    return builder.and_(builder.bitcast(x, i32), i32(0x7FFFFFFF))


@intrinsic
def _unsigned8_ir(typingctx: Any, x: Any, inv_scale: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = ir.IntType(32)
        u = _magnitude(builder, builder.fmul(args[0], args[1]))
        c = builder.ashr(builder.add(u, i32(_HALF - U8_BASE)), i32(_SHIFT))
        nonzero = builder.zext(builder.icmp_unsigned("!=", _magnitude(builder, args[0]), i32(0)), i32)
        c = _clamp(builder, c, nonzero, i32(255))
        return builder.trunc(c, ir.IntType(8))

    return types.uint8(types.float32, types.float32), codegen


@intrinsic
def _signed8_ir(typingctx: Any, x: Any, inv_scale: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = ir.IntType(32)
        y = builder.bitcast(builder.fmul(args[0], args[1]), i32)
        magnitude = builder.and_(y, i32(0x7FFFFFFF))
        k = builder.ashr(builder.add(magnitude, i32(_HALF - S8_BASE)), i32(_SHIFT))
        k = _clamp(builder, k, i32(0), i32(127))
        negative = builder.lshr(y, i32(31))
        code = builder.sub(k, builder.mul(negative, builder.add(k, k)))
        return builder.trunc(code, ir.IntType(8))

    return types.int8(types.float32, types.float32), codegen


@intrinsic
def _max_magnitude_ir(typingctx: Any, acc: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        m = _magnitude(builder, args[1])
        return builder.select(builder.icmp_unsigned(">", m, args[0]), m, args[0])

    return types.uint32(types.uint32, types.float32), codegen


def _code_value(builder: Any, base: int, k: Any) -> Any:
    """The float32 of magnitude code ``k`` (i32 ≥ 0): ``from_bits(base + k·2²⁰)``, 0 for ``k = 0``."""
    i32 = ir.IntType(32)
    b = builder.add(i32(base), builder.shl(k, i32(_SHIFT)))
    return builder.select(builder.icmp_signed("==", k, i32(0)), i32(0), b)


@intrinsic
def _unsigned8_decode_ir(typingctx: Any, c: Any, scale: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value = _code_value(builder, U8_BASE, builder.zext(args[0], ir.IntType(32)))
        return builder.fmul(builder.bitcast(value, ir.FloatType()), args[1])

    return types.float32(types.uint8, types.float32), codegen


@intrinsic
def _signed8_decode_ir(typingctx: Any, c: Any, scale: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32 = ir.IntType(32)
        c = builder.sext(args[0], i32)
        negative = builder.icmp_signed("<", c, i32(0))
        value = _code_value(builder, S8_BASE, builder.select(negative, builder.neg(c), c))
        value = builder.or_(value, builder.shl(builder.zext(negative, i32), i32(31)))
        return builder.fmul(builder.bitcast(value, ir.FloatType()), args[1])

    return types.float32(types.int8, types.float32), codegen


def _lower(function: Any, lowered: Any, cast_a: Any, cast_b: Any) -> None:
    """In numba, ``function(a, b)`` is ``lowered(cast_a(a), cast_b(b))`` (an intrinsic of fixed types)."""

    def typer(a, b):  # noqa: ANN001, ANN202 (numba matches the signature)
        return lambda a, b: lowered(cast_a(a), cast_b(b))

    overload(function, inline="always")(typer)


_lower(unsigned8_decode, _unsigned8_decode_ir, np.uint8, np.float32)
_lower(signed8_decode, _signed8_decode_ir, np.int8, np.float32)
_lower(unsigned8_encode, _unsigned8_ir, np.float32, np.float32)
_lower(signed8_encode, _signed8_ir, np.float32, np.float32)
_lower(max_magnitude, _max_magnitude_ir, np.uint32, np.float32)


@register_jitable
def inverse_scale(absmax):  # noqa: ANN001, ANN201 (numba)
    """``1/absmax`` in float32, 0 for an all-zero block (every code 0 then). A block whose absmax is subnormal
    (below 1.18e-38, effectively zero for an optimizer) uses ``1/1.18e-38``: its values decode within ``absmax``
    of themselves, not within the relative bounds above."""
    return np.float32(1.0) / np.maximum(absmax, np.float32(1.1754944e-38)) * np.float32(absmax > 0)


def as_float(x: Any) -> Any:
    """A parameter or gradient as the rule computes with it: bf16 words (uint16) decoded to float32, floats as
    they are."""
    x = np.asarray(x)
    return bf16_decode(x) if x.dtype == np.uint16 else x


@overload(as_float, inline="always")
def _as_float_numba(x):  # noqa: ANN001, ANN202 (numba matches the signature)
    if isinstance(x, types.Integer):
        return lambda x: bf16_decode(x)
    return lambda x: x
