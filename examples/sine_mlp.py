"""DeZero's classic: a 1-10-1 sigmoid MLP fitted to y = sin(2πx) + noise, with opt.setup(model)/opt.update().

The model is written DeZero-style (Parameter objects with .data and .grad; a Model with params()); gradients
come from the autograd package. adamkit rebinds each parameter's .data to a view into its flat buffer.
"""

from __future__ import annotations

import sys

import autograd.numpy as anp
import numpy as np
from autograd import grad

import adamkit


class Parameter:
    def __init__(self, data: np.ndarray):
        self.data, self.grad = data, None


class Linear:
    def __init__(self, n_in: int, n_out: int, rng: np.random.RandomState):
        self.W = Parameter(rng.randn(n_in, n_out) * np.sqrt(1 / n_in))
        self.b = Parameter(np.zeros(n_out))


class MLP:
    def __init__(self, hidden: int = 10, seed: int = 0):
        rng = np.random.RandomState(seed)
        self.l1, self.l2 = Linear(1, hidden, rng), Linear(hidden, 1, rng)

    def params(self):
        yield from (self.l1.W, self.l1.b, self.l2.W, self.l2.b)


def forward(arrays, x):
    W1, b1, W2, b2 = arrays
    h = 1 / (1 + anp.exp(-(x @ W1 + b1)))
    return h @ W2 + b2


def mse(arrays, x, y):
    return anp.mean((forward(arrays, x) - y) ** 2)


def main(steps: int = 10_000, every: int = 1000) -> list[float]:
    np.random.seed(0)
    x = np.random.rand(100, 1)
    y = np.sin(2 * np.pi * x) + np.random.rand(100, 1)
    model = MLP()
    opt = adamkit.SGD(lr=0.2).setup(model)
    loss_grad = grad(mse)
    losses = []
    for i in range(steps):
        params = list(model.params())
        for p, g in zip(params, loss_grad([p.data for p in params], x, y)):
            p.grad = g
        opt.update()
        if i % every == 0 or i == steps - 1:
            losses.append(float(mse([p.data for p in params], x, y)))
            print(f"step {i:6d}  loss {losses[-1]:.6f}")
    return losses


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
