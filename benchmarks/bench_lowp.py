"""Low-precision state and bf16 parameters (issue 13): adamkit AdamW fp32 vs each storage option, float32
gradients, side by side in one process, each with its own memory floor and its bytes of state per parameter
measured from the optimizer's buffers.

Each option's floor is a fused loop reading and writing exactly the arrays its step must touch, in their own
dtypes (e.g. bf16 state: reads g, p (4 bytes), m, v (2 bytes), writes p, m, v: 20 bytes per element; int8:
reads and writes 1-byte codes, plus 8 bytes per 256 elements of scales, left out of the floor).

    python benchmarks/bench_lowp.py [--quick] [--sizes 10000000,100000000] [--json PATH]

``--quick``: 1M and 4M elements, a few runs (well under a minute). Read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import ml_dtypes
import numba
import numpy as np

import adamkit
from adamkit.lab.bench import floor_kernel, median_ms, write_json

# name, parameter dtype, AdamW keywords, floor dtypes (gradient, parameter, one per slot)
OPTIONS = [
    ("fp32", np.float32, {}, (np.float32, np.float32, np.float32, np.float32)),
    ("bf16 state", np.float32, dict(state_dtype="bfloat16"), (np.float32, np.float32, np.uint16, np.uint16)),
    ("int8 state", np.float32, dict(state_dtype="int8"), (np.float32, np.float32, np.int8, np.uint8)),
    ("bf16 params+state SR", ml_dtypes.bfloat16, {}, (np.float32, np.uint16, np.uint16, np.uint16)),
    ("bf16 params+state RN", ml_dtypes.bfloat16, dict(stochastic_rounding=False),
     (np.float32, np.uint16, np.uint16, np.uint16)),
    ("bf16 params+int8 SR", ml_dtypes.bfloat16, dict(state_dtype="int8"), (np.float32, np.uint16, np.int8, np.uint8)),
    ("bf16 params Kahan+state SR", ml_dtypes.bfloat16, dict(kahan_sum=True),
     (np.float32, np.uint16, np.uint16, np.uint16, np.uint16)),
]  # fmt: skip


def state_bytes(opt: adamkit.Optimizer) -> int:
    """Bytes held by every state slot of ``opt`` (codes, scales and exact values alike)."""
    total = 0
    for _, flat in opt.flat_buffers():
        for slot in flat.state.values():
            total += sum(a.nbytes for a in slot.arrays()) if hasattr(slot, "arrays") else slot.nbytes
    return total


def bench(size: int, runs: int) -> list[dict]:
    """One row per option at ``size`` elements: ms per step of adamkit and of the option's floor."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal(size).astype(np.float32)
    grad = (1e-3 * rng.standard_normal(size)).astype(np.float32)
    rows, contenders, opts, pool = [], {}, {}, {}
    for name, dtype, kwargs, floor_dtypes in OPTIONS:
        params = [base.astype(dtype)]
        opt = adamkit.AdamW(params, lr=1e-3, **kwargs)
        grads = [grad]
        opt.step(grads)  # creates the state
        opts[name] = opt
        contenders[name] = lambda opt=opt, grads=grads: opt.step(grads)
        arrays = [  # the floors share arrays of each dtype (they only need the bytes): memory stays moderate
            pool.setdefault((np.dtype(dt), k), np.ones(size, dt)) for k, dt in enumerate(floor_dtypes)
        ]
        floor = floor_kernel(len(arrays), len(arrays) - 1)
        contenders[f"{name} floor"] = lambda floor=floor, arrays=arrays: floor(*arrays)
    times = median_ms(contenders, runs, warmup=2)
    for name, *_ in OPTIONS:
        rows.append({
            "option": name, "elements": size, "ms": times[name], "floor_ms": times[f"{name} floor"],
            "speedup_vs_fp32": times["fp32"] / times[name], "over_floor": times[name] / times[f"{name} floor"],
            "state_bytes_per_param": state_bytes(opts[name]) / size,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few runs")
    parser.add_argument("--sizes", help="comma-separated element counts")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_lowp.json"))
    args = parser.parse_args()
    threads = min(2, os.cpu_count() or 1)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [1_000_000, 4_000_000] if args.quick else [10_000_000, 100_000_000]
    )  # fmt: skip
    print(f"AdamW step, float32 gradients, ms (median); threads {threads}")
    print(f"{'option':27s} {'elements':>11s} {'ms':>9s} {'floor':>9s} {'vs fp32':>8s} {'/floor':>7s} {'B/param':>8s}")
    rows = []
    for size in sizes:
        runs = args.runs or (5 if args.quick else (15 if size > 20_000_000 else 40))
        for row in bench(size, runs):
            rows.append(row)
            print(
                f"{row['option']:27s} {size:11d} {row['ms']:9.2f} {row['floor_ms']:9.2f} "
                f"{row['speedup_vs_fp32']:8.2f} {row['over_floor']:7.2f} {row['state_bytes_per_param']:8.3f}",
                flush=True,
            )
    out = write_json(rows, Path(args.json), threads=threads, quick=args.quick)
    print("vs fp32: speed-up over adamkit fp32; /floor: time over the option's own memory floor; B/param: bytes of")
    print(f"optimizer state per parameter, from the buffers. Wrote {out}")


if __name__ == "__main__":
    main()
