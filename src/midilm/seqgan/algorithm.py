"""Algorithm 1 of SeqGAN: MLE pre-training of the generator (through the one training loop),
discriminator pre-training, then adversarial batches of policy-gradient generator steps and
discriminator rounds.

The phases after MLE are a list of units: discriminator pre-training rounds ("dpre", k), and per
adversarial batch b its generator step ("g", b) then its discriminator rounds ("d", b, j). Every
random draw of a unit (negatives, their shuffle, dropout masks, roll-outs) comes from generators
seeded by (seed, task, unit), so a run resumed from a checkpoint after unit u continues exactly
as an uninterrupted run. Checkpoints (`midilm.train.checkpoint`: safetensors weights of the
generator, discriminator and delayed roll-out network, both Adam states, the RNG and the
learning curve) are written every `checkpoint_units` units and, on SIGTERM, after the current
unit, before raising `Preempted`. The MLE phase checkpoints through the loop itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from midilm.common.hashing import stable_json_hash
from midilm.common.io import atomic_path, read_json, write_json_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.seeding import derive_seed
from midilm.common.spec import as_dict
from midilm.seqgan.data import SequenceBatches
from midilm.seqgan.discriminator import Discriminator
from midilm.seqgan.lstm import SeqLSTM
from midilm.seqgan.rollout import RolloutPolicy, rollout_rewards
from midilm.specs.seqgan import DiscriminatorSpec, ScheduleSpec, SeqGANSpec
from midilm.specs.train import TrainSpec
from midilm.train.checkpoint import (
    CheckpointPolicy,
    clear,
    latest_step,
    load_latest,
    save_checkpoint,
)
from midilm.train.distributed import DistContext
from midilm.train.engine import make_engine
from midilm.train.loop import Preempted, train
from midilm.train.optim import make_optimizer

log = get_logger(__name__)

ALONE = DistContext()
CurvePoint = Callable[[SeqLSTM, str], dict[str, float]]  # (generator, point name) -> metrics
MLE_DONE, MLE_CURVE, MLE_PARTIAL = "mle.safetensors", "mle_curve.json", "mle_curve_partial.json"


@dataclass
class Task:
    """What differs between the oracle experiment and the music task."""

    name: str
    vocab: int
    length: int
    train: torch.Tensor  # [N, T] real sequences (MLE data and the discriminator's positives)
    valid: torch.Tensor  # [M, T] held-out sequences (the MLE loop's validation loss)
    mle_epochs: float
    discriminator: DiscriminatorSpec
    schedule: ScheduleSpec
    curve: CurvePoint  # a learning-curve point of a generator
    identity: dict[str, Any] = field(default_factory=dict)  # what else shapes the run


@dataclass
class Trained:
    """The generator at the three points the table compares, and the learning curve."""

    random: SeqLSTM  # as initialised (the paper's "random" row)
    mle: SeqLSTM  # after MLE pre-training
    seqgan: SeqLSTM  # after the adversarial batches
    curve: list[dict[str, Any]]
    seconds: dict[str, float]  # wall time per phase of this process (not of resumed parts)
    rollout_policy: str


def build_generator(spec: SeqGANSpec, task: Task, device: torch.device) -> SeqLSTM:
    g = spec.generator
    seeded = torch.Generator().manual_seed(derive_seed(spec.seed, task.name, "generator"))
    model = SeqLSTM(
        task.vocab, g.embedding, g.hidden, task.length, g.start_token, g.init_std, seeded
    )
    return model.to(device)


def build_discriminator(spec: SeqGANSpec, task: Task, device: torch.device) -> Discriminator:
    seeded = torch.Generator().manual_seed(derive_seed(spec.seed, task.name, "discriminator"))
    return Discriminator(task.vocab, task.length, task.discriminator, seeded).to(device)


def device_generator(device: torch.device, *parts: object) -> torch.Generator:
    """A generator on `device` seeded from `parts` (the one source of a unit's randomness)."""
    return torch.Generator(device=device).manual_seed(derive_seed(*parts) % 2**63)


def data_hash(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def mle_train_spec(spec: SeqGANSpec, task: Task) -> tuple[TrainSpec, int]:
    """The loop's spec of the MLE phase (steps = epochs x full batches per epoch, a validation
    and curve point every `curve_every_epochs` epochs) and the batches per epoch."""
    mle = spec.mle_for(task)
    per_epoch = len(task.train) // mle.batch_size
    if per_epoch < 1:
        raise ValueError(
            f"seqgan {task.name}: {len(task.train)} training sequences are fewer than one MLE "
            f"batch of {mle.batch_size}"
        )
    steps = max(1, round(task.mle_epochs * per_epoch))
    interval = max(1, task.schedule.curve_every_epochs * per_epoch)
    mle = dataclasses.replace(mle, steps=steps, epochs=None, eval_interval=interval)
    return mle, per_epoch


def train_seqgan(
    spec: SeqGANSpec,
    task: Task,
    work_dir: Path,
    device: torch.device,
    stop_requested: Callable[[], bool] = lambda: False,
) -> Trained:
    """Run Algorithm 1 for `task`, resuming from what `work_dir` holds (see module docstring)."""
    identity = {  # what shapes the trained networks (not observers, not checkpoint intervals)
        "seed": spec.seed,
        "generator": as_dict(spec.generator),
        "mle": spec.mle_for(task).identity(),
        "task": task.name,
        "discriminator": as_dict(task.discriminator),
        "schedule": as_dict(task.schedule),
        "identity": task.identity,
        "data": data_hash(task.train, task.valid),
        "device": device.type,
    }
    fingerprint = stable_json_hash(identity)
    seconds: dict[str, float] = {}
    random = build_generator(spec, task, device)
    start = time.perf_counter()
    first_point = {"phase": "mle", "epoch": 0.0, "step": 0, **task.curve(random, "mle-0")}
    generator, mle_curve = _mle_phase(spec, task, work_dir, device, fingerprint, stop_requested)
    mle_curve = [first_point, *mle_curve]
    seconds["mle"] = time.perf_counter() - start
    mle = build_generator(spec, task, device)
    mle.load_state_dict(generator.state_dict())
    adversarial = _Adversarial(spec, task, generator, work_dir, device, fingerprint)
    start = time.perf_counter()
    adversarial_curve = adversarial.run(stop_requested)
    seconds["adversarial"] = time.perf_counter() - start
    return Trained(
        random,
        mle,
        generator,
        mle_curve + adversarial_curve,
        seconds,
        rollout_policy_name(task.schedule.rollout_update_rate),
    )


def rollout_policy_name(rate: float) -> str:
    """How the roll-out policy ran, for metrics.json and T6."""
    if rate == 0:
        return (
            "live (update rate 0: the roll-out network is the current generator, as the "
            "reference code's graph computes)"
        )
    return (
        f"delayed (update rate {rate}: beta <- {rate} beta + {1 - rate:.2g} theta after each "
        "generator step, the reference code's update as written)"
    )


# --- MLE pre-training through the one loop ---------------------------------------------------


def _mle_phase(
    spec: SeqGANSpec,
    task: Task,
    work_dir: Path,
    device: torch.device,
    fingerprint: str,
    stop_requested: Callable[[], bool],
) -> tuple[SeqLSTM, list[dict[str, Any]]]:
    """The generator after MLE pre-training and its curve points; done once per work dir."""
    generator = build_generator(spec, task, device)
    done, curve_file = work_dir / MLE_DONE, work_dir / MLE_CURVE
    if (
        done.exists()
        and curve_file.exists()
        and read_json(curve_file)["fingerprint"] == fingerprint
    ):
        generator.load_state_dict(load_file(str(done), device=str(device)))
        log.info("seqgan %s: MLE pre-training already done (%s)", task.name, done)
        return generator, read_json(curve_file)["curve"]

    mle, per_epoch = mle_train_spec(spec, task)
    batches = SequenceBatches(
        task.train,
        task.valid,
        mle.batch_size,
        mle.eval_batches,
        spec.seed,
        spec.generator.start_token,
    )
    policy = None
    if mle.checkpoint_interval > 0:
        policy = CheckpointPolicy(
            work_dir / "mle_checkpoints", mle.checkpoint_interval, fingerprint
        )
    resumed = latest_step(policy)
    partial = work_dir / MLE_PARTIAL
    curve: list[dict[str, Any]] = []
    if resumed and partial.exists() and read_json(partial)["fingerprint"] == fingerprint:
        curve = [row for row in read_json(partial)["curve"] if row["step"] <= resumed]

    def point(val_loss: float) -> dict[str, float]:
        """Called by the loop at each evaluation: a curve point of the generator training."""
        step = len(curve) and curve[-1]["step"]
        step = _next_curve_step(step, mle.eval_interval, mle.steps)
        metrics = task.curve(generator, f"mle-{step}")
        curve.append({"phase": "mle", "epoch": step / per_epoch, "step": step,
                      "val_loss": val_loss, **metrics})  # fmt: skip
        write_json_atomic(partial, {"fingerprint": fingerprint, "curve": curve})
        return {"val/loss": val_loss, **{f"val/{k}": v for k, v in metrics.items()}}

    engine = make_engine("single", generator, mle, ALONE, device, "fp32")
    train(
        engine,
        batches,
        mle,
        ALONE,
        checkpoint=policy,
        stop_requested=stop_requested,
        val_metrics=point,
        desc=f"seqgan {task.name} MLE",
    )
    with atomic_path(done) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()},
                  str(tmp))  # fmt: skip
    write_json_atomic(curve_file, {"fingerprint": fingerprint, "curve": curve})
    if policy is not None:
        clear(policy)
    partial.unlink(missing_ok=True)
    return generator, curve


def _next_curve_step(previous: int, interval: int, steps: int) -> int:
    """The loop evaluates every `interval` steps and at the last step."""
    return min(previous - previous % interval + interval, steps)


# --- discriminator training -------------------------------------------------------------------


def train_discriminator(
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    spec: DiscriminatorSpec,
    epochs: int,
    shuffle: torch.Generator,
) -> dict[str, float]:
    """`epochs` epochs over positives (real) and negatives (generated), shuffled once as in the
    reference, in full batches; the last epoch's mean loss and accuracy."""
    tokens = torch.cat([positives, negatives.to(positives.device)])
    labels = torch.cat(
        [
            torch.ones(len(positives), dtype=torch.long),
            torch.zeros(len(negatives), dtype=torch.long),
        ]
    ).to(positives.device)
    order = torch.randperm(len(tokens), generator=shuffle, device=shuffle.device)
    order = order.to(positives.device)
    tokens, labels = tokens[order], labels[order]
    batches = len(tokens) // spec.batch_size
    discriminator.train()
    loss_sum = correct = 0.0
    for _ in range(epochs):
        loss_sum = correct = 0.0
        for i in range(batches):
            part = slice(i * spec.batch_size, (i + 1) * spec.batch_size)
            logits = discriminator(tokens[part])
            loss = discriminator.loss(logits, labels[part], spec.l2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach())
            correct += float((logits.argmax(-1) == labels[part]).sum())
    seen = max(batches * spec.batch_size, 1)
    return {"d_loss": loss_sum / max(batches, 1), "d_accuracy": correct / seen}


def discriminator_optimizer(
    discriminator: Discriminator, spec: DiscriminatorSpec
) -> torch.optim.Adam:
    """Adam (TensorFlow's defaults: betas 0.9/0.999, eps 1e-8) at `spec.lr`, no clipping."""
    return torch.optim.Adam(discriminator.parameters(), lr=spec.lr, betas=(0.9, 0.999), eps=1e-8)


def policy_gradient_step(
    generator: SeqLSTM,
    optimizer: torch.optim.Optimizer,
    sequences: torch.Tensor,
    rewards: torch.Tensor,
    grad_clip: float,
) -> float:
    """One REINFORCE step: loss -sum(log p(x_t | x_<t) x reward_t) over batch and time (the
    reference's sum, not a mean), gradients clipped to global norm `grad_clip`."""
    generator.train()
    loss = -(generator.token_log_probs(sequences) * rewards.detach()).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(generator.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


# --- the adversarial phase --------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    kind: str  # "dpre" | "g" | "d"
    index: int  # pre-training round, or adversarial batch
    round: int = 0  # discriminator round within an adversarial batch


def units(schedule: ScheduleSpec) -> list[Unit]:
    plan = [Unit("dpre", k) for k in range(schedule.d_pretrain_rounds)]
    for b in range(schedule.adversarial_batches):
        plan.append(Unit("g", b))
        plan += [Unit("d", b, j) for j in range(schedule.d_rounds)]
    return plan


class _CheckpointState:
    """The adversarial phase as a `midilm.train.checkpoint.CheckpointEngine`: the networks as
    one module, both optimizers' states."""

    def __init__(self, module: torch.nn.Module, device: torch.device,
                 optimizers: dict[str, torch.optim.Optimizer]) -> None:  # fmt: skip
        self.module, self.device, self.optimizers = module, device, optimizers

    def checkpoint_state(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def save_shard(self, directory: Path, rank: int) -> None:
        """One process: nothing per rank."""

    def load_checkpoint(self, state: dict[str, Any] | None, directory: Path, rank: int) -> None:
        if not state or set(state) != set(self.optimizers):
            raise ValueError(f"{directory}: not a SeqGAN adversarial checkpoint; delete it")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


CURVE_KEYS = ("phase", "epoch", "step", "adversarial_batch")


class _Adversarial:
    def __init__(self, spec: SeqGANSpec, task: Task, generator: SeqLSTM, work_dir: Path,
                 device: torch.device, fingerprint: str) -> None:  # fmt: skip
        self.spec, self.task, self.device = spec, task, device
        self.schedule = task.schedule
        self.generator = generator
        self.discriminator = build_discriminator(spec, task, device)
        self.rollout = RolloutPolicy(generator, self.schedule.rollout_update_rate)
        self.g_opt = make_optimizer(generator, spec.mle_for(task))
        self.d_opt = discriminator_optimizer(self.discriminator, task.discriminator)
        nets = {"generator": generator, "discriminator": self.discriminator}
        if self.rollout.delayed is not None:
            nets["rollout"] = self.rollout.delayed
        self.state = _CheckpointState(
            torch.nn.ModuleDict(nets), device, {"g_opt": self.g_opt, "d_opt": self.d_opt}
        )
        self.policy = CheckpointPolicy(
            work_dir / "adversarial_checkpoints", max(spec.checkpoint_units, 1), fingerprint
        )
        self.positives = task.train.to(device)
        self.plan = units(self.schedule)
        self.curve_rows: list[list[Any]] = []
        self.mle_epochs = task.mle_epochs

    def run(self, stop_requested: Callable[[], bool]) -> list[dict[str, Any]]:
        start = 0
        resumed = load_latest(self.policy, self.state, ALONE)
        if resumed is not None:
            start, self.curve_rows = resumed.step, resumed.rows
        bar = tqdm(range(start, len(self.plan)), initial=start, total=len(self.plan),
                   desc=f"seqgan {self.task.name} adversarial", disable=progress_disabled(),
                   dynamic_ncols=True)  # fmt: skip
        since_save = 0
        for position in bar:
            info = self._run_unit(self.plan[position])
            bar.set_postfix(info)
            done, since_save = position + 1, since_save + 1
            stopping = stop_requested()
            if done < len(self.plan) and (stopping or since_save >= self.policy.interval):
                save_checkpoint(self.policy, self.state, ALONE, done, self.curve_rows, 0, 0.0,
                                float("nan"))  # fmt: skip
                since_save = 0
            if stopping and done < len(self.plan):
                raise Preempted(done)
        return [self._curve_dict(row) for row in self.curve_rows]

    def _curve_dict(self, row: list[Any]) -> dict[str, Any]:
        keys, values = row[0], row[1]
        return dict(zip(keys, values, strict=True))

    def _seed(self, unit: Unit, purpose: str) -> torch.Generator:
        return device_generator(self.device, self.spec.seed, self.task.name, unit.kind,
                                unit.index, unit.round, purpose)  # fmt: skip

    def _negatives(self, unit: Unit) -> torch.Tensor:
        count = self.schedule.negatives or len(self.positives)
        return self.generator.sample(count, self._seed(unit, "negatives"))

    def _run_unit(self, unit: Unit) -> dict[str, Any]:
        if unit.kind == "g":
            return self._generator_step(unit)
        negatives = self._negatives(unit)
        positives = self.positives
        if len(negatives) < len(positives):  # a budget round: as many real as generated
            order = torch.randperm(len(positives), generator=self._seed(unit, "positives"),
                                   device=self.device)  # fmt: skip
            positives = positives[order[: len(negatives)]]
        torch.manual_seed(derive_seed(self.spec.seed, self.task.name, unit.kind, unit.index,
                                      unit.round, "dropout"))  # fmt: skip
        result = train_discriminator(
            self.discriminator,
            self.d_opt,
            positives,
            negatives,
            self.task.discriminator,
            self.schedule.d_epochs,
            self._seed(unit, "shuffle"),
        )
        return {k: round(v, 4) for k, v in result.items()}

    def _generator_step(self, unit: Unit) -> dict[str, Any]:
        loss = 0.0
        for step in range(self.schedule.g_steps):
            sequences = self.generator.sample(
                self.schedule.g_batch_size, self._seed(unit, f"sample-{step}")
            )
            rewards = rollout_rewards(
                self.rollout.net,
                self.discriminator,
                sequences,
                self.schedule.rollouts,
                self._seed(unit, f"rollout-{step}"),
                self.schedule.rollout_rows,
                self.schedule.score_tokens,
            )
            loss = policy_gradient_step(
                self.generator, self.g_opt, sequences, rewards, self.spec.mle.grad_clip
            )
        last = self.schedule.adversarial_batches - 1
        if unit.index % self.schedule.curve_every_batches == 0 or unit.index == last:
            metrics = self.task.curve(self.generator, f"adversarial-{unit.index}")
            row = {"phase": "adversarial", "epoch": self.mle_epochs + unit.index + 1,
                   "step": unit.index + 1, "adversarial_batch": unit.index, **metrics}  # fmt: skip
            self.curve_rows.append([list(row), list(row.values())])
        self.rollout.update()
        return {"g_loss": round(loss, 3)}
