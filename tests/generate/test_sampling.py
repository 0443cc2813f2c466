"""The one sampling loop: top-k/top-p keep only their ids, penalties decay as RWKV's sampler's,
a seed fixes each sequence whether it is sampled alone or in a batch, the cache slides, end
tokens stop a sequence unless it must reach a target length first."""

from __future__ import annotations

import pytest
import torch

from midilm.generate.sampling import (
    Penalties,
    Sampling,
    filter_logits,
    generate,
    generate_ids,
    sample_next,
)
from midilm.models import build_model
from tests.models.families import TINY

LOGITS = torch.tensor([0.1, 3.0, -1.0, 2.5, 0.0, 2.9, -2.0, 1.0])


def _draws(seed: int, n: int = 300, **kwargs: float) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return [sample_next(LOGITS, generator, Sampling(**kwargs)) for _ in range(n)]


def _trained_looking(family: str, vocab: int, seed: int = 3) -> torch.nn.Module:
    """A tiny model whose weights are moved off their init, so its ids vary."""
    torch.manual_seed(seed)
    model = build_model(TINY[family], vocab_size=vocab, pad_id=0, bos_id=1, eos_id=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def test_top_k_draws_only_the_k_most_likely_ids() -> None:
    assert set(_draws(0, top_k=3, temperature=2.0)) == {1, 3, 5}


def test_top_p_keeps_the_smallest_nucleus() -> None:
    probs = torch.softmax(LOGITS, -1)  # ids 1, 5, 3 hold 0.33, 0.30, 0.20
    assert probs[[1, 5]].sum() < 0.7 < probs[[1, 5, 3]].sum()
    assert set(_draws(0, top_p=0.7)) == {1, 3, 5}
    kept = torch.isfinite(filter_logits(LOGITS, None, 0.01)).nonzero().flatten().tolist()
    assert kept == [1]  # the most likely id always stays
    rows = filter_logits(torch.stack([LOGITS, LOGITS.flip(0)]), 2, None)  # row by row
    assert torch.isfinite(rows).sum(dim=1).tolist() == [2, 2]


def test_seed_fixes_the_draws_and_temperature_zero_is_greedy() -> None:
    assert _draws(7) == _draws(7)
    assert _draws(7) != _draws(8)
    assert set(_draws(0, n=20, temperature=0.0)) == {1}


def test_penalties_follow_rwkvs_sampler() -> None:
    """logits -= presence x [seen] + frequency x count; counts decay by alpha_decay per step."""
    sampling = Sampling(presence_penalty=0.5, frequency_penalty=0.25, alpha_decay=0.5)
    penalties = Penalties(1, 4, sampling)
    penalties.update([2])
    penalties.update([2])  # count of 2: 1 * 0.5 + 1 = 1.5
    penalties.update([3])  # count of 2: 0.75, of 3: 1
    logits = penalties.apply(torch.zeros(1, 4))
    assert logits[0].tolist() == pytest.approx([0.0, 0.0, -(0.5 + 0.25 * 0.75), -(0.5 + 0.25)])
    assert Penalties(1, 4, Sampling()).apply(torch.ones(1, 4)).tolist() == [[1.0] * 4]


def test_a_strong_presence_penalty_stops_repeats() -> None:
    model = _trained_looking("gpt2", 20)
    greedy = Sampling(temperature=0.0, presence_penalty=100.0, alpha_decay=0.997)
    new = generate_ids(model, [1, 5], 15, torch.Generator(), greedy)
    assert len(set(new)) == 15  # every id at most once


def test_generation_is_seeded_and_runs_past_the_context() -> None:
    torch.manual_seed(0)
    cfg = {"family": "gpt2", "context": 16, "n_layer": 1, "n_embd": 16, "n_head": 2}
    model = build_model(cfg, vocab_size=20, pad_id=0, bos_id=1, eos_id=2).eval()
    prompt = [1, *range(3, 20)]  # longer than the context: only its tail is encoded

    def run(seed: int) -> list[int]:
        return generate_ids(
            model, prompt, 50, torch.Generator().manual_seed(seed), Sampling(top_k=5)
        )

    first = run(3)
    assert len(first) == 50  # no end token: stops at max_new_tokens, 3x the context
    assert first == run(3) and first != run(4)
    assert all(0 <= t < 20 for t in first)


def test_generation_stops_at_the_end_token_unless_a_target_is_not_reached() -> None:
    torch.manual_seed(0)
    cfg = {"family": "gpt2", "context": 16, "n_layer": 1, "n_embd": 16, "n_head": 2}
    model = build_model(cfg, vocab_size=4, pad_id=0, bos_id=1, eos_id=2).eval()
    new = generate_ids(model, [1], 200, torch.Generator().manual_seed(0), end_id=2)
    assert new[-1] == 2 and 2 not in new[:-1]
    # `done` says "long enough" only after 40 tokens: the end token is masked until then
    longer = generate(
        model,
        [[1]],
        [torch.Generator().manual_seed(0)],
        200,
        Sampling(),
        2,
        done=lambda row, ids: len(ids) >= 40,
        check_every=8,
    )[0]
    assert 2 not in longer and len(longer) == 40


@pytest.mark.parametrize("family", sorted(TINY))
def test_a_batch_gives_each_sequence_the_tokens_it_gets_alone(family: str) -> None:
    """Batched sampling (every family's cache or state) = one sequence at a time, same seeds;
    prompts of another length go in a batch of their own."""
    model = _trained_looking(family, 30)
    prompts = [[1, 5, 7, 9], [1, 6, 8, 10], [1, 11, 12], [1, 5, 7, 9]]
    sampling = Sampling(
        top_k=8, temperature=1.0, presence_penalty=0.3, frequency_penalty=0.2, alpha_decay=0.997
    )

    def seeds() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(s) for s in (0, 1, 2, 3)]

    together = generate(model, prompts, seeds(), 40, sampling)
    alone = [
        generate(model, [p], [g], 40, sampling)[0] for p, g in zip(prompts, seeds(), strict=True)
    ]
    assert together == alone and all(len(t) == 40 for t in together)
    assert together[0] != together[3]  # same prompt, other seed


@pytest.mark.parametrize("family", sorted(TINY))
def test_cached_greedy_matches_full_recompute(family: str) -> None:
    """KV cache (gpt2, mistral, llama), Mamba's cache and RWKV's state change nothing: greedy ids
    equal re-encoding the whole sequence without a cache at every step."""
    model = _trained_looking(family, 30)
    prompt = [1, 5, 7, 9, 11, 13]
    cached = generate_ids(model, prompt, 20, torch.Generator(), Sampling(temperature=0.0))
    sequence = list(prompt)  # 26 tokens < the context (32): no chunked continuation
    with torch.no_grad():
        for _ in range(20):
            logits = model(input_ids=torch.tensor([sequence]), use_cache=False).logits[0, -1]
            sequence.append(int(torch.argmax(logits)))
    assert cached == sequence[len(prompt) :]
    assert len(set(cached)) >= 3  # not a constant run


@pytest.mark.parametrize("family", ["mamba", "rwkv6"])
def test_recurrent_families_have_no_context_limit(family: str) -> None:
    """A prompt longer than the training context is read whole; generation goes on past it."""
    model = _trained_looking(family, 20, seed=0)
    prompt = [1, *torch.randint(3, 20, (45,), generator=torch.Generator().manual_seed(0)).tolist()]
    sampling = Sampling(top_k=5)
    new = generate_ids(model, prompt, 40, torch.Generator().manual_seed(0), sampling)
    assert len(new) == 40
    other = generate_ids(model, prompt[-32:], 40, torch.Generator().manual_seed(0), sampling)
    assert new != other  # the start of the prompt still matters
