"""Two thread pools in one process: torch's OpenMP (its own bundled libgomp) and numba's (the threading layer).

An idle OpenMP worker spins for a while after each parallel region before it sleeps. In a training loop the
optimizer step follows torch's backward, and torch's forward follows the step, so each pool's spinning workers
compete for the cores with the other's next parallel region. This prints, for the numba threading layer in use
(choose it with ``NUMBA_THREADING_LAYER=omp|workqueue|tbb``; torch's spinning with ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT``, read when torch loads):

- the CPU time idle workers burn in the 50 ms after one parallel region of each runtime (robust to a loaded
  machine: it counts only this process's threads);
- the adamkit.torch Adam step (1000 × 1000, grads bound) settled (after its own steps) and right after a torch op,
  and that torch op settled and right after the step (median and 10th percentile, ms: timings need a quiet
  machine). The torch op is parallel but small (1 MB), so that it does not flush the step's data from the caches:
  the difference is the other pool's spinning (and the step's 28 MB do flush the op's data: compare with
  ``OMP_WAIT_POLICY=PASSIVE``, which has no spinning).

    python benchmarks/bench_torch_threads.py
"""

from __future__ import annotations

import os
import time

import numba
import torch

import adamkit.torch as at


def cpu_burnt_ms(region, wait: float = 0.05, runs: int = 5) -> float:
    """Median CPU ms this process burns while the main thread sleeps ``wait`` s right after ``region()``."""
    burnt = []
    for _ in range(runs):
        time.sleep(0.2)  # every pool asleep
        region()
        cpu = time.process_time()
        time.sleep(wait)
        burnt.append(1e3 * (time.process_time() - cpu))
    return sorted(burnt)[runs // 2]


def times_ms(fn, before, runs: int = 300) -> str:
    out = []
    for _ in range(runs):
        before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    out.sort()
    return f"{1e3 * out[runs // 2]:.3f} (p10 {1e3 * out[runs // 10]:.3f})"


def settled(fn, seconds: float = 2e-3):
    def run() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            fn()

    return run


def main() -> None:
    threads = min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(1000, generator=g).requires_grad_() for _ in range(1000)]
    opt = at.Adam(params, lr=1e-3)
    for p in params:
        p.grad = 1e-3 * torch.randn(1000, generator=g)
    opt.step()  # grads now bound
    x = torch.randn(1 << 18, generator=g)  # 1 MB: above torch's parallel grain, too small to flush the caches

    def torch_op() -> None:  # one parallel torch op, as at the end of a backward
        x.mul_(1.0000001)

    layer = numba.threading_layer()
    policy = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}
    print(f"numba layer {layer}, {threads} threads each; torch OpenMP env {policy or 'default'}")
    print(f"CPU ms burnt by idle workers in the 50 ms after: a torch op {cpu_burnt_ms(torch_op):.2f}, "
          f"an adamkit step {cpu_burnt_ms(opt.step):.2f}, nothing {cpu_burnt_ms(lambda: None):.2f}")  # fmt: skip
    print(f"adamkit step ms: settled {times_ms(opt.step, settled(opt.step))}, "
          f"right after a torch op {times_ms(opt.step, torch_op)}")  # fmt: skip
    print(f"torch op ms: settled {times_ms(torch_op, settled(torch_op))}, "
          f"right after an adamkit step {times_ms(torch_op, opt.step)}")  # fmt: skip


if __name__ == "__main__":
    main()
