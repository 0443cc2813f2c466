"""Sampling: top-k and top-p keep only their ids, a seed fixes the draw, the cache slides."""

from __future__ import annotations

import pytest
import torch

from midilm.generate.sampling import filter_logits, generate_ids, sample_next
from midilm.models import build_model
from tests.models.families import TINY

LOGITS = torch.tensor([0.1, 3.0, -1.0, 2.5, 0.0, 2.9, -2.0, 1.0])


def _draws(seed: int, n: int = 300, **kwargs: float) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return [sample_next(LOGITS, generator, **kwargs) for _ in range(n)]


def test_top_k_draws_only_the_k_most_likely_ids() -> None:
    assert set(_draws(0, top_k=3, temperature=2.0)) == {1, 3, 5}


def test_top_p_keeps_the_smallest_nucleus() -> None:
    probs = torch.softmax(LOGITS, -1)  # ids 1, 5, 3 hold 0.33, 0.30, 0.20
    assert probs[[1, 5]].sum() < 0.7 < probs[[1, 5, 3]].sum()
    assert set(_draws(0, top_p=0.7)) == {1, 3, 5}
    kept = torch.isfinite(filter_logits(LOGITS, None, 0.01)).nonzero().flatten().tolist()
    assert kept == [1]  # the most likely id always stays


def test_seed_fixes_the_draws_and_temperature_zero_is_greedy() -> None:
    assert _draws(7) == _draws(7)
    assert _draws(7) != _draws(8)
    assert set(_draws(0, n=20, temperature=0.0)) == {1}


def test_generation_is_seeded_and_runs_past_the_context() -> None:
    torch.manual_seed(0)
    cfg = {"family": "gpt2", "context": 16, "n_layer": 1, "n_embd": 16, "n_head": 2}
    model = build_model(cfg, vocab_size=20, pad_id=0, bos_id=1, eos_id=2).eval()
    prompt = [1, *range(3, 20)]  # longer than the context: only its tail is encoded

    def run(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return generate_ids(model, prompt, 50, eos_id=-1, generator=generator, top_k=5)

    first = run(3)
    assert len(first) == 50  # no EOS possible: stops at max_new_tokens, 3x the context
    assert first == run(3) and first != run(4)
    assert all(0 <= t < 20 for t in first)


def test_generation_stops_at_eos() -> None:
    torch.manual_seed(0)
    cfg = {"family": "gpt2", "context": 16, "n_layer": 1, "n_embd": 16, "n_head": 2}
    model = build_model(cfg, vocab_size=4, pad_id=0, bos_id=1, eos_id=2).eval()
    new = generate_ids(model, [1], 200, eos_id=2, generator=torch.Generator().manual_seed(0))
    assert new[-1] == 2 and 2 not in new[:-1]


@pytest.mark.parametrize("family", sorted(TINY))
def test_cached_greedy_matches_full_recompute(family: str) -> None:
    """KV cache (gpt2, mistral, llama), Mamba's cache and RWKV's state change nothing: greedy ids
    equal re-encoding the whole sequence without a cache at every step."""
    torch.manual_seed(3)
    model = build_model(TINY[family], vocab_size=30, pad_id=0, bos_id=1, eos_id=2)
    with torch.no_grad():  # move every weight off its init, so the ids vary
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.eval()
    prompt = [1, 5, 7, 9, 11, 13]
    cached = generate_ids(model, prompt, 20, -1, torch.Generator(), temperature=0.0)
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
    torch.manual_seed(0)
    model = build_model(TINY[family], vocab_size=20, pad_id=0, bos_id=1, eos_id=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.eval()
    prompt = [1, *torch.randint(3, 20, (45,)).tolist()]  # 46 tokens > context 32
    new = generate_ids(model, prompt, 40, -1, torch.Generator().manual_seed(0), top_k=5)
    assert len(new) == 40
    other = generate_ids(model, prompt[-32:], 40, -1, torch.Generator().manual_seed(0), top_k=5)
    assert new != other  # the start of the prompt still matters
