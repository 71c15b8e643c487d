"""Kahan-compensated bf16 parameters (``kahan_sum=True``): the oracle is torch-optimi 0.3.3 (``optimi``), whose
``kahan_sum`` this option follows; fused ≡ NumPy engine bit for bit, the compensation slot in state_dict, and
the refusals."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import optimi
import pytest
import torch
from test_lowp import OPTIMIZERS, _assert_same, _run
from test_torch_lowp import DOORS, bits, run_core, run_door, tensors
from torch import nn

import adamkit
import adamkit.torch as at
from adamkit import lowp

BF16 = ml_dtypes.bfloat16


# ----------------------------------------------------------------------------------------------- the core
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_elementwise_optimizer_fused_equals_numpy_with_kahan(name):
    _assert_same(_run(OPTIMIZERS[name], "bf16-params-kahan-int8", "fused"),
                 _run(OPTIMIZERS[name], "bf16-params-kahan-int8", "numpy"))  # fmt: skip


def test_compensation_keeps_every_small_update_exactly():
    """bf16 parameters at 1.0 (unit 2⁻⁸ just below 1) receiving updates of 2⁻¹² each: rounded to nearest they
    never move; compensated, parameter + compensation is the exact sum after every step (all values here are
    exact in bf16), so after 64 steps the parameter is exactly 1 − 64·2⁻¹²."""
    p = [np.ones(4096, BF16)]
    opt = adamkit.SGD(p, lr=2.0**-12, kahan_sum=True)
    for t in range(1, 65):
        opt.step([np.ones(4096, np.float32)])
        comp = opt.state_dict()["state"]["0"]["kahan_comp"].view(BF16).astype(np.float64)
        np.testing.assert_array_equal(p[0].astype(np.float64) + comp, 1.0 - t * 2.0**-12)
    np.testing.assert_array_equal(p[0].astype(np.float64), 1.0 - 64 * 2.0**-12)


def test_float32_parameters_are_not_affected():
    """kahan_sum compensates bf16 parameters only (as optimi): float32 ones step exactly as without it."""
    runs = []
    for kahan in (False, True):
        params = {"w": np.linspace(-1, 1, 5000, dtype=np.float32)}
        opt = adamkit.Adam(params, lr=1e-2, state_dtype="int8", kahan_sum=kahan)
        rng = np.random.default_rng(0)
        for _ in range(3):
            opt.step({"w": rng.standard_normal(5000).astype(np.float32)})
        runs.append((params, opt))
    assert lowp.KAHAN not in runs[1][1].state_dict()["state"]["w"]
    _assert_same(*runs)


def test_bytes_of_state_per_parameter_with_kahan():
    """bf16 parameters with bf16 m, v and the compensation: 2 + 2 + 2 bytes of state per parameter (plus the
    2-byte parameter: 8 in all, against 12 for float32 parameters and state)."""
    n = 1 << 16
    for state_dtype, expected in [(None, 6.0), ("int8", 4 + 8 / lowp.BLOCK)]:
        opt = adamkit.Adam([np.zeros(n, BF16)], state_dtype=state_dtype, kahan_sum=True)
        opt.step([np.ones(n, np.float32)])
        flat = next(opt.flat_buffers())[1]
        assert sum(a.nbytes for s in flat.state.values() for a in s.arrays()) / n == expected


def test_state_dict_holds_the_compensation_as_bf16_words():
    params = {"w": np.linspace(-1, 1, 5000).astype(BF16)}
    opt = adamkit.Adam(params, lr=1e-3, kahan_sum=True, state_dtype="int8")
    opt.step({"w": np.ones(5000, np.float32)})
    saved = opt.state_dict()
    comp = saved["state"]["w"][lowp.KAHAN]
    assert comp.dtype == np.uint16 and comp.shape == (5000,) and np.any(comp != 0)
    plain = adamkit.Adam({"w": params["w"].copy()}, lr=1e-3, state_dtype="int8")
    with pytest.raises(KeyError, match="kahan_comp"):  # an optimizer without kahan_sum keeps no compensation
        plain.load_state_dict(saved)


def test_bad_kahan_arguments_are_refused_naming_them():
    with pytest.raises(TypeError, match="kahan_sum must be True or False"):
        adamkit.Adam([np.zeros(3, BF16)], kahan_sum=1)
    with pytest.raises(TypeError, match="'kahan_sum'"):
        adamkit.LAMB([np.zeros(3, np.float32)], kahan_sum=True)

    class Whole(adamkit.Optimizer):
        def _check(self, group):
            pass

    with pytest.raises(ValueError, match="kahan_sum=True: Whole does not support bf16 parameters"):
        Whole([np.zeros(3, np.float32)], {"lr": 1.0}, kahan_sum=True)
    with pytest.raises(ValueError, match="kahan_sum=True needs the core"):
        at.AdamW(tensors(torch.bfloat16), kahan_sum=True, engine="torch")
    with pytest.raises(AttributeError):
        adamkit.Adam([np.zeros(3, BF16)]).kahan_sum = True


# ---------------------------------------------------------------------------------------- adamkit.torch
@pytest.mark.parametrize("cls,kwargs", DOORS, ids=[c.__name__ for c, _ in DOORS])
def test_door_passes_kahan_sum_to_the_core(cls, kwargs):
    """A bf16 model with kahan_sum=True: bit for bit the core's result, ``kahan_comp`` a bfloat16 tensor as
    optimi keeps it."""
    params = tensors(torch.bfloat16)
    core, arrays = run_core(cls, kwargs, params, 4, kahan_sum=True)
    opt = run_door(cls, kwargs, params, 4, kahan_sum=True)
    core_state = core.state_dict()["state"]
    for i, p in enumerate(params):
        assert np.array_equal(bits(p), bits(arrays[str(i)]))
        assert opt.state[p][lowp.KAHAN].dtype == torch.bfloat16
        assert np.array_equal(bits(opt.state[p][lowp.KAHAN]), bits(core_state[str(i)][lowp.KAHAN]))


# ------------------------------------------------------------------------------- torch-optimi, the oracle
def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


def _train(make, dtype: torch.dtype, steps: int = 300) -> torch.Tensor:
    """A regression MLP held in ``dtype``, trained on one fixed stream of batches; its final parameters."""
    torch.set_num_threads(1)
    model = _model().to(dtype)
    opt = make(model.parameters())
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(16, generator=gen)
    for _ in range(steps):
        x = torch.randn(64, 16, generator=gen)
        loss = ((model(x.to(dtype)).float() - (x @ w).sin().unsqueeze(1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])


ORACLE = {  # small steps: most updates are far below half a bf16 unit of their parameter
    "adam": (optimi.Adam, at.Adam, torch.optim.Adam, dict(lr=1e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)),
    "sgd-momentum": (optimi.SGD, at.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9, weight_decay=0.0)),
}


@pytest.mark.parametrize("name", list(ORACLE))
def test_kahan_sum_trains_a_bf16_mlp_as_optimi_does(name):
    """A bf16 MLP trained 300 steps: adamkit.torch with kahan_sum=True ends within 5 % of the distance the
    parameters travelled of optimi's kahan_sum=True run (both also within 8 % of float32 torch.optim's);
    uncompensated (round to nearest) it ends more than 50 % away from both: most updates are lost."""
    oracle, door, fp32, kwargs = ORACLE[name]
    reference = _train(lambda p: oracle(p, kahan_sum=True, foreach=False, **kwargs), torch.bfloat16)
    ours = _train(lambda p: door(p, kahan_sum=True, stochastic_rounding=False, **kwargs), torch.bfloat16)
    nearest = _train(lambda p: door(p, stochastic_rounding=False, **kwargs), torch.bfloat16)
    exact = _train(lambda p: fp32(p, **kwargs), torch.float32)
    travelled = (exact - torch.cat([p.detach().reshape(-1) for p in _model().parameters()])).norm()
    assert travelled > 0.1
    assert (ours - reference).norm() < 0.05 * travelled
    assert (ours - exact).norm() < 0.08 * travelled and (reference - exact).norm() < 0.08 * travelled
    assert (nearest - reference).norm() > 0.5 * travelled and (nearest - exact).norm() > 0.5 * travelled


def test_decoupled_weight_decay_is_compensated_too():
    """Ours compensates the whole update, weight decay included; optimi multiplies the bf16 parameter by
    ``1 − lr·wd`` outside the compensation (rounded to nearest, so a factor of 1 − 1e-5 is lost). With
    weight_decay=0.1 ours ends nearer float32 torch.optim.AdamW than optimi does."""
    kwargs = dict(lr=1e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    exact = _train(lambda p: torch.optim.AdamW(p, **kwargs), torch.float32)
    ours = _train(lambda p: at.AdamW(p, kahan_sum=True, stochastic_rounding=False, **kwargs), torch.bfloat16)
    reference = _train(lambda p: optimi.AdamW(p, kahan_sum=True, foreach=False, **kwargs), torch.bfloat16)
    assert (ours - exact).norm() < 0.75 * (reference - exact).norm()
