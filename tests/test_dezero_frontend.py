"""DeZero-style setup(model)/update(): rebinding, grad None skipping (checked against torch), errors."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import rel_error
from test_dezero_conventions import DeZeroAdam

import adamkit


class Parameter:
    def __init__(self, data):
        self.data, self.grad = data, None


class Variable:  # DeZero's grads are Variables: the array is in .data
    def __init__(self, data):
        self.data = data


class Layer:
    def __init__(self, rng, shape):
        self.W = Parameter(rng.standard_normal(shape))
        self.b = Parameter(rng.standard_normal(shape[-1]))


class Model:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.layers = [Layer(rng, (3, 4)), Layer(rng, (4, 2))]
        self.scale = Parameter(np.array(1.5))

    def params(self):
        for layer in self.layers:
            yield layer.W
            yield layer.b
        yield self.scale


def test_setup_binds_data_to_flat_views_named_by_attribute_path():
    model = Model()
    opt = adamkit.Adam(lr=0.1).setup(model)
    assert list(opt.params) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b", "scale"]
    for name, p in zip(opt.params, model.params()):
        assert p.data is opt.params[name]


def test_update_equals_dezero_adam_when_all_grads_present():
    model = Model()
    ref_params = {i: p.data.copy() for i, p in enumerate(model.params())}
    opt = adamkit.Adam(lr=0.01, convention="dezero").setup(model)
    ref = DeZeroAdam(alpha=0.01)
    rng = np.random.default_rng(5)
    for _ in range(100):
        grads = {i: rng.standard_normal(p.data.shape) for i, p in enumerate(model.params())}
        for i, p in enumerate(model.params()):
            p.grad = Variable(grads[i])
        opt.update()
        ref.update(ref_params, grads)
    for i, p in enumerate(model.params()):
        assert rel_error(p.data, ref_params[i]) <= 1e-12


def test_grad_none_is_skipped_like_torch():
    """torch.optim also skips parameters whose grad is None and counts steps per parameter."""
    model = Model()
    tensors = [torch.tensor(p.data.copy()) for p in model.params()]
    ref = torch.optim.Adam(tensors, lr=0.01)
    opt = adamkit.Adam(lr=0.01).setup(model)
    rng = np.random.default_rng(3)
    for step in range(60):
        for i, (p, t) in enumerate(zip(model.params(), tensors)):
            skipped = (i + step) % 3 == 0 or (i == 4 and step < 30)
            g = None if skipped else rng.standard_normal(p.data.shape)
            p.grad = g
            t.grad = None if g is None else torch.tensor(g)
        opt.update()
        ref.step()
    for p, t in zip(model.params(), tensors):
        assert rel_error(p.data, t.numpy()) <= 1e-10
    state = opt.state_dict()["state"]
    assert state["scale"]["step"] == int(ref.state[tensors[4]]["step"])


def test_skipped_parameter_and_its_state_stay_bitwise_unchanged():
    model = Model()
    opt = adamkit.RMSprop(lr=0.01, momentum=0.9).setup(model)
    for p in model.params():
        p.grad = np.ones_like(p.data)
    opt.update()
    before = model.layers[0].W.data.copy()
    state = copy.deepcopy(opt.state_dict()["state"]["layers.0.W"])
    model.layers[0].W.grad = None
    opt.update()
    assert np.array_equal(model.layers[0].W.data, before)
    after = opt.state_dict()["state"]["layers.0.W"]
    assert all(np.array_equal(after[k], state[k]) for k in state)


def test_replaced_data_is_copied_in_and_rebound():
    model = Model()
    opt = adamkit.SGD(lr=0.5).setup(model)
    model.scale.data = np.array(10.0)  # the user replaced the array: binding lost
    for p in model.params():
        p.grad = np.zeros_like(p.data)
    model.scale.grad = np.array(2.0)
    opt.update()
    assert model.scale.data is opt.params["scale"] and float(model.scale.data) == 9.0


def test_errors():
    with pytest.raises(TypeError, match="params"):
        adamkit.Adam(lr=0.1).setup(object())
    with pytest.raises(RuntimeError, match="setup"):
        adamkit.Adam(lr=0.1).update()
    model = Model()
    opt = adamkit.Adam(lr=0.1).setup(model)
    for p in model.params():
        p.grad = np.ones_like(p.data)
    opt.update()
    before = [p.data.copy() for p in model.params()]
    model.layers[1].W.grad = np.ones((2, 4))
    with pytest.raises(ValueError, match="layers.1.W"):
        opt.update()
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.params()))


def test_sine_mlp_example_loss_falls():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "sine_mlp.py"), "3000"], capture_output=True, text=True, check=True
    ).stdout
    losses = [float(line.split()[-1]) for line in out.splitlines() if "loss" in line]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]
