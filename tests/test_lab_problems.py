"""The race's problems: autograd gradients against central finite differences; the registry and user problems."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from autograd import grad

from adamkit.lab.problems import PROBLEMS, Problem, get_problem, register


def finite_difference(f, params: dict, name: str, index: tuple, h: float = 1e-6) -> float:
    plus = {k: v.copy() for k, v in params.items()}
    minus = {k: v.copy() for k, v in params.items()}
    plus[name][index] += h
    minus[name][index] -= h
    return (float(f(plus)) - float(f(minus))) / (2 * h)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_gradient_matches_finite_differences(name):
    problem = get_problem(name)
    rng = np.random.default_rng(1)
    start = problem.init(0)
    # away from the start, where some gradients vanish by symmetry; each parameter's entries
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in start.items()}
    batches = [None] + ([problem.batch(rng)] if problem.batch(rng) is not None else [])
    checked = 0
    for batch in batches:

        def f(p, batch=batch):
            return problem.loss(p, batch)

        g = grad(f)(params)
        assert g.keys() == params.keys()
        for k, v in params.items():
            assert g[k].shape == v.shape
            flat = rng.choice(v.size, min(v.size, 12), replace=False)
            for i in flat:
                index = np.unravel_index(i, v.shape)
                expected = finite_difference(f, params, k, index)
                assert g[k][index] == pytest.approx(expected, rel=1e-5, abs=1e-7), (name, k, index, batch is None)
                checked += 1
    assert checked >= 2


def test_stochastic_problems_depend_on_the_seed_and_minibatches_differ():
    digits = get_problem("digits")
    a, b = digits.init(0), digits.init(1)
    assert not np.array_equal(a["W1"], b["W1"])
    rng = np.random.default_rng(0)
    first, second = digits.batch(rng), digits.batch(rng)
    assert len(first) == digits.batch_size and len(set(first)) == digits.batch_size
    assert not np.array_equal(first, second)
    assert digits.loss(a, first) != pytest.approx(float(digits.loss(a)))
    accuracy = digits.metrics(a)["test_accuracy"]
    assert 0 <= accuracy <= 1


def test_known_minima():
    for name, point in (("rosenbrock", (1, 1)), ("beale", (3, 0.5)), ("elongated", (0, 0))):
        problem = get_problem(name)
        assert tuple(problem.minimum) == point
        assert float(problem.loss({"xy": np.array(point, float)})) == pytest.approx(0, abs=1e-12)
    quadratic = get_problem("quadratic")
    assert float(quadratic.loss({"w": np.array([2.0, 3.0, 5.0])})) == pytest.approx(0, abs=1e-12)
    assert float(quadratic.loss(quadratic.init(0))) == pytest.approx(
        np.sqrt(np.mean((quadratic.x**2 + 2 * quadratic.x + 4) ** 2))
    )


def test_unknown_problem_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown problem 'nope'.*quadratic.*module:Class"):
        get_problem("nope")
    with pytest.raises(ValueError, match=r"cannot import 'X' from module 'no_such_module_here'"):
        get_problem("no_such_module_here:X")


def test_user_problem_from_a_module_and_register(tmp_path, monkeypatch):
    (tmp_path / "my_lab_problem.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from adamkit.lab import Problem

            class Bowl(Problem):
                name = "bowl"
                steps = 10
                def init(self, seed):
                    return {"x": np.array([3.0, -4.0])}
                def loss(self, params, batch=None):
                    return (params["x"] ** 2).sum()

            not_a_problem = 3
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    problem = get_problem("my_lab_problem:Bowl")
    assert problem.name == "bowl" and float(problem.loss(problem.init(0))) == 25.0
    with pytest.raises(ValueError, match="is not an adamkit.lab.Problem"):
        get_problem("my_lab_problem:not_a_problem")

    class Mine(Problem):
        name = "mine-test"

    try:
        assert register(Mine) is Mine
        assert isinstance(get_problem("mine-test"), Mine)
    finally:
        PROBLEMS.pop("mine-test", None)
    with pytest.raises(TypeError, match="Problem subclass"):
        register(int)
    with pytest.raises(ValueError, match="has no name"):
        register(type("Nameless", (Problem,), {}))
