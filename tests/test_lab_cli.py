"""``adamkit race`` and ``adamkit bench`` through click's CliRunner: the table is what race.json holds; errors."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
from click.testing import CliRunner

from adamkit.lab.cli import main

ENV = {"COLUMNS": "220"}


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the rich tables in ``output`` (cells stripped)."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]


def test_race_table_is_what_race_json_holds(tmp_path):
    result = invoke("race", "--steps", "300", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "race.json").read_text())
    (problem,) = data["problems"]
    assert problem["name"] == "quadratic" and problem["steps"] == 300
    rows = {row[0]: row for row in table_rows(result.output)}
    assert list(rows) == [r["optimizer"] for r in problem["results"]]
    assert len(rows) >= 12  # every classic optimizer
    for r in problem["results"]:
        name, lr, final, reached, wall_ms, note = rows[r["optimizer"]]
        (run,) = r["runs"]
        # race.json holds every curve: the summary is the curve's own last value and first crossing
        assert r["final_loss"] == run["losses"][-1] and len(run["losses"]) == 301
        crossing = next((i for i, v in enumerate(run["losses"]) if v <= problem["target"]), None)
        assert r["steps_to_target"] == crossing
        # ... and the table shows those numbers
        assert float(lr) == pytest.approx(r["lr"], rel=1e-3)
        assert float(final) == pytest.approx(r["final_loss"], rel=1e-3)
        assert (reached == "—") if crossing is None else int(reached) == crossing
        assert float(wall_ms) == pytest.approx(1e3 * r["wall_s"], abs=0.51)
        assert note == ""
    assert data["settings"]["steps"] == 300 and data["settings"]["convention"] == "torch"
    assert [p["file"] for p in data["plots"]] == ["loss_quadratic.png"]
    assert (tmp_path / "loss_quadratic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "report.html").exists()


def test_seeds_tune_and_convention_in_the_table(tmp_path):
    result = invoke("race", "-p", "sine-mlp", "-o", "gd,nesterov,adam", "--steps", "30", "--seeds", "2", "--tune",
                    "--grid", "0.01,0.1", "--convention", "dezero", "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "race.json").read_text())
    (problem,) = data["problems"]
    rows = {row[0]: row for row in table_rows(result.output)}
    assert set(rows) == {"GD", "Adam"}
    assert "skipped Nesterov: nesterov=True has no DeZero form" in result.output
    for r in problem["results"]:
        name, lr, final, spread, reached, wall, note = rows[r["optimizer"]]
        assert r["tuned"] and r["lr"] in (0.01, 0.1) and set(r["tune_scores"]) == {"0.01", "0.1"}
        assert r["tune_scores"][repr(r["lr"])] == min(r["tune_scores"].values())
        assert float(final) == pytest.approx(r["final_loss"], rel=1e-3)
        low, high = (float(x) for x in spread.split(" – "))
        assert low == pytest.approx(r["final_loss_min"], rel=1e-3)
        assert high == pytest.approx(r["final_loss_max"], rel=1e-3)
        assert len(r["runs"]) == 2 and low < high
    assert "best lr" in result.output and "min–max over 2 seeds" in result.output


def test_help_on_each_command():
    for args in ([], ["race"], ["bench"]):
        result = invoke(*args, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "--tune" in invoke("race", "--help").output and "--workloads" in invoke("bench", "--help").output
    listed = invoke("race", "--list").output
    assert "problem  digits" in listed and "optimizer AMSGrad: adamkit.Adam(amsgrad=True)" in listed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--problem", "nope"], "Invalid value for '--problem': unknown problem 'nope'; choose from quadratic"),
        (["--optimizers", "adam,lion2"], "Invalid value for '--optimizers': unknown optimizer(s) 'lion2'"),
        (["--steps", "0"], "Invalid value for '--steps': 0 is not in the range x>=1"),
        (["--steps", "-3"], "Invalid value for '--steps': -3 is not in the range x>=1"),
        (["--seeds", "0"], "Invalid value for '--seeds': 0 is not in the range x>=1"),
        (["--grid", "0.1,abc"], "Invalid value for '--grid'"),
        (["--grid", "0.1,-1"], "Invalid value for '--grid': grid must be learning rates > 0"),
        (["--convention", "jax"], "Invalid value for '--convention'"),
    ],
)
def test_bad_race_arguments_are_refused_before_running(tmp_path, args, message):
    out = tmp_path / "out"
    result = invoke("race", *args, "--out", str(out))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()


def test_seeds_on_a_deterministic_problem_say_so(tmp_path):
    result = invoke("race", "-o", "adam", "--steps", "5", "--seeds", "3", "--out", str(tmp_path))
    assert result.exit_code == 0 and "quadratic is deterministic: one run per optimizer" in result.output
    assert len(json.loads((tmp_path / "race.json").read_text())["problems"][0]["results"][0]["runs"]) == 1


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("race", "--steps", "5", "--out", str(blocker / "sub"))
    assert result.exit_code == 2
    assert "Invalid value for '--out': cannot write to" in result.output and "a-file" in result.output


def test_user_problem_from_the_command_line(tmp_path, monkeypatch):
    (tmp_path / "cli_bowl.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from adamkit.lab import Surface

            class Bowl(Surface):
                name = "bowl"
                description = "x² + y²"
                steps = 25
                start = (1.5, -1.0)
                minimum = (0.0, 0.0)
                def f(self, x, y):
                    return x**2 + y**2
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    result = invoke("race", "-p", "cli_bowl:Bowl", "-o", "gd", "--out", "out")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "race.json").read_text())
    (r,) = data["problems"][0]["results"]
    assert data["problems"][0]["name"] == "bowl" and len(r["runs"][0]["path"]) == 26
    assert r["final_loss"] == pytest.approx(3.25 * (1 - 2 * 0.01) ** 50, rel=1e-12)  # GD at default_lr 0.01
    assert {p["file"] for p in data["plots"]} == {"loss_bowl.png", "paths_bowl.png"}


def test_bench_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("bench", "--quick", "--only", "sgd", "--workloads", "3x1000", "--json", str(out))
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [(r["optimizer"], r["tensors"], r["size"]) for r in rows] == [("sgd", 3, 1000)]
    assert rows[0]["torch_foreach_ms"] > 0  # torch.optim side by side (the test extra installs torch)
    shown = {row[0]: row for row in table_rows(result.output)}
    for r in rows:
        assert math.isfinite(r["adamkit_ms"]) and r["adamkit_ms"] > 0 and r["floor_ms"] > 0
        assert shown[r["optimizer"]][2] == f"{r['adamkit_ms']:.3f}"
    bad = invoke("bench", "--only", "adam,nope")
    assert bad.exit_code == 2 and "Invalid value for '--only': unknown optimizer(s) ['nope']" in bad.output
    bad = invoke("bench", "--workloads", "10x0")
    assert bad.exit_code == 2 and "Invalid value for '--workloads'" in bad.output
    out.unlink()
    out.write_text("")
    bad = invoke("bench", "--json", str(out / "bench.json"))
    assert bad.exit_code == 2 and "Invalid value for '--json': cannot write" in bad.output
