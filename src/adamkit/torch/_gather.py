"""Gathering new gradients into the flat gradient buffer, by address, in one numba copy.

After ``zero_grad(set_to_none=True)`` autograd gives every parameter a new grad tensor; the step copies them
into the flat gradient buffer (then rebinds them). A torch copy would wake torch's OpenMP pool right before the
step's numba kernel, whose own pool then competes with torch's spinning threads: the copy runs in numba's pool
instead, one call over every tensor (chunks of ``flat.CHUNK`` elements as parallel tasks).
"""

from __future__ import annotations

import operator

import numba
import numpy as np
import torch

from ..engine import PARALLEL_MIN_SIZE, at_address, process_safe
from ..flat import CHUNK


def _copy_chunks(dst_at, src_at, chunks, like):  # noqa: ANN001, ANN202 (numba)  # pragma: no cover
    for c in numba.prange(chunks.shape[0]):
        k, a, b = chunks[c, 0], chunks[c, 1], chunks[c, 2]
        dst = at_address(dst_at[k] + a * like.itemsize, b - a, like)
        src = at_address(src_at[k] + a * like.itemsize, b - a, like)
        for i in range(b - a):
            dst[i] = src[i]


# Made safe after fork and across threads as adamkit's kernels are (see adamkit.engine); the serial twin is not
# disk-cached (numba would key both compilations of one function to the same cache entry).
_copy = process_safe(
    numba.njit(parallel=True, nogil=True, cache=True)(_copy_chunks), numba.njit(nogil=True)(_copy_chunks)
)


class Gather:
    """Copies into fixed destination tensors (views of the flat gradient buffers, real dtypes), grouped by dtype:
    ``gather(sources)`` copies ``sources[i]`` (dense, C-contiguous, of ``dst[i]``'s shape and dtype) into
    ``dst[i]``. The chunk tables are built once; a call costs one ``data_ptr()`` per source and one kernel call
    per dtype."""

    def __init__(self, dst: list[torch.Tensor]):
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(dst):
            by_dtype.setdefault(t.dtype, []).append(i)
        self.parts = []
        for dtype, idx in by_dtype.items():
            sizes = [dst[i].numel() for i in idx]
            rows = [(k, a, min(a + CHUNK, n)) for k, n in enumerate(sizes) for a in range(0, n, CHUNK)]
            words = dtype == torch.bfloat16  # numba has no bfloat16: its gradients are copied as 16-bit words
            like = np.empty(0, np.int16 if words else str(dtype).removeprefix("torch."))
            take = operator.itemgetter(*idx) if len(by_dtype) > 1 else None
            at = np.array([dst[i].data_ptr() for i in idx], np.int64)
            kernel = _copy if sum(sizes) >= PARALLEL_MIN_SIZE else _copy.serial
            self.parts.append((take, at, np.array(rows, np.int64).reshape(-1, 3), like, kernel, len(idx) == 1))
            kernel.compile_for((at, at, self.parts[-1][2], like))  # now, not in the middle of a step

    def __call__(self, sources: list[torch.Tensor]) -> None:
        for take, dst_at, chunks, like, kernel, single in self.parts:
            part = sources if take is None else take(sources)
            if single and take is not None:
                part = (part,)
            src_at = np.fromiter(map(torch.Tensor.data_ptr, part), np.int64, len(dst_at))
            kernel(dst_at, src_at, chunks, like)
