"""One table of every optimizer × configuration; most tests are driven by it.

``oracle`` names what a case is checked against:
  "torch"  → torch.optim.<cls.__name__>(params, **kwargs) (kwargs use torch's names, so they pass as they are);
  "keras"  → keras.optimizers.<keras[0]>(**keras[1]) under KERAS_BACKEND=torch;
  "dezero" → a NumPy transcription of DeZero's published formulas written in the tests.
Every case is also run through both engines (fused ≡ numpy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import adamkit


@dataclass(frozen=True)
class Case:
    id: str
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    oracle: str = "torch"
    groups: bool = False  # run with two param groups of different lr as well
    keras: tuple[str, dict[str, Any]] | None = None  # Keras class name and its kwargs, for oracle="keras"


CASES: list[Case] = [
    # --- SGD ---------------------------------------------------------------------------------------
    Case("sgd", adamkit.SGD, dict(lr=0.05)),
    Case("sgd-wd", adamkit.SGD, dict(lr=0.05, weight_decay=0.1)),
    Case("sgd-maximize", adamkit.SGD, dict(lr=0.05, maximize=True)),
    Case("sgd-momentum", adamkit.SGD, dict(lr=0.05, momentum=0.9), groups=True),
    Case("sgd-momentum-dampening", adamkit.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    Case("sgd-nesterov", adamkit.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    Case("sgd-nesterov-maximize", adamkit.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    # --- Adam / AMSGrad / AdamW ----------------------------------------------------------------------
    Case("adam", adamkit.Adam, dict(lr=0.01), groups=True),
    Case("adam-betas-eps", adamkit.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    Case("adam-wd", adamkit.Adam, dict(lr=0.01, weight_decay=0.05)),
    Case("adam-amsgrad", adamkit.Adam, dict(lr=0.01, amsgrad=True), groups=True),
    Case("adam-maximize", adamkit.Adam, dict(lr=0.01, maximize=True, weight_decay=0.01)),
    Case("adamw", adamkit.AdamW, dict(lr=0.01), groups=True),
    Case("adamw-amsgrad", adamkit.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    Case("adamw-maximize", adamkit.AdamW, dict(lr=0.01, maximize=True)),
    Case(
        "adam-keras", adamkit.Adam, dict(lr=0.01, convention="keras"), "keras", keras=("Adam", dict(learning_rate=0.01))
    ),
    Case(
        "adam-keras-amsgrad",
        adamkit.Adam,
        dict(lr=0.01, amsgrad=True, convention="keras"),
        "keras",
        keras=("Adam", dict(learning_rate=0.01, amsgrad=True)),
    ),
    Case(
        "adamw-keras",
        adamkit.AdamW,
        dict(lr=0.01, convention="keras"),
        "keras",
        keras=("AdamW", dict(learning_rate=0.01)),
    ),
    Case(
        "adamw-keras-amsgrad",
        adamkit.AdamW,
        dict(lr=0.01, weight_decay=0.05, amsgrad=True, convention="keras"),
        "keras",
        keras=("AdamW", dict(learning_rate=0.01, weight_decay=0.05, amsgrad=True)),
    ),
]


def cases(oracle: str | None = None) -> list[Case]:
    return [c for c in CASES if oracle is None or c.oracle == oracle]
