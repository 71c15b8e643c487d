"""Small real models and a lockstep driver for the adamkit.torch tests (torch.optim is the oracle)."""

from __future__ import annotations

import copy

import torch
from torch import nn

# These models are tiny: one intra-op thread is faster than waking a pool on a shared 2-core machine.
torch.set_num_threads(1)


def mlp(dtype: torch.dtype, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)).to(dtype)


def transformer(dtype: torch.dtype, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # bias=False: attention's key bias has a zero true gradient (softmax ignores it), so Adam-like optimizers would
    # amplify its rounding noise into ±lr steps and no two implementations could agree on it.
    layer = nn.TransformerEncoderLayer(8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True, bias=False)
    encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
    return nn.Sequential(encoder, nn.Linear(8, 1)).to(dtype)


def batches(model_name: str, dtype: torch.dtype, steps: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    shape = (32, 6) if model_name == "mlp" else (4, 5, 8)
    for _ in range(steps):
        x = torch.randn(shape, generator=g, dtype=dtype)
        yield x, x.sum(-1, keepdim=True).sin()


MODELS = {"mlp": mlp, "transformer": transformer}


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def param_groups(model: nn.Module, lr: float | None, split: bool):
    """All parameters in one group, or the first module's in a group of its own at lr/3."""
    params = list(model.parameters())
    if not split:
        return params
    head = list(next(iter(model.children())).parameters())
    rest = [p for p in params if all(p is not q for q in head)]
    return [{"params": rest}, {"params": head, "lr": lr / 3}]


def twins(model_name: str, dtype: torch.dtype):
    model = MODELS[model_name](dtype)
    return model, copy.deepcopy(model)


def train(model, opt, data, scheduler=None, set_to_none: bool = True):
    """The usual loop; with ``maximize=True`` the objective is −loss, so ascent still fits the data."""
    sign = -1.0 if opt.defaults.get("maximize") else 1.0
    for x, y in data:
        opt.zero_grad(set_to_none=set_to_none)
        (sign * loss_fn(model, x, y)).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
