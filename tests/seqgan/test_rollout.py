"""Roll-out rewards, the roll-out policy's update and one policy-gradient step, with a real
discriminator whose weights are set so that it prefers sequences holding one token."""

from __future__ import annotations

import pytest
import torch

from midilm.seqgan.algorithm import policy_gradient_step
from midilm.seqgan.discriminator import Discriminator
from midilm.seqgan.lstm import SeqLSTM
from midilm.seqgan.rollout import RolloutPolicy, complete_prefixes, rollout_rewards
from midilm.specs.seqgan import DiscriminatorSpec

VOCAB, LENGTH, PREFERRED = 4, 5, 2
HOLDS, LACKS = torch.sigmoid(torch.tensor(4.0)).item(), 0.5  # P(real) with / without the token


def preferring_discriminator(token: int = PREFERRED) -> Discriminator:
    """P(real) = sigmoid(4) when `token` occurs anywhere, 0.5 otherwise: one width-1 filter
    that fires on the token, max over time, a highway that carries its input, 4 x to "real"."""
    spec = DiscriminatorSpec(1, (1,), (1,), 1.0, 0.0, 1e-4, 8)
    d = Discriminator(VOCAB, LENGTH, spec)
    with torch.no_grad():
        d.embedding.zero_()
        d.embedding[token] = 1.0
        d.convs[0].weight.fill_(1.0)
        d.convs[0].bias.zero_()
        d.highway_gate.weight.zero_()
        d.highway_gate.bias.fill_(-40.0)  # transform gate closed: the input is carried
        d.out.weight.copy_(torch.tensor([[0.0], [4.0]]))
        d.out.bias.zero_()
    return d


def generator(seed: int = 0) -> SeqLSTM:
    return SeqLSTM(VOCAB, 8, 8, LENGTH, 0, 0.5, torch.Generator().manual_seed(seed))


def test_the_discriminator_prefers_the_token() -> None:
    d = preferring_discriminator()
    probs = d.real_probability(torch.tensor([[0, 1, 3, 0, 1], [0, 0, 0, 2, 0]]), 100)
    assert probs.tolist() == pytest.approx([LACKS, HOLDS])


@pytest.mark.parametrize("max_rows", [10_000, 24])  # every prefix at once; 3 prefixes a chunk
def test_rewards_shape_last_step_and_prefixes_that_hold_the_token(max_rows: int) -> None:
    g, d = generator(), preferring_discriminator()
    x = g.sample(8, torch.Generator().manual_seed(1))
    rewards = rollout_rewards(g, d, x, 4, torch.Generator().manual_seed(2), max_rows, 64)
    assert rewards.shape == (8, LENGTH)
    assert torch.equal(rewards[:, -1], d.real_probability(x, 64))
    for b in range(8):
        for g_len in range(1, LENGTH):
            value = rewards[b, g_len - 1].item()
            if (x[b, :g_len] == PREFERRED).any():  # every completion holds it: exact
                assert value == pytest.approx(HOLDS)
            else:  # the mean over 4 completions, each holding it or not
                assert any(value == pytest.approx(LACKS + k / 4 * (HOLDS - LACKS))
                           for k in range(5))  # fmt: skip


def test_completions_keep_the_prefix_and_continue_from_its_carried_state() -> None:
    g = generator(3)
    x = g.sample(2, torch.Generator().manual_seed(4))
    hs, cs = g.hidden_states(g.inputs_of(x))
    rollouts = 3000
    out = complete_prefixes(
        g, x, hs, cs, range(1, LENGTH), rollouts, torch.Generator().manual_seed(5)
    )
    out = out.view(LENGTH - 1, rollouts, 2, LENGTH)
    logits = g(g.inputs_of(x)).logits  # [2, T, V]: position t given x_<t
    for i, g_len in enumerate(range(1, LENGTH)):
        assert torch.equal(out[i, :, :, :g_len], x[:, :g_len].expand(rollouts, 2, g_len))
        # the first sampled token of prefix g follows p(. | x_<g) of the teacher-forced pass
        for b in range(2):
            counts = torch.bincount(out[i, :, b, g_len], minlength=VOCAB).double() / rollouts
            expected = torch.softmax(logits[b, g_len].double(), -1)
            assert counts.tolist() == pytest.approx(expected.tolist(), abs=0.035)


def test_rollout_policy_live_and_delayed() -> None:
    g = generator()
    assert RolloutPolicy(g, 0.0).net is g
    delayed = RolloutPolicy(g, 0.8)
    old_w, old_emb = delayed.net.W.detach().clone(), delayed.net.embedding.detach().clone()
    with torch.no_grad():
        g.W.add_(1.0)
        g.embedding.add_(2.0)
    assert torch.equal(delayed.net.W, old_w)  # a copy, not the live generator
    delayed.update()
    assert torch.allclose(delayed.net.W, 0.8 * old_w + 0.2 * g.W)
    assert torch.equal(delayed.net.embedding, g.embedding)  # copied outright, as the reference
    assert not torch.equal(delayed.net.embedding, old_emb)


@pytest.mark.parametrize("token", [1, PREFERRED])
def test_one_policy_gradient_step_raises_the_preferred_token(token: int) -> None:
    g, d = generator(7), preferring_discriminator(token)
    optimizer = torch.optim.AdamW(g.parameters(), lr=0.01, betas=(0.9, 0.999), weight_decay=0.0)

    def first_step_probability() -> float:
        h, _ = g.hidden_states(torch.zeros(1, 1, dtype=torch.long))
        return torch.softmax(g.logits_of(h[:, 0]), -1)[0, token].item()

    def frequency() -> float:
        return (g.sample(4000, torch.Generator().manual_seed(9)) == token).double().mean().item()

    before, before_frequency = first_step_probability(), frequency()
    x = g.sample(64, torch.Generator().manual_seed(10))
    rewards = rollout_rewards(g, d, x, 8, torch.Generator().manual_seed(11), 10_000, 10_000)
    policy_gradient_step(g, optimizer, x, rewards, grad_clip=5.0)
    assert first_step_probability() > before
    assert frequency() > before_frequency
