"""adamkit.dezero against the real dezero package (0.0.13): DeZero's step-46 program, run unchanged.

Lockstep: a DeZero model trained by DeZero's optimizer and a twin trained by adamkit.dezero's, both fed the
same gradients each step (computed on DeZero's model), parameters compared over 1000 steps. Independent: the
book's program as it is written, once with each optimizer, final losses compared.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

if not hasattr(np, "int"):
    np.int = int  # dezero 0.0.13 uses np.int, removed in NumPy 2

import dezero  # noqa: E402
import dezero.functions as F  # noqa: E402
from dezero import optimizers as D  # noqa: E402
from dezero.models import MLP  # noqa: E402

import adamkit  # noqa: E402
from adamkit import dezero as A  # noqa: E402

# name, keyword arguments (DeZero's names), the hyperparameter attribute a DeZero user changes mid-run
OPTIMIZERS = [
    ("SGD", dict(lr=0.2), "lr"),
    ("MomentumSGD", dict(lr=0.05, momentum=0.9), "lr"),
    ("AdaGrad", dict(lr=0.05), "lr"),
    ("AdaDelta", dict(rho=0.9), "rho"),
    ("Adam", dict(alpha=0.01), "alpha"),
]
HOOKS = {  # built fresh for each run; the rates are large enough to change every parameter visibly
    "none": lambda: [],
    "weight-decay": lambda: [D.WeightDecay(1e-2)],
    "clip": lambda: [D.ClipGrad(0.005)],
    "both": lambda: [D.WeightDecay(1e-2), D.ClipGrad(0.005)],
    # for the independent runs: clipping that strong puts Adam in a phase where training amplifies float32
    # rounding (DeZero applies float64 grads to float32 biases, adamkit rounds them first) beyond 1e-3 in ~200 steps
    "mild": lambda: [D.WeightDecay(1e-3), D.ClipGrad(0.05)],
}
TOL = {np.float32: 1e-6, np.float64: 1e-12}


def sine_data(dtype=np.float64):
    """Step 46's toy data set: y = sin(2πx) + noise."""
    np.random.seed(0)
    x = np.random.rand(100, 1)
    y = np.sin(2 * np.pi * x) + np.random.rand(100, 1)
    return x.astype(dtype), y.astype(dtype)


def book_model(module, name, kwargs, hooks, x, dtype):
    """Book order: the optimizer is set up before the first forward pass creates the weights."""
    model = MLP((10, 1))
    opt = getattr(module, name)(**kwargs).setup(model)
    for hook in hooks:
        opt.add_hook(hook)
    assert all(layer.W.data is None for layer in model.layers)  # lazy: W waits for its input size
    np.random.seed(1)
    model(x)  # creates W (float64 under NumPy 2: DeZero scales it by a float64 scalar)
    for p in model.params():
        p.data = p.data.astype(dtype)
    return model, opt


def layer_params(model):
    return [p for layer in model.layers for p in (layer.W, layer.b)]


def rel_error(ours, ref):
    return float(np.max(np.abs(ours.astype(np.float64) - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("hooks", ["none", "weight-decay", "clip", "both"])
@pytest.mark.parametrize("name, kwargs, knob", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_lockstep_with_dezero(name, kwargs, knob, hooks, dtype):
    x, y = sine_data(dtype)
    ref_model, ref = book_model(D, name, kwargs, HOOKS[hooks](), x, dtype)
    model, opt = book_model(A, name, kwargs, HOOKS[hooks](), x, dtype)
    clipped, decay_share = 0, 0.0
    for step in range(1000):
        if step == 500:  # DeZero users change hyperparameters by assignment; both must follow
            setattr(ref, knob, getattr(ref, knob) * 0.5)
            setattr(opt, knob, getattr(opt, knob) * 0.5)
        ref_model.cleargrads()
        F.mean_squared_error(y, ref_model(x)).backward()
        grads = [p.grad.data.astype(dtype) for p in layer_params(ref_model)]  # DeZero's grads are float64
        for p, q, g in zip(layer_params(ref_model), layer_params(model), grads):
            p.grad, q.grad = dezero.Variable(g.copy()), dezero.Variable(g.copy())
        norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
        clipped += norm > 0.005
        decay_share = max(decay_share, 1e-2 * max(np.abs(p.data).max() for p in layer_params(model)) / norm)
        ref.update()
        opt.update()
        if step % 100 == 99:
            for p, q in zip(layer_params(ref_model), layer_params(model)):
                assert q.data.dtype == p.data.dtype == dtype
                assert rel_error(q.data, p.data) <= TOL[dtype], (step, p.name)
    if "clip" in hooks or hooks == "both":
        assert clipped > 100  # ClipGrad did act
    if hooks in ("weight-decay", "both"):
        assert decay_share > 1e-2  # the decay term is a visible part of the gradient
    assert all(q.data is opt.params[n] for n, q in zip(["l0.W", "l0.b", "l1.W", "l1.b"], layer_params(model)))


def book_program(module, name, kwargs, hooks, iters):
    """DeZero's step 46 as printed (float64 data, DeZero's own dtypes), shortened to ``iters`` steps."""
    np.random.seed(0)
    x = np.random.rand(100, 1)
    y = np.sin(2 * np.pi * x) + np.random.rand(100, 1)
    model = MLP((10, 1))
    optimizer = getattr(module, name)(**kwargs).setup(model)
    for hook in hooks:
        optimizer.add_hook(hook)
    for _ in range(iters):
        y_pred = model(x)
        loss = F.mean_squared_error(y, y_pred)
        model.cleargrads()
        loss.backward()
        optimizer.update()
    return float(loss.data)


@pytest.mark.parametrize("hooks", ["none", "mild"])
@pytest.mark.parametrize("name, kwargs, knob", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_book_program_runs_unchanged(name, kwargs, knob, hooks):
    theirs = book_program(D, name, kwargs, HOOKS[hooks](), iters=1000)
    ours = book_program(A, name, kwargs, HOOKS[hooks](), iters=1000)
    assert abs(ours - theirs) <= 1e-3 * abs(theirs)


def test_names_signatures_and_defaults_are_dezeros():
    for name in ("SGD", "MomentumSGD", "AdaGrad", "AdaDelta", "Adam"):
        theirs = inspect.signature(getattr(D, name)).parameters
        ours = inspect.signature(getattr(A, name)).parameters
        positional = [(p.name, p.default) for p in ours.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert positional == [(p.name, p.default) for p in theirs.values()], name
        opt = getattr(A, name)()
        for p in theirs.values():
            assert getattr(opt, p.name) == p.default, (name, p.name)
        assert opt.defaults["convention"] == "dezero"


def test_setup_before_the_first_forward_binds_at_the_first_update():
    x, y = sine_data()
    model = MLP((10, 1))
    opt = A.SGD(0.1).setup(model)
    assert opt.target is model and list(opt.params) == []  # nothing has data yet
    loss = F.mean_squared_error(y, model(x))
    loss.backward()
    before = {n: p.data.copy() for n, p in [("l0.W", model.l0.W), ("l1.b", model.l1.b)]}
    opt.update()
    assert sorted(opt.params) == ["l0.W", "l0.b", "l1.W", "l1.b"]
    for name, p in [("l0.W", model.l0.W), ("l0.b", model.l0.b), ("l1.W", model.l1.W), ("l1.b", model.l1.b)]:
        assert p.data is opt.params[name]
    assert np.allclose(model.l0.W.data, before["l0.W"] - 0.1 * model.l0.W.grad.data)
    assert np.allclose(model.l1.b.data, before["l1.b"] - 0.1 * model.l1.b.grad.data)


def test_eager_setup_still_binds_at_once():
    x, _ = sine_data()
    model = MLP((10, 1))
    model(x)
    opt = A.Adam().setup(model)
    assert sorted(opt.params) == ["l0.W", "l0.b", "l1.W", "l1.b"] and model.l0.W.data is opt.params["l0.W"]


def test_callable_hooks_are_called_as_dezero_calls_them():
    calls = {D: [], A: []}

    def recorder(module):
        def hook(params):
            calls[module].append([(p.name, p.data.shape, p.grad.data.shape) for p in params])
            for p in params:
                p.grad = dezero.Variable(p.grad.data * 0.5)  # replaced, not changed in place: must reach the step

        return hook

    x, y = sine_data()
    models = []
    for module in (D, A):
        model = MLP((10, 1))
        opt = module.SGD(0.1).setup(model)
        opt.add_hook(recorder(module))
        np.random.seed(1)
        model(x)
        for p in model.params():
            p.data = p.data.astype(np.float64)  # DeZero's grads are float64: one dtype, so both agree to the bit
        for i in range(4):
            model.cleargrads()
            F.mean_squared_error(y, model(x)).backward()
            if i == 2:
                model.l1.b.grad = None  # left out of the hook's params, and not stepped
            opt.update()
        models.append(model)
    assert calls[A] == calls[D] and len(calls[A][2]) == 3
    for p, q in zip(layer_params(models[0]), layer_params(models[1])):
        assert rel_error(q.data, p.data) <= 1e-12


def test_hook_setting_grad_to_none_skips_the_parameter():
    x, y = sine_data()
    model = MLP((10, 1))
    opt = A.Adam(0.1).setup(model)
    opt.add_hook(lambda params: setattr(model.l0.W, "grad", None))
    model(x)
    F.mean_squared_error(y, model(x)).backward()
    before = model.l0.W.data.copy()
    opt.update()
    assert np.array_equal(model.l0.W.data, before)
    assert opt.state_dict()["state"].get("l0.W", {}).get("step", 0) == 0


def test_a_raising_hook_leaves_parameters_and_state_unchanged():
    x, y = sine_data()
    model = MLP((10, 1))
    opt = A.Adam(0.1).setup(model)
    fail = [False]

    def hook(params):
        for p in params:
            p.grad.data *= 0.5
        if fail[0]:
            raise RuntimeError("hook failed")

    opt.add_hook(hook)
    opt.add_hook(adamkit.hooks.ClipGradNorm(1.0))
    for _ in range(3):
        model.cleargrads()
        F.mean_squared_error(y, model(x)).backward()
        opt.update()
    params = {n: p.copy() for n, p in opt.params.items()}
    state = opt.state_dict()["state"]
    fail[0] = True
    with pytest.raises(RuntimeError, match="hook failed"):
        opt.update()
    assert all(np.array_equal(opt.params[n], params[n]) for n in params)
    after = opt.state_dict()["state"]
    assert all(np.array_equal(after[n][k], state[n][k]) for n in state for k in state[n])


def test_adamkit_hooks_work_and_hook_order_is_kept():
    x, y = sine_data()
    ref, ours = (MLP((10, 1)), MLP((10, 1)))
    ref_opt = D.SGD(0.1).setup(ref)
    ref_opt.add_hook(D.ClipGrad(0.005))
    opt = A.SGD(0.1).setup(ours)
    opt.add_hook(adamkit.hooks.ClipGradNorm(0.005))  # the same rule as DeZero's ClipGrad, on the flat buffers
    with pytest.raises(ValueError, match="before"):
        opt.add_hook(D.WeightDecay(1e-4))  # could not run after ClipGradNorm: refused, not reordered
    with pytest.raises(TypeError, match="callable"):
        opt.add_hook(0.5)
    for model in (ref, ours):
        np.random.seed(1)
        model(x)
        for p in model.params():
            p.data = p.data.astype(np.float64)
    for _ in range(20):
        for model, o in ((ref, ref_opt), (ours, opt)):
            model.cleargrads()
            F.mean_squared_error(y, model(x)).backward()
            o.update()
    for p, q in zip(layer_params(ref), layer_params(ours)):
        assert rel_error(q.data, p.data) <= 1e-6


def test_hyperparameters_are_attributes_read_and_written():
    opt = A.SGD(0.1)
    assert opt.lr == 0.1
    opt.lr = 0.0
    assert opt.lr == 0.0 and opt.defaults["lr"] == 0.0
    x, y = sine_data()
    model = MLP((10, 1))
    opt.setup(model)
    F.mean_squared_error(y, model(x)).backward()
    before = [p.data.copy() for p in layer_params(model)]
    opt.update()  # lr 0: nothing moves
    assert all(np.array_equal(b, p.data) for b, p in zip(before, layer_params(model)))
    opt.lr = 0.5
    assert all(g["lr"] == 0.5 for g in opt.param_groups)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0
    assert opt.lr == 0.5 and all(g["lr"] == 0.5 for g in opt.param_groups)

    adam = A.Adam(alpha=0.01, beta1=0.8)
    adam.beta2 = 0.99
    assert adam.defaults["betas"] == (0.8, 0.99) and adam.alpha == 0.01
    with pytest.raises(ValueError, match="betas"):
        adam.beta1 = 1.5
    with pytest.raises(AttributeError, match="alpha"):
        adam.lr = 0.1  # DeZero's Adam.lr is the bias-corrected step size: read only there too
    with pytest.raises(AttributeError, match="learning rate"):
        A.AdaDelta().lr = 0.1
    momentum = A.MomentumSGD()
    momentum.momentum = 0.5
    assert momentum.defaults["momentum"] == 0.5


def test_adam_lr_and_t_are_dezeros():
    x, y = sine_data()
    pair = []
    for module in (D, A):
        model = MLP((10, 1))
        opt = module.Adam(alpha=0.01).setup(model)
        for _ in range(7):
            model.cleargrads()
            F.mean_squared_error(y, model(x)).backward()
            opt.update()
        pair.append(opt)
    assert pair[1].t == pair[0].t == 7 and pair[1].lr == pair[0].lr


def test_core_optimizers_set_up_a_lazy_model_too():
    x, y = sine_data()
    model = MLP((10, 1))
    opt = adamkit.Adam(lr=0.01).setup(model)
    model.cleargrads()
    F.mean_squared_error(y, model(x)).backward()
    opt.update()
    assert sorted(opt.params) == ["l0.W", "l0.b", "l1.W", "l1.b"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, kwargs, knob", [OPTIMIZERS[1], OPTIMIZERS[4]], ids=["MomentumSGD", "Adam"])
def test_large_model_reads_gradients_where_they_are(name, kwargs, knob, dtype):
    """From 2**16 elements on, update() hands the grads to the step without copying them; still DeZero's result."""
    x, y = sine_data(dtype)
    models = []
    for module in (D, A):
        model = MLP((260, 256, 1))  # 67,333 parameters
        opt = module.__dict__[name](**kwargs).setup(model)
        np.random.seed(1)
        model(x)
        for p in model.params():
            p.data = p.data.astype(dtype)
        models.append((model, opt))
    (ref_model, ref), (model, opt) = models
    for _ in range(8):
        ref_model.cleargrads()
        F.mean_squared_error(y, ref_model(x)).backward()
        for p, q in zip(layer_params(ref_model), layer_params(model)):
            p.grad.data = p.grad.data.astype(dtype)
            q.grad = dezero.Variable(p.grad.data.copy())
        ref.update()
        opt.update()
    for p, q in zip(layer_params(ref_model), layer_params(model)):
        np.testing.assert_array_equal(q.data, p.data)
    assert not opt.grads["l1.W"].any()  # read where it was: never copied into opt.grads
