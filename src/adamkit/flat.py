"""Parameter buckets: the tensors of one (param group, dtype), with adamkit's flat gradient and state beside them.

The parameters are kept where they live. By default they are the **caller's own arrays**, updated in place
(the fused engine reaches them through their addresses and a chunk table); a front end whose parameter objects
may be rebound (DeZero's ``.data``, torch's ``p.data``, ``minimize``'s own copy) may instead ``pack`` them into
one contiguous buffer that adamkit owns, and bind its objects to views of it. Either way the gradient and every
state slot (m, v, momentum buffer, ...) are flat arrays laid out tensor after tensor, so one kernel call updates
every tensor of the bucket. Step counts and host scalars are kept per tensor, as torch.optim does: they stay
equal unless some tensors skip steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

CHUNK = 1 << 14
"""Elements per row of the chunk table: the unit of parallel work over caller-owned tensors."""

SMALL_TENSOR = 1 << 12
"""Below this mean size, gradients passed to ``step(grads)`` are copied into one flat scratch (see ``gradients``)."""


@dataclass(frozen=True)
class Segment:
    """One tensor's place in the flat gradient and state arrays: ``flat[offset : offset + size]``."""

    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def view(self, buffer: np.ndarray) -> np.ndarray:
        """A live view of this tensor in ``buffer`` (0-d and empty shapes included)."""
        return buffer[self.offset : self.offset + self.size].reshape(self.shape)


class GradAt(NamedTuple):
    """Gradients read where they are, by address (the fused engine only): ``at[k]`` is where the gradient of the
    ``k``-th tensor stepped starts, C-contiguous, of that tensor's shape and dtype."""

    at: np.ndarray


class GradAddresses(dict):
    """``step``'s gradients by address, for a front end whose gradients are not NumPy arrays (``adamkit.torch``):
    ``id(bucket)`` → the int64 addresses of its tensors' gradients, in segment order (see ``GradAt``). Valid only
    where ``Optimizer._reads_by_address()``; the caller has checked every gradient's shape, dtype and layout."""


@dataclass
class Run:
    """What an optimizer's plan sees of the tensors stepped together: dtype, state slots, host scalars, and
    whether the bucket stores low-precision state or parameters (its trajectory is then not a framework's to the
    rounding, so a plan may pick a cheaper form of the same formula)."""

    dtype: np.dtype
    state: dict[str, np.ndarray]
    scalars: dict[str, float]
    low_precision: bool = False


@dataclass
class Tensors:
    """Some tensors of a bucket, as the engines take them.

    ``flat`` (1-D, the parameters of a packed bucket when every tensor is stepped) or else ``views`` (1-D views of
    each parameter), ``offsets`` (where each starts in the flat gradient and state), and for the fused engine
    ``addresses`` (of each parameter's first element) and ``chunks`` (rows ``(tensor, start, stop, flat offset)``).
    """

    flat: np.ndarray | None
    views: list[np.ndarray]
    offsets: list[int]
    offsets_array: np.ndarray
    addresses: np.ndarray
    chunks: np.ndarray
    size: int  # elements in all


@dataclass
class FlatBuffer:
    """Parameters, flat gradient and flat optimizer state of one (param group, dtype).

    ``params[i]`` is the array that *is* tensor ``i`` (the caller's, or a view of ``data`` when packed);
    ``state`` maps slot names to flat arrays; ``steps[i]`` and ``scalars[i]`` are the update count and the
    host-side running values (e.g. NAdam's μ product) of tensor ``i``.
    """

    dtype: np.dtype
    segments: list[Segment]
    params: list[np.ndarray]
    grad: np.ndarray
    data: np.ndarray | None = None  # the packed parameter buffer, when adamkit owns the storage
    state: dict[str, np.ndarray] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    scalars: list[dict[str, float]] = field(default_factory=list)
    uniform: bool = True  # all tensors share one step count and host scalars (the fast path)
    work: np.ndarray | None = None  # during a step with gradient hooks: the scratch gradient they transform
    last_cast: tuple | None = None  # (scalars, their types, cast to dtype): the last step's, reused when equal
    lowp: Any = None  # low-precision storage (an adamkit.lowp.Precision), None for plain float state
    launch: Any = None  # the whole-bucket kernel call a step prepared, reused while valid (Stepping._launches)
    _all: Tensors | None = None
    _scratch: np.ndarray | None = None

    @classmethod
    def of(cls, named: list[tuple[str, np.ndarray]], *, packed: bool = False) -> FlatBuffer:
        """A bucket over ``named`` arrays (all of one dtype): the arrays themselves, or packed into a new buffer
        (then ``params`` are views of it and the caller's arrays are no longer used)."""
        dtype = named[0][1].dtype
        segments, offset = [], 0
        for name, array in named:
            segments.append(Segment(name, offset, tuple(array.shape)))
            offset += array.size
        data = None
        if packed:
            data = np.empty(offset, dtype=dtype)
            for seg, (_, array) in zip(segments, named):
                seg.view(data)[...] = array
            arrays = [seg.view(data) for seg in segments]
        else:
            arrays = [array for _, array in named]
        n = len(segments)
        grad = np.zeros(offset, dtype)
        return cls(dtype, segments, arrays, grad, data, steps=[0] * n, scalars=[{} for _ in range(n)])

    @property
    def size(self) -> int:
        return self.grad.size

    def stepped(self, t: int, scalars: dict[str, float]) -> None:
        """Record a step of every tensor: step count ``t``, host scalars ``scalars`` (one dict, shared: it is
        replaced at the next step, never mutated)."""
        n = len(self.segments)
        self.steps, self.scalars, self.uniform = [t] * n, [scalars] * n, True

    def slot(self, name: str, fill: float = 0.0) -> np.ndarray:
        """The flat state array ``name``, created filled with ``fill`` on first use."""
        if name not in self.state:
            self.state[name] = np.full(self.size, fill, dtype=self.dtype)
        return self.state[name]

    def __getstate__(self) -> dict:
        """For copy and pickle: no cached addresses (they would point into the original's arrays) and, when
        packed, no parameter views (rebuilt as views of the copied buffer)."""
        state = {**self.__dict__, "_all": None, "_scratch": None, "work": None, "launch": None}
        if self.data is not None:
            state["params"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.data is not None:
            self.params = [seg.view(self.data) for seg in self.segments]

    def scratch(self, sources: dict[str, np.ndarray] | None) -> np.ndarray:
        """A flat scratch gradient holding this step's gradients (``sources`` by name, else ``grad``): one
        copy, laid out as ``grad``."""
        if self._scratch is None:  # bf16 gradients are transformed in float32 (hooks' reductions need a float)
            wide = self.grad.dtype.name == "bfloat16"
            self._scratch = np.empty(self.grad.shape, np.float32 if wide else self.grad.dtype)
        if sources is None:
            self._scratch[...] = self.grad
        elif self.segments:
            np.concatenate([sources[seg.name] for seg in self.segments], axis=None, out=self._scratch)
        return self._scratch

    def gradients(
        self, sources: dict[str, np.ndarray], members: list[int] | None
    ) -> np.ndarray | list[np.ndarray] | GradAt:
        """This step's gradients of ``members`` (None: all) as the engines take them: read where they are
        (one 1-D array per tensor, or their addresses from ``GradAddresses``), or — for many small arrays, where
        one copy costs less than handing the kernel each array's address — copied into a flat scratch laid out
        as ``grad``."""
        if isinstance(sources, GradAddresses):
            at = sources[id(self)]
            return GradAt(at if members is None else at[members])
        if members is None and self.size < SMALL_TENSOR * len(self.segments):
            return self.scratch(sources)
        ids = range(len(self.segments)) if members is None else members
        return [np.ascontiguousarray(sources[self.segments[i].name]).reshape(-1) for i in ids]

    def replace(self, i: int, array: np.ndarray) -> None:
        """Make ``array`` (already validated: same shape and dtype, C-contiguous) the storage of tensor ``i``."""
        if self.data is not None:
            self.segments[i].view(self.data)[...] = array
        else:
            self.params[i] = array
            self._all = None

    def tensors(self, members: list[int] | None = None) -> Tensors:
        """The tensors ``members`` (ascending; None: all) in the engines' form."""
        if members is None:
            if self._all is None:
                self._all = self._tensors(range(len(self.segments)))
            return self._all
        return self._tensors(members)

    def _tensors(self, members: range | list[int]) -> Tensors:
        views = [self.params[i].reshape(-1) for i in members]
        offsets = [self.segments[i].offset for i in members]
        addresses = np.array([v.ctypes.data for v in views], dtype=np.int64)
        rows = [
            (k, a, min(a + CHUNK, v.size), o + a)  # tensor k's elements a:b, at o + a in the flat arrays
            for k, (v, o) in enumerate(zip(views, offsets))
            for a in range(0, v.size, CHUNK)
        ]
        chunks = np.array(rows, dtype=np.int64).reshape(-1, 4)
        whole = self.data is not None and len(views) == len(self.segments)
        size = sum(v.size for v in views)
        flat = self.data if whole else None
        return Tensors(flat, views, offsets, np.array(offsets, dtype=np.int64), addresses, chunks, size)
