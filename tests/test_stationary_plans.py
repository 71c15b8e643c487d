"""``_STATIONARY``: rules whose scalars an optimizer's plan computes from the group's hyperparameters and the
bucket's dtype alone. A plain step reuses their cast scalars without planning while the hyperparameters stay
the same (``Stepping._launches``), so a wrong declaration would freeze a scalar that should move with the step
count, the state or host scalars. Each declaration is checked here by asking the plan itself: under every
option that selects a declared rule, its scalars must not change with those inputs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import adamkit
from adamkit.flat import Run
from adamkit.optim.sgd import momentum_rule

# every option of each declaring optimizer that changes which rule or scalars the plan gives
CONFIGS = {
    adamkit.SGD: dict(
        convention=["torch", "keras", "dezero"], momentum=[0.0, 0.9], nesterov=[False, True],
        weight_decay=[0.0, 0.1], maximize=[False, True],
    ),
    adamkit.RMSprop: dict(
        convention=["torch", "keras"], momentum=[0.0, 0.9], centered=[False, True], weight_decay=[0.0, 0.1],
        maximize=[False, True],
    ),
    adamkit.Adadelta: dict(convention=["torch", "keras", "dezero"], weight_decay=[0.0, 0.1], maximize=[False, True]),
    adamkit.Lion: dict(weight_decay=[0.0, 0.1], maximize=[False, True]),
}  # fmt: skip
STEPS = (1, 2, 3, 10, 1001)


def configs(cls):
    table = CONFIGS[cls]
    for values in itertools.product(*table.values()):
        kwargs = dict(zip(table, values))
        if kwargs.get("nesterov") and not kwargs.get("momentum"):
            continue
        try:
            yield cls(lr=0.01, **kwargs)
        except ValueError:  # an option this convention refuses
            continue


def unstationary(opt, dtype):
    """The declared rules whose scalars moved with the step count, the state or the host scalars."""
    group = opt.defaults | {"params": [], "param_names": []}
    found = set()
    for t, filled, host in itertools.product(STEPS, (False, True), ({}, {"mu_product": 0.5})):
        rule, slots, _ = opt._plan(group, Run(dtype, {}, {}), t)
        state = {name: np.zeros(3, dtype) for name in slots} if filled else {}
        run = Run(dtype, state, dict(host))
        rule, slots, scalars = opt._plan(group, run, t)
        if rule not in opt._STATIONARY:
            continue
        reference = opt._plan(group, Run(dtype, {}, {}), 2)
        if rule is not reference[0] or scalars != reference[2] or run.scalars != host:
            found.add(rule.__name__)
        if list(map(type, scalars)) != list(map(type, reference[2])):
            found.add(rule.__name__)
    return found


@pytest.mark.parametrize("cls", list(CONFIGS), ids=lambda c: c.__name__)
def test_declared_rules_plan_the_same_scalars_whatever_the_step_state_and_host_scalars(cls):
    declared_and_seen = set()
    for opt in configs(cls):
        for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
            assert not unstationary(opt, dtype), (opt.defaults, dtype)
            declared_and_seen.add(opt._plan(opt.defaults, Run(dtype, {}, {}), 2)[0])
    assert declared_and_seen >= cls._STATIONARY  # every declared rule was exercised by some option


def test_every_optimizer_that_declares_is_checked():
    declaring = {cls for cls in adamkit.__dict__.values() if isinstance(cls, type) and getattr(cls, "_STATIONARY", 0)}
    assert declaring == set(CONFIGS)


def test_the_check_catches_a_wrong_declaration():
    """torch's momentum SGD plans its first step differently (the buffer starts at g): declaring it is wrong."""

    class Wrong(adamkit.SGD):
        _STATIONARY = adamkit.SGD._STATIONARY | {momentum_rule}

    assert unstationary(Wrong(lr=0.01, momentum=0.9), np.dtype(np.float64)) == {"momentum_rule"}


def test_a_plain_step_plans_nothing_while_the_hyperparameters_stay():
    calls = []

    class Counting(adamkit.SGD):
        def _plan(self, group, run, t):
            calls.append(t)
            return super()._plan(group, run, t)

    params = {"w": np.ones(5), "b": np.ones(3, np.float32)}
    opt = Counting(params, lr=0.1)
    for _ in range(3):
        opt.grads["w"][...], opt.grads["b"][...] = 1.0, 1.0
        opt.step()
    calls.clear()
    for _ in range(5):
        opt.step()
    assert calls == []
    opt.param_groups[0]["lr"] = 0.05  # new hyperparameters: planned once more, then reused again
    for _ in range(3):
        opt.step()
    assert len(calls) == 2  # once per bucket (float64, float32)
    np.testing.assert_allclose(params["w"], 1 - 0.1 * 8 - 0.05 * 3, rtol=1e-12)
    np.testing.assert_allclose(params["b"], np.float32(1) - np.float32(0.1) * 8 - np.float32(0.05) * 3, rtol=1e-6)
