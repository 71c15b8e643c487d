"""*Deep Learning from Scratch*, chapter 6: four optimizers on f(x, y) = x²/20 + y² from (−7, 2), 30 steps.

The book's own program (ch06/optimizer_compare_naive.py), with its optimizers taken from ``adamkit.scratch``
(same names, same ``update(params, grads)``). Prints each optimizer's path; the minimum is at (0, 0).
"""

from __future__ import annotations

from typing import Any

from adamkit.scratch import SGD, AdaGrad, Adam, Momentum


def f(x: float, y: float) -> float:
    return x**2 / 20.0 + y**2


def df(x: float, y: float) -> tuple[float, float]:
    return x / 10.0, 2.0 * y


def paths(optimizers: dict[str, Any], init_pos: tuple[float, float] = (-7.0, 2.0), steps: int = 30) -> dict:
    """The book's loop: ``params`` holds plain Python floats; each optimizer's path, its final point included."""
    out = {}
    for key, optimizer in optimizers.items():
        params = {"x": init_pos[0], "y": init_pos[1]}
        grads = {"x": 0.0, "y": 0.0}
        path = []
        for _ in range(steps):
            path.append((params["x"], params["y"]))
            grads["x"], grads["y"] = df(params["x"], params["y"])
            optimizer.update(params, grads)
        out[key] = [*path, (params["x"], params["y"])]
    return out


def lineup(sgd: type, momentum: type, adagrad: type, adam: type) -> dict[str, Any]:
    """The book's four optimizers with its learning rates for this picture."""
    return {"SGD": sgd(lr=0.95), "Momentum": momentum(lr=0.1), "AdaGrad": adagrad(lr=1.5), "Adam": adam(lr=0.3)}


def main() -> None:
    for key, path in paths(lineup(SGD, Momentum, AdaGrad, Adam)).items():
        x, y = path[-1]
        print(f"{key}: f = {f(x, y):.3g} after {len(path) - 1} steps, at ({x:.4f}, {y:.4f})")
        print("  path: " + " → ".join(f"({x:.2f}, {y:.2f})" for x, y in path[:6]) + " → …")


if __name__ == "__main__":
    main()
