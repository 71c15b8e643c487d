"""adamkit.torch's Lion, LAMB, Adafactor, Muon and ScheduleFreeAdamW against their reference optimizers, over
real training of a small torch MLP (``model.zero_grad()``, ``loss.backward()``, ``opt.step()``); state_dict
round trips; Adafactor's and Muon's state_dicts interchangeable with torch.optim's."""

from __future__ import annotations

import copy
import io

import lion_pytorch
import pytest
import pytorch_optimizer
import schedulefree
import torch
from references import MuonWithAdamW
from torch_models import batches, flat, loss_fn, mlp, param_groups, rel_error

import adamkit.torch as at

STEPS = 60
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
# torch.optim.Muon runs Newton–Schulz in bfloat16 (8-bit mantissa); adamkit in the parameters' dtype. Relative
# to a step (or to training's displacement): measured 6-8% over the first 10 steps.
MUON_TOL = 0.12
# adamkit evaluates Newton–Schulz through the Gram matrix's eigendecomposition (equal to torch's iteration in exact
# arithmetic, 1e-10 in float64); in float32 the two routes round differently: 9e-5 after 60 steps of training.
MUON_TOL32 = 3e-4

# class name → (the reference optimizer's constructor, arguments both take)
REFERENCES = {
    "Lion": (lion_pytorch.Lion, dict(lr=0.003, betas=(0.8, 0.95), weight_decay=0.3)),
    "LAMB": (pytorch_optimizer.Lamb, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, eps=1e-8)),
    "Adafactor": (torch.optim.Adafactor, dict(lr=0.05, beta2_decay=-0.6, weight_decay=0.01, d=1.5)),
    "ScheduleFreeAdamW": (schedulefree.AdamWScheduleFree, dict(lr=0.02, warmup_steps=10, weight_decay=0.01)),
}
MUON = dict(lr=0.02, weight_decay=0.05, adamw_lr=0.003, adamw_weight_decay=0.02)


def fit(model, opt, data):
    for x, y in data:
        model.zero_grad()
        loss_fn(model, x, y).backward()
        opt.step()


def twins_and_optimizers(name, dtype, split=False):
    ours_model = mlp(dtype)
    ref_model = copy.deepcopy(ours_model)
    if name == "Muon":
        ours = at.Muon(list(ours_model.parameters()), **MUON)
        ref = MuonWithAdamW(list(ref_model.parameters()), **MUON)
        return ours_model, ref_model, ours, ref
    make_ref, kwargs = REFERENCES[name]
    ours = getattr(at, name)(param_groups(ours_model, kwargs["lr"], split), **kwargs)
    ref = make_ref(param_groups(ref_model, kwargs["lr"], split), **kwargs)
    if name == "ScheduleFreeAdamW":
        ours.train()  # a no-op for adamkit (it starts in train mode); the reference requires it
        ref.train()
    return ours_model, ref_model, ours, ref


def trained_twins(name, dtype, split=False, steps=STEPS):
    ours_model, ref_model, ours, ref = twins_and_optimizers(name, dtype, split)
    assert isinstance(ours, torch.optim.Optimizer)
    fit(ours_model, ours, batches("mlp", dtype, steps))
    fit(ref_model, ref, batches("mlp", dtype, steps))
    assert all(p.dtype == dtype for p in ours_model.parameters())
    assert rel_error(flat(ours_model), flat(mlp(dtype))) > 1e-3  # the model trained
    return rel_error(flat(ours_model), flat(ref_model))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", REFERENCES)
def test_training_matches_the_reference(name, dtype):
    for split in (False, True):
        assert trained_twins(name, dtype, split) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_muon_matches_torch_with_its_newton_schulz_in_the_parameters_dtype(dtype, monkeypatch):
    """torch.optim.Muon's own code, its one cast to bfloat16 (in ``_zeropower_via_newtonschulz``) made a copy in
    the tensor's dtype, as adamkit computes; torch.optim.AdamW on the biases."""
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    assert trained_twins("Muon", dtype) <= (MUON_TOL32 if dtype == torch.float32 else TOL[dtype])


def test_muon_matches_torch_at_its_bfloat16_precision():
    """torch as it is: its Newton–Schulz in bfloat16 (8-bit mantissa, amplified by the quintic's coefficients)
    moves each matrix ~6% off the full-precision direction; compared on how far training moved the model."""
    ours_model, ref_model, ours, ref = twins_and_optimizers("Muon", torch.float32)
    start = flat(ours_model)
    fit(ours_model, ours, batches("mlp", torch.float32, 10))
    fit(ref_model, ref, batches("mlp", torch.float32, 10))
    assert rel_error(flat(ours_model) - start, flat(ref_model) - start) <= MUON_TOL


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_schedulefree_eval_puts_the_average_in_as_the_reference_does(dtype):
    ours_model, ref_model, ours, ref = twins_and_optimizers("ScheduleFreeAdamW", dtype)
    fit(ours_model, ours, batches("mlp", dtype, 30))
    fit(ref_model, ref, batches("mlp", dtype, 30))
    training = flat(ours_model)
    ours.eval()
    ref.eval()
    assert [g["train_mode"] for g in ours.param_groups] == [False]
    assert rel_error(flat(ours_model), training) > 1e-4  # eval() changed the parameters
    assert rel_error(flat(ours_model), flat(ref_model)) <= TOL[dtype]
    with pytest.raises(RuntimeError, match="eval mode"):
        model_copy = flat(ours_model)
        fit(ours_model, ours, batches("mlp", dtype, 1))
    assert torch.equal(flat(ours_model), model_copy)  # the refused step changed nothing
    ours.train()
    ref.train()
    assert rel_error(flat(ours_model), training) <= TOL[dtype]
    fit(ours_model, ours, batches("mlp", dtype, 10, seed=5))
    fit(ref_model, ref, batches("mlp", dtype, 10, seed=5))
    assert rel_error(flat(ours_model), flat(ref_model)) <= TOL[dtype]


def saved_and_loaded(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", [*REFERENCES, "Muon"])
def test_state_dict_round_trip_continues_bit_for_bit(name):
    """Prime, save (torch.save), load into a fresh optimizer over a copy of the model, continue: the same
    bytes as the uninterrupted run."""
    model, _, opt, _ = twins_and_optimizers(name, torch.float32)
    fit(model, opt, batches("mlp", torch.float32, 10))
    saved = saved_and_loaded(opt.state_dict())
    resumed_model = copy.deepcopy(model)
    kwargs = MUON if name == "Muon" else REFERENCES[name][1]
    resumed = getattr(at, name)(resumed_model.parameters(), **kwargs)
    resumed.load_state_dict(saved)
    for target, optimizer in ((model, opt), (resumed_model, resumed)):
        fit(target, optimizer, batches("mlp", torch.float32, 10, seed=7))
    assert torch.equal(flat(model), flat(resumed_model))


def matrices_only(dtype, seed=0):
    """An MLP without biases: every parameter 2-D, so torch.optim.Muon can hold all of it."""
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(6, 16, bias=False), torch.nn.Tanh(), torch.nn.Linear(16, 1, bias=False)]
    return torch.nn.Sequential(*layers).to(dtype)


INTERCHANGE = {
    "Adafactor": (torch.optim.Adafactor, mlp, dict(lr=0.05, weight_decay=0.01), ("row_var", "col_var", "variance")),
    "Muon": (torch.optim.Muon, matrices_only, dict(lr=0.02, weight_decay=0.05), ("momentum_buffer",)),
}


@pytest.mark.parametrize("name", INTERCHANGE)
def test_state_dicts_interchange_with_torch_optim(name, monkeypatch):
    """torch.optim's state_dict loads into adamkit's class and the reverse, slots (and Adafactor's step) intact;
    training continues as the other would have. Muon: torch's Newton–Schulz in float32 (see above), and only
    2-D parameters (torch.optim.Muon holds no other; adamkit's AdamW part has no torch.optim.Muon format)."""
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    torch_class, make_model, kwargs, slots = INTERCHANGE[name]
    model = make_model(torch.float32)
    theirs = torch_class(model.parameters(), **kwargs)
    fit(model, theirs, batches("mlp", torch.float32, 10))

    ours_model = copy.deepcopy(model)
    ours = getattr(at, name)(ours_model.parameters(), **kwargs)
    ours.load_state_dict(saved_and_loaded(theirs.state_dict()))
    for p, q in zip(model.parameters(), ours_model.parameters()):
        mine, their = ours.state[q], theirs.state[p]
        assert {k for k in their if k in slots} == {k for k in mine if k in slots} != set()
        for key in their:
            assert torch.equal(mine[key], their[key]), key

    back = torch_class(copy.deepcopy(ours_model).parameters(), **kwargs)
    back.load_state_dict(saved_and_loaded(ours.state_dict()))
    for p, q in zip(back.param_groups[0]["params"], ours_model.parameters()):
        assert {k for k in back.state[p] if k in slots} == {k for k in ours.state[q] if k in slots} != set()
        for key in back.state[p]:
            assert torch.equal(back.state[p][key], ours.state[q][key]), key

    fresh_model = copy.deepcopy(model)
    fresh = getattr(at, name)(fresh_model.parameters(), **kwargs)
    for target, optimizer in ((model, theirs), (ours_model, ours), (fresh_model, fresh)):
        fit(target, optimizer, batches("mlp", torch.float32, 5, seed=3))
    loaded_error = rel_error(flat(ours_model), flat(model))
    assert loaded_error <= TOL[torch.float32]
    assert rel_error(flat(fresh_model), flat(model)) > 10 * max(loaded_error, 1e-7)  # the state mattered


@pytest.mark.parametrize("name", [*REFERENCES, "Muon"])
def test_parameters_off_the_cpu_float_buffers_are_refused(name):
    kwargs = MUON if name == "Muon" else REFERENCES[name][1]
    cls = getattr(at, name)
    with pytest.raises(TypeError, match="CPU float32/float64"):
        cls([torch.zeros(3, 2, dtype=torch.float16, requires_grad=True)], **kwargs)
    bf16 = [torch.zeros(3, 2, dtype=torch.bfloat16, requires_grad=True)]
    if cls._core_class._LOW_PRECISION:  # Lion's update is elementwise: bf16 parameters are the core's (lowp)
        assert cls(bf16, **kwargs)._bound
    else:
        with pytest.raises(TypeError, match="CPU float32/float64"):
            cls(bf16, **kwargs)
    with pytest.raises(RuntimeError, match=f"{name} does not support complex parameters"):  # torch's words
        cls([torch.zeros(3, 2, dtype=torch.complex64, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match="engine"):
        cls([torch.zeros(3, 2, requires_grad=True)], engine="torch", **kwargs)
    model = mlp(torch.float32)
    opt = cls(model.parameters(), **kwargs)
    model.double()
    model.zero_grad()
    with pytest.raises(TypeError, match="moved to"):
        loss_fn(model, *next(batches("mlp", torch.float64, 1))).backward()
        opt.step()


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (at.Lion, dict(decoupled_weight_decay=True), "decoupled_weight_decay=True is not supported"),
        (at.Lion, dict(use_triton=True), "use_triton=True is not supported"),
        (at.Lion, dict(betas=(0.9, 1.5)), "betas"),
        (at.LAMB, dict(max_grad_norm=-1.0), "max_grad_norm"),
        (at.LAMB, dict(n_sma_threshold=-1), "n_sma_threshold"),
        (at.Adafactor, dict(d=0.5), "Clipping threshold d"),
        (at.Muon, dict(adjust_lr_fn="mine"), "(?i)adjust"),
        (at.Muon, dict(adamw_eps=-1.0), "adamw_eps"),
        (at.ScheduleFreeAdamW, dict(warmup_steps=-1), "warmup_steps"),
    ],
)
def test_bad_arguments_are_refused_naming_them(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(mlp(torch.float32).parameters(), **kwargs)


@pytest.mark.parametrize(
    "options",
    [dict(rectify=True, n_sma_threshold=4), dict(pre_norm=True, max_grad_norm=0.5, weight_decouple=False),
     dict(rectify=True, degenerated_to_sgd=True, grad_averaging=False, adam=True, maximize=True)],
    ids=["rectify", "pre_norm", "degenerated"],
)  # fmt: skip
def test_lamb_options_match_the_reference(options):
    kwargs = {**REFERENCES["LAMB"][1], **options}
    ours_model = mlp(torch.float64)
    ref_model = copy.deepcopy(ours_model)
    sign = -1.0 if options.get("maximize") else 1.0
    for model, opt in ((ours_model, at.LAMB(ours_model.parameters(), **kwargs)),
                       (ref_model, pytorch_optimizer.Lamb(ref_model.parameters(), **kwargs))):  # fmt: skip
        for x, y in batches("mlp", torch.float64, 30):
            model.zero_grad()
            (sign * loss_fn(model, x, y)).backward()
            opt.step()
    assert rel_error(flat(ours_model), flat(mlp(torch.float64))) > 1e-3
    # pre_norm: the reference forms its clipping factor in float32 (tests/registry.py, "lamb-pre-norm")
    assert rel_error(flat(ours_model), flat(ref_model)) <= (1e-6 if options.get("pre_norm") else TOL[torch.float64])
