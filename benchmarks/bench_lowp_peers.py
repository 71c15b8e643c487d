"""Low-precision AdamW on CPU, side by side in one process: adamkit's options against the peers that offer
8-bit state or bf16 parameters with stochastic rounding, and against torch's fused fp32 AdamW.

adamkit rows run through ``adamkit.torch.AdamW`` (the same kernel as the NumPy API; ``benchmarks/bench_lowp.py``
has those rows on NumPy arrays with float32 gradients and each option's own memory floor): fp32,
``state_dtype="bfloat16"``, ``state_dtype="int8"``, a bf16 model (bf16 state, stochastic rounding) and a bf16
model with int8 state.

Peers, each as its CPU path runs in the installed version (``pip install ".[bench]"``):

- ``torch fused``: ``torch.optim.AdamW(fused=True)``, fp32 parameters and state.
- ``bnb AdamW8bit``: bitsandbytes' block-wise 8-bit AdamW. On CPU its step dequantizes both moments to fp32
  (a C loop), runs the update as fp32 torch ops, then requantizes (C again): no fused kernel.
- ``torchao AdamW8bit`` / ``AdamW4bit`` / ``AdamWFp8``: torchao.optim's low-bit states (tensor subclasses); each
  parameter's step is ``torch.compile(fullgraph=True)``-d, on CPU by Inductor's C++ backend, so the first step
  compiles for a while (not timed: warm-up). They quantize only tensors of ≥ 4096 elements whose size is a
  multiple of the block (256; 128 for 4-bit), hence the sizes here are multiples of 4096.
- ``torchao bf16 SR``: ``torchao.optim._AdamW(bf16_stochastic_round=True)`` on bf16 parameters (fp32 state),
  and ``torchao AdamW8bit bf16 SR`` on bf16 parameters with 8-bit state. torch wants bf16 gradients for bf16
  parameters: the bf16-parameter rows (torchao's and adamkit's) read bf16 gradients, every other row float32.

Rows are timed interleaved (``adamkit.lab.bench.median_ms``), medians after warm-up; read the ratios, not
the absolute times. ``B/param``: bytes of optimizer state per parameter, summed over the state's tensors
(codes, scales, quantization maps). ``floor``: the fp32 AdamW memory floor (4 reads and 3 writes of 4 bytes).

    python benchmarks/bench_lowp_peers.py [--quick] [--sizes 10000000,100000000] [--only a,b] [--json PATH]

``--quick``: 1M and 4M elements, a few runs. At 100M every row holds its own parameters and state at once
(about 10 GB in all; ``--only`` to take fewer).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import torch

import adamkit.torch as at
from adamkit.lab.bench import floor_kernel, median_ms, write_json

LR = 1e-3
QUANTUM = 4096  # peers quantize only tensors whose size is a multiple of their block (≤ 256) and ≥ 4096


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes held by ``t``; a tensor subclass (torchao's low-bit states) by the inner tensors it flattens to."""
    if hasattr(t, "__tensor_flatten__") and type(t) is not torch.Tensor and not isinstance(t, torch.nn.Parameter):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in ``opt``'s per-parameter state (0-d step counters left out)."""
    total = 0
    for entry in opt.state.values():
        for value in entry.values():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                total += tensor_bytes(value)
    return total


def quiet_import(name: str):
    """Import ``name`` with its import-time chatter (missing optional CUDA kernels) kept off the table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return __import__(name, fromlist=["_"])


def bnb_adamw8bit(params):
    return quiet_import("bitsandbytes.optim").AdamW8bit(params, lr=LR)


def torchao(name: str, **kwargs) -> Callable:
    def make(params):
        return getattr(quiet_import("torchao.optim"), name)(params, lr=LR, **kwargs)

    return make


# label, factory, parameter dtype (gradients: float32, except bf16 parameters: bf16, as torch requires)
ROWS: list[tuple[str, Callable, torch.dtype]] = [
    ("torch fused fp32", lambda ps: torch.optim.AdamW(ps, lr=LR, fused=True), torch.float32),
    ("adamkit fp32", lambda ps: at.AdamW(ps, lr=LR), torch.float32),
    ("adamkit bf16 state", lambda ps: at.AdamW(ps, lr=LR, state_dtype="bfloat16"), torch.float32),
    ("adamkit int8 state", lambda ps: at.AdamW(ps, lr=LR, state_dtype="int8"), torch.float32),
    ("adamkit bf16 params SR", lambda ps: at.AdamW(ps, lr=LR), torch.bfloat16),
    ("adamkit bf16 params int8 SR", lambda ps: at.AdamW(ps, lr=LR, state_dtype="int8"), torch.bfloat16),
    ("bnb AdamW8bit", bnb_adamw8bit, torch.float32),
    ("torchao AdamW8bit", torchao("AdamW8bit"), torch.float32),
    ("torchao AdamW4bit", torchao("AdamW4bit"), torch.float32),
    ("torchao AdamWFp8", torchao("AdamWFp8"), torch.float32),
    ("torchao bf16 SR", torchao("_AdamW", bf16_stochastic_round=True), torch.bfloat16),
    ("torchao AdamW8bit bf16 SR", torchao("AdamW8bit", bf16_stochastic_round=True), torch.bfloat16),
]  # fmt: skip


def contender(make: Callable, dtype: torch.dtype, base: torch.Tensor, grad: torch.Tensor):
    """(step, optimizer) over one parameter of ``base``'s values in ``dtype``, its gradient set; or (None, why)."""
    p = torch.nn.Parameter(base.to(dtype, copy=True))
    p.grad = grad.to(dtype, copy=True)
    try:
        opt = make([p])
        opt.step()  # creates the state (and compiles, for torchao)
    except Exception as err:  # a peer that does not run here: reported in the table, not fatal
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return opt.step, opt


def bench(size: int, runs: int, only: list[str] | None) -> list[dict]:
    """One row per contender at ``size`` elements, plus the fp32 floor."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(size, generator=gen)
    grad = 1e-3 * torch.randn(size, generator=gen)
    contenders, notes, opts = {}, {}, {}
    for label, make, dtype in ROWS:
        if only and label not in only:
            continue
        step, opt = contender(make, dtype, base, grad)
        if step is None:
            notes[label] = opt
        else:
            contenders[label], opts[label] = step, opt
    arrays = [np.full(size, 1e-3, np.float32) for _ in range(4)]
    floor = floor_kernel(4, 3)
    contenders["fp32 floor"] = lambda: floor(*arrays)
    times = median_ms(contenders, runs, warmup=2)
    reference = times.get("adamkit fp32")
    rows = []
    for label in [*(lbl for lbl, *_ in ROWS if lbl in contenders or lbl in notes), "fp32 floor"]:
        row = {"contender": label, "elements": size, "ms": times.get(label), "note": notes.get(label)}
        if label in opts:
            row["state_bytes_per_param"] = state_bytes(opts[label]) / size
        if reference and row["ms"]:
            row["adamkit_fp32_over_this"] = reference / row["ms"]
        rows.append(row)
    return rows


def show(row: dict) -> None:
    if row["note"]:
        print(f"{row['contender']:28s} {row['elements']:11d}  does not run: {row['note']}", flush=True)
        return
    ratio = row.get("adamkit_fp32_over_this")
    bpp = row.get("state_bytes_per_param")
    print(
        f"{row['contender']:28s} {row['elements']:11d} {row['ms']:10.2f} "
        f"{'n/a' if ratio is None else f'{ratio:.2f}':>10s} {'' if bpp is None else f'{bpp:.3f}':>8s}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M and 4M elements, few runs")
    parser.add_argument("--sizes", help="comma-separated element counts (rounded down to multiples of 4096)")
    parser.add_argument("--only", help="comma-separated row labels (default: all)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_lowp_peers.json"))
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    if only and set(only) - {lbl for lbl, *_ in ROWS}:
        parser.error(f"unknown --only labels {sorted(set(only) - {lbl for lbl, *_ in ROWS})}")
    warnings.filterwarnings("ignore", message=".*_stable_hash_for_caching")  # torchao's subclasses, compiled
    threads = min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [1_000_000, 4_000_000] if args.quick else [10_000_000, 100_000_000]
    )  # fmt: skip
    sizes = [s - s % QUANTUM for s in sizes]
    print(f"AdamW step on CPU, ms (median); torch {torch.__version__}, {threads} threads each")
    print(f"{'contender':28s} {'elements':>11s} {'ms':>10s} {'ak32/this':>10s} {'B/param':>8s}")
    rows = []
    for size in sizes:
        runs = args.runs or (5 if args.quick else (7 if size > 20_000_000 else 25))
        for row in bench(size, runs, only):
            rows.append(row)
            show(row)
    peers = {}
    for name in ("bitsandbytes", "torchao"):
        with contextlib.suppress(ImportError):
            peers[name] = quiet_import(name).__version__
    out = write_json(rows, Path(args.json), threads=threads, **peers)
    print("ak32/this: speed-up of this row over adamkit fp32 (above 1: faster than adamkit fp32).")
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
