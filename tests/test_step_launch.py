"""The fused engine's prepared launches: a plain step reuses each bucket's kernel call from the step before
(``Optimizer._launches``). Everything that changes what that call must be is changed here mid-run, and the run
is compared with the NumPy engine (which never takes that path) on the same events: a stale launch shows.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import adamkit
from adamkit.elementwise import elementwise
from adamkit.hooks import ClipGradValue, WeightDecay
from adamkit.optim.adam import adam_rule
from adamkit.schedules import StepLR

SHAPES = {"w": (40, 30), "b": (30,), "v": (7,)}


def params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def grads(steps, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()} for _ in range(steps)]


def run(engine, events, steps=12, make=lambda p, e: adamkit.Adam(p, lr=0.01, engine=e)):
    """Step ``steps`` times from ``opt.grads``, calling ``events[i](opt, ps)`` before step i; returns the params
    (the dict's arrays as they are at the end) and the optimizer."""
    ps = params()
    opt = make(ps, engine)
    for i, g in enumerate(grads(steps)):
        for name, value in g.items():
            opt.grads[name][...] = value
        if i in events:
            opt = events[i](opt, ps) or opt
        opt.step()
    return ps, opt


def assert_engines_agree(events, **kw):
    fused, opt = run("fused", events, **kw)
    numpy, _ = run("numpy", events, **kw)
    for k in SHAPES:
        np.testing.assert_allclose(fused[k], numpy[k], rtol=1e-12, atol=1e-14)
    return opt


def test_plain_steps_take_the_prepared_launch():
    opt = assert_engines_agree({})
    assert all(flat.launch is not None for _, flat in opt.flat_buffers())
    assert opt._launches() is not None


def test_state_loaded_mid_run():
    saved = {}

    def save(opt, ps):
        saved["state"] = opt.state_dict()

    def load(opt, ps):  # new state arrays: the old launch must not write into the replaced ones
        opt.load_state_dict(saved["state"])

    opt = assert_engines_agree({3: save, 7: load})
    assert all(flat.launch.state is flat.state for _, flat in opt.flat_buffers())


def test_a_copy_steps_its_own_arrays():
    def fork(opt, ps):
        before = {k: v.copy() for k, v in ps.items()}
        twin = copy.deepcopy(opt)
        for name in SHAPES:
            twin.grads[name][...] = 1.0
        twin.step()  # with the original's launches it would step the original's parameters
        for k in SHAPES:
            np.testing.assert_array_equal(ps[k], before[k])

    assert_engines_agree({5: fork})


def test_a_caller_array_replaced_mid_run():
    def replace(opt, ps):
        ps["w"] = ps["w"] * 0.5  # adopted at the next step: the kernel must reach the new array

    opt = assert_engines_agree({6: replace})
    assert opt.params["w"] is not None


def test_hooks_schedules_and_checks_added_mid_run():
    def add_hooks(opt, ps):
        opt.add_hook(WeightDecay(0.1))
        opt.add_hook(ClipGradValue(0.5))

    def add_schedule(opt, ps):
        opt.schedule = StepLR(2, gamma=0.5)

    assert_engines_agree({4: add_hooks})
    assert_engines_agree({4: add_schedule})

    def raise_on_nan(opt, ps):
        opt.nonfinite = "raise"
        opt.grads["b"][3] = np.nan

    ps = params()
    opt = adamkit.Adam(ps, lr=0.01)
    for _ in range(3):
        opt.grads["b"][...] = 1.0
        opt.step()
    before = {k: v.copy() for k, v in ps.items()}
    raise_on_nan(opt, ps)
    with pytest.raises(FloatingPointError, match="'b'"):
        opt.step()
    for k in SHAPES:
        np.testing.assert_array_equal(ps[k], before[k])


def test_rule_and_slots_changed_mid_run():
    def amsgrad(opt, ps):
        opt.param_groups[0]["amsgrad"] = True  # another rule, a third slot

    def momentum(opt, ps):
        opt.param_groups[0]["momentum"] = 0.9  # SGD: a slot appears

    assert_engines_agree({5: amsgrad})
    assert_engines_agree({5: momentum}, make=lambda p, e: adamkit.SGD(p, lr=0.01, engine=e))


def test_a_step_that_skipped_tensors_then_plain_steps():
    """A partial step (the DeZero door skips grad-None parameters) leaves step counts unequal: the launches
    must not be used while they are (each tensor's bias correction depends on its own count)."""

    def partial(opt, ps):
        opt._step(None, skip=frozenset({"b"}))

    assert_engines_agree({4: partial, 5: partial})


def test_float32_scalars_are_cast_and_bad_ones_refused_after_launches_exist():
    ps = params(np.float32)
    opt = adamkit.Adam(ps, lr=0.01)
    for _ in range(3):
        opt.grads["w"][...] = 1.0
        opt.step()
    flat = next(flat for _, flat in opt.flat_buffers())
    assert flat.launch is not None and type(flat.last_cast[2][0]) is np.float32  # float32 math stays float32
    before = {k: v.copy() for k, v in ps.items()}
    opt.param_groups[0]["lr"] = 1e39  # not finite in float32
    with pytest.raises(ValueError, match="not finite in float32"):
        opt.step()
    for k in SHAPES:
        np.testing.assert_array_equal(ps[k], before[k])


@elementwise
def shorter_adam_rule(p, g, m, v, step_size, beta1_c, beta2, beta2_c, bc2_sqrt, eps, l2, decay, sign, folded):
    """Adam with its step scaled by 1 − β1: another rule with Adam's slots and scalar types."""
    return adam_rule(p, g, m, v, step_size * beta1_c, beta1_c, beta2, beta2_c, bc2_sqrt, eps, l2, decay, sign,
                     folded)  # fmt: skip


class Switching(adamkit.Adam):
    """Plans ``shorter_adam_rule`` once ``_shorter`` is set: only the rule changes, nothing else."""

    _shorter = False

    def _plan(self, group, run, t):
        rule, slots, scalars = super()._plan(group, run, t)
        return (shorter_adam_rule if self._shorter else rule), slots, scalars


def test_only_the_rule_changed_mid_run():
    def switch(opt, ps):
        opt._shorter = True

    opt = assert_engines_agree({5: switch}, make=lambda p, e: Switching(p, lr=0.01, engine=e))
    assert all(flat.launch.rule is shorter_adam_rule for _, flat in opt.flat_buffers())


STATIONARY = {  # optimizers whose plain steps reuse their cast scalars (``_STATIONARY``)
    "SGD": lambda p, e: adamkit.SGD(p, lr=0.01, engine=e),
    "SGD-velocity": lambda p, e: adamkit.SGD(p, lr=0.01, momentum=0.9, convention="keras", engine=e),
    "RMSprop-centered-momentum": lambda p, e: adamkit.RMSprop(p, lr=0.01, momentum=0.5, centered=True, engine=e),
    "Adadelta": lambda p, e: adamkit.Adadelta(p, engine=e),
    "Lion": lambda p, e: adamkit.Lion(p, lr=0.01, engine=e),
}


@pytest.mark.parametrize("make", STATIONARY.values(), ids=list(STATIONARY))
def test_stationary_launches_follow_every_hyperparameter_edit(make):
    """Edits by assignment, an edit undone, a schedule: each must reach the kernel's scalars."""

    def lr(opt, ps):
        opt.param_groups[0]["lr"] *= 0.3

    def decay(opt, ps):
        opt.param_groups[0]["weight_decay"] = 0.2

    def undo(opt, ps):
        opt.param_groups[0]["weight_decay"] = 0.0

    def schedule(opt, ps):
        opt.schedule = StepLR(2, gamma=0.5)

    opt = assert_engines_agree({3: lr, 5: decay, 7: undo, 9: schedule}, steps=14, make=make)
    assert opt._launches() is not None
    fused, _ = run("fused", {3: lr}, make=make)
    unchanged, _ = run("fused", {}, make=make)
    assert not np.allclose(fused["w"], unchanged["w"], rtol=1e-6)  # the edit made a visible difference


def test_gradients_by_address_step_as_arrays_do():
    """``GradAddresses`` (a front end's gradients read where they are, as adamkit.torch passes them): the same
    trajectory as ``step(grads)`` with the arrays, through the full path (first steps, a tensor skipped) and the
    fast one (the launch's kernel swapped for the one reading by address)."""
    from adamkit.flat import GradAddresses

    ours, ref = adamkit.Adam(params(), lr=0.01), adamkit.Adam(params(), lr=0.01)
    assert ours._reads_by_address()
    for i, g in enumerate(grads(8)):
        skip = frozenset({"b"}) if i == 4 else frozenset()
        by_address = GradAddresses(
            {id(flat): np.array([g[seg.name].ctypes.data for seg in flat.segments]) for flat in ours._buckets()}
        )
        ours._step(by_address, skip=skip)
        ref._step(g, skip=skip)
    for name in SHAPES:
        np.testing.assert_array_equal(ours.params[name], ref.params[name])
    assert not ours._flats[0][0].grad.any()  # never read, never written
    ours.add_hook(WeightDecay(0.1))
    assert not ours._reads_by_address()  # a hook transforms the gradients as arrays
