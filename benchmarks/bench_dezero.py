"""``optimizer.update()`` of adamkit.dezero against DeZero's own optimizers, side by side in one process.

Two models, as DeZero builds them (under NumPy 2 its ``Linear`` makes W float64 and b float32):

- the book's ``MLP((10, 1))`` of step 46 (4 small parameters): here per-update Python overhead is everything;
- an ``MLP((1000, 1000, 10))`` on 784 inputs (1.8M parameters): here the arithmetic is.

Gradients come from one real backward pass and stay fixed; each contender's median time per ``update()`` is
taken interleaved with the others'. Read the ratio DeZero / adamkit (> 1: adamkit is faster).

On a machine shared with other busy processes, numba's parallel kernel waits for its slowest thread: pass
``--threads 1`` to see the single-threaded numbers there.

    python benchmarks/bench_dezero.py [--quick] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numba
import numpy as np

if not hasattr(np, "int"):
    np.int = int  # dezero 0.0.13 uses np.int, removed in NumPy 2

import dezero.functions as F  # noqa: E402
from dezero import optimizers as D  # noqa: E402
from dezero.models import MLP  # noqa: E402

from adamkit import dezero as A  # noqa: E402

OPTIMIZERS = [
    ("SGD", dict(lr=1e-6)),
    ("MomentumSGD", dict(lr=1e-6)),
    ("AdaGrad", dict(lr=1e-6)),
    ("AdaDelta", dict()),
    ("Adam", dict(alpha=1e-6)),
]
MODELS = {"book MLP((10, 1))": ((10, 1), 1, 100), "MLP((1000, 1000, 10)), 1.8M": ((1000, 1000, 10), 784, 8)}


def model_with_grads(sizes: tuple[int, ...], n_in: int, batch: int) -> MLP:
    np.random.seed(0)
    model = MLP(sizes)
    x, y = np.random.rand(batch, n_in), np.random.rand(batch, sizes[-1])
    F.mean_squared_error(y, model(x)).backward()
    return model


def median_us(contenders: dict, seconds: float) -> dict[str, float]:
    """Median µs per call, contenders interleaved in rounds of ``reps`` calls each for about ``seconds``."""
    for fn in contenders.values():
        for _ in range(3):
            fn()
    t0 = time.perf_counter()
    for fn in contenders.values():
        fn()
    reps = max(1, int(2e-3 / max((time.perf_counter() - t0) / len(contenders), 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or min(len(t) for t in times.values()) < 5:
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - start) / reps * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about 0.2 s per contender pair (checks it runs)")
    parser.add_argument("--threads", type=int, help="numba threads for adamkit's parallel kernels")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    print(f"numba threads: {numba.get_num_threads()}")
    seconds = 0.2 if args.quick else 2.0
    results = []
    for label, (sizes, n_in, batch) in MODELS.items():
        print(f"\n{label}: µs per update()")
        print(f"{'optimizer':<12} {'DeZero':>10} {'adamkit':>10} {'DeZero/adamkit':>15}")
        for name, kwargs in OPTIMIZERS:
            ours_model, theirs_model = model_with_grads(sizes, n_in, batch), model_with_grads(sizes, n_in, batch)
            ours = getattr(A, name)(**kwargs).setup(ours_model)
            theirs = getattr(D, name)(**kwargs).setup(theirs_model)
            t = median_us({"dezero": theirs.update, "adamkit": ours.update}, seconds)
            ratio = t["dezero"] / t["adamkit"]
            print(f"{name:<12} {t['dezero']:>10.1f} {t['adamkit']:>10.1f} {ratio:>14.2f}x")
            results.append(dict(model=label, optimizer=name, dezero_us=t["dezero"], adamkit_us=t["adamkit"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
