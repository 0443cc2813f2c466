"""SeqGAN's discriminator: a CNN text classifier over token embeddings (Kim 2014 style), as in
the authors' reference code.

Embedding (uniform(-1, 1)) -> one convolution per kernel size over the whole embedding width
(truncated N(0, 0.1) weights, bias 0.1, ReLU), max over time -> concatenated features -> one
highway layer (transform gate bias 0, ReLU; Glorot-uniform weights and biases as TensorFlow's
`get_variable` default) -> dropout (keep 0.75 in training) -> two logits (fake, real). The loss is
the mean cross entropy plus `l2` x (sum of squares / 2) of the output layer's weight and bias
only. The reward of a sequence is its softmax probability of "real" with dropout off.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from midilm.specs.seqgan import DiscriminatorSpec

REAL = 1  # class index of real data (the reference's labels: [0, 1] real, [1, 0] generated)


class Discriminator(nn.Module):
    def __init__(
        self,
        vocab: int,
        length: int,
        spec: DiscriminatorSpec,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        too_wide = [k for k in spec.kernel_sizes if k > length]
        if too_wide:
            raise ValueError(
                f"discriminator kernel sizes {too_wide} exceed the sequence length {length}; "
                "use the kernel list of this length (conf/seqgan: `discriminator.kernel_sizes`)"
            )
        self.keep = spec.dropout_keep
        features = sum(spec.kernel_counts)
        self.embedding = nn.Parameter(
            torch.rand(vocab, spec.embedding, generator=generator) * 2 - 1
        )
        self.convs = nn.ModuleList(
            nn.Conv1d(spec.embedding, count, size)
            for size, count in zip(spec.kernel_sizes, spec.kernel_counts, strict=True)
        )
        self.highway_lin = nn.Linear(features, features)
        self.highway_gate = nn.Linear(features, features)
        self.out = nn.Linear(features, 2)
        with torch.no_grad():
            for conv in self.convs:
                _truncated_normal(conv.weight, 0.1, generator)
                conv.bias.fill_(0.1)
            for layer in (self.highway_lin, self.highway_gate):
                _glorot_uniform(layer.weight, features, features, generator)
                _glorot_uniform(layer.bias, features, features, generator)
            _truncated_normal(self.out.weight, 0.1, generator)
            self.out.bias.fill_(0.1)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding[tokens].transpose(1, 2)  # [B, E, T]
        pooled = [F.relu(conv(x)).amax(dim=2) for conv in self.convs]
        return torch.cat(pooled, dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, 2] (fake, real); dropout only in training mode."""
        h = self.features(tokens)
        gate = torch.sigmoid(self.highway_gate(h))
        h = gate * F.relu(self.highway_lin(h)) + (1.0 - gate) * h
        h = F.dropout(h, p=1.0 - self.keep, training=self.training)
        return self.out(h)

    def loss(self, logits: torch.Tensor, real: torch.Tensor, l2: float) -> torch.Tensor:
        """Mean cross entropy of labels `real` (1 real, 0 generated) + l2 x (sum of squares / 2)
        of the output layer's weight and bias (TensorFlow's l2_loss)."""
        penalty = 0.5 * (self.out.weight.square().sum() + self.out.bias.square().sum())
        return F.cross_entropy(logits, real) + l2 * penalty

    @torch.no_grad()
    def real_probability(self, tokens: torch.Tensor, max_tokens: int) -> torch.Tensor:
        """P(real) [N] of each sequence, dropout off, at most `max_tokens` tokens per forward."""
        was_training = self.training
        self.eval()
        rows = max(1, max_tokens // max(tokens.size(1), 1))
        out = torch.cat([torch.softmax(self(part), dim=-1)[:, REAL] for part in tokens.split(rows)])
        self.train(was_training)
        return out


def _truncated_normal(t: torch.Tensor, std: float, generator: torch.Generator | None) -> None:
    """N(0, std) redrawn beyond two standard deviations (TensorFlow's truncated_normal)."""
    values = torch.randn(t.shape, generator=generator) * std
    outside = values.abs() > 2 * std
    while outside.any():
        values[outside] = torch.randn(int(outside.sum()), generator=generator) * std
        outside = values.abs() > 2 * std
    t.copy_(values)


def _glorot_uniform(
    t: torch.Tensor, fan_in: int, fan_out: int, generator: torch.Generator | None
) -> None:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    t.copy_((torch.rand(t.shape, generator=generator) * 2 - 1) * limit)
