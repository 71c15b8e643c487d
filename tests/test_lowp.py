"""Low-precision state and bf16 parameters in the optimizers (adamkit.lowp): fused ≡ NumPy engine bit for bit,
state_dict and checkpoints, explicit (de)quantization on load, refusals, and the step bound of Adam."""

from __future__ import annotations

import copy
import math
import pickle

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adamkit
from adamkit import codecs, lowp

BF16 = ml_dtypes.bfloat16
SHAPES = [(5000,), (300,), (), (0,), (3, 2000), (40000,)]  # int8: quantized, exact, 0-d, empty; one parallel-sized

OPTIMIZERS = {
    "adam": lambda p, **kw: adamkit.Adam(p, lr=1e-2, **kw),
    "adamw-amsgrad": lambda p, **kw: adamkit.AdamW(p, lr=1e-2, amsgrad=True, **kw),
    "sgd-momentum": lambda p, **kw: adamkit.SGD(p, lr=1e-2, momentum=0.9, nesterov=True, **kw),
    "sgd": lambda p, **kw: adamkit.SGD(p, lr=1e-2, **kw),
    "adagrad": lambda p, **kw: adamkit.Adagrad(p, lr=1e-2, initial_accumulator_value=0.1, **kw),
    "adadelta": lambda p, **kw: adamkit.Adadelta(p, **kw),
    "adamax": lambda p, **kw: adamkit.Adamax(p, **kw),
    "nadam": lambda p, **kw: adamkit.NAdam(p, **kw),
    "radam": lambda p, **kw: adamkit.RAdam(p, **kw),
    "rmsprop-centered": lambda p, **kw: adamkit.RMSprop(p, centered=True, momentum=0.5, **kw),
    "lion": lambda p, **kw: adamkit.Lion(p, **kw),
}
MODES = {
    "bf16-state": (np.float32, dict(state_dtype="bfloat16")),
    "int8-state": (np.float32, dict(state_dtype="int8")),
    "bf16-params-sr": (BF16, {}),
    "bf16-params-rn-int8": (BF16, dict(state_dtype="int8", stochastic_rounding=False)),
    "bf16-params-kahan": (BF16, dict(kahan_sum=True)),  # compensated parameters, stochastically rounded state
    "bf16-params-kahan-int8": (BF16, dict(kahan_sum=True, state_dtype="int8", stochastic_rounding=False)),
}


def _params(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return {f"w{i}": rng.standard_normal(s).astype(dtype) for i, s in enumerate(shapes)}


def _grads(params, rng, dtype=np.float32):
    return {k: (rng.standard_normal(v.shape) * rng.choice([1e-4, 1.0, 30.0])).astype(dtype) for k, v in params.items()}


def _words(a):
    return a.view(np.uint16) if a.dtype == BF16 else a


def _bytes(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _run(make, mode, engine, steps=3, seed=0):
    dtype, kwargs = MODES[mode]
    params = _params(dtype, seed)
    opt = make(params, engine=engine, seed=5, **kwargs)
    rng = np.random.default_rng(seed + 1)
    for _ in range(steps):
        opt.step(_grads(params, rng))
    return params, opt


def _assert_same(a, b):
    """Two (params, optimizer) pairs: parameters and every state entry bit for bit."""
    (pa, oa), (pb, ob) = a, b
    for k in pa:
        np.testing.assert_array_equal(_bytes(pa[k]), _bytes(pb[k]), err_msg=k)
    sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].keys() == sb[name].keys()
        for key, value in sa[name].items():
            if isinstance(value, np.ndarray):
                assert value.dtype == sb[name][key].dtype
                np.testing.assert_array_equal(_bytes(value), _bytes(sb[name][key]), err_msg=key)
            else:
                assert value == sb[name][key]


# ----------------------------------------------------------------------------------------- fused ≡ numpy
@pytest.mark.parametrize("mode", list(MODES))
def test_adam_fused_equals_numpy_bit_for_bit(mode):
    _assert_same(_run(OPTIMIZERS["adam"], mode, "fused"), _run(OPTIMIZERS["adam"], mode, "numpy"))


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "adam"])
def test_every_elementwise_optimizer_fused_equals_numpy_int8(name):
    """int8 mixes signed and unsigned codes and the exact small tensors; bf16 slots via the bf16 params."""
    mode = "bf16-params-rn-int8" if name in ("sgd", "lion") else "int8-state"
    _assert_same(_run(OPTIMIZERS[name], mode, "fused"), _run(OPTIMIZERS[name], mode, "numpy"))


@settings(max_examples=8, deadline=None)
@given(
    st.lists(st.integers(0, 9000), min_size=1, max_size=5),
    st.sampled_from(["bf16-state", "int8-state", "bf16-params-sr", "bf16-params-kahan-int8"]),
)
def test_random_layouts_fused_equals_numpy(sizes, mode):
    dtype, kwargs = MODES[mode]
    results = []
    for engine in ("fused", "numpy"):
        params = _params(dtype, 3, [(n,) for n in sizes])
        opt = adamkit.Adam(params, lr=1e-2, engine=engine, **kwargs)
        rng = np.random.default_rng(4)
        for _ in range(2):
            opt.step(_grads(params, rng))
        results.append((params, opt))
    _assert_same(*results)


def test_bf16_gradients_and_opt_grads():
    """bf16 parameters take bf16 or float32 gradients (step(grads), or opt.grads filled in place)."""
    out = []
    for grads_dtype in (np.float32, BF16):
        params = _params(BF16, 1, [(5000,), (7,)])
        opt = adamkit.Adam(params, lr=1e-2)
        rng = np.random.default_rng(2)
        g = {k: v.astype(BF16).astype(grads_dtype) for k, v in _grads(params, rng).items()}
        opt.step(g)
        for k, v in g.items():
            opt.grads[k][...] = v
        opt.step()
        out.append(params)
    for k in out[0]:
        np.testing.assert_array_equal(_words(out[0][k]), _words(out[1][k]))


def test_bytes_of_state_per_parameter():
    n = 1 << 16
    for state_dtype, expected in [(None, 8.0), ("bfloat16", 4.0), ("int8", 2 + 8 / codecs.BLOCK)]:
        opt = adamkit.Adam([np.zeros(n, np.float32)], state_dtype=state_dtype)
        opt.step([np.ones(n, np.float32)])
        flat = next(opt.flat_buffers())[1]
        total = sum(sum(a.nbytes for a in s.arrays()) if state_dtype else s.nbytes for s in flat.state.values())
        assert total / n == expected


def test_rounding_is_reproducible_from_the_seed():
    runs = [_run(OPTIMIZERS["adam"], "bf16-params-sr", "fused", seed=0) for _ in range(2)]
    _assert_same(*runs)
    params = _params(BF16, 0)
    other = adamkit.Adam(params, lr=1e-2, seed=6)
    rng = np.random.default_rng(1)
    for _ in range(3):
        other.step(_grads(params, rng))
    assert any(not np.array_equal(_words(params[k]), _words(runs[0][0][k])) for k in params)


def test_stochastic_rounding_keeps_small_updates_that_nearest_rounding_loses():
    """bf16 parameters at 1.0 (unit 2⁻⁷) receiving updates of 2⁻¹² each: rounded to nearest they never move;
    stochastically they move by the right amount on average."""
    moved = {}
    for sr in (True, False):
        p = [np.ones(4096, BF16)]
        opt = adamkit.SGD(p, lr=2.0**-12, stochastic_rounding=sr)
        for _ in range(64):
            opt.step([np.ones(4096, np.float32)])
        moved[sr] = 1.0 - float(np.mean(p[0].astype(np.float64)))
    assert moved[False] == 0.0
    assert abs(moved[True] - 64 * 2.0**-12) < 0.05 * 64 * 2.0**-12


# ----------------------------------------------------------------------------------------- state_dict
@pytest.mark.parametrize("mode", list(MODES))
def test_state_dict_round_trip_continues_bit_for_bit(mode):
    dtype, kwargs = MODES[mode]
    params = _params(dtype)
    opt = adamkit.Adam(params, lr=1e-2, **kwargs)
    rng = np.random.default_rng(1)
    for _ in range(2):
        opt.step(_grads(params, rng))
    saved = opt.state_dict()
    params2 = {k: v.copy() for k, v in params.items()}
    fresh = adamkit.Adam(params2, lr=1e-2, **kwargs)
    fresh.load_state_dict(saved)
    for _ in range(2):
        g = _grads(params, rng)
        opt.step(g)
        fresh.step(g)
    _assert_same((params, opt), (params2, fresh))


def test_state_dict_holds_plain_arrays_named_clearly():
    opt = adamkit.Adam(_params(np.float32), lr=1e-2, state_dtype="int8")
    opt.step(_grads(opt.params, np.random.default_rng(0)))
    state = opt.state_dict()["state"]
    big, small = state["w0"], state["w1"]
    assert big["exp_avg"].dtype == np.int8 and big["exp_avg_sq"].dtype == np.uint8 and big["exp_avg"].shape == (5000,)
    assert big["exp_avg.scale"].dtype == np.float32 and big["exp_avg.scale"].shape == (math.ceil(5000 / 256),)
    assert small["exp_avg"].dtype == np.float32 and "exp_avg.scale" not in small  # below 4096 elements: exact
    bf = adamkit.Adam(_params(np.float32), lr=1e-2, state_dtype="bfloat16")
    bf.step(_grads(bf.params, np.random.default_rng(0)))
    assert bf.state_dict()["state"]["w1"]["exp_avg"].dtype == np.uint16


@pytest.mark.parametrize("target", ["bfloat16", "int8"])
def test_loading_fp32_state_quantizes_and_loading_lowp_state_dequantizes(target):
    params = _params(np.float32)
    exact = adamkit.Adam(params, lr=1e-2)
    rng = np.random.default_rng(1)
    for _ in range(3):
        exact.step(_grads(params, rng))
    fp32_state = exact.state_dict()

    low = adamkit.Adam({k: v.copy() for k, v in params.items()}, lr=1e-2, state_dtype=target)
    low.load_state_dict(fp32_state)  # quantized, explicitly
    flat = next(low.flat_buffers())[1]
    for slot in ("exp_avg", "exp_avg_sq"):
        values = np.concatenate([fp32_state["state"][s.name][slot].reshape(-1) for s in flat.segments])
        expected = lowp.quantize(flat, slot, values)
        coded = flat.state[slot]
        np.testing.assert_array_equal(coded.codes, expected.codes)
        np.testing.assert_array_equal(coded.scales, expected.scales)
        decoded = lowp.dequantize(flat, coded)
        bound = 2.0**-8 if target == "bfloat16" else 2.0**-4 * 1.001
        big = np.abs(values) > 1e-3 * np.abs(values).max()
        assert np.all(np.abs(decoded - values)[big] <= bound * np.abs(values)[big])

    low_state = low.state_dict()
    back = adamkit.Adam({k: v.copy() for k, v in params.items()}, lr=1e-2)
    back.load_state_dict(low_state)  # dequantized, explicitly: exactly the decoded values
    for name, entry in back.state_dict()["state"].items():
        for slot in ("exp_avg", "exp_avg_sq"):
            shape = entry[slot].shape
            decoded = lowp.entry_values(low_state["state"][name], slot, shape, "")
            assert entry[slot].dtype == np.float32
            np.testing.assert_array_equal(entry[slot], decoded.astype(np.float32))
    # and the other way between codecs: int8 ↔ bf16 through the float values
    other = adamkit.Adam(
        {k: v.copy() for k, v in params.items()}, lr=1e-2, state_dtype="int8" if target == "bfloat16" else "bfloat16"
    )
    other.load_state_dict(low_state)
    assert other.state_dict()["state"]["w0"]["exp_avg"].dtype == (np.int8 if target == "bfloat16" else np.uint16)


def _bad(entry_update, message):
    params = _params(np.float32)
    opt = adamkit.Adam(params, lr=1e-2, state_dtype="int8")
    opt.step(_grads(params, np.random.default_rng(0)))
    saved = opt.state_dict()
    before = pickle.dumps(opt.state_dict())
    entry_update(saved["state"]["w0"])
    with pytest.raises((ValueError, TypeError, KeyError), match=message):
        opt.load_state_dict(saved)
    assert pickle.dumps(opt.state_dict()) == before  # nothing half-loaded


def test_bad_low_precision_state_is_refused_and_nothing_changes():
    _bad(lambda e: e.pop("exp_avg.scale"), "block scales 'exp_avg.scale'")
    _bad(lambda e: e.update({"exp_avg.scale": e["exp_avg.scale"][:-1]}), "block scales")
    _bad(lambda e: e.update({"exp_avg.scale": -e["exp_avg.scale"]}), "finite and >= 0")
    _bad(lambda e: e.update({"exp_avg": e["exp_avg"].astype(np.int16)}), "bf16 words")
    _bad(lambda e: e.update({"exp_avg": e["exp_avg"][:10]}), "shape")
    _bad(lambda e: e.update({"exp_avgg.scale": e["exp_avg.scale"]}), "does not keep")


@pytest.mark.parametrize("mode", ["int8-state", "bf16-params-sr"])
def test_checkpoint_save_load_round_trip(tmp_path, mode):
    dtype, kwargs = MODES[mode]
    params = _params(dtype)
    opt = adamkit.Adam(params, lr=1e-2, **kwargs)
    rng = np.random.default_rng(1)
    opt.step(_grads(params, rng))
    adamkit.save(tmp_path / "c.npz", opt)
    params2 = {k: np.zeros_like(v) for k, v in params.items()}
    fresh = adamkit.Adam(params2, lr=1e-2, **kwargs)
    adamkit.load(tmp_path / "c.npz", fresh)
    g = _grads(params, rng)
    opt.step(g)
    fresh.step(g)
    _assert_same((params, opt), (params2, fresh))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_step_like_the_original(how):
    params = _params(BF16)
    opt = adamkit.Adam(params, lr=1e-2, state_dtype="int8")
    rng = np.random.default_rng(1)
    opt.step(_grads(params, rng))
    other = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    g = _grads(params, rng)
    opt.step(g)
    other.step(g)
    _assert_same((dict(opt.params), opt), (dict(other.params), other))


# ----------------------------------------------------------------------------------------------- refusals
def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"state_dtype must be None, 'bfloat16' or 'int8'; got 'float16'"):
        adamkit.Adam([np.zeros(3, np.float32)], state_dtype="float16")
    with pytest.raises(TypeError, match="stochastic_rounding must be True or False"):
        adamkit.Adam([np.zeros(3, np.float32)], stochastic_rounding=1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        adamkit.Adam([np.zeros(3, np.float32)], seed=-1)
    with pytest.raises(TypeError, match="state_dtype='int8' needs float32 or bfloat16 parameters"):
        adamkit.Adam([np.zeros(3)], state_dtype="int8")
    with pytest.raises(TypeError, match="'state_dtype'"):
        adamkit.LAMB([np.zeros(3, np.float32)], state_dtype="int8")
    with pytest.raises(TypeError, match="bfloat16 needs an elementwise optimizer"):
        adamkit.LAMB([np.zeros(3, BF16)])
    with pytest.raises(AttributeError):
        adamkit.Adam([np.zeros(3, np.float32)]).state_dtype = "int8"


def test_a_non_elementwise_optimizer_refuses_state_dtype():
    class Whole(adamkit.Optimizer):
        def _check(self, group):
            pass

    with pytest.raises(ValueError, match="state_dtype='bfloat16': Whole does not support low-precision state"):
        Whole([np.zeros(3, np.float32)], {"lr": 1.0}, state_dtype="bfloat16")


@pytest.mark.parametrize("engine", ["fused", "numpy"])
def test_refused_step_changes_nothing(engine):
    params = _params(BF16)
    opt = adamkit.Adam(params, lr=1e-2, state_dtype="int8", engine=engine)
    opt.step(_grads(params, np.random.default_rng(0)))
    before = pickle.dumps((opt.state_dict(), {k: _words(v).copy() for k, v in params.items()}))
    bad = _grads(params, np.random.default_rng(1))
    bad["w5"] = bad["w5"][:-1]
    with pytest.raises(ValueError, match="grads\\['w5'\\] has shape"):
        opt.step(bad)
    bad = _grads(params, np.random.default_rng(1), dtype=np.float64)
    with pytest.raises(TypeError, match="bfloat16 or float32"):
        opt.step(bad)
    assert pickle.dumps((opt.state_dict(), {k: _words(v).copy() for k, v in params.items()})) == before


# ----------------------------------------------------------------------------------------------- step bound
def _adam_bound(beta1: float, beta2: float, t: int, m_factor: float, v_factor: float) -> float:
    """Cauchy–Schwarz bound on |Δp|/lr for Adam (ε = 0, bias-corrected) when each step's decoded m is at most
    ``m_factor`` times the stored value and the decoded v at least ``v_factor`` times it:
    ``|m_t| ≤ Σ a_k|g_k|, v_t ≥ Σ b_k g_k²`` with ``a_k = (1−β1)(β1·m_factor)^k``, ``b_k = (1−β2)(β2·v_factor)^k``,
    so ``|m̂|/√v̂ ≤ √((1−β2ᵗ)/(1−β2))·(1−β1)/(1−β1ᵗ)·√(Σ_{k<t} rᵏ)`` with ``r = β1²·m_factor²/(β2·v_factor)``."""
    r = beta1**2 * m_factor**2 / (beta2 * v_factor)
    series = t if r == 1 else (1 - r**t) / (1 - r)
    return math.sqrt((1 - beta2**t) / (1 - beta2)) * (1 - beta1) / (1 - beta1**t) * math.sqrt(series)


@pytest.mark.parametrize(
    "state_dtype, m_factor, v_factor",
    [(None, 1.0, 1.0), ("bfloat16", 1 + 2.0**-7, 1 - 2.0**-7), ("int8", 16 / 15, 15 / 16)],
)
def test_adam_never_exceeds_its_step_bound(state_dtype, m_factor, v_factor):
    """Adversarial gradients (spikes 1e6× the rest of a block, long runs of zeros, tiny values, sign flips):
    every update stays within the bound above, with the codes' documented error factors (bf16 with stochastic
    rounding: below one unit, 2⁻⁷; int8: m within 16/15, v at least 15/16 and never 0). A second moment decoded
    as 0 would give |Δp| = lr·|m̂|/ε, about 10⁵× the bound."""
    n, lr, (beta1, beta2) = 8192, 1e-3, (0.9, 0.999)
    p = [np.zeros(n, np.float32)]
    opt = adamkit.Adam(p, lr=lr, betas=(beta1, beta2), eps=1e-8, state_dtype=state_dtype)
    rng = np.random.default_rng(0)
    worst = 0.0
    for t in range(1, 301):
        g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 0, n)).astype(np.float32)
        g[rng.integers(0, n, 8)] = 1e6 * rng.choice([-1, 1], 8)  # spikes
        if 50 <= t < 200:
            g[: n // 2] = 0  # half the parameters see nothing for 150 steps: their v decays toward 0
        before = p[0].astype(np.float64)
        opt.step([g])
        step = np.max(np.abs(p[0] - before)) / lr
        bound = _adam_bound(beta1, beta2, t, m_factor, v_factor)
        assert step <= bound * (1 + 1e-4) + 1e-3, (t, step, bound)  # 1e-3: float32 rounding of p near 0.3
        worst = max(worst, step / bound)
    assert worst > 0.3  # the stream does push updates toward the bound


@pytest.mark.parametrize("hook", ["clip-norm", "weight-decay"])
def test_gradient_hooks_on_bf16_parameters(hook):
    """Hooks transform bf16 gradients in a float32 scratch (their reductions need a float): both engines agree,
    and clipping bounds the step."""
    hooks = adamkit.hooks
    make = {"clip-norm": lambda: hooks.ClipGradNorm(1.0), "weight-decay": lambda: hooks.WeightDecay(0.1)}
    runs = []
    for engine in ("fused", "numpy"):
        params = _params(BF16, 2, [(5000,), (3,)])
        before = {k: v.astype(np.float64) for k, v in params.items()}
        opt = adamkit.SGD(params, lr=0.1, engine=engine, stochastic_rounding=False)
        opt.add_hook(make[hook]())
        rng = np.random.default_rng(3)
        opt.step({k: (100 * rng.standard_normal(v.shape)).astype(BF16) for k, v in params.items()})
        runs.append((params, opt))
        if hook == "clip-norm":  # |Δp| ≤ lr·1 in norm, plus half a bf16 unit per element
            delta = np.concatenate([(params[k].astype(np.float64) - before[k]).reshape(-1) for k in params])
            half_units = np.concatenate([2.0**-8 * np.abs(before[k]).reshape(-1) for k in params])
            assert np.linalg.norm(np.maximum(np.abs(delta) - half_units, 0)) <= 0.1 * (1 + 1e-6)
    _assert_same(*runs)


# ------------------------------------------------------------------------------------- non-finite gradients
def _feed(opt, g, via):
    if via == "opt.grads":
        for k in g:
            opt.grads[k][...] = g[k]
        opt.step()
    else:
        opt.step(g)


NONFINITE_CASES = [(m, gd) for m in MODES for gd in (np.float32, BF16) if MODES[m][0] is BF16 or gd is np.float32]


@pytest.mark.parametrize("engine", ["fused", "numpy"])
@pytest.mark.parametrize("via", ["step(grads)", "opt.grads"])
@pytest.mark.parametrize(
    "mode, grads_dtype", NONFINITE_CASES, ids=[f"{m}-{np.dtype(gd).name}-grads" for m, gd in NONFINITE_CASES]
)
def test_nonfinite_skip_leaves_everything_bitwise_unchanged(mode, grads_dtype, via, engine):
    """nonfinite="skip" with low-precision state and bf16 parameters (bf16 gradients read as their words): a step
    whose gradients hold an inf or a NaN changes no parameter, code, scale, compensation or step count, and the
    run then continues bit for bit as one that never saw it; "raise" refuses it the same way."""
    dtype, kwargs = MODES[mode]
    runs = []
    for bad in (True, False):
        params = _params(dtype, 0, [(5000,), (300,), (3, 2000)])
        opt = adamkit.Adam(params, lr=1e-2, engine=engine, nonfinite="skip", seed=3, **kwargs)
        rng = np.random.default_rng(1)
        for t in range(3):
            g = {k: v.astype(grads_dtype) for k, v in _grads(params, rng).items()}
            if bad and t == 1:
                before = pickle.dumps((opt.state_dict(), {k: _words(v).copy() for k, v in params.items()}))
                for poison in (np.inf, np.nan):
                    poisoned = {k: v.copy() for k, v in g.items()}
                    poisoned["w0"][4321], poisoned["w2"][1, 7] = poison, -np.inf
                    _feed(opt, poisoned, via)
                    assert pickle.dumps((opt.state_dict(), {k: _words(v).copy() for k, v in params.items()})) == before
                assert opt.skipped_steps == 2
                opt.nonfinite = "raise"
                with pytest.raises(FloatingPointError, match="'w0'"):
                    opt.step(poisoned)
                assert pickle.dumps((opt.state_dict(), {k: _words(v).copy() for k, v in params.items()})) == before
                opt.nonfinite = "skip"
            _feed(opt, g, via)
        runs.append((params, opt))
    _assert_same(*runs)


@pytest.mark.parametrize("convention", ["torch", "keras"])
@pytest.mark.parametrize("cls, kwargs", [(adamkit.Adam, {}), (adamkit.Adam, dict(weight_decay=0.1, maximize=True)),
                                         (adamkit.AdamW, dict(weight_decay=0.1))])  # fmt: skip
def test_adam_low_precision_form_is_adams_update(convention, cls, kwargs):
    """The low-precision path runs Adam with its bias correction folded into the step size and ε (one division):
    the same update as the framework's form. State loaded exactly (float32 values a bf16 word holds), one step at
    t = 4 with gradients where ε and √v are alike: float32 parameters agree with the float32 optimizer to a few
    rounding errors (an unscaled ε or a step size without √(1−β2ᵗ) would be ~30 % off)."""
    rng = np.random.default_rng(3)
    base = np.clip(rng.standard_normal(5000), -3.9, 3.9).astype(np.float32)
    grad = (rng.standard_normal(5000) * 1e-7).astype(np.float32)
    as_bf16 = lambda x: x.astype(BF16).astype(np.float32)  # noqa: E731
    m, v = as_bf16(rng.standard_normal(5000) * 1e-7), as_bf16(rng.random(5000) * 1e-14)
    results = []
    for state_dtype in (None, "bfloat16"):
        p = base.copy()
        opt = cls({"w": p}, lr=0.1, eps=1e-7, convention=convention, state_dtype=state_dtype, **kwargs)
        state = {"w": {"step": 3, "exp_avg": m, "exp_avg_sq": v}}
        opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
        opt.step({"w": grad})
        results.append(p - base)
    assert np.abs(results[0]).max() > 1e-3  # a visible step
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4, atol=3e-7)  # p - base: ±1 ulp of p (|p| < 4)
