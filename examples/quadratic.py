"""The classic tutorial problem: fit y = 2x² + 3x + 5 with every classic optimizer.

x = -5.0, -4.9, …, 4.9 (float32); the model ŷ = w1·x² + w2·x + b starts at w1 = w2 = b = 1; the loss is the
RMSE √(mean((ŷ − y)²)); gradients come from autograd.

First two runs through ``adamkit.minimize``; then the tutorial's race as its reader writes it, with Keras's
optimizers (``adamkit.keras``: Keras's names and defaults) and early stopping, each result printed next to what
Keras 3 itself gives for the same program (when Keras is installed; ``--no-keras`` skips it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad

import adamkit
import adamkit.keras as ak

X = np.arange(-50, 50, dtype=np.float32) / np.float32(10)
Y = 2 * X**2 + 3 * X + 5
START = {k: np.array(1.0, dtype=np.float32) for k in ("w1", "w2", "b")}


def rmse(p):
    return anp.sqrt(anp.mean((p["w1"] * X**2 + p["w2"] * X + p["b"] - Y) ** 2))


def loss(w1, w2, b):
    """The same loss as a function of the variables, the form ``opt.minimize(loss, [w1, w2, b])`` takes."""
    return rmse({"w1": w1, "w2": w2, "b": b})


# The tutorial's line-up, in Keras's names: every argument not given is Keras's default. AdaDelta's learning rate
# decays as 1/(1 + t/1000) (InverseTimeDecay), as in the tutorial.
def race(opt) -> dict[str, Callable[[], Any]]:
    return {
        "GD": lambda: opt.SGD(learning_rate=0.01),
        "Momentum": lambda: opt.SGD(learning_rate=0.01, momentum=0.9),
        "Nesterov": lambda: opt.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
        "AdaGrad": lambda: opt.Adagrad(learning_rate=0.5),
        "RMSprop": lambda: opt.RMSprop(learning_rate=0.01),
        "AdaDelta": lambda: opt.Adadelta(learning_rate=opt.schedules.InverseTimeDecay(1.0, 1000, 1.0)),
        "Adam": lambda: opt.Adam(learning_rate=0.05),
    }


MAX_STEPS, MIN_DELTA, PATIENCE = 2000, 1e-5, 50  # keras.callbacks.EarlyStopping(monitor="loss", min_delta, patience)


class EarlyStopping:
    """Keras's EarlyStopping rule on the training loss: stop once it has not improved by more than MIN_DELTA for
    PATIENCE steps (or after MAX_STEPS). ``best`` is the best loss seen, ``steps`` the steps taken."""

    def __init__(self) -> None:
        self.best, self.wait, self.steps, self.stopped = np.inf, 0, 0, False

    def update(self, value: float) -> None:
        self.steps += 1
        if value < self.best - MIN_DELTA:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        self.stopped = self.wait >= PATIENCE or self.steps >= MAX_STEPS


def keras_step(opt: Any, variables: list, keras: Any) -> float:
    """One step of the same program on Keras 3: the same autograd gradients, Keras's apply_gradients."""
    value, grads = GRAD([keras.ops.convert_to_numpy(v.value) for v in variables])
    opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    return float(value)


GRAD = value_and_grad(lambda vs: loss(*vs))


def _apart(ours: list[np.ndarray], theirs: list, keras: Any) -> bool:
    values = [keras.ops.convert_to_numpy(v.value) for v in theirs]
    return max(abs(float(a) - float(b)) for a, b in zip(ours, values)) > 1e-4 * max(abs(float(b)) for b in values)


def run(make: Callable[[], ak.Optimizer], make_keras: Callable[[], Any] | None, keras: Any) -> str:
    """Train with adamkit.keras (``opt.minimize`` updates the three arrays in place) and, in lockstep, with Keras 3;
    a row with both results, and where the two parted (parameters 1e-4 apart), the step: a chaotic run amplifies
    the last bit of float32 rounding until the two are different runs."""
    opt, variables, ours = make(), [START[k].copy() for k in ("w1", "w2", "b")], EarlyStopping()
    if make_keras is not None:
        k_vars = [keras.Variable(START[k].copy()) for k in ("w1", "w2", "b")]
        k_opt, theirs = make_keras(), EarlyStopping()
    parted = None
    while not ours.stopped or (make_keras is not None and not theirs.stopped):
        value = None
        if not ours.stopped:
            value = opt.minimize(loss, variables)
            ours.update(value)
        if make_keras is not None and not theirs.stopped:
            k_value = keras_step(k_opt, k_vars, keras)
            theirs.update(k_value)
            if value is not None and parted is None and _apart(variables, k_vars, keras):
                parted = ours.steps
    w1, w2, b = (float(v) for v in variables)
    line = f"w1={w1:8.4f} w2={w2:8.4f} b={b:8.4f}  loss={ours.best:.5f}  steps={ours.steps:4d}"
    if make_keras is not None:
        line += f"   Keras 3: loss {theirs.best:.5f} in {theirs.steps:4d} steps"
        if parted:
            line += f"  (apart from step {parted}: this run amplifies float32 rounding)"
    return line


def import_keras() -> Any:
    if "--no-keras" in sys.argv:
        return None
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    return keras


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
    keras = import_keras()
    print(
        f"\nthe tutorial's race with adamkit.keras (Keras defaults; early stopping: min_delta={MIN_DELTA}, "
        f"patience={PATIENCE}, at most {MAX_STEPS} steps; loss = the best seen)"
        + ("" if keras else ";\nKeras 3 not installed (pip install keras torch) or --no-keras: its column is left out")
    )
    keras_race = race(keras.optimizers) if keras else {}
    for label, make in race(ak).items():
        print(f"{label:10s} {run(make, keras_race.get(label), keras)}")


if __name__ == "__main__":
    main()
