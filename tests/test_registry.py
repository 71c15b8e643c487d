"""Nothing ships untested: every exported optimizer appears in the case table with a real oracle."""

from __future__ import annotations

from pathlib import Path

import torch
from registry import CASES

import adamkit


def exported_optimizers():
    return [
        obj
        for name in adamkit.__all__
        if isinstance(obj := getattr(adamkit, name), type)
        and issubclass(obj, adamkit.Optimizer)
        and obj is not adamkit.Optimizer
    ]


def test_every_exported_optimizer_is_in_the_table():
    covered = {case.cls for case in CASES}
    missing = [cls.__name__ for cls in exported_optimizers() if cls not in covered]
    assert not missing, f"optimizers without a test case: {missing}"
    assert len(exported_optimizers()) >= 3


def test_every_optimizer_has_a_real_oracle():
    for cls in exported_optimizers():
        oracles = {case.oracle for case in CASES if case.cls is cls}
        assert oracles & {"torch", "keras", "package"}, cls.__name__


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def readme_table_rows(heading: str) -> dict[str, str]:
    """The first table under ``heading`` in README.md: first cell (backticks stripped) → the whole row."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = readme.split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return {row.split("|")[1].strip(" `"): row for row in lines[start + 2 : end]}


def test_every_exported_optimizer_is_in_the_readme_tables_the_race_lab_and_adamkit_torch():
    """Each in the README's optimizer table (the classic family) or its "Beyond Adam" table (with its update
    formula and its reference), in the race lab's line-up, and as an adamkit.torch class."""
    import adamkit.torch
    from adamkit.lab.race import racers

    classic, beyond = readme_table_rows("## Optimizers and conventions"), readme_table_rows("### Beyond Adam")
    raced = {cls for cls, _ in racers().values()}
    for cls in exported_optimizers():
        name = cls.__name__
        assert name in classic or name in beyond, f"{name} is in neither README optimizer table"
        if name in beyond:
            signature, update, reference = beyond[name].split("|")[2:5]
            assert name in signature and "←" in update and reference.strip(), name
        assert cls in raced, f"{name} is not in the race lab's line-up"
        assert issubclass(getattr(adamkit.torch, name), torch.optim.Optimizer), name
