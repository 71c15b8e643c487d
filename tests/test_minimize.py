"""minimize(): scipy-shaped results, autograd gradients, early stopping, NaN handling, bad input."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest

import adamkit
from adamkit.frontends.minimize import optimizer_classes


def quadratic(x):
    return anp.sum((x - anp.array([1.0, -2.0, 3.0])) ** 2)


def quadratic_grad(x):
    return 2 * (x - np.array([1.0, -2.0, 3.0]))


def test_equals_a_hand_written_loop():
    x0 = np.zeros(3)
    result = adamkit.minimize(quadratic, x0, "adam", lr=0.05, steps=200, restore_best=False)
    params = [x0.copy()]
    opt = adamkit.Adam(params, lr=0.05)
    for _ in range(200):
        opt.step([quadratic_grad(params[0])])
    assert np.array_equal(result.x, params[0])
    assert result.nit == 200 and result.success and len(result.history) == 200
    assert result.fun == pytest.approx(float(quadratic(params[0])))
    assert result.history[0] == pytest.approx(14.0) and np.all(np.diff(result.history[:20]) < 0)
    assert np.array_equal(x0, np.zeros(3)), "x0 must not change"


def test_callable_jac_equals_autograd():
    a = adamkit.minimize(quadratic, np.zeros(3), "rmsprop", steps=50)
    b = adamkit.minimize(quadratic, np.zeros(3), "RMSprop", steps=50, jac=quadratic_grad)
    assert np.array_equal(a.x, b.x)


def test_named_parameters_and_attribute_access():
    x0 = {"a": np.array(0.0), "b": np.ones(2, np.float32)}
    r = adamkit.minimize(lambda p: (p["a"] - 1) ** 2 + anp.sum(p["b"] ** 2), x0, "sgd", lr=0.1, steps=100)
    assert set(r.x) == {"a", "b"} and r.x["b"].dtype == np.float32
    assert abs(r.x["a"] - 1) < 1e-6 and np.all(np.abs(r.x["b"]) < 1e-6)
    assert r["fun"] == r.fun and isinstance(r, dict)
    assert x0["a"] == 0.0 and np.array_equal(x0["b"], np.ones(2))


def test_every_exported_optimizer_is_reachable_by_name():
    names = optimizer_classes()
    assert set(names) >= {"sgd", "adam", "adamw", "adagrad", "rmsprop", "adadelta", "adamax", "nadam", "radam"}
    for name in names:
        r = adamkit.minimize(quadratic, np.zeros(3), name, steps=3)
        assert r.nit == 3


def test_early_stopping():
    r = adamkit.minimize(quadratic, np.zeros(3), "sgd", lr=0.1, steps=10_000, tol=1e-12, patience=5)
    assert r.success and r.nit < 10_000 and "tol" in r.message
    assert r.fun < 1e-10


def test_nan_loss_stops_before_updating():
    seen = []
    r = adamkit.minimize(lambda x: anp.log(x[0]), np.array([1.0]), "sgd", lr=2.0, steps=10, callback=seen.append)
    assert not r.success and "step 1" in r.message and r.nit == 1
    assert np.array_equal(r.x, seen[-1]) and r.x[0] == -1.0  # the NaN step was not applied


def test_callback_can_stop():
    r = adamkit.minimize(quadratic, np.zeros(3), "adam", steps=100, callback=lambda x: True)
    assert r.nit == 1 and "callback" in r.message


def test_ready_optimizer_instance():
    r = adamkit.minimize(quadratic, np.zeros(3), adamkit.SGD(lr=0.1, momentum=0.5), steps=200)
    assert r.fun < 1e-8
    with pytest.raises(ValueError, match="without params"):
        adamkit.minimize(quadratic, np.zeros(3), adamkit.SGD([np.zeros(3)]))


def test_progress_bar_runs(capsys):
    r = adamkit.minimize(quadratic, np.zeros(3), "adam", steps=20, progress=True)
    assert r.nit == 20
    assert "minimize" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(fun=lambda x: x * 2), ValueError, "scalar"),
        (dict(jac=lambda x: np.zeros(2)), ValueError, "jac"),
        (dict(optimizer="adamm"), ValueError, "adam, adamax"),
        (dict(steps=0), ValueError, "steps"),
        (dict(patience=0), ValueError, "patience"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(x0=np.array(["a"])), TypeError, "x0"),
        (dict(lr=-1.0), ValueError, "lr"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = dict(fun=quadratic, x0=np.zeros(3), optimizer="adam") | kwargs
    with pytest.raises(error, match=match):
        adamkit.minimize(**args)


# ---- the smaller silent cases of the NumPy-users issue ----------------------------------------------------------
def test_a_numpy_bool_callback_return_stops():
    r = adamkit.minimize(quadratic, np.zeros(3), "sgd", lr=0.1, steps=100, callback=lambda x: x[0] > 0.5)
    assert r.message == "stopped by callback" and r.nit < 100 and r.x[0] > 0.5


def test_restore_best_returns_the_best_point_seen():
    # SGD with too large a step on a 1-D parabola diverges after passing near the minimum
    fun = lambda x: anp.sum(x**2)  # noqa: E731
    best = adamkit.minimize(fun, np.array([1.0]), "sgd", lr=1.05, steps=20)
    last = adamkit.minimize(fun, np.array([1.0]), "sgd", lr=1.05, steps=20, restore_best=False)
    assert best.fun == pytest.approx(min(best.history)) and best.fun < last.fun
    assert best.fun == pytest.approx(float(fun(best.x)))
    assert last.fun == pytest.approx(float(fun(last.x))) and abs(last.x[0]) > 1.0


def test_reduce_lr_on_plateau_is_fed_the_loss():
    opt = adamkit.SGD(lr=1.0)  # oscillates on this parabola: the loss never improves
    opt.schedule = adamkit.schedules.ReduceLROnPlateau(factor=0.5, patience=2)
    r = adamkit.minimize(lambda x: anp.sum(x**2), np.array([1.0]), opt, steps=30)
    assert opt.param_groups[0]["lr"] < 1.0 and r.fun < 1.0


def test_tuple_and_list_x0_work():
    r = adamkit.minimize(quadratic, (0.0, 0.0, 0.0), "adam", lr=0.1, steps=300)
    assert isinstance(r.x, np.ndarray) and r.x.shape == (3,)
    np.testing.assert_allclose(r.x, [1.0, -2.0, 3.0], atol=0.05)
    assert np.array_equal(adamkit.minimize(quadratic, [0, 0, 0], "sgd", steps=5).x.shape, (3,))


def test_dict_keys_of_any_hashable_type_round_trip():
    x0 = {1: np.array(0.0), ("b", 2): np.zeros(2)}
    r = adamkit.minimize(lambda p: (p[1] - 1) ** 2 + anp.sum((p[("b", 2)] + 1) ** 2), x0, "adam", lr=0.1, steps=300)
    assert list(r.x) == [1, ("b", 2)]
    assert abs(r.x[1] - 1) < 0.05 and np.all(np.abs(r.x[("b", 2)] + 1) < 0.05)
    with pytest.raises(ValueError, match="keys"):
        adamkit.minimize(lambda p: p[1] ** 2, {1: 0.0}, "sgd", jac=lambda p: {"1": 0.0}, steps=2)
