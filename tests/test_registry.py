"""Nothing ships untested: every exported optimizer appears in the case table with a real oracle."""

from __future__ import annotations

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
