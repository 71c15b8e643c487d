"""What precedes a small optimizer step decides its time: adamkit.torch Adam on 1000 × 1000 (grads bound), 60
steps each right after one of a few kinds of work: median (and 10th percentile), ms.

The step moves 28 MB (p, g, m, v read; p, m, v written); this VM's last-level cache is 32 MiB. Steps back to back
find their data in the cache; after a torch fused step on other tensors of the same shapes, or a NumPy sum over
64 MB, they fetch it from memory; after a pause, they also wake the threads. torch on one thread (no torch worker
spinning) tells the cache apart from the two OpenMP pools (see ``bench_torch_threads.py``).

    python benchmarks/bench_torch_cache.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

import adamkit.torch as at

sys.path.insert(0, str(Path(__file__).parent))
from bench_torch import make_params, shapes  # noqa: E402
from bench_torch_threads import times_ms  # noqa: E402


def main() -> None:
    numba.set_num_threads(2)
    shape_list = shapes("1000x1000", quick=False)
    params, grads = make_params(shape_list)
    opt = at.Adam(params, lr=1e-3)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()  # grads bound from here on
    t_params, t_grads = make_params(shape_list, seed=1)
    for p, g in zip(t_params, t_grads):
        p.grad = g
    torch_fused = torch.optim.Adam(t_params, lr=1e-3, fused=True)
    big, small = np.ones(16_000_000, np.float32), np.ones(100_000, np.float32)
    cases = [
        ("nothing (steps back to back)", 2, lambda: None),
        ("a torch fused step, same shapes, torch 2 threads", 2, torch_fused.step),
        ("a torch fused step, same shapes, torch 1 thread", 1, torch_fused.step),
        ("a NumPy sum over 64 MB", 2, big.sum),
        ("a NumPy sum over 400 KB", 2, small.sum),
        ("7 ms of sleep", 2, lambda: time.sleep(0.007)),
    ]
    print("adamkit.torch Adam step, 1000 x 1000 float32, grads bound, numba 2 threads: ms right after")
    for label, torch_threads, before in cases:
        torch.set_num_threads(torch_threads)
        for _ in range(5):
            before()
            opt.step()
        print(f"  {label:72s} {times_ms(opt.step, before, runs=60)}", flush=True)


if __name__ == "__main__":
    main()
