"""Flat buffers: every parameter of one group and dtype packed into one contiguous array.

The gradient and every state slot (m, v, momentum buffer, ...) are arrays of the same layout, so one kernel
call updates all tensors of the group. A segment table records where each tensor lives. Step counts and host
scalars are kept per tensor, as torch.optim does: they stay equal unless some tensors skip steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class Segment:
    """One tensor inside a flat buffer: ``buffer[offset : offset + size].reshape(shape)``."""

    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def view(self, buffer: np.ndarray) -> np.ndarray:
        """A live view of this tensor in ``buffer`` (0-d and empty shapes included)."""
        return buffer[self.offset : self.offset + self.size].reshape(self.shape)


@dataclass
class Run:
    """What an optimizer's plan sees of the tensors stepped together: dtype, state slots, host scalars."""

    dtype: np.dtype
    state: dict[str, np.ndarray]
    scalars: dict[str, float]


@dataclass
class FlatBuffer:
    """Parameters, gradient and optimizer state of one (param group, dtype), each one 1-D array.

    ``state`` maps slot names to flat arrays; ``steps[i]`` and ``scalars[i]`` are the update count and the
    host-side running values (e.g. NAdam's μ product) of segment ``i``.
    """

    dtype: np.dtype
    segments: list[Segment]
    data: np.ndarray
    grad: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    scalars: list[dict[str, float]] = field(default_factory=list)
    uniform: bool = True  # all segments share one step count (the fast path: no per-segment work)

    @classmethod
    def pack(cls, named: list[tuple[str, np.ndarray]]) -> FlatBuffer:
        """Copy ``named`` arrays (all of one dtype) into one new contiguous buffer."""
        dtype = named[0][1].dtype
        segments, offset = [], 0
        for name, array in named:
            segments.append(Segment(name, offset, tuple(array.shape)))
            offset += array.size
        data = np.empty(offset, dtype=dtype)
        for seg, (_, array) in zip(segments, named):
            seg.view(data)[...] = array
        n = len(segments)
        return cls(dtype, segments, data, np.zeros_like(data), steps=[0] * n, scalars=[{} for _ in range(n)])

    @property
    def size(self) -> int:
        return self.data.size

    def slot(self, name: str, fill: float = 0.0) -> np.ndarray:
        """The flat state array ``name``, created filled with ``fill`` on first use."""
        if name not in self.state:
            self.state[name] = np.full(self.size, fill, dtype=self.dtype)
        return self.state[name]

    def ranges(self, members: list[int]) -> list[tuple[int, int]]:
        """The segments ``members`` (ascending) as maximal contiguous ``(start, stop)`` element ranges."""
        out: list[tuple[int, int]] = []
        for i in members:
            seg = self.segments[i]
            if out and out[-1][1] == seg.offset:
                out[-1] = (out[-1][0], seg.offset + seg.size)
            else:
                out.append((seg.offset, seg.offset + seg.size))
        return out
