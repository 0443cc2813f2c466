"""The offline stand-in for a pretrained LLM, so fine-tuning runs with no network: a small Llama
built from config, a byte-level BPE tokenizer trained on the texts, and a short next-token
pre-training through the one training loop (settings in `offline_base.pretrain`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from midilm.common.logging import get_logger
from midilm.specs.model import OfflineBaseSpec
from midilm.specs.train import TrainSpec
from midilm.train.data import random_batch
from midilm.train.distributed import DistContext
from midilm.train.loop import Batch
from midilm.train.run import train_in_process

log = get_logger(__name__)

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")  # ids 0..3, Llama's order plus a pad
CHAT_MARKERS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")


def train_offline_tokenizer(
    texts: Iterable[str], vocab_size: int, extra_texts: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts` (+ `extra_texts`, e.g. the instruction header, weighted
    like one text each per text so its words get merges too).

    Pre-tokens split words at spaces and colons, so a note word ``p60:v80:d96:t0`` is a few
    field tokens (`` p60`` ``:v80`` ``:d96`` ``:t0`` once merged), as a general LLM tokenizer
    spends several tokens per note and unseen values still encode; the chat markers are single
    added tokens; ids 0..3 are <unk> <s> </s> <pad>.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = list(texts)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r" ?[^\s:]+|:[^\s:]*|\s+"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def corpus() -> Iterable[str]:
        for text in texts:
            yield text
            yield from extra_texts

    core.train_from_iterator(corpus(), trainer, length=len(texts) * (1 + len(extra_texts)))
    core.add_tokens([AddedToken(m, normalized=False, single_word=False) for m in CHAT_MARKERS])
    unk, bos, eos, pad = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token=unk, bos_token=bos, eos_token=eos, pad_token=pad
    )


@dataclass(frozen=True)
class StreamBatches:
    """Random windows over one token stream; no validation (the stand-in's pre-training)."""

    stream: np.ndarray
    context: int
    batch_size: int
    seed: int

    def train_batch(self, step: int, micro: int, ctx: DistContext) -> Batch:
        inputs, targets = random_batch(
            self.stream, self.context, self.batch_size, self.seed, step, micro
        )
        return {"input_ids": inputs, "labels": targets}

    def valid_batches(self, ctx: DistContext) -> list[Batch]:
        return []


def build_offline_base(
    out_dir: Path,
    texts: Sequence[str],
    base: OfflineBaseSpec,
    seed: int,
    max_positions: int,
    header: str = "",
) -> Path:
    """The stand-in in `out_dir` (save_pretrained model + tokenizer), deterministic for a seed.

    A LlamaForCausalLM built from config with random weights (positions up to `max_positions`),
    a BPE tokenizer trained on `texts` and `header`, then `base.pretrain` (overrides of the
    `train` group) steps of next-token training on the texts through
    `midilm.train.run.train_in_process`, so the fine-tune starts from a pretrained model.
    """
    torch.manual_seed(seed)
    tokenizer = train_offline_tokenizer(texts, base.vocab_size, [header] if header else [])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=base.hidden,
        intermediate_size=base.intermediate,
        num_hidden_layers=base.n_layer,
        num_attention_heads=base.heads,
        num_key_value_heads=base.kv_heads,
        max_position_embeddings=max_positions,  # the fine-tuning context
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    if base.pretrain.steps > 0:
        pretrain(model, tokenizer, texts, base.pretrain, base.context, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info(
        "offline base: %d parameters, vocab %d -> %s",
        model.num_parameters(),
        len(tokenizer),
        out_dir,
    )
    return out_dir


def pretrain(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    spec: TrainSpec,
    context: int,
    seed: int,
) -> list[float]:
    """Full-weight next-token training on the texts (BOS text EOS, concatenated); the losses."""
    ids = tokenizer([f" {t}" for t in texts], add_special_tokens=False)["input_ids"]
    stream = np.asarray(
        [i for row in ids for i in (tokenizer.bos_token_id, *row, tokenizer.eos_token_id)],
        dtype=np.int64,
    )
    window = min(context, stream.size - 1)
    result = train_in_process(
        model, StreamBatches(stream, window, spec.batch_size, seed), spec, seed
    )
    model.eval()
    losses = [row.train_loss for row in result.rows]
    log.info(
        "offline base pre-training: loss %.3f -> %.3f in %d steps",
        losses[0],
        losses[-1],
        len(losses),
    )
    return losses
