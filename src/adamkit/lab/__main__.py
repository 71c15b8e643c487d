"""``python -m adamkit.lab``: the same as the ``adamkit`` command."""

from .cli import main

main(prog_name="adamkit")
