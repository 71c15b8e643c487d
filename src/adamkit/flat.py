"""Flat buffers: every parameter of one group and dtype packed into one contiguous array.

The gradient and every state slot (m, v, momentum buffer, ...) are arrays of the same layout, so one kernel
call updates all tensors of the group. A segment table records where each tensor lives.
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
class FlatBuffer:
    """Parameters, gradient and optimizer state of one (param group, dtype), each one 1-D array.

    ``step`` counts the updates applied to this buffer; ``state`` maps slot names to flat arrays;
    ``scalars`` holds host-side running values shared by all its tensors (e.g. NAdam's μ product).
    """

    dtype: np.dtype
    segments: list[Segment]
    data: np.ndarray
    grad: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)
    step: int = 0
    scalars: dict[str, float] = field(default_factory=dict)

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
        return cls(dtype, segments, data, np.zeros_like(data))

    @property
    def size(self) -> int:
        return self.data.size

    def slot(self, name: str, fill: float = 0.0) -> np.ndarray:
        """The flat state array ``name``, created filled with ``fill`` on first use."""
        if name not in self.state:
            self.state[name] = np.full(self.size, fill, dtype=self.dtype)
        return self.state[name]
