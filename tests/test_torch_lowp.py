"""adamkit.torch with low-precision storage: ``state_dtype="bfloat16"|"int8"`` and models held in bfloat16,
stepped by the core's fused kernel on the model's own storage (zero-copy), state_dict as plain tensors."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch

import adamkit
import adamkit.torch as at
from adamkit import lowp

# a quantized matrix (≥ 4096 elements: int8 codes), a small one and a vector (kept float32 under int8)
SHAPES = [(64, 80), (30, 20), (80,)]
DOORS = [
    (at.SGD, dict(lr=1e-2, momentum=0.9)), (at.Adagrad, dict(lr=1e-2)), (at.RMSprop, dict(lr=1e-3)),
    (at.Adadelta, {}), (at.Adam, dict(lr=1e-3)), (at.AdamW, dict(lr=1e-3, weight_decay=0.1)),
    (at.Adamax, dict(lr=1e-3)), (at.NAdam, dict(lr=1e-3)), (at.RAdam, dict(lr=1e-3)),
    (at.Lion, dict(lr=1e-4, weight_decay=0.1)),
]  # fmt: skip


def tensors(dtype=torch.float32, seed=0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in SHAPES]


def grad_stream(params: list[torch.Tensor], steps: int, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield [torch.randn(p.shape, generator=gen).to(p.dtype) for p in params]


def numpy_of(t: torch.Tensor) -> np.ndarray:
    """A copy as the core takes it (bfloat16: ml_dtypes.bfloat16)."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(lowp.BFLOAT16).copy()
    return t.numpy().copy()


def run_door(cls, kwargs, params, steps, **options):
    opt = cls(params, **kwargs, **options)
    for grads in grad_stream(params, steps):
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    return opt


def assert_continues_alike(opt, params, resumed, twins):
    """Three more steps of both on the same gradients: parameters and every state entry equal, bit for bit."""
    for grads in grad_stream(params, 3, seed=5):
        for a, b, g in zip(params, twins, grads):
            a.grad, b.grad = g, g.clone()
        opt.step()
        resumed.step()
    for a, b in zip(params, twins):
        assert torch.equal(a, b)
        for key, value in opt.state[a].items():
            assert torch.equal(resumed.state[b][key], value), key


def run_core(cls, kwargs, params, steps, **options):
    """The core optimizer on NumPy copies of ``params``, named as the door names them, fed the same gradients."""
    arrays = {str(i): numpy_of(p) for i, p in enumerate(params)}
    opt = cls._core_class(arrays, **{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()},
                          **options)  # fmt: skip
    for grads in grad_stream(params, steps):
        opt.step({str(i): numpy_of(g) for i, g in enumerate(grads)})
    return opt, arrays


def bits(a) -> np.ndarray:
    a = numpy_of(a) if isinstance(a, torch.Tensor) else np.asarray(a)
    return np.atleast_1d(a).view(np.uint8)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("cls,kwargs", DOORS, ids=[c.__name__ for c, _ in DOORS])
def test_door_steps_as_the_core_does(cls, kwargs, state_dtype):
    """The door passes state_dtype to the core and steps the model's storage: bit for bit the core's result."""
    params = tensors()
    core, arrays = run_core(cls, kwargs, params, 4, state_dtype=state_dtype)
    opt = run_door(cls, kwargs, params, 4, state_dtype=state_dtype)
    assert opt._tensor_params == [[]]  # every parameter is on the core's buffers, none on the torch-ops path
    core_state = core.state_dict()["state"]
    for i, p in enumerate(params):
        assert np.array_equal(bits(p), bits(arrays[str(i)]))
        for key, value in core_state[str(i)].items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(bits(opt.state[p][key]), bits(value)), key
            elif key != "step":  # a host scalar (NAdam's mu_product): torch's format is a float32 0-d tensor
                assert opt.state[p][key].item() == np.float32(value), key


@pytest.mark.parametrize("state_dtype,dtype,tol", [("bfloat16", torch.bfloat16, 0.02), ("int8", torch.int8, 0.1)])
def test_state_is_stored_low_and_tracks_torch(state_dtype, dtype, tol):
    """exp_avg is stored as bf16 words / int8 codes with float32 block scales (small tensors: float32 under
    int8), and the parameters stay close to torch.optim.AdamW's fp32 run (the oracle)."""
    params = tensors()
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = run_door(at.AdamW, dict(lr=1e-2), params, 20, state_dtype=state_dtype)
    run_door(torch.optim.AdamW, dict(lr=1e-2), ref, 20)
    big, small = opt.state[params[0]], opt.state[params[2]]
    assert big["exp_avg"].dtype == dtype and big["exp_avg"].shape == params[0].shape
    if state_dtype == "int8":
        assert big["exp_avg_sq"].dtype == torch.uint8
        assert big["exp_avg.scale"].dtype == torch.float32 and big["exp_avg.scale"].shape == (64 * 80 // 256,)
        assert small["exp_avg"].dtype == torch.float32 and "exp_avg.scale" not in small
    else:
        assert big["exp_avg_sq"].dtype == torch.bfloat16 and small["exp_avg"].dtype == torch.bfloat16
    start = tensors()
    for p, r, p0 in zip(params, ref, start):
        moved = (r - p0).abs().max()
        assert moved > 0.1  # 20 steps of lr 1e-2
        assert (p - r).abs().max() < tol * moved


def test_bf16_model_is_stepped_in_place_by_the_core():
    """model.to(torch.bfloat16): each parameter is a view of the core's bf16 buffer (no torch-ops path), each new
    bf16 grad is read where it is (by address: neither copied nor rebound), and the update is the core's on
    ml_dtypes.bfloat16 arrays, bit for bit, stochastic rounding included."""
    params = tensors(torch.bfloat16)
    core, arrays = run_core(at.AdamW, dict(lr=1e-3), params, 5, seed=7)
    opt = run_door(at.AdamW, dict(lr=1e-3), params, 5, seed=7)
    assert opt._tensor_params == [[]]
    assert opt._bindings is not None  # the last step read the grads in place (the copying path drops them)
    buffers = opt._core.params, opt._core.grads
    for i, p in enumerate(params):
        assert p.dtype == torch.bfloat16
        assert p.data_ptr() == buffers[0][str(i)].ctypes.data and p.grad.data_ptr() != buffers[1][str(i)].ctypes.data
        assert np.array_equal(bits(p), bits(arrays[str(i)]))
        assert opt.state[p]["exp_avg"].dtype == torch.bfloat16
    other = tensors(torch.bfloat16)
    run_door(at.AdamW, dict(lr=1e-3), other, 5, seed=8)
    assert not torch.equal(other[0], params[0])  # another seed, other rounding


def test_stochastic_rounding_keeps_updates_below_half_an_ulp():
    """Weights at 1.0, updates of 1e-3 (under half a bf16 ulp, 2^-9): rounded to nearest they never move (as with
    torch.optim.AdamW on bf16, the oracle of that failure); rounded stochastically their mean follows fp32."""
    steps, lr = 10, 1e-3

    def run(make):
        p = torch.ones(1 << 14, dtype=torch.bfloat16, requires_grad=True)
        opt = make([p])
        for _ in range(steps):
            p.grad = torch.ones_like(p)
            opt.step()
        return p.float()

    nearest = run(lambda ps: at.AdamW(ps, lr=lr, weight_decay=0, stochastic_rounding=False))
    torch_bf16 = run(lambda ps: torch.optim.AdamW(ps, lr=lr, weight_decay=0))
    sr = run(lambda ps: at.AdamW(ps, lr=lr, weight_decay=0))
    fp32 = 1 - steps * lr  # Adam's first steps on a constant gradient: lr each (m̂/√v̂ = 1)
    assert torch.all(nearest == 1) and torch.all(torch_bf16 == 1)
    assert abs(sr.mean().item() - fp32) < 2e-4 and sr.min() < 1 and sr.max() <= 1


@pytest.mark.parametrize(
    "dtype,options",
    [(torch.float32, dict(state_dtype="int8")), (torch.float32, dict(state_dtype="bfloat16")),
     (torch.bfloat16, {}), (torch.bfloat16, dict(state_dtype="int8"))],
    ids=["int8", "bf16-state", "bf16-params-sr", "bf16-params-int8"],
)  # fmt: skip
def test_state_dict_round_trip_through_torch_save(dtype, options):
    """Prime, torch.save, torch.load(weights_only=True), load into a fresh optimizer over a copy of the model,
    continue: bit for bit the uninterrupted run (codes, scales and the rounding stream restored)."""
    params = tensors(dtype)
    opt = run_door(at.AdamW, dict(lr=1e-3), params, 3, **options)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    twins = [p.detach().clone().requires_grad_() for p in params]
    resumed = at.AdamW(twins, lr=1e-3, **options)
    resumed.load_state_dict(saved)
    assert_continues_alike(opt, params, resumed, twins)


def test_fp32_state_dict_is_quantized_on_load_and_dequantized_back():
    """torch.optim.AdamW's fp32 state loaded into an int8 optimizer becomes codes (explicitly quantized, within
    the code's error), and an int8 state_dict loaded into an fp32 adamkit optimizer becomes floats again."""
    params = tensors()
    ref = run_door(torch.optim.AdamW, dict(lr=1e-2), params, 3)
    low = at.AdamW(params, lr=1e-2, state_dtype="int8")
    low.load_state_dict(ref.state_dict())
    entry, exact = low.state[params[0]], ref.state[params[0]]
    assert entry["exp_avg"].dtype == torch.int8 and entry["exp_avg_sq"].dtype == torch.uint8
    back = at.AdamW(tensors(), lr=1e-2)
    back.load_state_dict(low.state_dict())
    for slot in ("exp_avg", "exp_avg_sq"):
        values = back.state[back.param_groups[0]["params"][0]][slot]
        assert values.dtype == torch.float32
        scale = exact[slot].abs().max()
        assert (values - exact[slot]).abs().max() < 0.1 * scale
        assert not torch.equal(values, exact[slot])  # it went through the codes


def test_bad_storage_options_are_refused():
    with pytest.raises(ValueError, match="state_dtype"):
        at.AdamW(tensors(), state_dtype="float16")
    with pytest.raises(ValueError, match="engine='torch'"):
        at.AdamW(tensors(), state_dtype="int8", engine="torch")
    with pytest.raises(TypeError, match="stochastic_rounding"):
        at.AdamW(tensors(torch.bfloat16), stochastic_rounding="yes")
    with pytest.raises(TypeError, match="float64"):
        at.AdamW(tensors(torch.float64), state_dtype="int8")
    params = tensors()
    opt = run_door(at.AdamW, dict(lr=1e-3), params, 2, state_dtype="int8")
    before = [p.detach().clone() for p in params]
    params[1].data = params[1].data.double()
    params[1].grad = torch.ones_like(params[1].data)
    with pytest.raises(RuntimeError, match="state_dtype='int8'"):
        opt.step()
    assert torch.equal(params[0], before[0]) and opt.state[params[0]]["step"] == 2


def test_bf16_model_on_the_torch_ops_path_when_asked():
    """engine='torch' keeps the torch-ops path for bf16 models (round to nearest in torch's bf16 arithmetic)."""
    params = tensors(torch.bfloat16)
    opt = run_door(at.AdamW, dict(lr=1e-3), params, 2, engine="torch")
    assert len(opt._tensor_params[0]) == len(params)
    ref = run_door(torch.optim.AdamW, dict(lr=1e-3), tensors(torch.bfloat16), 2)
    for p, r in zip(params, ref.param_groups[0]["params"]):
        assert (p.float() - r.float()).abs().max() <= 2 ** -7 * r.float().abs().max()


def test_import_adamkit_does_not_import_torch_or_peers():
    peers = "{'torch', 'bitsandbytes', 'torchao'}"
    code = f"import sys, adamkit, adamkit.lab.charlm; print(sorted({peers} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]" and adamkit.lowp.STATE_DTYPES == ("bfloat16", "int8")


def test_adamkit_save_and_load_a_bf16_model_with_int8_state(tmp_path):
    """adamkit.save/load through the door: parameters (bf16 words), codes, scales, steps; resumed run = the
    uninterrupted one, bit for bit."""
    params = tensors(torch.bfloat16)
    opt = run_door(at.AdamW, dict(lr=1e-3), params, 3, state_dtype="int8")
    adamkit.save(tmp_path / "ck", opt)
    twins = tensors(torch.bfloat16, seed=9)  # other values: load restores the parameters too
    resumed = at.AdamW(twins, lr=1e-3, state_dtype="int8")
    adamkit.load(tmp_path / "ck", resumed)
    assert_continues_alike(opt, params, resumed, twins)
