"""adamkit.torch under DistributedDataParallel and ZeroRedundancyOptimizer (2 gloo processes on 127.0.0.1),
and torch.distributed.checkpoint of model + optimizer."""

from __future__ import annotations

import copy
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch_models import batches, flat, loss_fn, mlp, rel_error

import adamkit.torch as at

STEPS, RESUME = 12, 6


def _global_batches():
    return list(batches("mlp", torch.float64, STEPS + RESUME))


def _train(model, opt, data, rank=None):
    for x, y in data:
        if rank is not None:  # this rank's half of the global batch; DDP averages the two halves' gradients
            x, y = x[rank * 16 : (rank + 1) * 16], y[rank * 16 : (rank + 1) * 16]
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        opt.step()


def _worker(rank: int, port: int, out: str) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    data = _global_batches()
    results = {}
    model = mlp(torch.float64)
    ddp = DDP(model)
    _train(ddp, at.Adam(ddp.parameters(), lr=0.01), data[:STEPS], rank)
    results["ddp"] = flat(model)

    model = mlp(torch.float64)
    ddp = DDP(model)
    zero = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=at.Adam, lr=0.01)
    _train(ddp, zero, data[:STEPS], rank)
    results["zero"] = flat(model)
    zero.consolidate_state_dict(to=0)
    saved = [zero.state_dict() if rank == 0 else None]
    dist.broadcast_object_list(saved, src=0)
    resumed_model = copy.deepcopy(model)
    resumed_ddp = DDP(resumed_model)
    resumed = ZeroRedundancyOptimizer(resumed_ddp.parameters(), optimizer_class=at.Adam, lr=0.5)
    resumed.load_state_dict(saved[0])
    _train(resumed_ddp, resumed, data[STEPS:], rank)
    results["zero_resumed"] = flat(resumed_model)
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_and_zero_on_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    data = _global_batches()
    expected = {}
    for steps, key in ((STEPS, "ddp"), (STEPS + RESUME, "zero_resumed")):
        model = mlp(torch.float64)
        _train(model, torch.optim.Adam(model.parameters(), lr=0.01), data[:steps])
        expected[key] = flat(model)
    expected["zero"] = expected["ddp"]
    for key, ref in expected.items():
        for r in ranks:
            assert rel_error(r[key], ref) <= 1e-10, key
    assert torch.equal(ranks[0]["zero"], ranks[1]["zero"])


def test_distributed_checkpoint_of_model_and_optimizer(tmp_path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    data = _global_batches()
    model = mlp(torch.float64)
    opt = at.NAdam(model.parameters(), lr=0.01)
    _train(model, opt, data[:STEPS])
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp_path))

    fresh_model = mlp(torch.float64, seed=5)
    fresh = at.NAdam(fresh_model.parameters(), lr=0.5)
    model_sd, optim_sd = get_state_dict(fresh_model, fresh)
    target = {"model": model_sd, "optim": optim_sd}
    dcp.load(target, checkpoint_id=str(tmp_path))
    set_state_dict(fresh_model, fresh, model_state_dict=target["model"], optim_state_dict=target["optim"])
    assert fresh.param_groups[0]["lr"] == 0.01
    _train(model, opt, data[STEPS:])
    _train(fresh_model, fresh, data[STEPS:])
    assert torch.equal(flat(fresh_model), flat(model))
