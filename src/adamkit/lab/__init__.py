"""The optimizer lab: fair races with pictures (``adamkit race``) and the step-speed benchmark (``adamkit bench``).

Extend it with your own problem::

    from adamkit.lab import Problem, register

    @register
    class MyProblem(Problem):
        name = "mine"
        def init(self, seed): ...           # {name: float64 array}
        def loss(self, params, batch=None): ...  # written with autograd.numpy

then ``adamkit race --problem mymodule:MyProblem`` (or ``--problem mine`` once your module is imported).
"""

from .problems import PROBLEMS, Problem, Surface, get_problem, register
from .race import RaceSettings, race, racers

__all__ = ["Problem", "Surface", "register", "get_problem", "PROBLEMS", "race", "RaceSettings", "racers"]
