"""Low-precision storage of a bucket: bf16 or block-wise int8 state slots, bf16 parameters; both engines.

The rule is unchanged: each element's slots are decoded to float32 before it and encoded after it, in the same
loop (see :mod:`adamkit.codecs` for the codes and their error bounds).

- ``state_dtype="bfloat16"``: each slot is one bf16 word per element (``Coded.codes``, uint16).
- ``state_dtype="int8"``: each slot is one int8 code per element (signed for signed slots, unsigned for the
  non-negative ones, ``NONNEGATIVE_SLOTS``) plus one float32 absmax per block of ``BLOCK`` elements of a tensor
  (``Coded.scales``; blocks start at each tensor's first element, so a tensor's codes never share a scale with
  another tensor's). Tensors below ``SMALL_TENSOR`` elements keep float32 values (``Coded.small``).
- bf16 parameters (``ml_dtypes.bfloat16`` arrays): decoded to float32 for the rule, written back with
  stochastic rounding (default; key from ``seed``, the bucket and the step, see ``codecs.stream_key``) or
  rounded to nearest; or, with ``kahan_sum=True``, rounded to nearest with a bf16 compensation slot
  (``KAHAN``) that carries each write's rounding error into the next update (``codecs.bf16_kahan``). Kahan
  summation replaces stochastic rounding for the parameters only: ``stochastic_rounding`` still rounds the
  bf16 state slots.

The fused engine runs one kernel call over the chunk table of the tensors stepped (parallel over chunks of
``flat.CHUNK`` elements, a multiple of ``BLOCK``); per int8 block it decodes, runs the rule, keeps the new
slot values in a small buffer while taking their absmax, then encodes them. The NumPy engine does the same
with whole-array NumPy code, tensor by tensor; both agree bit for bit.
"""

from __future__ import annotations

import hashlib
import inspect
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import ml_dtypes
import numpy as np

from . import codecs
from ._checks import check_bool
from .codecs import BLOCK
from .engine import PARALLEL_MIN_SIZE, Kernel, Rule, _load_kernels, _package_fingerprint, _rule_fingerprint
from .flat import SMALL_TENSOR, FlatBuffer, GradAt, Tensors

STATE_DTYPES = ("bfloat16", "int8")
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
SCALE = ".scale"
"""Suffix of a state entry holding an int8 slot's block scales: ``exp_avg`` (int8 codes) + ``exp_avg.scale``."""
KAHAN = "kahan_comp"
"""The compensation slot of bf16 parameters under ``kahan_sum=True`` (torch-optimi's name); always bf16."""
NONNEGATIVE_SLOTS = frozenset({"exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "acc_delta", "exp_inf"})
"""Slots that hold second moments or accumulators of squares (never negative): the unsigned int8 code."""


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a bucket's arithmetic runs in: float32 for bf16 parameters, else the parameters' own."""
    return _COMPUTE.get(dtype, dtype)  # a dict lookup: every step asks


_COMPUTE = {BFLOAT16: np.dtype(np.float32)}


@dataclass
class Coded:
    """One state slot of a low-precision bucket (``kind``: ``"bf16"``, ``"u8"`` unsigned or ``"s8"`` signed).

    ``codes``: one word per element of the bucket, laid out as the flat gradient (uint16 / uint8 / int8);
    ``scales``: int8 only, the absmax of each block of the quantized tensors; ``small``: int8 only, the float32
    values of the tensors kept exact (below ``SMALL_TENSOR`` elements), packed one after another.
    """

    kind: str
    codes: np.ndarray
    scales: np.ndarray
    small: np.ndarray

    def arrays(self) -> list[np.ndarray]:
        return [self.codes, self.scales, self.small]

    def copy(self) -> Coded:
        return Coded(self.kind, self.codes.copy(), self.scales.copy(), self.small.copy())


@dataclass
class Precision:
    """How one bucket stores its state and parameters (``FlatBuffer.lowp``)."""

    state_dtype: str  # "bfloat16" or "int8"
    bf16_params: bool
    stochastic_rounding: bool
    seed: int
    salt: int  # the bucket's own stream of random bits (from its first parameter's name)
    block_at: np.ndarray  # per tensor: index of its first scale block, -1 if kept exact
    small_at: np.ndarray  # per tensor: offset in ``Coded.small``, -1 if quantized
    n_blocks: int
    n_small: int
    kahan: bool = False  # bf16 parameters written with Kahan compensation (slot ``KAHAN``)
    _aux: tuple = field(default=(None, None), repr=False)

    @classmethod
    def of(
        cls, flat: FlatBuffer, state_dtype: str | None, stochastic_rounding: bool, seed: int, kahan: bool = False
    ) -> Precision:
        bf16_params = flat.dtype == BFLOAT16
        state_dtype = state_dtype or "bfloat16"
        sizes = np.array([seg.size for seg in flat.segments], dtype=np.int64)
        quantized = (sizes >= SMALL_TENSOR) if state_dtype == "int8" else np.zeros(len(sizes), bool)
        blocks = np.where(quantized, -(-sizes // BLOCK), 0)
        block_at = np.where(quantized, np.cumsum(blocks) - blocks, -1)
        exact = np.where(quantized | (state_dtype != "int8"), 0, sizes)
        small_at = np.where(exact > 0, np.cumsum(exact) - exact, -1)
        name = flat.segments[0].name if flat.segments else ""
        salt = zlib.crc32(name.encode())
        return cls(
            state_dtype, bf16_params, stochastic_rounding, seed, salt, block_at, small_at,
            int(blocks.sum()), int(exact.sum()), kahan and bf16_params,
        )  # fmt: skip

    def kind(self, slot: str) -> str:
        if self.state_dtype == "bfloat16" or slot == KAHAN:
            return "bf16"
        return "u8" if slot in NONNEGATIVE_SLOTS else "s8"

    def aux(self, flat: FlatBuffer, tensors: Tensors) -> np.ndarray:
        """Per chunk of ``tensors``: ``(first scale block or -1, offset in the small values or -1)``."""
        if self._aux[0] is tensors:
            return self._aux[1]
        offsets = np.array([seg.offset for seg in flat.segments], dtype=np.int64)
        a, o = tensors.chunks[:, 1], tensors.chunks[:, 3]
        seg = np.searchsorted(offsets, o - a, side="right") - 1
        block, small = self.block_at[seg], self.small_at[seg]
        aux = np.stack([np.where(block >= 0, block + a // BLOCK, -1), np.where(small >= 0, small + a, -1)], axis=1)
        aux = np.ascontiguousarray(aux, dtype=np.int64).reshape(-1, 2)
        self._aux = (tensors, aux)
        return aux

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_aux": (None, None)}


def check_state_dtype(owner: str, state_dtype: Any, supported: bool) -> str | None:
    """``state_dtype`` validated: None, ``"bfloat16"`` or ``"int8"``, the latter two only where the optimizer's
    update is elementwise (``supported``)."""
    if state_dtype is None:
        return None
    if not supported:
        raise ValueError(
            f"state_dtype={state_dtype!r}: {owner} does not support low-precision state (its update is not "
            "elementwise); allowed: None"
        )
    if state_dtype not in STATE_DTYPES:
        raise ValueError(f"state_dtype must be None, 'bfloat16' or 'int8'; got {state_dtype!r}")
    return state_dtype


def check_kahan(owner: str, kahan_sum: Any, supported: bool) -> bool:
    """``kahan_sum`` validated: a bool, True only where the optimizer's update is elementwise."""
    if check_bool("kahan_sum", kahan_sum) and not supported:
        raise ValueError(
            f"kahan_sum=True: {owner} does not support bf16 parameters (its update is not elementwise); "
            "allowed: False"
        )
    return kahan_sum


# ------------------------------------------------------------------------------------------ slots, state
def new_slot(flat: FlatBuffer, name: str, fill: float) -> Coded:
    """The slot ``name`` of a low-precision bucket, every element ``fill`` (encoded)."""
    return quantize(flat, name, np.full(flat.size, fill, dtype=np.float32))


def quantize(flat: FlatBuffer, name: str, values: np.ndarray) -> Coded:
    """Encode a flat float32 slot (laid out as the gradient) into ``flat``'s storage for slot ``name``."""
    prec: Precision = flat.lowp
    kind = prec.kind(name)
    values = np.asarray(values, dtype=np.float32)
    if kind == "bf16":
        return Coded(kind, codecs.bf16_encode(values), np.zeros(0, np.float32), np.zeros(0, np.float32))
    coded = Coded(
        kind, np.zeros(flat.size, np.uint8 if kind == "u8" else np.int8),
        np.zeros(prec.n_blocks, np.float32), np.zeros(prec.n_small, np.float32),
    )  # fmt: skip
    for i, seg in enumerate(flat.segments):
        _encode_tensor(coded, prec, i, seg.offset, values[seg.offset : seg.offset + seg.size])
    return coded


def dequantize(flat: FlatBuffer, coded: Coded) -> np.ndarray:
    """The float32 values of a slot of ``flat`` (laid out as the gradient)."""
    out = np.zeros(flat.size, np.float32)
    for i, seg in enumerate(flat.segments):
        out[seg.offset : seg.offset + seg.size] = _decode_tensor(coded, flat.lowp, i, seg.offset, seg.size)
    return out


def entries(flat: FlatBuffer, i: int, name: str, coded: Coded) -> dict[str, np.ndarray]:
    """Tensor ``i``'s state entries for slot ``name`` (copies, shaped as the parameter): bf16 words (uint16), or
    int8 codes plus ``name + ".scale"`` (float32, one per block), or float32 values for a tensor kept exact."""
    seg, prec = flat.segments[i], flat.lowp
    if coded.kind == "bf16":
        return {name: seg.view(coded.codes).copy()}
    if prec.small_at[i] >= 0:
        q = prec.small_at[i]
        return {name: coded.small[q : q + seg.size].reshape(seg.shape).copy()}
    b = prec.block_at[i]
    return {name: seg.view(coded.codes).copy(), name + SCALE: coded.scales[b : b - (-seg.size // BLOCK)].copy()}


def entry_values(entry: dict[str, Any], slot: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """The float32 values of a saved state entry's slot, dequantizing explicitly: bf16 words (uint16) are
    decoded, int8/uint8 codes are decoded with their ``slot + ".scale"`` block scales; floats are returned as
    they are (validated by the caller)."""
    value = np.asarray(entry[slot])
    kind = {"u2": "bf16", "u1": "u8", "i1": "s8"}.get(value.dtype.str[1:])
    if kind is None:
        if value.dtype.kind != "f":
            raise TypeError(
                f"{where} has dtype {value.dtype}; a state slot holds floats, bf16 words (uint16) or int8/uint8 "
                f"codes with {slot + SCALE!r}"
            )
        return value
    if value.shape != shape:
        raise ValueError(f"{where} has shape {value.shape}, expected {shape}")
    if kind == "bf16":
        return codecs.bf16_decode(value)
    n = value.size
    scales = np.asarray(entry.get(slot + SCALE, np.zeros(0)))
    if scales.dtype != np.float32 or scales.shape != (-(-n // BLOCK),):
        raise ValueError(
            f"{where} holds int8 codes: its block scales {slot + SCALE!r} must be float32 of shape "
            f"({-(-n // BLOCK)},), got {scales.dtype} {scales.shape}"
        )
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise ValueError(f"{where}: its block scales {slot + SCALE!r} must be finite and >= 0")
    decode = codecs.unsigned8_decode if kind == "u8" else codecs.signed8_decode
    return decode(value.reshape(-1), np.repeat(scales, BLOCK)[:n]).reshape(shape)


def _decode_tensor(coded: Coded, prec: Precision, i: int, offset: int, n: int) -> np.ndarray:
    codes = coded.codes[offset : offset + n]
    if coded.kind == "bf16":
        return codecs.bf16_decode(codes)
    if prec.small_at[i] >= 0:
        q = prec.small_at[i]
        return coded.small[q : q + n].copy()
    b = prec.block_at[i]
    scale = np.repeat(coded.scales[b : b - (-n // BLOCK)], BLOCK)[:n]
    return (codecs.unsigned8_decode if coded.kind == "u8" else codecs.signed8_decode)(codes, scale)


def _encode_tensor(coded: Coded, prec: Precision, i: int, offset: int, y: np.ndarray, r: Any = None) -> None:
    """Store tensor ``i``'s new values ``y`` of a slot; bf16 with the random bits ``r`` rounds stochastically."""
    n = y.size
    if coded.kind == "bf16":
        words = codecs.bf16_encode(y) if r is None else codecs.bf16_round_stochastic(y, r)
        coded.codes[offset : offset + n] = words
        return
    if prec.small_at[i] >= 0:
        q = prec.small_at[i]
        coded.small[q : q + n] = y
        return
    b, nb = prec.block_at[i], -(-n // BLOCK)
    padded = np.zeros(nb * BLOCK, np.uint32)
    padded[:n] = codecs.magnitude_bits(y)
    absmax = codecs.from_bits(padded.reshape(nb, BLOCK).max(axis=1))
    coded.scales[b : b + nb] = absmax
    inv = np.repeat(codecs.inverse_scale(absmax), BLOCK)[:n]
    encode = codecs.unsigned8_encode if coded.kind == "u8" else codecs.signed8_encode
    coded.codes[offset : offset + n] = encode(y, inv)


# ------------------------------------------------------------------------------------------------ engines
def random_fields(prec: Precision, slot_kinds: Sequence[str]) -> dict[Any, int]:
    """Which 16-bit field of an element's hashes (two per 32-bit hash) each stochastic rounding uses: ``"p"``
    (bf16 parameters, unless Kahan-compensated), then each bf16 slot by position (``stochastic_rounding=True``;
    none otherwise)."""
    if not prec.stochastic_rounding:
        return {}
    users = ["p"] if prec.bf16_params and not prec.kahan else []
    users += [j for j, kind in enumerate(slot_kinds) if kind == "bf16"]
    return {user: k for k, user in enumerate(users)}


def _random(key: np.uint64, index: np.ndarray, field: int) -> np.ndarray:
    """NumPy: the 16 random bits of ``field`` for elements ``index``."""
    return codecs.random16(codecs.counter_hash(key, index, field // 2), field % 2)


def step_numpy(
    rule: Rule, flat: FlatBuffer, tensors: Tensors, g: Any, slots: Sequence[Coded], scalars: tuple, key: np.uint64,
    comp: Coded | None = None,
) -> None:
    """The reference engine: tensor by tensor, decode (NumPy), the rule on whole arrays, encode (bf16 parameters
    with ``kahan``: compensated by the slot ``comp``)."""
    prec: Precision = flat.lowp
    fields = random_fields(prec, kinds(slots))
    starts = {seg.offset: i for i, seg in enumerate(flat.segments) if seg.size}
    for k, (p, offset) in enumerate(zip(tensors.views, tensors.offsets)):
        n = p.size
        if n == 0:
            continue
        i = starts[offset]
        index = offset + np.arange(n, dtype=np.int64)
        gk = g[offset : offset + n] if isinstance(g, np.ndarray) else g[k]
        words = p.view(np.uint16) if prec.bf16_params else p
        values = [_decode_tensor(s, prec, i, offset, n) for s in slots]
        old_p = codecs.as_float(words)
        results = rule(old_p, codecs.as_float(_words(gk)), *values, *scalars)
        new_p = np.broadcast_to(np.asarray(results[0], np.float32 if prec.bf16_params else p.dtype), (n,))
        if not prec.bf16_params:
            p[...] = new_p
        elif prec.kahan:
            c = comp.codes[offset : offset + n]
            words[...], c[...] = codecs.bf16_kahan(old_p, new_p, codecs.bf16_decode(c))
        elif "p" in fields:
            words[...] = codecs.bf16_round_stochastic(new_p, _random(key, index, fields["p"]))
        else:
            words[...] = codecs.bf16_encode(new_p)
        for j, (s, y) in enumerate(zip(slots, results[1:])):
            r = _random(key, index, fields[j]) if j in fields else None
            _encode_tensor(s, prec, i, offset, np.broadcast_to(np.asarray(y, np.float32), (n,)), r)


def _words(x: np.ndarray) -> np.ndarray:
    """bf16 arrays as their uint16 words; other arrays as they are."""
    return x.view(np.uint16) if x.dtype == BFLOAT16 else x


def step_fused(
    rule: Rule, flat: FlatBuffer, tensors: Tensors, g: Any, slots: Sequence[Coded], scalars: tuple, key: np.uint64,
    comp: Coded | None = None,
) -> None:
    """The fused engine: one kernel call over the chunk table of ``tensors``."""
    prec: Precision = flat.lowp
    kernels = _kernels(rule, kinds(slots), *_writes(prec))
    p_like = _words(tensors.views[0][:0]) if tensors.views else np.empty(0, np.float32)
    if isinstance(g, GradAt):  # a front end's gradients, by address, of the bucket's dtype
        g_like, g_at = _words(flat.grad[:0]), g.at
    elif isinstance(g, np.ndarray):
        g_like = _words(g[:0])
        g_at = g.ctypes.data + tensors.offsets_array * g.itemsize
    else:
        g = _uniform_dtype(g)
        g_like = _words(g[0][:0]) if g else np.empty(0, np.float32)
        g_at = np.fromiter((x.ctypes.data for x in g), np.int64, len(g))
    kernel = kernels[1] if tensors.size >= PARALLEL_MIN_SIZE else kernels[0]
    arrays = [a for s in slots for a in _kernel_arrays(s)] + ([comp.codes] if prec.kahan else [])
    kernel(tensors.addresses, g_at, tensors.chunks, prec.aux(flat, tensors), p_like, g_like, key, *arrays, *scalars)


def _uniform_dtype(g: list[np.ndarray]) -> list[np.ndarray]:
    """Per-tensor gradients of one dtype for the kernel (bf16 and float32 mixed: all as float32)."""
    if len({x.dtype for x in g}) > 1:
        return [np.ascontiguousarray(x, np.float32) for x in g]
    return g


def _kernel_arrays(s: Coded) -> list[np.ndarray]:
    return [s.codes] if s.kind == "bf16" else [s.codes, s.scales, s.small]


def kinds(slots: Sequence[Coded]) -> tuple[str, ...]:
    return tuple(s.kind for s in slots)


def _writes(prec: Precision) -> tuple[bool, bool, bool]:
    """``(bf16 parameters, stochastic rounding, Kahan)``: what the kernel's writes look like."""
    return prec.bf16_params, prec.stochastic_rounding, prec.kahan


def prepare(
    engine: str, rule: Rule, flat: FlatBuffer, slot_kinds: tuple[str, ...], g: Any, tensors: Tensors, scalars: tuple
) -> None:
    """Load or compile the kernel a step will run, before it writes anything (fused engine only)."""
    if engine != "fused":
        return
    prec: Precision = flat.lowp
    kernels = _kernels(rule, slot_kinds, *_writes(prec))
    p_dtype = np.dtype(np.uint16) if prec.bf16_params else flat.dtype
    if isinstance(g, (np.ndarray, GradAt)):
        g_dtype = _words((flat.grad if isinstance(g, GradAt) else g)[:0]).dtype
    else:
        dtypes = {x.dtype for x in g}
        g_dtype = _words(np.empty(0, dtypes.pop())).dtype if len(dtypes) == 1 else np.dtype(np.float32)
    parallel = tensors.size >= PARALLEL_MIN_SIZE
    key = (kernels, p_dtype, g_dtype, tuple(map(type, scalars)), parallel)
    if key in _PREPARED:
        return
    at = np.empty(0, np.int64)
    arrays = []
    for kind in slot_kinds:
        if kind == "bf16":
            arrays.append(np.empty(0, np.uint16))
        else:
            codes = np.empty(0, np.uint8 if kind == "u8" else np.int8)
            arrays += [codes, np.empty(0, np.float32), np.empty(0, np.float32)]
    if prec.kahan:
        arrays.append(np.empty(0, np.uint16))
    args = (at, at, np.empty((0, 4), np.int64), np.empty((0, 2), np.int64), np.empty(0, p_dtype),
            np.empty(0, g_dtype), np.uint64(0), *arrays, *scalars)  # fmt: skip
    kernels[1 if parallel else 0].compile_for(args)
    _PREPARED.add(key)


_PREPARED: set[tuple] = set()


# ------------------------------------------------------------------------------------------ kernel source
_HEADER = """\
# Generated by adamkit.lowp from {module}.{name}; do not edit.
import numba
import numpy as np
from adamkit.codecs import (as_float, bf16_decode, bf16_encode, bf16_kahan, bf16_round_stochastic, counter_hash,
                            from_bits, inverse_scale, max_magnitude, random16, signed8_decode, signed8_encode,
                            unsigned8_decode, unsigned8_encode)
from adamkit.engine import at_address
from {module} import {name} as rule

_options = dict(cache=CACHE, nogil=True, error_model="numpy")
BLOCK = {block}


@numba.njit(inline="always")
def _chunk(p_at, g_at, chunks, aux, c, p_like, g_like, key, arrays, scalars):
    {unpack}k, a, b, o = chunks[c, 0], chunks[c, 1], chunks[c, 2], chunks[c, 3]
    n = b - a
    p_ = at_address(p_at[k] + a * p_like.itemsize, n, p_like)
    g_ = at_address(g_at[k] + a * g_like.itemsize, n, g_like)
{body}


@numba.njit(**_options)
def serial(p_at, g_at, chunks, aux, p_like, g_like, key, {sargs}):
    for c in range(chunks.shape[0]):
        _chunk(p_at, g_at, chunks, aux, c, p_like, g_like, key, ({arrays}), ({scalars}))


@numba.njit(parallel=True, **_options)
def parallel(p_at, g_at, chunks, aux, p_like, g_like, key, {sargs}):
    for c in numba.prange(chunks.shape[0]):
        _chunk(p_at, g_at, chunks, aux, c, p_like, g_like, key, ({arrays}), ({scalars}))


chunked_serial, chunked_parallel = serial, parallel
"""

_DECODE = {"u8": "unsigned8_decode", "s8": "signed8_decode"}
_ENCODE = {"u8": "unsigned8_encode", "s8": "signed8_encode"}


def _source(
    rule: Rule, slot_kinds: tuple[str, ...], bf16_params: bool, stochastic: bool, kahan: bool, n_scalars: int
) -> str:
    """The kernel module's source: a loop over chunks; in each, element by element (bf16 slots and the tensors
    kept exact), or block by block (int8: decode, rule, buffer and absmax, then encode). ``kahan``: the bf16
    parameters' compensation words ``ck`` follow the slots' arrays."""
    scalars = [f"a{j}" for j in range(n_scalars)]
    slot_args = []
    for j, kind in enumerate(slot_kinds):
        slot_args += [f"c{j}"] if kind == "bf16" else [f"c{j}", f"sc{j}", f"f{j}"]
    slot_args += ["ck"] if kahan else []
    sargs = ", ".join(slot_args + scalars)
    # _chunk takes the arrays and the scalars as two tuples: CPython 3.11 compiles a call of more than 30
    # positional arguments as f(*args), which numba cannot inline
    tuples = [(slot_args, "arrays"), (scalars, "scalars")]
    unpack = "".join(f"{', '.join(names)}, = {tup}\n    " for names, tup in tuples if names)
    n_slots = len(slot_kinds)
    outs = ", ".join(["pn", *(f"y{j}" for j in range(n_slots))]) + ","
    int8 = [j for j, kind in enumerate(slot_kinds) if kind != "bf16"]
    prec = Precision("", bf16_params, stochastic, 0, 0, np.empty(0), np.empty(0), 0, 0, kahan)
    fields = random_fields(prec, slot_kinds)

    def bf16_write(x: str, user: Any) -> str:
        if user not in fields:
            return f"bf16_encode({x})"
        return f"bf16_round_stochastic({x}, random16(h{fields[user] // 2}, {fields[user] % 2}))"

    def element(inputs: list[str], p: str, g: str, index: str, codes: str, int8_out: Any) -> list[str]:
        """One element: hashes (if stochastic), the rule, the parameter and the bf16 slots (arrays ``codes``
        formatted with the slot's number) written, ``int8_out(j)``: the lines for int8 slot ``j``."""
        hashes = sorted({k // 2 for k in fields.values()})
        body = [f"h{h} = counter_hash(key, {index}, {h})" for h in hashes]
        body += [f"p0 = as_float({p}[i])"]
        body += [f"{outs} = rule(p0, as_float({g}[i]), {', '.join(inputs + scalars)})"]
        if kahan:
            comp = codes.format("k")
            body += [f"{p}[i], {comp}[i] = bf16_kahan(p0, pn, bf16_decode({comp}[i]))"]
        else:
            body += [f"{p}[i] = {bf16_write('pn', 'p') if bf16_params else 'pn'}"]
        for j in range(n_slots):
            body += int8_out(j) if j in int8 else [f"{codes.format(j)}[i] = {bf16_write(f'y{j}', j)}"]
        return body

    lines = [f"    c{j}_ = c{j}[o : o + n]" for j in [*range(n_slots), *(["k"] if kahan else [])]]
    if int8:  # the tensors kept exact (float32 values in f{j}), element by element
        lines += ["    if aux[c, 1] >= 0:", "        q = aux[c, 1]"]
        inputs = [f"f{j}[q + i]" if j in int8 else f"bf16_decode(c{j}_[i])" for j in range(n_slots)]
        body = element(inputs, "p_", "g_", "o + i", "c{}_", lambda j: [f"f{j}[q + i] = y{j}"])
        lines += ["        for i in range(n):", *(f"            {x}" for x in body), "        return"]
        # block by block; each block's arrays sliced, so the loops run over range(m) (and vectorize)
        lines += [f"    buf = np.empty(({len(int8)}, BLOCK), np.float32)", "    for j0 in range(0, n, BLOCK):"]
        lines += ["        m = min(BLOCK, n - j0)", "        blk = aux[c, 0] + j0 // BLOCK"]
        lines += ["        pb = p_[j0 : j0 + m]; gb = g_[j0 : j0 + m]"]
        lines += [f"        b{j} = c{j}_[j0 : j0 + m]" for j in [*range(n_slots), *(["k"] if kahan else [])]]
        lines += [f"        d{j} = sc{j}[blk]; x{j} = np.uint32(0)" for j in int8]
        inputs = [
            f"{_DECODE[kind]}(b{j}[i], d{j})" if j in int8 else f"bf16_decode(b{j}[i])"
            for j, kind in enumerate(slot_kinds)
        ]
        row = {j: r for r, j in enumerate(int8)}
        body = element(
            inputs, "pb", "gb", "o + j0 + i", "b{}",
            lambda j: [f"buf[{row[j]}, i] = y{j}", f"x{j} = max_magnitude(x{j}, y{j})"],
        )  # fmt: skip
        lines += ["        for i in range(m):", *(f"            {x}" for x in body)]
        for j in int8:
            lines += [f"        sc{j}[blk] = from_bits(x{j})", f"        v{j} = inverse_scale(sc{j}[blk])"]
        lines += ["        for i in range(m):"]
        lines += [f"            b{j}[i] = {_ENCODE[slot_kinds[j]]}(buf[{row[j]}, i], v{j})" for j in int8]
    else:
        body = element([f"bf16_decode(c{j}_[i])" for j in range(n_slots)], "p_", "g_", "o + i", "c{}_", None)
        lines += ["    for i in range(n):", *(f"        {x}" for x in body)]
    return _HEADER.format(
        module=rule.__module__, name=rule.__name__, block=BLOCK, sargs=sargs, unpack=unpack,
        arrays="".join(f"{a}, " for a in slot_args), scalars="".join(f"{a}, " for a in scalars), body="\n".join(lines),
    )  # fmt: skip


@cache
def _kernels(
    rule: Rule, slot_kinds: tuple[str, ...], bf16_params: bool, stochastic: bool, kahan: bool
) -> tuple[Kernel, Kernel]:
    n_scalars = len(inspect.signature(rule).parameters) - 2 - len(slot_kinds)
    source = _source(rule, slot_kinds, bf16_params, stochastic, kahan, n_scalars)
    digest = hashlib.sha256((source + _package_fingerprint() + _rule_fingerprint(rule)).encode()).hexdigest()[:16]
    write = ("bf16" if bf16_params else "f") + ("sr" if stochastic else "rn") + ("k" if kahan else "")
    kernels = _load_kernels(f"lowp_{rule.__name__}_{'_'.join(slot_kinds) or 'none'}_{write}_{digest}", source)
    return kernels.serial, kernels.parallel
