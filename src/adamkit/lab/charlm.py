"""A small character-level transformer language model trained on Python's own standard-library source.

The accuracy harness for low-precision optimizer options: the text ships with every Python (a fixed list of
``Lib/*.py`` files read from ``os.path.dirname(os.__file__)``), the model is a two-layer pre-norm decoder
(causal self-attention + GELU MLP) of about 100k parameters, seeds are fixed, and one run takes seconds on one
CPU core. :func:`train` trains with any ``torch.optim.Optimizer`` factory and returns the validation loss (mean
cross-entropy in nats per byte over fixed windows of the held-out tail of the text), always evaluated with
float32 weights, so the number measures the weights the optimizer produced, whatever dtype it trained in.

torch is imported lazily: ``import adamkit.lab`` does not import it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Standard-library files present in every CPython 3.10+; read in this order.
FILES = ("functools.py", "textwrap.py", "string.py", "heapq.py", "bisect.py", "contextlib.py", "fnmatch.py")


@dataclass(frozen=True)
class CharLMConfig:
    """Sizes and training settings of one run (defaults: a few seconds on one core in float32).

    At ``lr=1e-3`` most updates of a weight near 1 (LayerNorm gains) are below half a bfloat16 ulp, so a model
    held in bfloat16 and rounded to nearest loses them; stochastic rounding keeps them in expectation.
    """

    context: int = 64
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    batch: int = 16
    steps: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.01
    val_fraction: float = 0.1
    val_windows: int = 64
    seed: int = 0
    threads: int | None = 1  # torch and numba threads during the run (None: leave as is); restored afterwards


def corpus(files: tuple[str, ...] = FILES) -> bytes:
    """The concatenated bytes of ``files`` from the running Python's standard library."""
    root = os.path.dirname(os.__file__)
    parts = []
    for name in files:
        with open(os.path.join(root, name), "rb") as f:
            parts.append(f.read())
    return b"\n".join(parts)


def encode(text: bytes) -> tuple[np.ndarray, bytes]:
    """Token ids (int64) of ``text`` over its sorted byte alphabet, and that alphabet."""
    raw = np.frombuffer(text, dtype=np.uint8)
    alphabet, ids = np.unique(raw, return_inverse=True)
    return ids.astype(np.int64), bytes(alphabet.tolist())


def split(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train head and validation tail."""
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:]


def build_model(vocab: int, config: CharLMConfig) -> Any:
    """The decoder as a ``torch.nn.Module`` mapping ``(batch, time)`` ids to ``(batch, time, vocab)`` logits."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    d, heads = config.d_model, config.heads

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.mlp(self.ln2(x))

    class CharLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(config.context, d)
            self.blocks = nn.Sequential(*(Block() for _ in range(config.layers)))
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
            return self.head(self.ln(self.blocks(x)))

    return CharLM()


def loss_of(model: Any, windows: Any) -> Any:
    """Mean next-byte cross-entropy (nats) of ``model`` on ``windows`` (``(n, context + 1)`` ids), in float32."""
    from torch.nn import functional as F

    logits = model(windows[:, :-1]).float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


def validation_windows(val: np.ndarray, config: CharLMConfig) -> Any:
    """``val_windows`` evenly spaced windows of ``context + 1`` ids from the validation tail (a fixed set)."""
    import torch

    starts = np.linspace(0, len(val) - config.context - 1, config.val_windows).astype(np.int64)
    return torch.from_numpy(np.stack([val[s : s + config.context + 1] for s in starts]))


def batches(train: np.ndarray, config: CharLMConfig) -> Iterator[Any]:
    """Random training windows, the same sequence for the same seed."""
    import torch

    data = torch.from_numpy(train)
    gen = torch.Generator().manual_seed(config.seed + 1)
    offsets = torch.arange(config.context + 1)
    while True:
        starts = torch.randint(0, len(train) - config.context - 1, (config.batch,), generator=gen)
        yield data[starts[:, None] + offsets]


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's and numba's thread counts set to ``n`` for the run (numba's idle OpenMP workers spin, which
    slowed torch's forward and backward several-fold on a busy machine), then restored."""
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def evaluate(model: Any, windows: Any) -> float:
    """Validation loss of ``model``'s weights cast to float32 (the trained model is left untouched)."""
    import torch

    ref = copy.deepcopy(model).float().eval()
    with torch.no_grad():
        return float(loss_of(ref, windows))


def train(
    make_optimizer: Callable[[list[Any]], Any],
    config: CharLMConfig = CharLMConfig(),  # noqa: B008 (frozen dataclass)
    param_dtype: Any = None,
) -> dict[str, Any]:
    """Train a fresh model (the same initial weights for the same seed) for ``config.steps`` steps.

    ``make_optimizer(params)`` builds the optimizer; ``param_dtype`` (e.g. ``torch.bfloat16``) casts the
    initialized model before the optimizer sees it, so forward, backward and the parameters live in that dtype.
    Returns ``val_loss`` (float32 evaluation, nats per byte), ``train_loss`` (mean of the last 20 steps),
    ``initial_val_loss`` and the uniform baseline ``log(vocab)``.
    """
    import torch

    ids, alphabet = encode(corpus())
    train_ids, val_ids = split(ids, config.val_fraction)
    with _threads(config.threads):
        torch.manual_seed(config.seed)
        model = build_model(len(alphabet), config)
        if param_dtype is not None:
            model = model.to(param_dtype)
        windows = validation_windows(val_ids, config)
        initial = evaluate(model, windows)
        opt = make_optimizer(list(model.parameters()))
        losses = []
        stream = batches(train_ids, config)
        for _ in range(config.steps):
            loss = loss_of(model, next(stream))
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return {
            "val_loss": evaluate(model, windows),
            "train_loss": float(np.mean(losses[-20:])),
            "initial_val_loss": initial,
            "uniform_loss": math.log(len(alphabet)),
            "parameters": sum(p.numel() for p in model.parameters()),
            "model": model,
        }
