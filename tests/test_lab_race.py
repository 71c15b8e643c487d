"""The race: runs follow the closed-form iterates, --tune picks the best lr of its grid, seeds and conventions."""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np
import pytest

from adamkit.lab.problems import PROBLEMS, Problem
from adamkit.lab.race import RaceSettings, race, racers, resolve_optimizers


class Diagonal(Problem):
    """f(x) = ½ Σ λᵢ xᵢ² from x = (1, 1): gradient descent's iterates are xᵢ ← (1 − η λᵢ) xᵢ."""

    name = "diagonal-test"
    steps = 20
    target = 1e-3
    lams = np.array([1.0, 10.0])

    def init(self, seed):
        return {"x": np.ones(2)}

    def loss(self, params, batch=None):
        return 0.5 * anp.sum(self.lams * params["x"] ** 2)


@pytest.fixture
def diagonal():
    PROBLEMS[Diagonal.name] = Diagonal
    yield Diagonal
    PROBLEMS.pop(Diagonal.name)


def gd_loss(lr: float, steps: int) -> float:
    """The loss after ``steps`` steps of gradient descent on Diagonal, in closed form."""
    return float(0.5 * np.sum(Diagonal.lams * (1 - lr * Diagonal.lams) ** (2 * steps)))


def test_tune_picks_the_best_lr_of_its_grid(diagonal):
    grid = [float(x) for x in np.logspace(-3, 0, 13)]
    report = race(RaceSettings(problems=[Diagonal.name], optimizers=["GD"], tune=True, grid=grid))
    (result,) = report["problems"][0]["results"]
    exact = {lr: gd_loss(lr, Diagonal.steps) for lr in grid}
    best = min(exact, key=lambda lr: exact[lr] if math.isfinite(exact[lr]) else math.inf)
    assert grid[0] < best < grid[-1]  # an interior answer (2/(λ₁ + λ₂) lies between two grid points)
    assert result["lr"] == best and result["tuned"]
    for lr, score in result["tune_scores"].items():
        expected = exact[float(lr)]
        assert score == pytest.approx(expected, rel=1e-9) if expected < 1e300 else score > 1e300
    assert result["final_loss"] == pytest.approx(exact[best], rel=1e-9)


def test_runs_follow_gradient_descent_in_closed_form():
    """elongated, GD at the book's lr 0.95: x_k = (1 − 0.95/10)^k·(−7), y_k = (1 − 1.9)^k·2."""
    report = race(RaceSettings(problems=["elongated"], optimizers=["gd"], target=0.05))
    problem = report["problems"][0]
    (result,) = problem["results"]
    (run,) = result["runs"]
    k = np.arange(problem["steps"] + 1)
    path = np.array(run["path"])
    np.testing.assert_allclose(path[:, 0], -7 * (1 - 0.095) ** k, rtol=1e-12)
    np.testing.assert_allclose(path[:, 1], 2 * (-0.9) ** k, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(run["losses"], path[:, 0] ** 2 / 20 + path[:, 1] ** 2, rtol=1e-12)
    assert run["loss_steps"] == list(k)
    assert result["lr"] == 0.95 and result["final_loss"] == run["losses"][-1]
    first = next(i for i, v in enumerate(run["losses"]) if v <= problem["target"])
    assert result["steps_to_target"] == first


def test_seeds_repeat_stochastic_runs_and_report_median_and_spread():
    report = race(RaceSettings(problems=["digits", "quadratic"], optimizers=["Adam"], steps=20, seeds=3))
    digits, quadratic = report["problems"]
    (result,) = digits["results"]
    finals = [r["final_loss"] for r in result["runs"]]
    assert [r["seed"] for r in result["runs"]] == [0, 1, 2] and len(set(finals)) == 3
    assert result["final_loss"] == sorted(finals)[1]
    assert (result["final_loss_min"], result["final_loss_max"]) == (min(finals), max(finals))
    assert result["metrics"]["test_accuracy"] == sorted(r["metrics"]["test_accuracy"] for r in result["runs"])[1]
    assert result["runs"][0]["loss_steps"] == [0, 10, 20]  # digits records the full loss every 10 steps
    assert quadratic["seeds"] == 1 and len(quadratic["results"][0]["runs"]) == 1  # deterministic: once


def test_conventions_skip_optimizers_that_have_no_such_form():
    report = race(RaceSettings(problems=["quadratic"], optimizers=["GD", "Nesterov", "RMSprop", "Adam"],
                               steps=50, convention="dezero"))  # fmt: skip
    problem = report["problems"][0]
    assert [r["optimizer"] for r in problem["results"]] == ["GD", "Adam"]
    skipped = {s["optimizer"]: s["reason"] for s in problem["skipped"]}
    assert skipped.keys() == {"Nesterov", "RMSprop"}
    assert "DeZero" in skipped["Nesterov"] and "convention" in skipped["RMSprop"]
    keras = race(RaceSettings(problems=["quadratic"], optimizers=["Adam"], steps=50, convention="keras"))
    torch = race(RaceSettings(problems=["quadratic"], optimizers=["Adam"], steps=50))
    dezero_adam = problem["results"][1]["final_loss"]
    keras_adam = keras["problems"][0]["results"][0]["final_loss"]
    torch_adam = torch["problems"][0]["results"][0]["final_loss"]
    assert len({dezero_adam, keras_adam, torch_adam}) == 3  # epsilon-hat vs torch's epsilon, ε 1e-8 vs 1e-7


def test_line_up_and_bad_settings():
    labels = resolve_optimizers(None)
    for classic in ("GD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "AdaDelta", "Adam", "AMSGrad", "NAdam",
                    "AdamW", "RAdam", "Adamax"):  # fmt: skip
        assert classic in labels
    assert {cls.__name__ for cls, _ in racers().values()} >= {"SGD", "Adam", "Adagrad"}
    assert resolve_optimizers(["adam", " SGD", "ADAM"]) == ["Adam", "GD"]
    with pytest.raises(ValueError, match=r"unknown optimizer\(s\) 'lion2'; choose from GD, Momentum"):
        resolve_optimizers(["adam", "lion2"])
    for bad in (dict(steps=0), dict(seeds=-1), dict(steps=1.5), dict(convention="jax"), dict(grid=[0.1, -1])):
        with pytest.raises(ValueError, match=next(iter(bad))):
            race(RaceSettings(**bad))


def test_newer_optimizers_join_the_line_up_and_a_failing_one_is_noted(monkeypatch):
    import adamkit

    class Broken(adamkit.SGD):
        """A newly exported optimizer that cannot run (e.g. one that needs matrices)."""

        def step(self, grads=None):
            raise RuntimeError("needs 2-D parameters")

    monkeypatch.setattr(adamkit, "Broken", Broken, raising=False)
    monkeypatch.setattr(adamkit, "__all__", [*adamkit.__all__, "Broken"])
    assert racers()["Broken"] == (Broken, {})
    report = race(RaceSettings(problems=["quadratic"], optimizers=["GD", "Broken"], steps=5))
    problem = report["problems"][0]
    assert [r["optimizer"] for r in problem["results"]] == ["GD"]
    assert problem["skipped"] == [{"optimizer": "Broken", "reason": "failed: RuntimeError: needs 2-D parameters"}]
    monkeypatch.setattr(adamkit.SGD, "step", Broken.step)  # a classic optimizer's failure is a real error
    with pytest.raises(RuntimeError, match="needs 2-D"):
        race(RaceSettings(problems=["quadratic"], optimizers=["GD"], steps=5))


def test_every_convention_is_some_optimizers_and_scratch_is_the_books_sgd():
    from adamkit.lab.race import CONVENTIONS, refusal

    for convention in CONVENTIONS:
        assert any(refusal(cls, kwargs, convention) is None for cls, kwargs in racers().values()), convention
    report = race(RaceSettings(problems=["elongated"], convention="scratch"))
    problem = report["problems"][0]
    assert [r["optimizer"] for r in problem["results"]] == ["GD", "Momentum", "Nesterov"]
    assert {s["optimizer"] for s in problem["skipped"]} >= {"Adam", "AdaGrad"}


def test_the_raced_lr_reaches_muons_auxiliary_adamw():
    """Muon steps the elongated problem's scalars with its auxiliary AdamW: raced at one lr, it must walk the
    same path as AdamW at that lr (were ``adamw_lr`` left at its default, Muon would barely move)."""
    report = race(RaceSettings(problems=["elongated"], optimizers=["Muon", "AdamW"]))
    muon, adamw = report["problems"][0]["results"]
    assert muon["lr"] == adamw["lr"]
    np.testing.assert_allclose(muon["runs"][0]["path"], adamw["runs"][0]["path"], rtol=1e-12)
    assert muon["final_loss"] < 0.5 * muon["runs"][0]["losses"][0]
