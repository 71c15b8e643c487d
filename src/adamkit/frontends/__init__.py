"""Ways in: ``minimize`` (scipy-shaped, gradients from autograd) and the DeZero-style ``setup``/``update``."""
