"""adamkit.torch.Adam vs torch.optim.Adam (fused, foreach): one optimizer step on real model shapes, float32, CPU.

Rows per model: adamkit with grads bound in place (``zero_grad(set_to_none=False)``: autograd accumulated into
the flat gradient buffer), and adamkit after ``set_to_none`` (each ``p.grad`` a new tensor, as autograd makes:
the step reads them where they are, by address). Contenders are timed interleaved, medians after warm-up; ratios
are what to read (absolute times drift on a shared machine). The **floor** is a fused loop over one flat buffer
of the model's size that reads and writes exactly Adam's bytes (4 reads, 3 writes of 4 bytes per element): no
step can beat it, so ``t.fused / floor`` is the most any optimizer can gain over torch fused on that model.

    python benchmarks/bench_torch.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numba
import numpy as np
import torch
from torch import nn

import adamkit.torch as at
from adamkit.lab.bench import floor_kernel, median_ms, write_json


def shapes(model: str, quick: bool) -> list[tuple[int, ...]]:
    if model == "mlp":
        layers = 10 if quick else 100
        return [s for _ in range(layers) for s in ((512, 512), (512,))]
    if model == "1000x1000":
        return [(1000,)] * 1000
    layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, dim_feedforward=2048, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=2 if quick else 6, enable_nested_tensor=False)
    return [tuple(p.shape) for p in encoder.parameters()]


def make_params(shape_list, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g).requires_grad_() for s in shape_list]
    grads = [1e-3 * torch.randn(s, generator=g) for s in shape_list]
    return params, grads


def bench(model: str, quick: bool, runs: int) -> dict:
    shape_list = shapes(model, quick)
    contenders = {}
    for impl in ("fused", "foreach"):
        params, grads = make_params(shape_list)
        for p, g in zip(params, grads):
            p.grad = g
        opt = torch.optim.Adam(params, lr=1e-3, **{impl: True})
        contenders[f"torch_{impl}"] = opt.step

    params, grads = make_params(shape_list)
    bound = at.Adam(params, lr=1e-3)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    bound.step()  # grads are now views of the flat gradient buffer
    contenders["adamkit_bound"] = bound.step

    params2, grads2 = make_params(shape_list)
    unbound = at.Adam(params2, lr=1e-3)

    def new_grads():  # what autograd does after zero_grad(set_to_none=True): new grad tensors
        for p, g in zip(params2, grads2):
            p.grad = g.clone()

    contenders["adamkit_set_to_none"] = unbound.step
    row = {"model": model, "tensors": len(shape_list), "elements": sum(p.numel() for p in params)}
    floor_arrays = [np.ones(row["elements"], np.float32) for _ in range(4)]  # g, p, m, v
    floor = floor_kernel(4, 3)
    contenders["floor"] = lambda: floor(*floor_arrays)
    ms = median_ms(contenders, runs, setups={"adamkit_set_to_none": new_grads})
    row.update({f"{k}_ms": v for k, v in ms.items()})
    for key in ("adamkit_bound", "adamkit_set_to_none"):
        row[f"{key}_vs_fused"] = row["torch_fused_ms"] / row[f"{key}_ms"]
        row[f"{key}_vs_foreach"] = row["torch_foreach_ms"] / row[f"{key}_ms"]
        row[f"{key}_over_floor"] = row[f"{key}_ms"] / row["floor_ms"]
    row["ceiling_vs_fused"] = row["torch_fused_ms"] / row["floor_ms"]  # what a step at the floor would gain
    return row


TARGETS = {"mlp": 1.2, "1000x1000": 10.0, "transformer": 1.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller models, fewer runs (under a minute)")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_torch.json"))
    args = parser.parse_args()
    threads = min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    print(f"Adam step, float32, ms (median); torch {torch.__version__}, {threads} threads each")
    print(
        f"{'model':12s} {'tensors':>8s} {'elements':>11s} {'t.fused':>8s} {'t.foreach':>9s} {'ak bound':>9s}"
        f" {'ak s2none':>9s} {'floor':>7s} {'fused/ak':>9s} {'foreach/ak':>10s} {'fused/ak s2n':>12s}"
        f" {'ak/floor':>8s} {'ceiling':>8s} target"
    )
    rows = []
    for model in ("mlp", "1000x1000", "transformer"):
        runs = 10 if args.quick else 50
        row = bench(model, args.quick, runs)
        rows.append(row)
        print(
            f"{model:12s} {row['tensors']:8d} {row['elements']:11,d} {row['torch_fused_ms']:8.3f}"
            f" {row['torch_foreach_ms']:9.3f} {row['adamkit_bound_ms']:9.3f} {row['adamkit_set_to_none_ms']:9.3f}"
            f" {row['floor_ms']:7.3f} {row['adamkit_bound_vs_fused']:8.2f}x {row['adamkit_bound_vs_foreach']:9.2f}x"
            f" {row['adamkit_set_to_none_vs_fused']:11.2f}x {row['adamkit_bound_over_floor']:8.2f}"
            f" {row['ceiling_vs_fused']:7.2f}x  ≥{TARGETS[model]}x",
            flush=True,
        )
    out = write_json(rows, Path(args.json), quick=args.quick, threads=threads)
    print("ak bound: grads accumulated in place (zero_grad(set_to_none=False)); ak s2none: after set_to_none, the")
    print("step reads autograd's new grads where they are (no copy). floor: Adam's bytes moved by a bare loop;")
    print("ak/floor: a bound step over it; ceiling: t.fused/floor, the most any step can gain over torch fused.")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
