"""adamkit for PyTorch: ``torch.optim.Optimizer`` subclasses whose step is adamkit's fused kernel.

Change one import line (``from adamkit.torch import AdamW`` in place of ``torch.optim.AdamW``): same
constructor arguments and defaults, same ``param_groups`` (schedulers work), state_dicts interchangeable with
torch.optim's. CPU float32/float64 (and bfloat16) parameters are packed into flat buffers (``p.data`` rebound
to views) and stepped by one numba kernel call per group and dtype, bfloat16 with stochastic rounding (or Kahan
compensation, ``kahan_sum=True``); ``state_dtype="bfloat16"|"int8"`` stores the state in low precision.
Parameters elsewhere (CUDA, fp16) are stepped by the same rule evaluated with torch ops. ``import adamkit`` does
not import this module (nor torch).
"""

from ._backward import step_in_backward
from ._base import TorchOptimizer
from .modern import LAMB, Adafactor, Lion, Muon, ScheduleFreeAdamW
from .optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, RMSprop

__all__ = [
    "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
    "Lion", "LAMB", "Adafactor", "Muon", "ScheduleFreeAdamW",
    "TorchOptimizer", "step_in_backward",
]  # fmt: skip
