"""``apply_gradients`` side by side in one process: adamkit.keras vs Keras 3 (torch backend), float32.

Workloads: the tutorial's three scalar variables (w1, w2, b), and a 1.07M-parameter MLP (784-1024-256-10,
kernels and biases: 6 tensors). Each contender applies the same fixed gradients every call; times are medians,
timed interleaved (adamkit.lab.bench.median_ms). Columns:

- ``adamkit.keras``: ``opt.apply_gradients(zip(grads, vars))`` on NumPy arrays (the door: gradients copied in,
  Keras's bookkeeping, one fused kernel);
- ``core step``: the adamkit optimizer underneath, ``step()`` with the gradients already in ``opt.grads`` (what
  the door costs on top of the core);
- ``Keras 3``: ``keras.optimizers.X.apply_gradients`` on ``keras.Variable``s with torch gradient tensors.

    python benchmarks/bench_keras.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import adamkit.keras as ak  # noqa: E402
from adamkit.lab.bench import median_ms, write_json  # noqa: E402

WORKLOADS = {
    "tutorial 3 scalars": [(), (), ()],
    "MLP 1.07M params": [(784, 1024), (1024,), (1024, 256), (256,), (256, 10), (10,)],
}
OPTIMIZERS = {
    "Adam": {},
    "SGD-momentum": {"momentum": 0.9},
    "AdamW": {},
    "RMSprop": {},
    "Adagrad": {},
    "Adadelta": {},
    "Adamax": {},
    "Nadam": {},
}
QUICK = ["Adam", "SGD-momentum"]


def bench(name: str, kwargs: dict, shapes: list, runs: int) -> dict:
    cls = name.split("-")[0]
    rng = np.random.default_rng(0)
    arrays = [np.asarray(rng.standard_normal(s), np.float32) for s in shapes]
    grads = [np.asarray(1e-3 * rng.standard_normal(s), np.float32) for s in shapes]
    ours = getattr(ak, cls)(learning_rate=1e-3, **kwargs)
    ours.apply_gradients(zip(grads, arrays))  # builds
    core = ours.optimizer
    for k, g in enumerate(grads):
        core.grads[str(k)][...] = g
    kvars = [keras.Variable(a.copy()) for a in arrays]
    kgrads = [torch.from_numpy(g.copy()) for g in grads]
    theirs = getattr(keras.optimizers, cls)(learning_rate=1e-3, **kwargs)
    theirs.apply_gradients(zip(kgrads, kvars))
    ms = median_ms(
        {
            "adamkit.keras": lambda: ours.apply_gradients(zip(grads, arrays)),
            "core step": core.step,
            "Keras 3": lambda: theirs.apply_gradients(zip(kgrads, kvars)),
        },
        runs,
    )
    return {"optimizer": name, **{f"{k} ms": v for k, v in ms.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Adam and SGD-momentum, fewer runs (about 20 s)")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_keras.json"))
    args = parser.parse_args()
    threads = min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    print(f"float32, ms per apply_gradients (median); keras {keras.__version__} (torch {torch.__version__}), "
          f"numba threads {numba.get_num_threads()}")  # fmt: skip
    print(f"{'workload':20s} {'optimizer':14s} {'adamkit.keras':>13s} {'core step':>10s} {'Keras 3':>10s}"
          f" {'Keras/door':>11s} {'door/core':>10s}")  # fmt: skip
    rows = []
    for workload, shapes in WORKLOADS.items():
        small = all(s == () for s in shapes)
        runs = (200 if small else 30) if args.quick else (1000 if small else 150)
        for name, kwargs in OPTIMIZERS.items():
            if args.quick and name not in QUICK:
                continue
            row = {"workload": workload, **bench(name, kwargs, shapes, runs)}
            row["keras_over_door"] = row["Keras 3 ms"] / row["adamkit.keras ms"]
            row["door_over_core"] = row["adamkit.keras ms"] / row["core step ms"]
            rows.append(row)
            print(
                f"{workload:20s} {name:14s} {row['adamkit.keras ms']:13.4f} {row['core step ms']:10.4f}"
                f" {row['Keras 3 ms']:10.4f} {row['keras_over_door']:10.1f}× {row['door_over_core']:9.2f}×",
                flush=True,
            )
    out = write_json(rows, Path(args.json), keras=keras.__version__)
    print("Keras/door: how many times faster adamkit.keras's apply_gradients is than Keras 3's;")
    print("door/core: the door's cost over the core step with gradients already in place (1 = free).")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
