"""adamkit: first-order optimizers on flat NumPy buffers, one fused numba kernel per step.

Every optimizer's math is written once as an elementwise rule; ``engine="numpy"`` runs it on whole
arrays (the reference), ``engine="fused"`` (default) inlines it into one parallel loop over a flat buffer.
"""

from .optim.adam import Adam, AdamW
from .optim.sgd import SGD
from .optimizer import Optimizer

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
__version__ = "0.1.0"
