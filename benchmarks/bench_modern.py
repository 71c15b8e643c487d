"""The optimizers beyond Adam, float32 on CPU, side by side in one process: adamkit vs its reference package,
and vs its own memory floor where the update is elementwise (Lion's target: within 1.1× of its floor).

Workloads: 1 × 10M elements (Lion, LAMB, ScheduleFreeAdamW); a 4096 × 2560 matrix plus a few vectors
(Adafactor, Muon). ``--quick``: 1 × 1M and 512 × 320, a few runs (about a minute).

    python benchmarks/bench_modern.py [--quick] [--only lion,muon] [--threads N] [--json PATH]

``--threads`` (default: 2, or fewer cores) sets torch's, numba's and the BLAS's threads alike; on a loaded machine
``--threads 1`` gives steadier ratios.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numba
import numpy as np
import torch
from threadpoolctl import threadpool_limits

import adamkit
from adamkit.lab.bench import floor_kernel, median_ms, write_json  # noqa: E402


def lion_ref(params):
    import lion_pytorch

    return lion_pytorch.Lion(params, lr=1e-4)


def lamb_ref(params):
    import pytorch_optimizer

    return pytorch_optimizer.Lamb(params, lr=1e-3)


def schedulefree_ref(params):
    import schedulefree

    opt = schedulefree.AdamWScheduleFree(params, lr=2.5e-3)
    opt.train()
    return opt


class MuonRef:
    """torch.optim.Muon on the matrices, torch.optim.AdamW on the rest (what adamkit.Muon does in one)."""

    def __init__(self, params):
        matrices, others = [p for p in params if p.ndim == 2], [p for p in params if p.ndim != 2]
        self.parts = [torch.optim.Muon(matrices, lr=1e-3), torch.optim.AdamW(others, lr=1e-3)]

    def step(self):
        for part in self.parts:
            part.step()


# name, adamkit factory, reference factory, workload ("vector" or "matrix"), floor (reads, writes) or None
OPTIMIZERS = [
    ("lion", lambda p: adamkit.Lion(p, lr=1e-4), lion_ref, "vector", (3, 2)),
    ("lamb", lambda p: adamkit.LAMB(p, lr=1e-3), lamb_ref, "vector", (4, 3)),
    ("schedulefree-adamw", lambda p: adamkit.ScheduleFreeAdamW(p), schedulefree_ref, "vector", (4, 3)),
    ("adafactor", lambda p: adamkit.Adafactor(p), lambda p: torch.optim.Adafactor(p), "matrix", None),
    ("muon", lambda p: adamkit.Muon(p, lr=1e-3), MuonRef, "matrix", None),
]


def shapes(workload: str, quick: bool) -> list[tuple[int, ...]]:
    if workload == "vector":
        return [(1_000_000,)] if quick else [(10_000_000,)]
    rows, cols = (512, 320) if quick else (4096, 2560)
    return [(rows, cols), (cols,), (rows,), (cols,)]


def bench(name, make, make_ref, workload, floor_spec, quick, runs):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes(workload, quick)]
    grads = [(1e-3 * rng.standard_normal(a.shape)).astype(np.float32) for a in arrays]
    opt = make([a.copy() for a in arrays])
    for view, g in zip(opt.grads.values(), grads):
        view[...] = g
    tensors = [torch.from_numpy(a.copy()) for a in arrays]
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    ref = make_ref(tensors)
    contenders = {"adamkit": opt.step, "reference": ref.step}
    size = sum(a.size for a in arrays)
    if floor_spec is not None:
        floor_arrays = [np.full(size, 1e-3, np.float32) for _ in range(floor_spec[0])]
        floor = floor_kernel(*floor_spec)
        contenders["floor"] = lambda: floor(*floor_arrays)
    row = {"optimizer": name, "shapes": [list(a.shape) for a in arrays], "elements": size}
    for key, ms in median_ms(contenders, runs, warmup=1).items():
        row[f"{key}_ms"] = ms
    row["speedup_vs_reference"] = row["reference_ms"] / row["adamkit_ms"]
    if floor_spec is not None:
        row["adamkit_over_floor"] = row["adamkit_ms"] / row["floor_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, few runs")
    parser.add_argument("--only", help="comma-separated optimizer names")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="threads for every library")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_modern.json"))
    args = parser.parse_args()
    threads = args.threads
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(threads)  # NumPy's BLAS (Muon's matmuls and eigendecomposition), as torch's
    only = set(args.only.split(",")) if args.only else None
    print(f"float32, ms per step (median); threads {threads}, torch {torch.__version__}")
    print(f"{'optimizer':20s} {'adamkit':>10s} {'reference':>10s} {'floor':>9s} {'ref/ak':>7s} {'ak/floor':>8s}")
    rows = []
    for name, make, make_ref, workload, floor_spec in OPTIMIZERS:
        if only and name not in only:
            continue
        runs = (3 if args.quick else 5) if workload == "matrix" else (10 if args.quick else 40)
        row = bench(name, make, make_ref, workload, floor_spec, args.quick, runs)
        rows.append(row)
        floor = f"{row['floor_ms']:9.2f}" if "floor_ms" in row else f"{'-':>9s}"
        over = f"{row['adamkit_over_floor']:8.2f}" if "adamkit_over_floor" in row else f"{'-':>8s}"
        print(
            f"{name:20s} {row['adamkit_ms']:10.2f} {row['reference_ms']:10.2f} {floor} "
            f"{row['speedup_vs_reference']:7.2f} {over}",
            flush=True,
        )
    out = write_json(rows, Path(args.json), quick=args.quick, threads=threads)
    print("ref/ak: speed-up over the reference package; ak/floor: adamkit's time over its memory floor (1 = at it).")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
