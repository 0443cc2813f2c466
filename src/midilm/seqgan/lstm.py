"""The LSTM of SeqGAN's reference code: its generator, its roll-out network and the oracle.

Gates as in the authors' TensorFlow code (x multiplies W from the left, no peepholes):
i = sigmoid(x Wi + h Ui + bi), f = sigmoid(x Wf + h Uf + bf), o = sigmoid(x Wog + h Uog + bog),
c~ = tanh(x Wc + h Uc + bc), c = f * c_prev + i * c~, h = o * tanh(c), logits = h Wo + bo.
Every weight, biases included, is drawn from N(0, init_std) (0.1 for the generator, 1.0 for the
oracle). Sequences start from `start_token`'s embedding and a zero state; position t of a
sequence is predicted from the state after reading the start token and tokens 0..t-1.

The four gates are stored fused (`W` [E, 4H], `U` [H, 4H], `b` [4H], in the order i, f, og, c);
`to_arrays`/`from_arrays` convert to and from the reference's 15 named arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# The reference's parameter order (its pickled oracle is a list in this order).
REFERENCE_ORDER = (
    "embedding", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog", "Wc", "Uc", "bc",
    "Wo", "bo",
)  # fmt: skip
GATES = ("i", "f", "og", "c")

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [B, H]


def sample_categorical(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of `logits` [N, V] from softmax(logits), by inverse CDF: a uniform draw
    located in the running sum of exp(logits - max). The same distribution as
    torch.multinomial, about ten times faster on CPU for thousands of categories."""
    weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))
    cdf = weights.cumsum(dim=-1)
    u = torch.rand(logits.size(0), 1, generator=generator, device=logits.device, dtype=cdf.dtype)
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    return token.clamp_(max=logits.size(-1) - 1)


def shift_right(tokens: torch.Tensor, start_token: int) -> torch.Tensor:
    """The input ids that predict `tokens` [B, T]: the start token, then tokens 0..T-2."""
    start = tokens.new_full((tokens.size(0), 1), start_token)
    return torch.cat([start, tokens[:, :-1]], dim=1)


@dataclass
class LMOutput:
    """What the one training loop's `lm_loss` reads from a forward pass."""

    logits: torch.Tensor  # [B, T, V]


class SeqLSTM(nn.Module):
    """A token LSTM of fixed length `length` with the reference equations and initialisation."""

    def __init__(
        self,
        vocab: int,
        embedding: int,
        hidden: int,
        length: int,
        start_token: int,
        init_std: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= start_token < vocab:
            raise ValueError(f"start_token {start_token} is not a token of the vocabulary {vocab}")
        self.vocab, self.hidden, self.length, self.start_token = vocab, hidden, length, start_token

        def normal(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=generator) * init_std)

        self.embedding = normal(vocab, embedding)
        self.W = normal(embedding, 4 * hidden)
        self.U = normal(hidden, 4 * hidden)
        self.b = normal(4 * hidden)
        self.Wo = normal(hidden, vocab)
        self.bo = normal(vocab)

    # one step and the recurrence
    def initial_state(self, batch: int) -> State:
        zeros = self.embedding.new_zeros(batch, self.hidden)
        return zeros, zeros.clone()

    def cell(self, x: torch.Tensor, state: State) -> State:
        """One LSTM step from input embeddings x [B, E]."""
        return self.cell_from_projection(x @ self.W, state)

    def cell_from_projection(self, xw: torch.Tensor, state: State) -> State:
        """One LSTM step from the input's projection x W [B, 4H]."""
        h, c = state
        z = xw + h @ self.U + self.b
        i, f, o, g = z.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def logits_of(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.Wo + self.bo

    def inputs_of(self, tokens: torch.Tensor) -> torch.Tensor:
        return shift_right(tokens, self.start_token)

    def hidden_states(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass: h and c after each input [B, T, H] (x W for all steps at once)."""
        xw = self.embedding[input_ids] @ self.W  # [B, T, 4H]
        state = self.initial_state(input_ids.size(0))
        hs, cs = [], []
        for t in range(input_ids.size(1)):
            state = self.cell_from_projection(xw[:, t], state)
            hs.append(state[0])
            cs.append(state[1])
        return torch.stack(hs, 1), torch.stack(cs, 1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> LMOutput:
        """Logits [B, T, V] of the token after each input (the one loop's `lm_loss` reads them);
        every sequence has the full length, so `attention_mask` is not used."""
        hs, _ = self.hidden_states(input_ids)
        return LMOutput(self.logits_of(hs))

    def token_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log p(token_t | tokens_<t) [B, T] of whole sequences, one step's logits at a time
        (memory O(B x V), not O(B x T x V))."""
        hs, _ = self.hidden_states(self.inputs_of(tokens))
        out = torch.empty(tokens.shape, dtype=hs.dtype, device=hs.device)
        for t in range(tokens.size(1)):
            logits = self.logits_of(hs[:, t])
            target = logits.gather(1, tokens[:, t : t + 1]).squeeze(1)
            out[:, t] = target - torch.logsumexp(logits, dim=-1)
        return out

    def chunk_rows(self) -> int:
        """Rows whose logits are computed at once: cache-sized on CPU (4 MiB of float32, about
        four times faster than one big block), large on a GPU."""
        cells = 2**20 if self.embedding.device.type == "cpu" else 2**26
        return max(1, cells // self.vocab)

    @torch.no_grad()
    def nll(self, tokens: torch.Tensor) -> float:
        """Mean negative log-likelihood per token of `tokens` [N, T] under this model (the
        reference's NLL-oracle when this model is the oracle)."""
        total = 0.0
        for part in tokens.split(self.chunk_rows()):
            total += float(-self.token_log_probs(part).double().sum())
        return total / max(tokens.numel(), 1)

    @torch.no_grad()
    def next_tokens(self, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A token sampled from each row's softmax(h Wo + bo), `chunk_rows` rows at a time."""
        parts = [sample_categorical(self.logits_of(part), generator)
                 for part in h.split(self.chunk_rows())]  # fmt: skip
        return torch.cat(parts) if parts else h.new_empty(0, dtype=torch.long)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, length: int | None = None) -> torch.Tensor:
        """n sequences [n, length] drawn token by token from the model's softmax, `chunk_rows`
        sequences at a time."""
        rows = self.chunk_rows()
        parts = [self._sample(min(rows, n - i), generator, length) for i in range(0, n, rows)]
        return torch.cat(parts) if parts else self._sample(0, generator, length)

    def _sample(self, n: int, generator: torch.Generator, length: int | None) -> torch.Tensor:
        length = length or self.length
        state = self.initial_state(n)
        token = torch.full((n,), self.start_token, dtype=torch.long, device=self.embedding.device)
        out = torch.empty(n, length, dtype=torch.long, device=self.embedding.device)
        for t in range(length):
            state = self.cell(self.embedding[token], state)
            token = sample_categorical(self.logits_of(state[0]), generator)
            out[:, t] = token
        return out

    # the reference's named arrays
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The 15 arrays of the reference, by name (float32 numpy)."""
        arrays = {"embedding": self.embedding}
        for gate, w, u, b in zip(
            GATES, self.W.chunk(4, -1), self.U.chunk(4, -1), self.b.chunk(4, -1), strict=True
        ):
            arrays.update({f"W{gate}": w, f"U{gate}": u, f"b{gate}": b})
        arrays.update(Wo=self.Wo, bo=self.bo)
        return {k: v.detach().cpu().float().numpy().copy() for k, v in arrays.items()}

    @torch.no_grad()
    def load_arrays(self, arrays: Mapping[str, np.ndarray], source: str) -> None:
        """Set every weight from the reference's 15 named arrays; wrong names or shapes are
        errors naming `source`."""
        E, H, V = self.embedding.size(1), self.hidden, self.vocab
        expected = {"embedding": (V, E), "Wo": (H, V), "bo": (V,)}
        for gate in GATES:
            expected.update({f"W{gate}": (E, H), f"U{gate}": (H, H), f"b{gate}": (H,)})
        names = set(arrays)
        if names != set(expected):
            raise ValueError(
                f"{source}: arrays {sorted(names)} do not match the oracle's 15 "
                f"{list(REFERENCE_ORDER)}: missing {sorted(set(expected) - names)}, "
                f"unexpected {sorted(names - set(expected))}"
            )
        for name in REFERENCE_ORDER:
            shape = tuple(np.shape(arrays[name]))
            if shape != expected[name]:
                raise ValueError(
                    f"{source}: array {name!r} has shape {shape}, expected {expected[name]} "
                    f"(vocab {V}, embedding {E}, hidden {H}; set the oracle sizes to match)"
                )

        def tensor(name: str) -> torch.Tensor:
            return torch.as_tensor(np.asarray(arrays[name], dtype=np.float32))

        self.embedding.copy_(tensor("embedding"))
        self.W.copy_(torch.cat([tensor(f"W{g}") for g in GATES], -1))
        self.U.copy_(torch.cat([tensor(f"U{g}") for g in GATES], -1))
        self.b.copy_(torch.cat([tensor(f"b{g}") for g in GATES], -1))
        self.Wo.copy_(tensor("Wo"))
        self.bo.copy_(tensor("bo"))
