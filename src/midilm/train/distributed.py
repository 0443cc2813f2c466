"""Processes of one training run: rank and world size from torchrun or srun, the process group,
and the few collectives the loop needs (all on plain tensors; nothing is pickled).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Under `srun` (no torchrun)
they come from SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID; MASTER_ADDR/MASTER_PORT must then be
exported by the batch script, except on a single node, where 127.0.0.1 and a port derived from the
job id are used. Without either, the run is one process and no process group is created.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from midilm.common.logging import get_logger

log = get_logger(__name__)

STRATEGIES = ("single", "ddp", "deepspeed")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: `rank` of `world_size`, `local_rank` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes outputs, logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_context(environ: Mapping[str, str] = os.environ) -> DistContext:
    """The rank, world size and local rank that torchrun or srun gave this process."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local = int(environ.get("LOCAL_RANK", rank))
    elif "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
        rank, world = int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"])
        local = int(environ.get("SLURM_LOCALID", rank))
    else:
        return DistContext()
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world size {world}: check RANK/WORLD_SIZE")
    return DistContext(rank, world, local)


def check_strategy(strategy: str, ctx: DistContext) -> str:
    """`strategy` if it fits the launch; several processes need ddp or deepspeed."""
    if strategy not in STRATEGIES:
        raise ValueError(f"train.strategy={strategy!r}; use one of {STRATEGIES} (conf/train)")
    if strategy == "single" and ctx.distributed:
        raise ValueError(
            f"train.strategy=single but {ctx.world_size} processes were launched; set "
            "train.strategy=ddp or deepspeed, or launch one process"
        )
    return strategy


def _rendezvous_env(ctx: DistContext, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE for `init_method=env://` (filled in under srun)."""
    env = {"RANK": str(ctx.rank), "WORLD_SIZE": str(ctx.world_size)}
    env["LOCAL_RANK"] = str(ctx.local_rank)
    addr, port = environ.get("MASTER_ADDR"), environ.get("MASTER_PORT")
    if addr is None or port is None:
        single_node = environ.get("SLURM_NNODES", "1") == "1"
        if not single_node:
            raise RuntimeError(
                "MASTER_ADDR/MASTER_PORT are not set for a multi-node run: export them in the "
                "batch script (the first host of SLURM_JOB_NODELIST and a free port)"
            )
        addr = addr or "127.0.0.1"
        port = port or str(29500 + int(environ.get("SLURM_JOB_ID", "0")) % 20000)
    env["MASTER_ADDR"], env["MASTER_PORT"] = addr, port
    return env


@contextlib.contextmanager
def process_group(ctx: DistContext, device: torch.device, required: bool = False) -> Iterator[None]:
    """Join the run's process group (gloo on CPU, nccl on GPU) for the block.

    Alone it is a no-op unless `required` (DeepSpeed wants a group even for one process: then a
    one-process group on a free local port). The rendezvous variables are restored afterwards.
    """
    if dist.is_initialized() or not (ctx.distributed or required):
        yield
        return
    env = _rendezvous_env(ctx)
    if not ctx.distributed and "MASTER_PORT" not in os.environ:
        env["MASTER_ADDR"], env["MASTER_PORT"] = "127.0.0.1", str(free_port())
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(
            backend, init_method="env://", timeout=datetime.timedelta(minutes=30)
        )
        log.info("rank %d of %d joined the %s process group", ctx.rank, ctx.world_size, backend)
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_port() -> int:
    """A TCP port free on this host now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    if _active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks, in float64 (the values themselves when alone)."""
    if not _active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def all_gather_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """[world, *tensor.shape]: every rank's `tensor` (same shape and dtype on each) by rank."""
    if not _active():
        return tensor.unsqueeze(0).clone()
    local = tensor.to(_comm_device()).contiguous()
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local)
    return torch.stack([p.cpu() for p in parts])


def barrier() -> None:
    if _active():
        dist.barrier()
