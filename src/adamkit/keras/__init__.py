"""adamkit.keras: Keras 3's optimizers and learning-rate schedules over NumPy arrays, updated in place.

Names, signatures, defaults and behaviour are Keras 3's (``keras.optimizers.Adam(learning_rate=...)``,
``apply_gradients(zip(grads, vars))``, ``keras.optimizers.schedules.InverseTimeDecay``); each update is the
adamkit optimizer of the same name with ``convention="keras"``. Both ``adamkit.keras.Adam`` and
``adamkit.keras.optimizers.Adam`` work, as in Keras.
"""

from . import optimizers, schedules
from .optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, Optimizer, RMSprop

__all__ = ["optimizers", "schedules", "Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax",
           "Nadam"]  # fmt: skip
