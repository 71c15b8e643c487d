"""The classic tutorial problem: fit y = 2x² + 3x + 5 with SGD and Adam.

x = -5.0, -4.9, …, 4.9 (float32); the model ŷ = w1·x² + w2·x + b starts at w1 = w2 = b = 1; the loss is the
RMSE L = √(mean(r²)) with r = ŷ − y, whose gradient in closed form is ∂L/∂θ = mean(r·∂ŷ/∂θ) / L.
"""

from __future__ import annotations

import numpy as np

import adamkit

X = np.arange(-50, 50, dtype=np.float32) / np.float32(10)
Y = 2 * X**2 + 3 * X + 5
FEATURES = {"w1": X**2, "w2": X, "b": np.ones_like(X)}


def rmse_and_grad(params: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
    r = sum(params[k] * f for k, f in FEATURES.items()) - Y
    loss = np.sqrt(np.mean(r * r))
    return float(loss), {k: (np.mean(r * f) / loss).astype(np.float32) for k, f in FEATURES.items()}


def fit(make_optimizer, steps: int) -> tuple[dict[str, float], float]:
    params = {k: np.array(1.0, dtype=np.float32) for k in FEATURES}
    opt = make_optimizer(params)
    for _ in range(steps):
        _, grads = rmse_and_grad(params)
        opt.step(grads)
    return {k: float(v) for k, v in params.items()}, rmse_and_grad(params)[0]


def main() -> None:
    runs = {
        "SGD(lr=0.01), 1000 steps": (lambda p: adamkit.SGD(p, lr=0.01), 1000),
        'Adam(lr=0.05, convention="keras"), 300 steps': (lambda p: adamkit.Adam(p, lr=0.05, convention="keras"), 300),
    }
    print("fit y = 2x² + 3x + 5 from w1 = w2 = b = 1 (RMSE loss)")
    for label, (make, steps) in runs.items():
        coef, loss = fit(make, steps)
        print(f"{label:46s} w1={coef['w1']:8.4f} w2={coef['w2']:8.4f} b={coef['b']:8.4f}  loss={loss:.5f}")


if __name__ == "__main__":
    main()
