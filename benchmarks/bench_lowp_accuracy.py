"""Accuracy of the low-precision options on a real model: the character-level transformer of
``adamkit.lab.charlm`` (Python's standard-library source, fixed seeds), trained with ``adamkit.torch.AdamW``
under each storage option and with torch.optim.AdamW; validation loss after the same steps, and its gap to
torch's fp32 AdamW.

    python benchmarks/bench_lowp_accuracy.py [--steps N] [--seeds 0,1,2] [--json PATH]

Each run takes seconds on one core (the harness pins torch and numba to one thread).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import optimi
import torch

import adamkit.torch as at
from adamkit.lab import charlm


def runs(config: charlm.CharLMConfig) -> list[tuple[str, object, torch.dtype | None]]:
    """(label, optimizer factory, parameter dtype) of each row; the first is the reference."""

    def torch_adamw(params):
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    def optimi_adamw(params):  # torch-optimi, whose kahan_sum adamkit's follows (torch's betas and eps)
        return optimi.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.999), eps=1e-8,
                            kahan_sum=True, foreach=False)  # fmt: skip

    def adamkit_adamw(**options):
        return lambda params: at.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **options)

    return [
        ("torch.optim.AdamW fp32", torch_adamw, None),
        ("adamkit fp32", adamkit_adamw(), None),
        ("adamkit bf16 state", adamkit_adamw(state_dtype="bfloat16"), None),
        ("adamkit int8 state", adamkit_adamw(state_dtype="int8"), None),
        ("adamkit bf16 params, SR", adamkit_adamw(), torch.bfloat16),
        ("adamkit bf16 params, int8 state, SR", adamkit_adamw(state_dtype="int8"), torch.bfloat16),
        ("adamkit bf16 params, nearest", adamkit_adamw(stochastic_rounding=False), torch.bfloat16),
        ("adamkit bf16 params, Kahan", adamkit_adamw(kahan_sum=True), torch.bfloat16),
        ("optimi AdamW bf16 params, Kahan", optimi_adamw, torch.bfloat16),
        ("torch.optim.AdamW bf16 params", torch_adamw, torch.bfloat16),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=charlm.CharLMConfig.steps)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (model init and batches)")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_lowp_accuracy.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    base = charlm.CharLMConfig(steps=args.steps)
    losses: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for seed in seeds:
        config = replace(base, seed=seed)
        for label, make, dtype in runs(config):
            t0 = time.perf_counter()
            result = charlm.train(make, config, dtype)
            seconds.setdefault(label, []).append(time.perf_counter() - t0)
            losses.setdefault(label, []).append(result["val_loss"])
    reference = "torch.optim.AdamW fp32"
    print(f"char-LM, {result['parameters']:,} parameters, {args.steps} steps, seeds {seeds}: validation loss")
    print(f"{'optimizer':38s} {'val loss':>9s} {'gap':>8s} {'s/run':>6s}")
    rows = []
    for label in losses:
        gaps = [(x - r) / r for x, r in zip(losses[label], losses[reference])]
        row = {"optimizer": label, "val_loss": statistics.mean(losses[label]), "gap": statistics.mean(gaps),
               "worst_gap": max(gaps, key=abs), "seconds": statistics.mean(seconds[label])}  # fmt: skip
        rows.append(row)
        print(f"{label:38s} {row['val_loss']:9.4f} {100 * row['gap']:+7.2f}% {row['seconds']:6.1f}", flush=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": asdict(base), "seeds": seeds, "rows": rows}, indent=2))
    print(f"gap: relative to {reference} (mean over seeds). Wrote {out}")


if __name__ == "__main__":
    main()
