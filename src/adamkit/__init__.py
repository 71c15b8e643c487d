"""adamkit: first-order optimizers on flat NumPy buffers, one fused numba kernel per step.

Every optimizer's math is written once as an elementwise rule; ``engine="numpy"`` runs it on whole
arrays (the reference), ``engine="fused"`` (default) inlines it into one parallel loop over a flat buffer.
"""

from . import hooks, schedules, scratch
from .checkpoint import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointFormatError,
    CheckpointLayoutError,
    CheckpointTruncatedError,
    load,
    save,
)
from .frontends.minimize import MinimizeResult, minimize
from .hooks import ClipGradNorm, ClipGradValue, DecoupledWeightDecay, FreezeParam, WeightDecay
from .optim.adadelta import Adadelta
from .optim.adafactor import Adafactor
from .optim.adagrad import Adagrad
from .optim.adam import Adam, AdamW
from .optim.adamax import Adamax
from .optim.lamb import LAMB
from .optim.lion import Lion
from .optim.muon import Muon
from .optim.nadam import NAdam
from .optim.radam import RAdam
from .optim.rmsprop import RMSprop
from .optim.schedulefree import ScheduleFreeAdamW
from .optim.sgd import SGD
from .optimizer import Optimizer

__all__ = [
    "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
    "Lion", "LAMB", "Adafactor", "Muon", "ScheduleFreeAdamW", "Optimizer",
    "minimize", "MinimizeResult",
    "save", "load", "CheckpointError", "CheckpointTruncatedError", "CheckpointCorruptError", "CheckpointFormatError",
    "CheckpointLayoutError",
    "hooks", "schedules", "scratch",
    "WeightDecay", "DecoupledWeightDecay", "ClipGradNorm", "ClipGradValue", "FreezeParam",
]  # fmt: skip
__version__ = "0.1.0"
