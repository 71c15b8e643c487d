"""One optimizer step, float32, side by side in one process: adamkit vs torch.optim vs the memory floor.

The floor is a fused numba loop that reads and writes exactly the arrays the optimizer must touch (Adam:
reads p, g, m, v and writes p, m, v) with no arithmetic to speak of: no step can be faster than it.
Times are medians after warm-up; ratios are what to read (absolute times drift on a shared machine).

    python benchmarks/bench_step.py [--quick] [--only adam,sgd-momentum] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numba
import numpy as np
import torch

import adamkit

# name, adamkit factory, torch factory (kwargs), arrays read, arrays written (written ⊆ read; g is never written)
OPTIMIZERS = [
    ("adam", lambda p: adamkit.Adam(p, lr=1e-3), ("Adam", dict(lr=1e-3)), 4, 3),
    ("adamw", lambda p: adamkit.AdamW(p, lr=1e-3), ("AdamW", dict(lr=1e-3)), 4, 3),
    ("adam-amsgrad", lambda p: adamkit.Adam(p, lr=1e-3, amsgrad=True), ("Adam", dict(lr=1e-3, amsgrad=True)), 5, 4),
    ("sgd", lambda p: adamkit.SGD(p, lr=1e-3), ("SGD", dict(lr=1e-3)), 2, 1),
    ("sgd-momentum", lambda p: adamkit.SGD(p, lr=1e-3, momentum=0.9), ("SGD", dict(lr=1e-3, momentum=0.9)), 3, 2),
    ("adagrad", lambda p: adamkit.Adagrad(p), ("Adagrad", {}), 3, 2),
    ("rmsprop", lambda p: adamkit.RMSprop(p), ("RMSprop", {}), 3, 2),
    ("rmsprop-centered-mom", lambda p: adamkit.RMSprop(p, centered=True, momentum=0.9),
     ("RMSprop", dict(centered=True, momentum=0.9)), 5, 4),
    ("adadelta", lambda p: adamkit.Adadelta(p), ("Adadelta", {}), 4, 3),
    ("adamax", lambda p: adamkit.Adamax(p), ("Adamax", {}), 4, 3),
    ("nadam", lambda p: adamkit.NAdam(p), ("NAdam", {}), 4, 3),
    ("radam", lambda p: adamkit.RAdam(p), ("RAdam", {}), 4, 3),
]  # fmt: skip
WORKLOADS = [(1, 10_000_000), (1000, 1000), (200, 50_000)]
SETTLE_S = 1e-3  # untimed calls of a contender right before each timed call, see median_ms
FIRST_FIVE = 5  # the issue #2 optimizers run every workload; the rest run 1 × 10M (issue #3)
STEP_GRADS = {"adam", "sgd"}  # also timed as step(grads) with a fresh dict of gradients each step


def floor_kernel(n_read: int, n_write: int):
    """``x = Σ a_k[i]``, then ``a_k[i] = x`` for k = 1..n_write: exactly the optimizer's memory traffic.

    ``a0`` plays the gradient (read only); ``n_write <= n_read - 1``.
    """
    args = ", ".join(f"a{k}" for k in range(n_read))
    body = " + ".join(f"a{k}[i]" for k in range(n_read))
    writes = "; ".join(f"a{k}[i] = x" for k in range(1, n_write + 1))
    src = f"def floor({args}):\n    for i in numba.prange(a0.shape[0]):\n        x = {body}\n        {writes}\n"
    namespace = {"numba": numba}
    exec(src, namespace)
    return numba.njit(parallel=True, nogil=True)(namespace["floor"])


def median_ms(contenders: dict, runs: int, warmup: int = 3) -> dict:
    """Median ms per call of each contender, timed interleaved (one call each per round) so drift hits all alike.

    Each timed call follows untimed calls of the same contender for at least ``SETTLE_S``: torch and numba each
    run an OpenMP pool whose threads spin after a parallel region, so a call right after *another* runtime's
    call pays for that runtime's spinning threads (and a call after an idle pause, for waking its own). One
    untimed call is not enough for sub-millisecond steps: at 1000 × 1000 it inflated adamkit and the floor by
    0.06-0.09 ms.
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            settled = time.perf_counter() + SETTLE_S
            fn()
            while time.perf_counter() < settled:
                fn()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def torch_step(torch_spec, arrays, **impl):
    name, kwargs = torch_spec
    params = [torch.from_numpy(a.copy()) for a in arrays]
    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    try:
        opt = getattr(torch.optim, name)(params, **kwargs, **impl)
        opt.step()
    except (RuntimeError, TypeError, ValueError) as err:
        return None, str(err).splitlines()[0]
    return opt.step, None


def bench(name, make, torch_spec, n_read, n_write, count, size, runs):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(size).astype(np.float32) for _ in range(count)]
    try:
        opt = make(arrays)
    except AttributeError as err:  # an optimizer adamkit does not export yet
        return {"optimizer": name, "tensors": count, "size": size, "skipped": str(err)}
    for g in opt.grads.values():
        g[...] = np.float32(1e-3)
    floor_arrays = [np.ones(count * size, np.float32) * np.float32(1e-3) for _ in range(n_read)]
    floor = floor_kernel(n_read, n_write)
    row = {"optimizer": name, "tensors": count, "size": size}
    contenders = {"adamkit": opt.step, "floor": lambda: floor(*floor_arrays)}
    if name in STEP_GRADS:  # the NumPy user's loop: a fresh dict of gradient arrays every step
        mine = [a.copy() for a in arrays]
        other = make({str(i): a for i, a in enumerate(mine)})
        fresh = [np.full(size, 1e-3, np.float32) for _ in range(count)]
        contenders["adamkit_step_grads"] = lambda: other.step({str(i): g for i, g in enumerate(fresh)})
    for impl in ("fused", "foreach"):
        step, err = torch_step(torch_spec, arrays, **{impl: True})
        if step:
            contenders[f"torch_{impl}"] = step
        else:
            row[f"torch_{impl}_note"] = err
    for key, ms in median_ms(contenders, runs).items():
        row[f"{key}_ms"] = ms
    for impl in ("fused", "foreach"):
        row.setdefault(f"torch_{impl}_ms", None)
    return row


def ratio(a, b):
    return None if a is None or b is None else a / b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 30 s)")
    parser.add_argument("--only", help="comma-separated optimizer names")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_step.json"))
    args = parser.parse_args()
    threads = min(2, os.cpu_count() or 1)  # the targets are for this 2-core machine: 2 threads each
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    only = set(args.only.split(",")) if args.only else None
    rows = []
    header = (
        f"{'optimizer':20s} {'workload':>14s} {'adamkit':>9s} {'floor':>9s} {'t.fused':>9s} {'t.foreach':>9s}"
        f" {'floor/ak':>9s} {'fused/ak':>9s} {'foreach/ak':>10s} {'floor/fused':>11s}"
    )
    print(f"float32, ms per step (median); numba threads {numba.get_num_threads()}, torch {torch.__version__}")
    print(header)
    for index, (name, make, torch_spec, n_read, n_write) in enumerate(OPTIMIZERS):
        if only and name not in only:
            continue
        for count, size in WORKLOADS if index < FIRST_FIVE else WORKLOADS[:1]:
            runs = max(5, int((3 if args.quick else 20) * 1e7 / (count * size) ** 1.0)) if count * size > 1e6 else 200
            runs = min(runs, 40 if args.quick else 300)
            row = bench(name, make, torch_spec, n_read, n_write, count, size, runs)
            if "skipped" in row:
                print(f"{name:20s} skipped: adamkit does not export it yet ({row['skipped']})", flush=True)
                break
            if row["torch_fused_ms"] is None:
                row["torch_fused_note"] = "torch has no fused version; compare with foreach"
            row["torch_fused_floor_fraction"] = ratio(row["floor_ms"], row["torch_fused_ms"])
            row["floor_throughput_fraction"] = ratio(row["floor_ms"], row["adamkit_ms"])
            row["speedup_vs_torch_fused"] = ratio(row["torch_fused_ms"], row["adamkit_ms"])
            row["speedup_vs_torch_foreach"] = ratio(row["torch_foreach_ms"], row["adamkit_ms"])
            if "adamkit_step_grads_ms" in row:
                row["step_grads_speedup_vs_torch_fused"] = ratio(row["torch_fused_ms"], row["adamkit_step_grads_ms"])
            rows.append(row)

            def fmt(x, spec="9.3f"):
                return f"{x:{spec}}" if x is not None else f"{'n/a':>{spec[:-3]}}"

            print(
                f"{name:20s} {f'{count}x{size}':>14s} {fmt(row['adamkit_ms'])} {fmt(row['floor_ms'])}"
                f" {fmt(row['torch_fused_ms'])} {fmt(row['torch_foreach_ms'])}"
                f" {fmt(row['floor_throughput_fraction'], '9.2f')} {fmt(row['speedup_vs_torch_fused'], '9.2f')}"
                f" {fmt(row['speedup_vs_torch_foreach'], '10.2f')}"
                f" {fmt(row['torch_fused_floor_fraction'], '11.2f')}",
                flush=True,
            )
            if "adamkit_step_grads_ms" in row:
                print(
                    f"{'  … step(grads)':20s} {'':>14s} {fmt(row['adamkit_step_grads_ms'])} {'':>9s}"
                    f" {fmt(row['torch_fused_ms'])} {'':>9s} {'':>9s}"
                    f" {fmt(row['step_grads_speedup_vs_torch_fused'], '9.2f')}",
                    flush=True,
                )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "numba": numba.__version__,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print("floor/ak: fraction of the floor's throughput adamkit reaches (1 = at the memory floor);")
    print("fused/ak, foreach/ak: speed-up over torch; floor/fused: torch fused's own fraction of the floor.")
    print("n/a under t.fused: torch has no fused CPU version of that optimizer; compare with foreach.")
    print("… step(grads): adamkit given a fresh dict of gradient arrays each step (copied into its gradient buffer).")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
