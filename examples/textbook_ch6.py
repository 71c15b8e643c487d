"""*Deep Learning from Scratch*, chapter 6: four optimizers on f(x, y) = x²/20 + y² from (−7, 2), 30 steps.

The book's own program (ch06/optimizer_compare_naive.py), with its optimizers taken from ``adamkit.scratch``
(same names, same ``update(params, grads)``). Prints each optimizer's path; the minimum is at (0, 0).
"""

from __future__ import annotations

from adamkit.scratch import SGD, AdaGrad, Adam, Momentum


def f(x: float, y: float) -> float:
    return x**2 / 20.0 + y**2


def df(x: float, y: float) -> tuple[float, float]:
    return x / 10.0, 2.0 * y


def main() -> None:
    init_pos = (-7.0, 2.0)
    optimizers = {"SGD": SGD(lr=0.95), "Momentum": Momentum(lr=0.1), "AdaGrad": AdaGrad(lr=1.5), "Adam": Adam(lr=0.3)}
    for key, optimizer in optimizers.items():
        params = {"x": init_pos[0], "y": init_pos[1]}
        grads = {"x": 0.0, "y": 0.0}
        path = []
        for _ in range(30):
            path.append((params["x"], params["y"]))
            grads["x"], grads["y"] = df(params["x"], params["y"])
            optimizer.update(params, grads)
        print(f"{key}: f = {f(params['x'], params['y']):.3g} after 30 steps, at ({params['x']:.4f}, {params['y']:.4f})")
        print("  path: " + " → ".join(f"({x:.2f}, {y:.2f})" for x, y in path[:6]) + " → …")


if __name__ == "__main__":
    main()
