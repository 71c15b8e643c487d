"""One module per optimizer family: its elementwise rule(s), host-side scalars and the optimizer class."""
