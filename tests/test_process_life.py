"""Fork and threads under every numba threading layer available here, each in a subprocess with a timeout
(a hang fails the test instead of stalling the suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(source: str, layer: str, timeout: float = 180) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC, "NUMBA_THREADING_LAYER": layer}
    try:
        done = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {timeout} s under the {layer} threading layer")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def available_layers() -> list[str]:
    probe = "import importlib, sys; importlib.import_module('numba.np.ufunc.' + sys.argv[1])"
    names = {"tbb": "tbbpool", "omp": "omppool", "workqueue": "workqueue"}
    found = []
    for layer, module in names.items():
        done = subprocess.run([sys.executable, "-c", probe, module], capture_output=True)
        if done.returncode == 0:
            found.append(layer)
    return found


LAYERS = available_layers()

COMMON = """
import json
import numpy as np
import numba
import adamkit

N = 1 << 16  # above PARALLEL_MIN_SIZE: the parallel kernel


def train(seed, steps=50):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal(N), "b": rng.standard_normal(3)}
    opt = adamkit.Adam(params, lr=0.01)
    opt.add_hook(adamkit.ClipGradNorm(300.0))  # a parallel reduction kernel of its own
    for _ in range(steps):
        opt.step({k: rng.standard_normal(v.shape) for k, v in params.items()})
    return params["w"].tobytes() + params["b"].tobytes()
"""

FORK = (
    COMMON
    + """
import hashlib
import multiprocessing


def work(seed):
    return hashlib.sha256(train(seed)).hexdigest()


if __name__ == "__main__":
    expected = [hashlib.sha256(train(seed)).hexdigest() for seed in range(4)]  # parallel steps in the parent
    layer = numba.threading_layer()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(work, range(4)).get(timeout=120)
    print(json.dumps({"layer": layer, "equal": got == expected}))
"""
)

THREADS = (
    COMMON
    + """
import threading

results = {}
threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, train(s, 200))) for s in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
expected = {s: train(s, 200) for s in range(2)}
print(json.dumps({"layer": numba.threading_layer(), "equal": results == expected}))
"""
)


@pytest.mark.parametrize("layer", LAYERS)
def test_fork_workers_after_a_parallel_step(layer):
    """After parallel steps in the parent, forked workers step (parallel-sized buffers) and give the same bytes."""
    assert run(FORK, layer) == {"layer": layer, "equal": True}


@pytest.mark.parametrize("layer", LAYERS)
def test_two_threads_step_two_optimizers(layer):
    """Two Python threads step two optimizers concurrently: no abort, results equal to running them in turn."""
    assert run(THREADS, layer) == {"layer": layer, "equal": True}


def test_layers_probed():
    assert {"omp", "workqueue"} & set(LAYERS), LAYERS
