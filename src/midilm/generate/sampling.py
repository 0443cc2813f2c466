"""The one sampling loop, for every family and for fine-tuned LLMs: autoregressive sampling of a
batch of sequences over each family's cache or state.

Per step: logits, presence and frequency penalties on the tokens each sequence generated so far
(RWKV's sampler, seed 001: logits -= presence + count x frequency; every count is multiplied by
`alpha_decay` after each step), temperature, top-k, top-p, one draw per sequence from its own
`torch.Generator` on the CPU, so a seed gives the same tokens whatever device ran the model and
whether the sequence was sampled alone or in a batch. A sequence stops at its end token, at
`max_new_tokens`, or when `done(ids)` says it is long enough (checked every `check_every`
tokens; end tokens are masked until then).

Attention models (gpt2, mistral, llama) decode over a KV cache; when it fills the context, the
last half of each sequence is re-encoded and generation goes on (chunked continuation).
Recurrent models (mamba, rwkv6) carry a fixed-size state and have no context limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from midilm.models.incremental import forward_with_cache, is_recurrent, model_context


@dataclass(frozen=True)
class Sampling:
    """How each next token is drawn (the sampling part of `midilm.specs.GenerateSpec`)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    alpha_decay: float = 1.0


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Logits [..., vocab] with every id outside the top-k and the top-p nucleus set to -inf."""
    logits = logits.clone()
    if top_k and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of the more likely ids
        remove = before >= top_p  # the most likely id always stays
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(remove, float("-inf")))
    return logits


class Penalties:
    """Decaying counts of the tokens each sequence generated (RWKV's `occurrence`)."""

    def __init__(self, batch: int, vocab: int, sampling: Sampling) -> None:
        self.sampling = sampling
        self.counts = torch.zeros(batch, vocab, dtype=torch.float64)
        self.seen = torch.zeros(batch, vocab, dtype=torch.bool)

    @property
    def active(self) -> bool:
        return bool(self.sampling.presence_penalty or self.sampling.frequency_penalty)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return logits
        s = self.sampling
        penalty = s.presence_penalty * self.seen + s.frequency_penalty * self.counts
        return logits - penalty.to(logits.dtype)

    def update(self, tokens: Sequence[int]) -> None:
        self.counts *= self.sampling.alpha_decay
        rows = torch.arange(len(tokens))
        index = torch.as_tensor(list(tokens))
        self.counts[rows, index] += 1.0
        self.seen[rows, index] = True


def sample_rows(
    logits: torch.Tensor, generators: Sequence[torch.Generator], sampling: Sampling
) -> list[int]:
    """One id per row of `logits` [B, vocab], each from its own generator; temperature 0: greedy."""
    logits = logits.detach().float().cpu()
    if sampling.temperature <= 0:
        return [int(i) for i in torch.argmax(logits, dim=-1)]
    probs = torch.softmax(
        filter_logits(logits / sampling.temperature, sampling.top_k, sampling.top_p), dim=-1
    )
    return [
        int(torch.multinomial(p, 1, generator=g)) for p, g in zip(probs, generators, strict=True)
    ]


def sample_next(
    logits: torch.Tensor, generator: torch.Generator, sampling: Sampling = Sampling()
) -> int:
    """One id drawn from `logits` [vocab]."""
    return sample_rows(logits.unsqueeze(0), [generator], sampling)[0]


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    end_id: int | None = None,
    context: int | None = None,
    done: Callable[[int, list[int]], bool] | None = None,
    check_every: int = 32,
) -> list[list[int]]:
    """New ids after each prompt (the end token included when drawn), at most `max_new_tokens`.

    Prompts of equal length are sampled together in one batch (the same tokens as one at a
    time); other lengths go in batches of their own. `context` (default: the model's position
    table) bounds what an attention model reads; recurrent models read the whole prompt.
    `done(row, new_ids)` (e.g. "the music lasts 30 s") ends row `row` early; until it does,
    `end_id` is never drawn for that row.
    """
    if len(prompts) != len(generators):
        raise ValueError(f"{len(prompts)} prompts but {len(generators)} generators")
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one id (e.g. BOS)")
    results: list[list[int]] = [[] for _ in prompts]
    by_length: dict[int, list[int]] = {}
    for row, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(row)
    for rows in by_length.values():
        outputs = _generate_batch(
            model,
            [prompts[r] for r in rows],
            [generators[r] for r in rows],
            max_new_tokens,
            sampling,
            end_id,
            context,
            None if done is None else (lambda i, ids, rows=rows: done(rows[i], ids)),
            check_every,
        )
        for row, new in zip(rows, outputs, strict=True):
            results[row] = new
    return results


def generate_ids(
    model: torch.nn.Module,
    prompt: Sequence[int],
    max_new_tokens: int,
    generator: torch.Generator,
    sampling: Sampling = Sampling(),
    end_id: int | None = None,
    context: int | None = None,
) -> list[int]:
    """`generate` for one prompt."""
    return generate(model, [prompt], [generator], max_new_tokens, sampling, end_id, context)[0]


def _generate_batch(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator],
    max_new_tokens: int,
    sampling: Sampling,
    end_id: int | None,
    context: int | None,
    done: Callable[[int, list[int]], bool] | None,
    check_every: int,
) -> list[list[int]]:
    window = None if is_recurrent(model) else (context or model_context(model))
    device = next(model.parameters()).device
    sequences = [[int(i) for i in p] for p in prompts]
    new: list[list[int]] = [[] for _ in prompts]
    finished = [False] * len(prompts)
    reached = [done is None] * len(prompts)  # may the row end at its end token yet?
    logits, cache, cached = _encode(model, [_tail(s, window) for s in sequences], device)
    penalties = Penalties(len(prompts), logits.size(-1), sampling)
    for step in range(max_new_tokens):
        logits = penalties.apply(logits.float().cpu())
        if end_id is not None and not all(reached):
            blocked = torch.tensor([not r for r in reached])
            logits[blocked, end_id] = float("-inf")
        tokens = sample_rows(logits, generators, sampling)
        penalties.update(tokens)
        for row, token in enumerate(tokens):
            if finished[row]:
                continue
            sequences[row].append(token)
            new[row].append(token)
            if end_id is not None and token == end_id:
                finished[row] = True
        if done is not None and (step + 1) % check_every == 0:
            for row in range(len(prompts)):
                if not finished[row] and not reached[row] and done(row, new[row]):
                    reached[row] = finished[row] = True
        if all(finished):
            break
        if window is not None and cached >= window:  # cache full: re-encode the last half
            half = max(window // 2, 1)
            logits, cache, cached = _encode(model, [s[-half:] for s in sequences], device)
            continue
        step_ids = torch.tensor([[s[-1]] for s in sequences], device=device)
        out, cache = forward_with_cache(model, step_ids, cache, cached)
        logits, cached = out[:, -1], cached + 1
    return new


def _tail(ids: list[int], window: int | None) -> list[int]:
    return ids if window is None else ids[-window:]


def _encode(
    model: torch.nn.Module, rows: Sequence[Sequence[int]], device: torch.device
) -> tuple[torch.Tensor, object, int]:
    """Logits [B, vocab] after `rows` (equal lengths) from scratch, the fresh cache (or state),
    and how many tokens it holds."""
    logits, cache = forward_with_cache(
        model, torch.tensor([list(r) for r in rows], device=device), None, 0
    )
    return logits[:, -1], cache, len(rows[0])
