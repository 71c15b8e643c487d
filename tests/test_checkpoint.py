"""adamkit.save / adamkit.load: bit-exact resume for every optimizer, and every kind of damage refused with its own
error class, the optimizer left bytewise unchanged, no pickle ever run."""

from __future__ import annotations

import copy
import json
import pickle
import random
import zipfile

import numpy as np
import pytest
from conftest import build, grad_stream, make_params
from registry import CASES

import adamkit
from adamkit import checkpoint, schedules


def snapshot(opt) -> tuple:
    """Everything a load could change: parameter bytes, state (steps, slots, host scalars), groups, schedule."""
    sd = opt.state_dict()
    params = {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in opt.params.items()}
    state = {
        name: {k: (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else repr(v) for k, v in e.items()}
        for name, e in sd["state"].items()
    }
    return params, state, repr(sd["param_groups"]), repr(sd.get("schedule"))


def fresh_like(case, dtype, groups, engine, seed=7):
    params = make_params(dtype, seed=seed)
    return build(case, params, engine=engine, groups=groups)


@pytest.mark.parametrize("engine", ["fused", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_save_load_resume_is_bit_for_bit(case, dtype, engine, tmp_path):
    """Save mid-run, load into a fresh optimizer over different values, continue both: identical bytes."""
    params = make_params(dtype)
    opt = build(case, params, engine=engine, groups=case.groups)
    grads = list(grad_stream(params, 12))
    for g in grads[:6]:
        opt.step(g)
    adamkit.save(tmp_path / "ckpt.npz", opt)
    other = fresh_like(case, dtype, case.groups, engine)
    adamkit.load(tmp_path / "ckpt.npz", other)
    assert snapshot(other) == snapshot(opt)
    for g in grads[6:]:
        opt.step(g)
        other.step(g)
    assert snapshot(other) == snapshot(opt)


def scheduled(engine="fused", dtype64=np.float64, seed=0, schedule=None):
    """NAdam (host scalars) over two groups, mixed dtypes in the first, a schedule with state of its own."""
    rng = np.random.default_rng(seed)
    first = {"w": rng.standard_normal((40, 3)), "h": rng.standard_normal(5).astype(np.float32), "s": np.array(0.5)}
    second = {"v": rng.standard_normal(9).astype(np.float32), "e": np.zeros((0, 2), np.float32)}
    opt = adamkit.NAdam([{"params": first}, {"params": second, "lr": 0.003}], lr=0.01, engine=engine)
    opt.schedule = schedule if schedule is not None else schedules.ReduceLROnPlateau(patience=1, factor=0.5)
    return opt


def grads_for(opt, t):
    rng = np.random.default_rng([3, t])
    return {name: rng.standard_normal(a.shape).astype(a.dtype) for name, a in opt.params.items()}


@pytest.mark.parametrize("engine", ["fused", "numpy"])
@pytest.mark.parametrize(
    "make_schedule",
    [
        lambda: schedules.ReduceLROnPlateau(patience=1, factor=0.5),
        lambda: schedules.CosineAnnealingWarmRestarts(T_0=3, T_mult=2),
        lambda: schedules.OneCycleLR(total_steps=20),
    ],
    ids=["plateau", "warm-restarts", "one-cycle"],
)
def test_schedules_groups_and_dtypes_resume(engine, make_schedule, tmp_path):
    opt = scheduled(engine, schedule=make_schedule())
    for t in range(7):
        opt.step(grads_for(opt, t))
        if isinstance(opt.schedule, schedules.ReduceLROnPlateau):
            opt.schedule.step(1.0)  # no improvement: the lr is lowered, the schedule's own state matters
    adamkit.save(tmp_path / "c.npz", opt)
    other = scheduled(engine, seed=1, schedule=make_schedule())
    adamkit.load(tmp_path / "c.npz", other)
    for t in range(7, 14):
        opt.step(grads_for(opt, t))
        other.step(grads_for(other, t))
    assert snapshot(other) == snapshot(opt)
    assert opt.param_groups[0]["lr"] == other.param_groups[0]["lr"]


def test_file_is_documented_npz_without_pickle(tmp_path):
    opt = scheduled()
    opt.step(grads_for(opt, 0))
    adamkit.save(tmp_path / "c.npz", opt)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:  # numpy itself reads it, no pickle allowed
        arrays = {k: npz[k] for k in npz.files}
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        header = json.loads(z.read("header.json"))
    assert (header["format"], header["version"]) == ("adamkit-checkpoint", 1)
    assert header["layout"]["optimizer"] == "adamkit.optim.nadam.NAdam"
    assert header["layout"]["groups"][0][0] == ["w", [40, 3], "<f8"]
    assert arrays[header["params"]["h"]].tobytes() == opt.params["h"].tobytes()
    assert header["state_dict"]["state"]["w"]["step"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_save_over_an_existing_checkpoint_is_atomic(tmp_path, monkeypatch):
    """A save that fails half-way leaves the previous checkpoint intact and no temp file behind."""
    opt = scheduled()
    adamkit.save(tmp_path / "c.npz", opt)
    before = (tmp_path / "c.npz").read_bytes()
    opt.step(grads_for(opt, 0))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_write_footer", broken)
    with pytest.raises(OSError, match="disk full"):
        adamkit.save(tmp_path / "c.npz", opt)
    assert (tmp_path / "c.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


# ------------------------------------------------------------------------------------------ tampering
@pytest.fixture
def saved(tmp_path):
    """A checkpoint of a trained optimizer, and a second optimizer (trained differently) to load it into."""
    source = scheduled()
    for t in range(4):
        source.step(grads_for(source, t))
    path = tmp_path / "c.npz"
    adamkit.save(path, source)
    target = scheduled(seed=5)
    for t in range(2):
        target.step(grads_for(target, 100 + t))
    return path, target


def refused(path, opt, error):
    before = snapshot(opt)
    with pytest.raises(error) as info:
        adamkit.load(path, opt)
    assert snapshot(opt) == before
    return info.value


def test_truncation_at_random_offsets(saved, tmp_path):
    path, opt = saved
    data = path.read_bytes()
    rng = random.Random(0)
    for cut in [0, 1, 30, len(data) - 1, len(data) - 64, *rng.sample(range(len(data)), 20)]:
        damaged = tmp_path / "cut.npz"
        damaged.write_bytes(data[:cut])
        refused(damaged, opt, checkpoint.CheckpointTruncatedError)


def test_single_bit_flips(saved, tmp_path):
    path, opt = saved
    data = path.read_bytes()
    rng = random.Random(1)
    offsets = [0, 3, len(data) - 1, len(data) - 64, len(data) - 40, *rng.sample(range(len(data)), 40)]
    for offset in offsets:
        flipped = bytearray(data)
        flipped[offset] ^= 1 << rng.randrange(8)
        damaged = tmp_path / "flip.npz"
        damaged.write_bytes(bytes(flipped))
        refused(damaged, opt, checkpoint.CheckpointCorruptError)


class Payload:
    """Unpickling this creates the marker file: proof that a load never unpickled anything."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_never_run(saved, tmp_path):
    path, opt = saved
    marker = tmp_path / "PWNED"
    Payload.marker = str(marker)
    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps({"state": Payload()}))
    pickle.loads(evil.read_bytes())["state"].close()  # the payload works when unpickled...
    assert marker.exists()
    marker.unlink()
    error = refused(evil, opt, checkpoint.CheckpointFormatError)
    assert "pickle" in str(error)
    assert not marker.exists()

    # An object array (pickled) inside an otherwise well-formed checkpoint with a valid footer: refused unread.
    inner = tmp_path / "inner.npz"
    with zipfile.ZipFile(path) as src, open(inner, "w+b") as f:
        with zipfile.ZipFile(f, "w") as z:
            for name in src.namelist():
                if name == "a0.npy":
                    with z.open(name, "w") as entry:
                        np.lib.format.write_array(entry, np.array([Payload()], dtype=object), allow_pickle=True)
                else:
                    z.writestr(name, src.read(name))
            z.comment = bytes(64)
        checkpoint._write_footer(f)
    error = refused(inner, opt, checkpoint.CheckpointFormatError)
    assert "allow_pickle" in str(error)
    assert not marker.exists()


def test_other_formats_and_versions(saved, tmp_path, monkeypatch):
    path, opt = saved
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(3))
    refused(plain, opt, checkpoint.CheckpointFormatError)
    monkeypatch.setattr(checkpoint, "VERSION", 2)
    adamkit.save(tmp_path / "v2.npz", scheduled())
    monkeypatch.setattr(checkpoint, "VERSION", 1)
    error = refused(tmp_path / "v2.npz", opt, checkpoint.CheckpointFormatError)
    assert "version 2" in str(error)


def test_layout_mismatches(saved, tmp_path):
    path, _ = saved
    rng = np.random.default_rng(0)

    def nadam(first, second=None, cls=adamkit.NAdam):
        groups = [{"params": first}] + ([{"params": second}] if second else [])
        opt = cls(groups, lr=0.01)
        opt.schedule = schedules.ReduceLROnPlateau()
        return opt

    def parts(**changes):
        first = {"w": rng.standard_normal((40, 3)), "h": np.ones(5, np.float32), "s": np.array(0.5)}
        second = {"v": np.ones(9, np.float32), "e": np.zeros((0, 2), np.float32)}
        for name, value in changes.items():
            (first if name in first else second)[name] = value
        return first, second

    wrong = {
        "optimizer type": nadam(*parts(), cls=adamkit.Adam),
        "shape": nadam(*parts(w=np.zeros((3, 40)))),
        "dtype": nadam(*parts(h=np.ones(5, np.float64))),
        "names": nadam({"w": np.zeros((40, 3)), "h2": np.ones(5, np.float32), "s": np.array(0.5)}, parts()[1]),
        "group count": nadam({**parts()[0], **parts()[1]}),
    }
    no_schedule = adamkit.NAdam([{"params": parts()[0]}, {"params": parts()[1]}], lr=0.01)
    wrong["schedule"] = no_schedule
    for what, opt in wrong.items():
        error = refused(path, opt, checkpoint.CheckpointLayoutError)
        assert str(path) in str(error), what


def test_error_classes_are_distinct_value_errors():
    classes = [
        checkpoint.CheckpointTruncatedError,
        checkpoint.CheckpointCorruptError,
        checkpoint.CheckpointFormatError,
        checkpoint.CheckpointLayoutError,
    ]
    for cls in classes:
        assert issubclass(cls, adamkit.CheckpointError) and issubclass(cls, ValueError)
        assert not any(issubclass(cls, other) for other in classes if other is not cls)


def test_load_refused_by_load_state_dict_changes_nothing(saved, tmp_path):
    """A checkpoint whose hyperparameters the optimizer refuses (written by a tampering program that recomputed
    every checksum) leaves the parameters untouched too."""
    path, opt = saved
    source = scheduled()
    sd = source.state_dict()
    sd["param_groups"][0]["lr"] = -1.0
    source.state_dict = lambda: copy.deepcopy(sd)  # type: ignore[method-assign]
    adamkit.save(tmp_path / "bad.npz", source)
    before = snapshot(opt)
    with pytest.raises(ValueError, match="lr"):
        adamkit.load(tmp_path / "bad.npz", opt)
    assert snapshot(opt) == before


def test_load_restores_the_callers_own_arrays(tmp_path):
    """Caller-owned parameters are restored in place: the arrays the caller holds are the restored ones."""
    params = {"w": np.arange(6.0).reshape(2, 3), "b": np.linspace(0, 1, 3).astype(np.float32)}
    opt = adamkit.Adam(params, lr=0.1)
    opt.step({"w": np.ones((2, 3)), "b": np.ones(3, np.float32)})
    adamkit.save(tmp_path / "c.npz", opt)
    mine = {"w": np.zeros((2, 3)), "b": np.ones(3, np.float32)}
    held = dict(mine)
    other = adamkit.Adam(mine, lr=0.1)
    adamkit.load(tmp_path / "c.npz", other)
    for name in params:
        assert mine[name] is held[name] and mine[name].tobytes() == params[name].tobytes()


def test_dezero_model_resumes_from_a_checkpoint(tmp_path):
    """A DeZero-style model (packed storage, ``.data`` rebound): after load the model's own arrays hold the
    restored values, and training continues bit for bit."""
    from test_dezero_frontend import Model, Variable

    def train(model, opt, steps, seed):
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            for p in model.params():
                p.grad = Variable(rng.standard_normal(p.data.shape))
            opt.update()

    model = Model()
    opt = adamkit.Adam(lr=0.01, convention="dezero").setup(model)
    train(model, opt, 5, 1)
    adamkit.save(tmp_path / "c.npz", opt)
    restored = Model(seed=9)
    again = adamkit.Adam(lr=0.01, convention="dezero").setup(restored)
    adamkit.load(tmp_path / "c.npz", again)
    train(model, opt, 5, 2)
    train(restored, again, 5, 2)
    for a, b in zip(model.params(), restored.params()):
        assert a.data.tobytes() == b.data.tobytes()
    assert snapshot(opt) == snapshot(again)


def test_adamkit_torch_optimizer_saves_and_resumes_bit_for_bit(tmp_path):
    """adamkit.save/load on an adamkit.torch optimizer (issue 10: "also for adamkit.torch"): a fresh model and
    optimizer loaded from the checkpoint continue exactly like the uninterrupted run."""
    import torch

    import adamkit.torch as at

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).double()

    def train(net, opt, steps, start):
        for k in range(start, start + steps):
            g = torch.Generator().manual_seed(k)
            x, y = torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randn(16, 2, generator=g).double()
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()

    net, other = model(), model()
    opt = at.Adam(net.parameters(), lr=0.01, weight_decay=0.01, amsgrad=True)
    train(net, opt, 5, 0)
    adamkit.save(tmp_path / "t.npz", opt)
    opt.param_groups[0]["lr"] = 0.5  # changed after the save: load must restore 0.01 into torch's groups too
    train(net, opt, 0, 5)
    opt.param_groups[0]["lr"] = 0.01
    resumed = at.Adam(other.parameters(), lr=0.3, amsgrad=True)
    adamkit.load(tmp_path / "t.npz", resumed)
    assert resumed.param_groups[0]["lr"] == 0.01 and resumed.param_groups[0]["weight_decay"] == 0.01
    train(net, opt, 5, 5)
    train(other, resumed, 5, 5)
    for a, b in zip(net.parameters(), other.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(opt.state.values(), resumed.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
