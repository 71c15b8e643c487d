"""Random multi-tensor problems (including a 0-d and an empty tensor) and gradient streams."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

SHAPES = {"w": (4, 3), "b": (3,), "s": (), "e": (0, 3), "k": (2, 2, 5)}


def make_params(dtype, seed: int = 0, shapes: dict = SHAPES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


def grad_stream(params: dict[str, np.ndarray], steps: int, seed: int = 1):
    """``steps`` dicts of random gradients shaped like ``params`` (scaled to vary in size)."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        scale = rng.uniform(0.1, 2.0)
        yield {k: (scale * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in params.items()}


def rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Norm-wise relative error ‖ours − ref‖∞ / max(‖ref‖∞, tiny): robust for entries near zero."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-30))


TOL = {np.float64: 1e-10, np.float32: 1e-5}


def build(case, params, *, engine: str = "fused", groups: bool = False):
    """The case's optimizer over ``params`` (one group, or two groups with lr and lr/3)."""
    if not groups:
        return case.cls(params, engine=engine, **case.kwargs)
    names = list(params)
    half = len(names) // 2
    first = {k: params[k] for k in names[:half]}
    second = {k: params[k] for k in names[half:]}
    opt = case.cls([{"params": first}, {"params": second, "lr": case.kwargs["lr"] / 3}], engine=engine, **case.kwargs)
    params.update(first)
    params.update(second)
    return opt


def reference_groups(tensors: dict, names: list[str], groups: bool, lr: float) -> list:
    """A reference optimizer's params grouped as ``build`` groups ours: all in one, or the first half and the rest
    at lr/3 (names the reference has no tensor for are left out)."""
    if not groups:
        return [tensors[k] for k in names if k in tensors]
    half = len(names) // 2
    return [
        {"params": [tensors[k] for k in names[:half] if k in tensors]},
        {"params": [tensors[k] for k in names[half:] if k in tensors], "lr": lr / 3},
    ]


def run_lockstep(case, params: dict, twin, groups: bool, steps: int):
    """Our optimizer and its reference ``twin(case, params, groups) -> (optimizer, tensors)`` fed the same
    gradient stream; returns ``params, tensors, ours, reference``."""
    import torch

    ref_opt, tensors = twin(case, params, groups)
    opt = build(case, params, groups=groups)
    for grads in grad_stream(params, steps):
        opt.step(grads)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        ref_opt.step()
    return params, tensors, opt, ref_opt
