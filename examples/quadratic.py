"""The classic tutorial problem: fit y = 2x² + 3x + 5 with every classic optimizer, through minimize().

x = -5.0, -4.9, …, 4.9 (float32); the model ŷ = w1·x² + w2·x + b starts at w1 = w2 = b = 1; the loss is the
RMSE √(mean((ŷ − y)²)); gradients come from autograd.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

import adamkit

X = np.arange(-50, 50, dtype=np.float32) / np.float32(10)
Y = 2 * X**2 + 3 * X + 5
START = {k: np.array(1.0, dtype=np.float32) for k in ("w1", "w2", "b")}


def rmse(p):
    return anp.sqrt(anp.mean((p["w1"] * X**2 + p["w2"] * X + p["b"] - Y) ** 2))


# the tutorial's line-up: name → (optimizer, its settings), each with early stopping
RACE = {
    "GD": ("sgd", dict(lr=0.01)),
    "Momentum": ("sgd", dict(lr=0.01, momentum=0.9)),
    "Nesterov": ("sgd", dict(lr=0.01, momentum=0.9, nesterov=True)),
    "AdaGrad": ("adagrad", dict(lr=0.5)),
    "RMSprop": ("rmsprop", dict(lr=0.01)),
    "AdaDelta": ("adadelta", dict(lr=1.0)),
    "Adam": ("adam", dict(lr=0.05)),
}


def show(label: str, result: adamkit.MinimizeResult) -> None:
    x = result.x
    print(
        f"{label:44s} w1={float(x['w1']):8.4f} w2={float(x['w2']):8.4f} b={float(x['b']):8.4f}"
        f"  loss={result.fun:.5f}  steps={result.nit}"
    )


def main() -> None:
    print("fit y = 2x² + 3x + 5 from w1 = w2 = b = 1 (RMSE loss)")
    show("SGD(lr=0.01), 1000 steps", adamkit.minimize(rmse, START, "sgd", lr=0.01, steps=1000))
    show(
        'Adam(lr=0.05, convention="keras"), 300 steps',
        adamkit.minimize(rmse, START, "adam", lr=0.05, convention="keras", steps=300),
    )
    print("\nearly stopping (tol=1e-5, patience=50, at most 5000 steps):")
    for label, (name, kwargs) in RACE.items():
        show(label, adamkit.minimize(rmse, START, name, steps=5000, tol=1e-5, patience=50, **kwargs))


if __name__ == "__main__":
    main()
