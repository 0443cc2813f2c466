"""Monte-Carlo roll-outs: the reward of every prefix of generated sequences.

For a sequence x of length T and each prefix length g = 1..T-1, `rollouts` completions are
sampled by the roll-out policy from the state it reached after reading x_0..x_{g-1}, and the
reward of token g-1 is the mean of the discriminator's P(real) over them; the reward of the last
token is P(real) of x itself (as in the reference code).

Batched: one teacher-forced pass gives the carried state after every prefix; the completions of
all prefixes (x rollouts x batch) then advance together, position by position, each starting
from its prefix's carried state (rows sorted by prefix length, so the rows active at position t
are the first ones). Nothing is re-run from the first token. Prefixes are taken in chunks of at
most `max_rows` sequences, so memory grows linearly with the sequence length (the time, with
T(T-1)/2 sampled tokens per sequence and roll-out, quadratically).

The roll-out policy: the reference code's roll-out class is written to update its parameters as
beta <- rate x beta + (1 - rate) x theta after each generator step (rate 0.8, the embedding
copied outright), but its roll-out graph reads the generator's live variables, so in effect it
always equals the current generator. `update_rate` 0 gives that live behaviour exactly.
"""

from __future__ import annotations

import copy

import torch

from midilm.seqgan.discriminator import Discriminator
from midilm.seqgan.lstm import SeqLSTM


class RolloutPolicy:
    """The roll-out network: the generator itself (`update_rate` 0, live) or a delayed copy."""

    def __init__(self, generator: SeqLSTM, update_rate: float) -> None:
        self.generator, self.update_rate = generator, update_rate
        self.delayed: SeqLSTM | None = None
        if update_rate > 0:
            self.delayed = copy.deepcopy(generator).requires_grad_(False)

    @property
    def live(self) -> bool:
        return self.delayed is None

    @property
    def net(self) -> SeqLSTM:
        return self.generator if self.delayed is None else self.delayed

    @torch.no_grad()
    def update(self) -> None:
        """After a generator step: the embedding copied, every other weight moved to
        rate x itself + (1 - rate) x the generator's."""
        if self.delayed is None:
            return
        for (name, mine), theirs in zip(
            self.delayed.named_parameters(), self.generator.parameters(), strict=True
        ):
            if name == "embedding":
                mine.copy_(theirs)
            else:
                mine.mul_(self.update_rate).add_(theirs, alpha=1.0 - self.update_rate)


@torch.no_grad()
def rollout_rewards(
    policy: SeqLSTM,
    discriminator: Discriminator,
    sequences: torch.Tensor,
    rollouts: int,
    generator: torch.Generator,
    max_rows: int,
    score_tokens: int,
) -> torch.Tensor:
    """Rewards [B, T] of `sequences` [B, T] (see the module docstring)."""
    batch, length = sequences.shape
    rewards = torch.empty(batch, length, device=sequences.device)
    rewards[:, -1] = discriminator.real_probability(sequences, score_tokens)
    if length < 2:
        return rewards
    # carried state after reading the start token and x_0..x_{g-1}: index g of the pass
    hs, cs = policy.hidden_states(policy.inputs_of(sequences))
    per_prefix = rollouts * batch
    prefixes_per_chunk = max(1, max_rows // per_prefix)
    for first in range(1, length, prefixes_per_chunk):
        prefixes = range(first, min(first + prefixes_per_chunk, length))
        completed = complete_prefixes(policy, sequences, hs, cs, prefixes, rollouts, generator)
        scores = discriminator.real_probability(completed, score_tokens)
        scores = scores.view(len(prefixes), rollouts, batch).mean(dim=1)  # [G, B]
        for i, g in enumerate(prefixes):
            rewards[:, g - 1] = scores[i]
    return rewards


def complete_prefixes(
    policy: SeqLSTM,
    sequences: torch.Tensor,
    hs: torch.Tensor,
    cs: torch.Tensor,
    prefixes: range,
    rollouts: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Completions [G x rollouts x B, T] of `sequences` after each prefix length in `prefixes`
    (ascending), all advancing together from their carried states."""
    batch, length = sequences.shape
    per_prefix = rollouts * batch
    rows = len(prefixes) * per_prefix
    out = sequences.repeat(len(prefixes) * rollouts, 1)  # row (g, r, b) = sequence b
    h = hs.new_empty(rows, hs.size(-1))
    c = cs.new_empty(rows, cs.size(-1))
    active = 0
    for t in range(prefixes[0], length):
        if t in prefixes:  # prefix g = t joins: its rows start from the carried state
            joining = slice(active, active + per_prefix)
            h[joining] = hs[:, t].repeat(rollouts, 1)
            c[joining] = cs[:, t].repeat(rollouts, 1)
            active += per_prefix
        token = policy.next_tokens(h[:active], generator)
        out[:active, t] = token
        if t + 1 < length:
            h[:active], c[:active] = policy.cell(policy.embedding[token], (h[:active], c[:active]))
    return out
