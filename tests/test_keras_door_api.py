"""adamkit.keras behaves as Keras 3 does: signatures, validation, apply/apply_gradients/minimize in place, None
gradients, iterations, learning_rate, exclude_from_weight_decay, EMA and finalize_variable_values."""

from __future__ import annotations

import inspect
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
from keras_door_util import gradients, keras, keras_kwargs, variables, worst

import adamkit.keras as ak

NAMES = ["SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam"]


def _k(values, **kwargs):
    return keras.Variable(np.array(values, np.float32), **kwargs)


def _np(variable):
    return keras.ops.convert_to_numpy(variable.value)


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_keras(name):
    """Same parameter names, order and defaults as keras.optimizers.<name> (loss_scale_factor and name included)."""
    ours = inspect.signature(getattr(ak, name)).parameters.values()
    ref = inspect.signature(getattr(keras.optimizers, name)).parameters.values()
    assert [(p.name, p.default) for p in ours] == [(p.name, p.default) for p in ref]


@pytest.mark.parametrize("name", NAMES)
def test_config_is_keras(name):
    kwargs = {"learning_rate": ak.schedules.InverseTimeDecay(0.1, 10, 0.5), "weight_decay": 0.01, "clipnorm": 1.0}
    ours = getattr(ak, name)(**kwargs, name="opt")
    theirs = getattr(keras.optimizers, name)(**keras_kwargs(kwargs), name="opt")
    assert ours.get_config().keys() == theirs.get_config().keys()
    config = ours.get_config()
    assert {k: v for k, v in config.items() if k != "learning_rate"} == {
        k: v for k, v in theirs.get_config().items() if k != "learning_rate"
    }
    assert type(ours).from_config(config).get_config() == config


def test_both_paths_of_keras_names():
    assert ak.optimizers.Adam is ak.Adam and ak.optimizers.schedules is ak.schedules


# --------------------------------------------------------------------------------------------- validation
# (name, kwargs): refused by Keras → refused here; accepted by Keras → accepted here.
KERAS_TABLE = [
    ("SGD", dict(momentum=-1.0)), ("SGD", dict(momentum=2.0)), ("SGD", dict(momentum=0)), ("SGD", dict(momentum="0.5")),
    ("SGD", dict(momentum=1.0)), ("SGD", dict(momentum=0.0, nesterov=True)), ("SGD", dict(momentum=0.5, nesterov=1)),
    ("Adam", dict(clipnorm=1.0, clipvalue=1.0)), ("Adam", dict(clipnorm=1.0, global_clipnorm=1.0)),
    ("Adam", dict(clipvalue=1.0, global_clipnorm=1.0)), ("Adam", dict(clipnorm=0.0)), ("Adam", dict(clipnorm=-1.0)),
    ("Adam", dict(clipvalue=0.5)), ("Adam", dict(global_clipnorm=2.0)),
    ("Adam", dict(gradient_accumulation_steps=1)), ("Adam", dict(gradient_accumulation_steps=0)),
    ("Adam", dict(gradient_accumulation_steps=2)), ("Adam", dict(gradient_accumulation_steps=None)),
    ("Adam", dict(use_ema=True, ema_momentum=1.5)), ("Adam", dict(use_ema=True, ema_momentum=-0.1)),
    ("Adam", dict(use_ema=False, ema_momentum=1.5)), ("Adam", dict(use_ema=True, ema_momentum=1.0)),
    ("Adam", dict(use_ema=True, ema_overwrite_frequency=0)), ("Adam", dict(use_ema=True, ema_overwrite_frequency=-1)),
    ("Adam", dict(use_ema=True, ema_overwrite_frequency=2.5)), ("Adam", dict(use_ema=True, ema_overwrite_frequency=3)),
    ("Adam", dict(learning_rate=1)), ("Adam", dict(learning_rate="0.1")), ("Adam", dict(learning_rate=None)),
    ("Adam", dict(learning_rate=np.float32(0.1))), ("Adam", dict(learning_rate=np.float64(0.1))),
    ("Adam", dict(learning_rate=lambda: 0.1)), ("Adam", dict(foo=1)), ("Adam", dict(amsgrad=True)),
    ("Adam", dict(beta_1=0, beta_2=0.5, epsilon=0)), ("AdamW", dict(weight_decay=None)),
    ("AdamW", dict(weight_decay=0)),
    ("RMSprop", dict(rho=0.0, momentum=0.9, centered=True)), ("Adagrad", dict(initial_accumulator_value=0.0)),
    ("Adadelta", dict(rho=1.0)), ("Nadam", dict(weight_decay=0.1, loss_scale_factor=2.0)),
]  # fmt: skip


def _outcome(make):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make()
    except Exception as err:  # noqa: BLE001 (the outcome is the point)
        return type(err)
    return None


@pytest.mark.parametrize("name, kwargs", KERAS_TABLE, ids=str)
def test_accepts_and_refuses_as_keras(name, kwargs):
    theirs = _outcome(lambda: getattr(keras.optimizers, name)(**kwargs))
    ours = _outcome(lambda: getattr(ak, name)(**kwargs))
    assert ours == theirs


# Values Keras accepts silently although they make the update meaningless (NaN, inf, ascent): refused here, each
# with an error naming the argument.
REFUSED_HERE = [
    ("Adam", dict(learning_rate=-0.1), "learning_rate"), ("Adam", dict(learning_rate=float("nan")), "learning_rate"),
    ("Adam", dict(weight_decay=-0.1), "weight_decay"), ("Adam", dict(epsilon=-1e-7), "epsilon"),
    ("Adam", dict(beta_1=1.0), "beta_1"), ("Nadam", dict(beta_2=1.5), "beta_2"),
    ("Adamax", dict(beta_1=-0.1), "beta_1"),
    ("RMSprop", dict(rho=1.0), "rho"), ("RMSprop", dict(momentum=-0.5), "momentum"), ("Adadelta", dict(rho=1.5), "rho"),
    ("Adagrad", dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    ("Adam", dict(gradient_accumulation_steps=2.5), "gradient_accumulation_steps"),
    ("Adam", dict(clipnorm="1"), "clipnorm"),
]  # fmt: skip


@pytest.mark.parametrize("name, kwargs, argument", REFUSED_HERE, ids=str)
def test_refuses_meaningless_values_keras_accepts(name, kwargs, argument):
    assert _outcome(lambda: getattr(keras.optimizers, name)(**kwargs)) is None
    with pytest.raises((ValueError, TypeError), match=argument):
        getattr(ak, name)(**kwargs)


def test_decay_argument_warns_and_is_ignored_as_in_keras():
    with pytest.warns(UserWarning, match="decay"):
        ak.SGD(decay=0.1)


# ------------------------------------------------------------------------------------------- apply, in place
class Model:
    """A NumPy model keeping its own references: the optimizer must update these very arrays."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.kernel = rng.standard_normal((3, 2)).astype(np.float32)
        self.bias = np.zeros(2, np.float32)

    @property
    def trainable_variables(self):
        return [self.kernel, self.bias]


def test_apply_gradients_updates_the_callers_arrays_in_place():
    model = Model()
    kernel, bias = model.kernel, model.bias
    ref = [_k(kernel.copy()), _k(bias.copy())]
    opt, keras_opt = ak.Adam(0.1), keras.optimizers.Adam(0.1)
    rng = np.random.default_rng(1)
    for _ in range(20):
        grads = [rng.standard_normal(v.shape).astype(np.float32) for v in model.trainable_variables]
        out = opt.apply_gradients(zip(grads, model.trainable_variables))
        keras_opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], ref))
    assert model.kernel is kernel and model.bias is bias
    assert out == 20 and opt.iterations == 20
    assert worst([kernel, bias], [_np(v) for v in ref]) <= 1e-6


def test_views_of_a_callers_buffer_are_updated_in_place():
    """Two non-overlapping rows of one array: both train, in the caller's buffer."""
    buffer = np.ones((2, 4), np.float32)
    opt = ak.SGD(0.5)
    opt.apply([np.ones(4, np.float32), 2 * np.ones(4, np.float32)], [buffer[0], buffer[1]])
    assert np.array_equal(buffer, [[0.5] * 4, [0.0] * 4])


def test_lazy_build_and_build():
    w = np.ones(3, np.float32)
    opt = ak.SGD(0.1, momentum=0.9)
    assert not opt.built and opt.optimizer is None and opt.iterations == 0
    opt.build([w])
    assert opt.built
    opt.apply([np.ones(3, np.float32)])  # no variables: the ones it was built with
    assert np.allclose(w, 0.9)
    assert opt.variables[0] == 1 and opt.variables[1] == np.float32(0.1)


def test_apply_refusals_change_nothing():
    w, b = np.ones(3, np.float32), np.zeros(2, np.float32)
    opt = ak.Adam(0.1)
    with pytest.raises(ValueError, match="must already be built"):
        opt.apply([np.ones(3, np.float32)])
    opt.apply([np.ones(3, np.float32), np.ones(2, np.float32)], [w, b])
    before = (w.copy(), b.copy(), opt.iterations)
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.ones(3, np.float32), np.ones(3, np.float32)], [w, b])
    with pytest.raises(ValueError, match="one-to-one"):
        opt.apply([np.ones(3, np.float32)])
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply([np.ones(3, np.float32)], [np.ones(3, np.float32)])
    with pytest.raises(ValueError, match="No gradients provided"):
        opt.apply([None, None], [w, b])
    assert np.array_equal(w, before[0]) and np.array_equal(b, before[1]) and opt.iterations == before[2]


def test_schedule_going_negative_is_refused_with_nothing_changed():
    w = np.ones(3, np.float32)
    opt = ak.SGD(ak.schedules.PolynomialDecay(0.1, 2, end_learning_rate=-0.1))
    opt.apply([np.ones(3, np.float32)], [w])
    opt.apply([np.ones(3, np.float32)], [w])
    before = w.copy()
    with pytest.raises(ValueError, match="learning_rate"):
        opt.apply([np.ones(3, np.float32)], [w])
    assert np.array_equal(w, before) and opt.iterations == 2


def test_none_gradients_as_in_keras():
    """Keras's own test_empty_gradients: all None refused; some None: warned, those variables untouched."""
    v, v2 = np.array([[3.0, 4.0], [5.0, 6.0]], np.float32), np.array([[3.0, 4.0], [5.0, 6.0]], np.float32)
    with pytest.raises(ValueError, match="No gradients provided for any variable."):
        ak.SGD(learning_rate=1.0).apply_gradients([(None, v)])
    opt = ak.SGD(learning_rate=1.0)
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        opt.apply_gradients([(None, v), (np.ones((2, 2), np.float32), v2)])
    assert np.array_equal(v, [[3.0, 4.0], [5.0, 6.0]]) and np.array_equal(v2, [[2.0, 3.0], [4.0, 5.0]])


def test_variable_without_gradients_costs_nothing_and_catches_up_when_it_returns():
    """Keras has one step count: a variable that missed updates is bias-corrected with it when it comes back
    (checked against Keras in test_keras_door.py); the catch-up happens once, on its return."""
    w, unused = np.ones(3, np.float32), np.ones(2, np.float32)
    opt, k_opt = ak.Adam(0.01), keras.optimizers.Adam(0.01)
    kw, kunused = _k(w.copy()), _k(unused.copy())
    opt.build([w, unused])
    loads = []
    load = opt.optimizer.load_state_dict
    opt.optimizer.load_state_dict = lambda state: (loads.append(1), load(state))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(10):
            g = None if t < 9 else np.full(2, 0.5, np.float32)
            opt.apply([np.full(3, 0.5, np.float32), g], [w, unused])
            k_grads = [keras.ops.full((3,), 0.5), None if g is None else keras.ops.convert_to_tensor(g)]
            k_opt.apply(k_grads, [kw, kunused])
            if t == 8:
                assert loads == [] and np.array_equal(unused, np.ones(2, np.float32))
    assert loads == [1]
    assert worst([w, unused], [_np(kw), _np(kunused)]) <= 1e-6


def test_gradient_accumulation_as_in_keras():
    """Keras's own test_gradient_accumulation: three applies, one update with the mean; iterations // 3."""
    v = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    g = np.ones((2, 2), np.float32)
    opt = ak.SGD(learning_rate=1.0, gradient_accumulation_steps=3)
    seen = []
    for _ in range(4):
        opt.apply_gradients([(g, v)])
        seen.append((v.copy(), opt.iterations))
    assert np.array_equal(seen[1][0], [[1.0, 2.0], [3.0, 4.0]]) and seen[1][1] == 0
    assert np.array_equal(seen[2][0], [[0.0, 1.0], [2.0, 3.0]]) and seen[2][1] == 1
    assert np.array_equal(seen[3][0], [[0.0, 1.0], [2.0, 3.0]]) and seen[3][1] == 1


def test_ema_as_in_keras():
    """Keras's own test_ema: average starts at the variable, then μ = 0.9; overwritten every 3 iterations."""
    v = np.array([[3.0, 4.0], [5.0, 6.0]], np.float32)
    g = np.ones((2, 2), np.float32)
    opt = ak.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3)
    opt.apply_gradients([(g, v)])
    assert np.allclose(v, [[2.0, 3.0], [4.0, 5.0]])
    opt.apply_gradients([(g, v)])
    assert np.allclose(v, [[1.0, 2.0], [3.0, 4.0]])
    opt.apply_gradients([(g, v)])
    assert np.allclose(v, [[1.71, 2.71], [3.71, 4.71]])  # overwritten with the moving average


def test_finalize_variable_values_as_in_keras():
    arrays = variables("unit")
    kvars = [keras.Variable(a.copy()) for a in arrays]
    opt, kopt = (m.Adam(0.01, use_ema=True, ema_momentum=0.9) for m in (ak, keras.optimizers))
    for grads in gradients("unit", 30):
        opt.apply(grads, arrays)
        kopt.apply([keras.ops.convert_to_tensor(g) for g in grads], kvars)
    before = [a.copy() for a in arrays]
    opt.finalize_variable_values(arrays)
    kopt.finalize_variable_values(kvars)
    assert worst(arrays, [_np(v) for v in kvars]) <= 1e-6
    assert worst(arrays, before) > 1e-3  # the averages lag the variables
    with pytest.raises(ValueError, match="length of model variables"):
        opt.finalize_variable_values(arrays[:2])
    ak.Adam(0.01).finalize_variable_values(before)  # without EMA: nothing to do, as in Keras


def test_attributes_changed_mid_run_take_effect_as_in_keras():
    """Keras reads its hyperparameters from the attributes at every step: so does adamkit.keras."""
    arrays = variables("unit")
    kvars = [keras.Variable(a.copy()) for a in arrays]
    opt, kopt = (m.Adam(0.01) for m in (ak, keras.optimizers))
    for t, grads in enumerate(gradients("unit", 60)):
        if t == 20:
            for o in (opt, kopt):
                o.beta_1, o.weight_decay, o.clipnorm = 0.5, 0.1, 1.0
        if t == 40:
            for o in (opt, kopt):
                o.clipnorm, o.global_clipnorm, o.epsilon = None, 2.0, 1e-3
        opt.apply(grads, arrays)
        kopt.apply([keras.ops.convert_to_tensor(g) for g in grads], kvars)
    assert worst(arrays, [_np(v) for v in kvars]) <= 1e-6
    assert [type(h).__name__ for h in opt.optimizer.hooks] == ["ClipByGlobalNorm"]


# ----------------------------------------------------------------------------------------------- learning rate
def test_learning_rate_reads_and_sets_as_in_keras():
    w = np.zeros(2, np.float32)
    opt = ak.SGD(learning_rate=0.1)
    assert opt.learning_rate == np.float32(0.1)
    opt.learning_rate = 0.5
    opt.apply([np.ones(2, np.float32)], [w])
    assert np.array_equal(w, [-0.5, -0.5])
    opt.learning_rate = ak.schedules.ExponentialDecay(1.0, 1, 0.5)  # a schedule replaces the float
    assert opt.learning_rate == np.float32(0.5)  # its value at iteration 1
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    keras_opt = keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.ExponentialDecay(1.0, 1, 0.5))
    with pytest.raises(TypeError, match="not settable"):
        keras_opt.learning_rate = 0.1


def test_callable_learning_rate_is_called_without_arguments():
    """Keras's own test_callable_learning_rate: a plain callable (not a schedule) takes no arguments."""
    v = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    opt = ak.SGD(learning_rate=lambda: 0.1)
    opt.apply_gradients([(np.ones((2, 2), np.float32), v)])
    assert np.allclose(v, [[0.9, 1.9], [2.9, 3.9]]) and opt.iterations == 1


# ------------------------------------------------------------------------------------------- weight decay
def test_exclude_from_weight_decay_as_in_keras():
    """By array and by name (a dict's keys here, Keras's variable names there)."""
    rng = np.random.default_rng(0)
    params = {name: rng.standard_normal(s).astype(np.float32) for name, s in
              [("dense_kernel", (3, 2)), ("dense_bias", (2,)), ("out_kernel", (2,))]}  # fmt: skip
    kvars = {name: keras.Variable(a.copy(), name=name) for name, a in params.items()}
    opt, kopt = ak.AdamW(0.05, weight_decay=0.5), keras.optimizers.AdamW(0.05, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[params["out_kernel"]], var_names=["bias"])
    kopt.exclude_from_weight_decay(var_list=[kvars["out_kernel"]], var_names=["bias"])
    decayed = {n: a.copy() for n, a in params.items()}
    for _ in range(30):
        grads = {n: rng.standard_normal(a.shape).astype(np.float32) for n, a in params.items()}
        opt.apply(grads, params)
        kopt.apply([keras.ops.convert_to_tensor(g) for g in grads.values()], list(kvars.values()))
    assert worst(list(params.values()), [_np(v) for v in kvars.values()]) <= 1e-6
    everything = ak.AdamW(0.05, weight_decay=0.5)
    rng = np.random.default_rng(0)
    for _ in range(30):
        everything.apply({n: rng.standard_normal(a.shape).astype(np.float32) for n, a in decayed.items()}, decayed)
    assert worst(list(decayed.values()), list(params.values())) > 1e-3  # exclusion made a difference
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])


# ------------------------------------------------------------------------------------------------ minimize
X = np.linspace(-1, 1, 20).astype(np.float32)
Y = (3 * X - 1).astype(np.float32)


def _loss(w, b):
    return anp.mean((w * X + b - Y) ** 2)


def test_minimize_takes_autograd_gradients_and_updates_in_place():
    w, b = np.array(0.5, np.float32), np.array(0.0, np.float32)
    w2, b2 = w.copy(), b.copy()
    opt, twin = ak.Adam(0.1), ak.Adam(0.1)
    for _ in range(50):
        residual = w2 * X + b2 - Y
        expected = float(np.mean(residual**2))  # minimize returns the loss before its step
        twin.apply([np.mean(2 * residual * X), np.mean(2 * residual)], [w2, b2])
        value = opt.minimize(_loss, [w, b])
    assert isinstance(value, float) and value == pytest.approx(expected, rel=1e-5)
    assert np.allclose([w, b], [w2, b2], rtol=1e-5)
    assert opt.iterations == 50


def test_minimize_with_a_dict_passes_keywords():
    params = {"w": np.array(0.5, np.float32), "b": np.array(0.0, np.float32)}
    opt = ak.SGD(0.5)
    first = opt.minimize(_loss, params)
    for _ in range(200):
        last = opt.minimize(_loss, params)
    assert last < 1e-4 < first and params["w"] == pytest.approx(3, abs=0.01)


def test_minimize_refuses_a_loss_without_arguments():
    w = np.array(0.5, np.float32)
    with pytest.raises(TypeError, match="loss takes no arguments"):
        ak.SGD().minimize(lambda: anp.sum(w**2), [w])
