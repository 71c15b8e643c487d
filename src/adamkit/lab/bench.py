"""One optimizer step, float32, side by side in one process: adamkit vs torch.optim vs the memory floor.

The floor is a fused numba loop that reads and writes exactly the arrays the optimizer must touch (Adam:
reads p, g, m, v and writes p, m, v) with no arithmetic to speak of: no step can be faster than it.
Times are medians after warm-up; ratios are what to read (absolute times drift on a shared machine).
torch is optional: without it the torch columns are n/a.

Run it as ``adamkit bench`` or ``python benchmarks/bench_step.py`` [--quick] [--only adam,sgd-momentum]
[--workloads 1x10000000,1000x1000] [--json PATH].
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

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


def median_ms(contenders: dict, runs: int, warmup: int = 3, setups: dict | None = None) -> dict:
    """Median ms per call of each contender, timed interleaved (one call each per round) so drift hits all alike.

    Each timed call follows untimed calls of the same contender for at least ``SETTLE_S``: torch and numba each
    run an OpenMP pool whose threads spin after a parallel region, so a call right after *another* runtime's
    call pays for that runtime's spinning threads (and a call after an idle pause, for waking its own). One
    untimed call is not enough for sub-millisecond steps: at 1000 × 1000 it inflated adamkit and the floor by
    0.06-0.09 ms. ``setups[name]``, where given, runs untimed before every call of that contender (e.g. new
    gradient tensors, as autograd makes after ``zero_grad(set_to_none=True)``).
    """
    setups = setups or {}

    def call(name: str, fn: Callable[[], Any]) -> None:
        if name in setups:
            setups[name]()
        fn()

    for name, fn in contenders.items():
        for _ in range(warmup):
            call(name, fn)
    times: dict = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            settled = time.perf_counter() + SETTLE_S
            call(name, fn)
            while time.perf_counter() < settled:
                call(name, fn)
            if name in setups:
                setups[name]()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def torch_step(torch_spec, arrays, **impl):
    """torch.optim's step on copies of ``arrays`` with ``impl`` (fused=True or foreach=True), or (None, why)."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
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
    """One row: median ms per step of adamkit, the floor and torch (fused, foreach) on ``count`` × ``size``."""
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


def parse_workloads(text: str) -> list[tuple[int, int]]:
    """``"1x10000000,1000x1000"`` → ``[(1, 10000000), (1000, 1000)]`` (tensors × elements each)."""
    workloads = []
    for item in text.split(","):
        count, sep, size = item.strip().lower().partition("x")
        if not (sep and count.isdigit() and size.isdigit() and int(count) > 0 and int(size) > 0):
            raise ValueError(f"workloads must be TENSORSxSIZE with positive integers, e.g. 1000x1000; got {item!r}")
        workloads.append((int(count), int(size)))
    return workloads


def names() -> list[str]:
    return [name for name, *_ in OPTIMIZERS]


def run(
    quick: bool = False,
    only: list[str] | None = None,
    workloads: list[tuple[int, int]] | None = None,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Benchmark rows for each optimizer (``only``: these names) on each workload (None: the standard ones)."""
    if only is not None:
        unknown = sorted(set(only) - set(names()))
        if unknown:
            raise ValueError(f"unknown optimizer(s) {unknown} for --only; choose from {', '.join(names())}")
    threads = min(2, os.cpu_count() or 1)  # the targets are for this 2-core machine: 2 threads each
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    rows = []
    for index, (name, make, torch_spec, n_read, n_write) in enumerate(OPTIMIZERS):
        if only and name not in only:
            continue
        for count, size in workloads or (WORKLOADS if index < FIRST_FIVE else WORKLOADS[:1]):
            runs = max(5, int((3 if quick else 20) * 1e7 / (count * size))) if count * size > 1e6 else 200
            runs = min(runs, 40 if quick else 300)
            row = bench(name, make, torch_spec, n_read, n_write, count, size, runs)
            if "skipped" in row:
                rows.append(row)
                if on_row:
                    on_row(row)
                break
            if row["torch_fused_ms"] is None:
                row["torch_fused_note"] = "torch has no fused version; compare with foreach"
            row["torch_fused_floor_fraction"] = ratio(row["floor_ms"], row["torch_fused_ms"])
            row["floor_throughput_fraction"] = ratio(row["floor_ms"], row["adamkit_ms"])
            row["speedup_vs_torch_fused"] = ratio(row["torch_fused_ms"], row["adamkit_ms"])
            row["speedup_vs_torch_foreach"] = ratio(row["torch_foreach_ms"], row["adamkit_ms"])
            row["step_grads_speedup_vs_torch_fused"] = ratio(row["torch_fused_ms"], row.get("adamkit_step_grads_ms"))
            rows.append(row)
            if on_row:
                on_row(row)
    return rows


def meta() -> dict:
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch_version,
            "numba": numba.__version__, "numba_threads": numba.get_num_threads()}  # fmt: skip


def write_json(rows: list[dict], path: Path, **extra: Any) -> Path:
    """``{"meta": ..., "rows": rows}`` at ``path``: the machine and library versions, plus ``extra`` (the run's
    settings, other libraries' versions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": {**meta(), **extra}, "rows": rows}, indent=2))
    return path


#: Columns of the table: header, row key (or a ratio key), format.
COLUMNS = [
    ("adamkit", "adamkit_ms", ".3f"), ("floor", "floor_ms", ".3f"), ("t.fused", "torch_fused_ms", ".3f"),
    ("t.foreach", "torch_foreach_ms", ".3f"), ("floor/ak", "floor_throughput_fraction", ".2f"),
    ("fused/ak", "speedup_vs_torch_fused", ".2f"), ("foreach/ak", "speedup_vs_torch_foreach", ".2f"),
    ("floor/fused", "torch_fused_floor_fraction", ".2f"), ("ak step(g)", "adamkit_step_grads_ms", ".3f"),
    ("fused/step(g)", "step_grads_speedup_vs_torch_fused", ".2f"),
]  # fmt: skip
LEGEND = (
    "ms per float32 step (median). floor/ak: fraction of the floor's throughput adamkit reaches (1 = at the memory"
    " floor); fused/ak, foreach/ak: speed-up over torch; floor/fused: torch fused's own fraction of the floor;"
    " n/a under t.fused: torch has no fused CPU version of that optimizer (or torch is not installed);"
    " ak step(g): adamkit given a fresh dict of gradient arrays each step (read where they are; many small"
    " tensors are first copied into one scratch buffer, cheaper than handing the kernel 1000 addresses)."
)


def cells(row: dict) -> list[str]:
    """The table's cells of one row: optimizer, workload, then COLUMNS."""
    if "skipped" in row:
        return [row["optimizer"], f"{row['tensors']}x{row['size']}", f"skipped: {row['skipped']}"]
    out = [row["optimizer"], f"{row['tensors']}x{row['size']}"]
    out += [("n/a" if row.get(key) is None else f"{row[key]:{spec}}") for _, key, spec in COLUMNS]
    return out


def main(argv: list[str] | None = None, default_json: Path = Path("bench_step.json")) -> None:
    """Plain-text command line (``benchmarks/bench_step.py``); ``adamkit bench`` is the same with a rich table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 30 s)")
    parser.add_argument("--only", help="comma-separated optimizer names")
    parser.add_argument("--workloads", help="comma-separated TENSORSxSIZE, e.g. 1000x1000 (default: the standard)")
    parser.add_argument("--json", default=str(default_json))
    args = parser.parse_args(argv)
    widths = [20, 14] + [max(9, len(h)) for h, _, _ in COLUMNS]
    print(f"float32, ms per step (median); numba threads {meta()['numba_threads']}, torch {meta()['torch']}")
    print(" ".join(h.rjust(w) if i > 0 else h.ljust(w) for i, (h, w) in
                   enumerate(zip(["optimizer", "workload"] + [h for h, _, _ in COLUMNS], widths))))  # fmt: skip

    def show(row: dict) -> None:
        print(" ".join(c.rjust(w) if i > 0 else c.ljust(w) for i, (c, w) in enumerate(zip(cells(row), widths))),
              flush=True)  # fmt: skip

    rows = run(args.quick, args.only.split(",") if args.only else None,
               parse_workloads(args.workloads) if args.workloads else None, show)  # fmt: skip
    out = write_json(rows, Path(args.json))
    print(LEGEND)
    print(f"wrote {out}")
