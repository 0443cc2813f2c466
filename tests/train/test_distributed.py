"""Ranks from torchrun or srun, strategy checks, per-rank batches and precision choices."""

from __future__ import annotations

import pytest
import torch

from midilm.common.paths import Layout
from midilm.models import build_model
from midilm.train.data import load_stream, random_batch
from midilm.train.distributed import (
    DistContext,
    _rendezvous_env,
    all_gather_tensor,
    all_reduce_sum,
    check_strategy,
    dist_context,
)
from midilm.train.engine import bucket_size, enable_gradient_checkpointing, make_engine
from midilm.train.precision import resolve_precision
from tests.conftest import train_spec_for

TINY_MODEL = {"family": "gpt2", "context": 16, "n_layer": 1, "n_embd": 8, "n_head": 2}


def test_torchrun_variables_win_over_slurm() -> None:
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "SLURM_PROCID": "3"}
    assert dist_context(env) == DistContext(rank=1, world_size=4, local_rank=1)


def test_srun_variables() -> None:
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}
    ctx = dist_context(env)
    assert (ctx.rank, ctx.world_size, ctx.local_rank) == (5, 8, 1)
    assert not ctx.is_main and ctx.distributed


def test_no_launcher_is_one_process() -> None:
    ctx = dist_context({})
    assert ctx == DistContext() and ctx.is_main and not ctx.distributed


def test_rank_outside_world_is_an_error() -> None:
    with pytest.raises(ValueError, match="RANK/WORLD_SIZE"):
        dist_context({"RANK": "2", "WORLD_SIZE": "2"})


def test_single_node_srun_gets_a_local_rendezvous() -> None:
    ctx = DistContext(1, 2, 1)
    env = _rendezvous_env(ctx, {"SLURM_NNODES": "1", "SLURM_JOB_ID": "1234"})
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == str(29500 + 1234)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("1", "2", "1")
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        _rendezvous_env(ctx, {"SLURM_NNODES": "2"})


def test_strategy_must_fit_the_launch() -> None:
    assert check_strategy("deepspeed", DistContext(0, 2, 0)) == "deepspeed"
    assert check_strategy("single", DistContext()) == "single"
    with pytest.raises(ValueError, match=r"train\.strategy=ddp or deepspeed"):
        check_strategy("single", DistContext(0, 2, 0))
    with pytest.raises(ValueError, match="conf/train"):
        check_strategy("fsdp", DistContext())


def test_collectives_alone_are_the_identity() -> None:
    assert all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    state = torch.get_rng_state()
    assert torch.equal(all_gather_tensor(state), state.unsqueeze(0))


def test_ranks_split_the_global_batch(packed_corpus: Layout) -> None:
    """Rank r takes the r-th slice of the batch one process with world x the batch draws."""
    tokens = load_stream(packed_corpus.packed_dir("remi") / "train", context=64)
    whole, _ = random_batch(tokens, 64, 8, seed=1, step=7, micro=1)
    parts = [random_batch(tokens, 64, 4, 1, 7, 1, rank=r, world_size=2)[0] for r in (0, 1)]
    assert not torch.equal(parts[0], parts[1])
    assert torch.equal(torch.cat(parts), whole)
    alone, _ = random_batch(tokens, 64, 4, seed=1, step=7, micro=1)
    assert torch.equal(alone, parts[0])  # one process draws exactly what it drew before


def test_precision_auto_is_fp32_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match=r"train\.precision"):
        resolve_precision("fp16", cpu)


def test_deepspeed_bf16_needs_a_gpu() -> None:
    model = build_model(TINY_MODEL, 50, 0, 1, 2)
    cfg = train_spec_for(batch_size=2, grad_accum=1, grad_clip=1.0)
    with pytest.raises(ValueError, match="needs a GPU"):
        make_engine("deepspeed", model, cfg, DistContext(), torch.device("cpu"), "bf16")


def test_gradient_checkpointing_is_switched_on() -> None:
    model = build_model(TINY_MODEL, 50, 0, 1, 2)
    assert enable_gradient_checkpointing(model)
    assert model.is_activation_checkpointing


def test_deepspeed_buckets_fit_the_model() -> None:
    model = build_model(TINY_MODEL, 50, 0, 1, 2)
    assert bucket_size(model) == 2**20
    assert bucket_size(model, cap=1000) == 1000
