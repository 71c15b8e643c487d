"""The textbook door against *Deep Learning from Scratch*'s ``common/optimizer.py``.

The book ships no package: its six classes are written out below exactly as the book prints them (a second
opinion by transcription; each also maps onto a torch/Keras-checked adamkit rule, see tests/registry.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import adamkit
import adamkit.scratch as scratch

ROOT = Path(__file__).resolve().parents[1]


# ---- the book's code (common/optimizer.py), verbatim but for formatting ---------------------------------------
class BookSGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class BookMomentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class BookNesterov:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class BookAdaGrad:
    def __init__(self, lr=0.01):
        self.lr, self.h = lr, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class BookRMSprop:
    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.decay_rate, self.h = lr, decay_rate, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class BookAdam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2, self.iter, self.m, self.v = lr, beta1, beta2, 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


PAIRS = {
    "SGD": (scratch.SGD, BookSGD, dict(lr=0.05)),
    "Momentum": (scratch.Momentum, BookMomentum, dict(lr=0.02, momentum=0.8)),
    "Nesterov": (scratch.Nesterov, BookNesterov, dict(lr=0.02, momentum=0.8)),
    "AdaGrad": (scratch.AdaGrad, BookAdaGrad, dict(lr=0.05)),
    "RMSprop": (scratch.RMSprop, BookRMSprop, dict(lr=0.01, decay_rate=0.9)),
    "Adam": (scratch.Adam, BookAdam, dict(lr=0.01, beta1=0.8, beta2=0.99)),
}


class TwoLayerNet:
    """The book's habit: a network object that keeps its own dict of parameters."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": rng.standard_normal((4, 5)), "b1": np.zeros(5), "W2": rng.standard_normal((5, 3))}
        self.params["b2"] = np.zeros(3)


def gradients(params, rng):
    # tiny gradients now and then make the epsilon of AdaGrad/RMSprop/Adam (and its placement) visible
    scale = 10.0 ** rng.uniform(-9, 0)
    return {k: scale * rng.standard_normal(v.shape) for k, v in params.items()}


@pytest.mark.parametrize("name", list(PAIRS))
def test_equals_the_book_over_500_steps(name):
    ours_cls, book_cls, kw = PAIRS[name]
    net, ref = TwoLayerNet(), TwoLayerNet()
    originals = dict(net.params)
    opt, book = ours_cls(**kw), book_cls(**kw)
    rng = np.random.default_rng(1)
    for _ in range(500):
        grads = gradients(ref.params, rng)
        book.update(ref.params, grads)
        opt.update(net.params, grads)
    for k in ref.params:
        assert net.params[k] is originals[k], "the network's own arrays must be the ones trained"
        np.testing.assert_allclose(net.params[k], ref.params[k], rtol=1e-12, atol=1e-12 * np.abs(ref.params[k]).max())


def test_conventions_are_told_apart_by_the_stream():
    """The book's Nesterov, Adam and AdaGrad differ from their torch forms on this stream (else the test above
    could not see a wrong convention)."""
    for ours, other in [
        (scratch.Nesterov(lr=0.02, momentum=0.8), adamkit.SGD(lr=0.02, momentum=0.8, nesterov=True)),
        (scratch.Adam(lr=0.01), adamkit.Adam(lr=0.01, eps=1e-7)),
        (scratch.RMSprop(lr=0.01), adamkit.RMSprop(lr=0.01, alpha=0.99, eps=1e-7, convention="keras")),
    ]:
        a, b = TwoLayerNet(), TwoLayerNet()
        other.add_param_group({"params": b.params})
        rng = np.random.default_rng(1)
        for _ in range(100):
            grads = gradients(a.params, rng)
            ours.update(a.params, grads)
            other.step(grads)
        assert max(np.max(np.abs(a.params[k] - b.params[k])) for k in a.params) > 1e-9


def test_chapter6_paths_equal_the_book():
    """examples/textbook_ch6.py's loop (the book's, params as Python floats) with ours and with the book's."""
    spec = importlib.util.spec_from_file_location("textbook_ch6", ROOT / "examples" / "textbook_ch6.py")
    ch6 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ch6)
    ours = ch6.paths(ch6.lineup(scratch.SGD, scratch.Momentum, scratch.AdaGrad, scratch.Adam))
    book = ch6.paths(ch6.lineup(BookSGD, BookMomentum, BookAdaGrad, BookAdam))
    for key in book:
        np.testing.assert_allclose(ours[key], book[key], rtol=1e-12, atol=1e-14)
        assert np.hypot(*ours[key][-1]) < np.hypot(-7.0, 2.0)  # every path heads for the minimum at (0, 0)


def test_numbers_are_written_back_and_arrays_stay_the_callers():
    opt = scratch.SGD(lr=0.5)
    w = np.ones(3)
    params = {"x": 2.0, "w": w}
    opt.update(params, {"x": 1.0, "w": np.ones(3)})
    assert params["x"] == 1.5 and type(params["x"]) is float
    assert params["w"] is w and np.array_equal(w, [0.5, 0.5, 0.5])
    params["x"] = 10.0  # the caller resets the number: the next step starts from it
    opt.update(params, {"x": 1.0, "w": np.zeros(3)})
    assert params["x"] == 9.5


def test_replaced_array_is_adopted_with_its_state():
    opt, book = scratch.Momentum(lr=0.1), BookMomentum(lr=0.1)
    ours, ref = {"w": np.ones(2)}, {"w": np.ones(2)}
    for step in range(5):
        if step == 2:
            ours["w"] = ours["w"] + 1  # a new array in the dict, as NumPy code often does
            ref["w"] = ref["w"] + 1
        g = {"w": np.array([1.0, -2.0])}
        opt.update(ours, g)
        book.update(ref, g)
    np.testing.assert_allclose(ours["w"], ref["w"], rtol=1e-15)


def test_lr_reads_and_writes_like_the_book():
    opt = scratch.Adam(lr=0.1)
    assert opt.lr == 0.1 and opt.beta1 == 0.9 and opt.beta2 == 0.999
    params = {"w": np.ones(2)}
    opt.update(params, {"w": np.ones(2)})
    opt.lr = 0.0
    before = params["w"].copy()
    opt.update(params, {"w": np.ones(2)})
    assert np.array_equal(params["w"], before) and opt.optimizer.param_groups[0]["lr"] == 0.0
    opt.beta1 = 0.5
    assert opt.optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    assert scratch.RMSprop(decay_rate=0.9).decay_rate == 0.9
    with pytest.raises(AttributeError, match="learning_rate"):
        opt.learning_rate = 1.0
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0


def test_defaults_are_the_books():
    assert scratch.SGD().lr == 0.01 and scratch.Momentum().momentum == 0.9 and scratch.Nesterov().lr == 0.01
    assert scratch.AdaGrad().lr == 0.01 and scratch.RMSprop().decay_rate == 0.99 and scratch.Adam().lr == 0.001


def test_other_keys_or_shapes_later_are_refused_and_change_nothing():
    opt = scratch.Adam()
    params = {"w": np.ones(2), "b": np.zeros(1)}
    opt.update(params, {"w": np.ones(2), "b": np.ones(1)})
    snapshot = {k: v.copy() for k, v in params.items()}
    state = opt.optimizer.state_dict()
    with pytest.raises(KeyError, match="first used"):
        opt.update({"w": params["w"], "c": np.zeros(1)}, {"w": np.ones(2), "c": np.ones(1)})
    with pytest.raises(KeyError, match="grads"):
        opt.update(params, {"w": np.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        opt.update(params, {"w": np.ones(3), "b": np.ones(1)})
    params_bad = dict(params, w=np.ones(5))
    with pytest.raises(ValueError, match="shape"):
        opt.update(params_bad, {"w": np.ones(5), "b": np.ones(1)})
    for k in params:
        assert np.array_equal(params[k], snapshot[k])
    after = opt.optimizer.state_dict()
    assert after["state"]["0"]["step"] == state["state"]["0"]["step"] == 1
