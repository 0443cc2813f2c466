"""RWKV-6 "Finch" (seed 001's model) as a transformers model, in plain PyTorch.

Why our own module: flash-linear-attention's RWKV-6 (`fla.layers.RWKV6Attention`) runs only on
Triton kernels (a GPU), and BlinkDL's RWKV-LM trains through its own CUDA kernel and Lightning
loop; neither runs on the CPU that tests and the smoke DAG use. This module follows BlinkDL's
RWKV-LM v6 (`RWKV_Tmix_x060`, `RWKV_CMix_x060`) with the same parameter names and shapes, so a
trained model exports to BlinkDL's .pth by saving its state dict (`export_rwkv_pth`) and runs in
the `rwkv` pip package (tests/models compare the logits). The WKV recurrence is exact and chunked
(midilm.models.wkv6); on a GPU the drop-in speed-up is fla's `chunk_rwkv6(r, k, v, w=log_w,
u, scale=1.0, initial_state=state, output_final_state=True)` in place of `wkv6_chunked` (same
[B, T, H, N] inputs and log decays; fla's default scale is N^-0.5, RWKV uses none).

A model is an ordinary `PreTrainedModel` (model_type "midilm_rwkv6", registered with AutoConfig
and AutoModelForCausalLM), so `save_pretrained` / `from_pretrained` work as for the other
families. `forward(input_ids, state=None, use_cache=...)` returns `.logits` and the recurrent
`.state`: per layer (time-mix shift [B, C], WKV state [B, H, N, N], channel-mix shift [B, C]),
BlinkDL's layout with a batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers import (
    initialization as init,
)
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from midilm.models.runtime import fixed_threads
from midilm.models.wkv6 import wkv6_chunked, wkv6_recurrent

State = tuple[torch.Tensor, ...]


class Rwkv6Config(PretrainedConfig):
    """Sizes of an RWKV-6 model; `context_length` is the training window (inference has none)."""

    model_type = "midilm_rwkv6"

    vocab_size: int = 256
    hidden_size: int = 512
    num_hidden_layers: int = 20
    head_size: int = 64
    intermediate_size: int | None = None  # channel-mix width; BlinkDL's int(3.5 C) // 32 * 32
    context_length: int = 512
    mix_lora_rank: int = 32  # D_MIX_LORA: rank of the data-dependent token-shift mixes
    decay_lora_rank: int = 64  # D_DECAY_LORA: rank of the data-dependent decay
    head_size_divisor: int = 8  # ln_x eps = 1e-5 * divisor^2 (the rwkv package assumes 8)
    chunk_size: int = 32  # WKV chunk length of the parallel (training) form
    dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    tie_word_embeddings: bool = False
    use_cache: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        if self.intermediate_size is None:
            self.intermediate_size = int(self.hidden_size * 3.5) // 32 * 32
        if self.hidden_size % self.head_size:
            raise ValueError(
                f"rwkv6: n_embd={self.hidden_size} is not a multiple of head_size="
                f"{self.head_size}; fix conf/model/rwkv6.yaml"
            )
        super().__post_init__(**kwargs)

    @property
    def num_heads(self) -> int:
        return self.hidden_size // self.head_size


@dataclass
class Rwkv6CausalLMOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    state: State | None = None


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm (same parameters and state dict) whose weight and bias gradients do not
    depend on the thread count: torch's fused backward sums them in per-thread buffers, here
    autograd sums them over rows, one output per thread (docs/decisions.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        return normed * self.weight + self.bias


def _shifted(x: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """x[t-1] - x[t] along time, with `previous` [B, C] before the first step (token shift)."""
    return torch.cat([previous.unsqueeze(1), x[:, :-1]], dim=1) - x


class TimeMix(nn.Module):
    """RWKV_Tmix_x060: data-dependent token shift and decay, multi-head WKV, GroupNorm, gate."""

    def __init__(self, config: Rwkv6Config, layer_id: int) -> None:
        super().__init__()
        c, mix, dec = config.hidden_size, config.mix_lora_rank, config.decay_lora_rank
        self.layer_id, self.num_layers = layer_id, config.num_hidden_layers
        self.heads, self.head_size, self.chunk = (
            config.num_heads,
            config.head_size,
            config.chunk_size,
        )
        for name in ("x", "w", "k", "v", "r", "g"):
            setattr(self, f"time_maa_{name}", nn.Parameter(torch.empty(1, 1, c)))
        self.time_maa_w1 = nn.Parameter(torch.empty(c, mix * 5))
        self.time_maa_w2 = nn.Parameter(torch.empty(5, mix, c))
        self.time_decay = nn.Parameter(torch.empty(1, 1, c))
        self.time_decay_w1 = nn.Parameter(torch.empty(c, dec))
        self.time_decay_w2 = nn.Parameter(torch.empty(dec, c))
        self.time_faaaa = nn.Parameter(torch.empty(self.heads, self.head_size))
        self.receptance = nn.Linear(c, c, bias=False)
        self.key = nn.Linear(c, c, bias=False)
        self.value = nn.Linear(c, c, bias=False)
        self.output = nn.Linear(c, c, bias=False)
        self.gate = nn.Linear(c, c, bias=False)
        self.ln_x = nn.GroupNorm(self.heads, c, eps=1e-5 * config.head_size_divisor**2)

    def forward(
        self, x: torch.Tensor, shift: torch.Tensor, wkv: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, length, width = x.shape
        xx = _shifted(x, shift)
        mixed = torch.tanh((x + xx * self.time_maa_x) @ self.time_maa_w1)
        mixed = mixed.view(batch * length, 5, -1).transpose(0, 1)
        mw, mk, mv, mr, mg = torch.bmm(mixed, self.time_maa_w2).view(5, batch, length, width)
        xw = x + xx * (self.time_maa_w + mw)
        xk = x + xx * (self.time_maa_k + mk)
        xv = x + xx * (self.time_maa_v + mv)
        xr = x + xx * (self.time_maa_r + mr)
        xg = x + xx * (self.time_maa_g + mg)

        heads = (batch, length, self.heads, self.head_size)
        r = self.receptance(xr).float().view(heads)
        k = self.key(xk).float().view(heads)
        v = self.value(xv).float().view(heads)
        g = F.silu(self.gate(xg))
        decay = self.time_decay + torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2
        log_w = -torch.exp(decay.float()).view(heads)
        u = self.time_faaaa.float()
        if length == 1:
            y, wkv = wkv6_recurrent(r, k, v, log_w, u, wkv)
        else:
            y, wkv = wkv6_chunked(r, k, v, log_w, u, wkv, chunk=self.chunk)
        y = self.ln_x(y.reshape(batch * length, width).to(x.dtype)).view(batch, length, width)
        return self.output(y * g), x[:, -1], wkv


class ChannelMix(nn.Module):
    """RWKV_CMix_x060: token shift, squared-ReLU key, sigmoid receptance gate."""

    def __init__(self, config: Rwkv6Config, layer_id: int) -> None:
        super().__init__()
        c, ffn = config.hidden_size, int(config.intermediate_size or 0)
        self.layer_id, self.num_layers = layer_id, config.num_hidden_layers
        self.time_maa_k = nn.Parameter(torch.empty(1, 1, c))
        self.time_maa_r = nn.Parameter(torch.empty(1, 1, c))
        self.key = nn.Linear(c, ffn, bias=False)
        self.receptance = nn.Linear(c, c, bias=False)
        self.value = nn.Linear(ffn, c, bias=False)

    def forward(self, x: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xx = _shifted(x, shift)
        k = torch.relu(self.key(x + xx * self.time_maa_k)) ** 2
        r = torch.sigmoid(self.receptance(x + xx * self.time_maa_r))
        return r * self.value(k), x[:, -1]


class Block(GradientCheckpointingLayer):
    def __init__(self, config: Rwkv6Config, layer_id: int) -> None:
        super().__init__()
        c, eps = config.hidden_size, config.layer_norm_epsilon
        self.ln1 = LayerNorm(c, eps=eps)
        self.ln2 = LayerNorm(c, eps=eps)
        if layer_id == 0:
            self.ln0 = LayerNorm(c, eps=eps)
        self.att = TimeMix(config, layer_id)
        self.ffn = ChannelMix(config, layer_id)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, att_shift: torch.Tensor, wkv: torch.Tensor, ffn_shift: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if hasattr(self, "ln0"):
            x = self.ln0(x)
        out, att_shift, wkv = self.att(self.ln1(x), att_shift, wkv)
        x = x + self.drop(out)
        out, ffn_shift = self.ffn(self.ln2(x), ffn_shift)
        return x + self.drop(out), att_shift, wkv, ffn_shift


class Rwkv6ForCausalLM(PreTrainedModel):
    """emb -> blocks -> ln_out -> head, with BlinkDL's names (the state dict is his .pth)."""

    config_class = Rwkv6Config
    base_model_prefix = "rwkv6"
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["Block"]
    main_input_name = "input_ids"

    def __init__(self, config: Rwkv6Config) -> None:
        super().__init__(config)
        self.emb = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.ln_out = LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.emb

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.emb = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.head

    def zero_state(self, batch_size: int) -> State:
        """The state before any token: zeros, per layer (shift, WKV [B, H, N, N], shift)."""
        c, h, n = self.config.hidden_size, self.config.num_heads, self.config.head_size
        ref = self.emb.weight
        state: list[torch.Tensor] = []
        for _ in self.blocks:
            state.append(ref.new_zeros(batch_size, c))
            state.append(ref.new_zeros(batch_size, h, n, n, dtype=torch.float32))
            state.append(ref.new_zeros(batch_size, c))
        return tuple(state)

    def forward(
        self,
        input_ids: torch.Tensor,
        state: State | None = None,
        use_cache: bool | None = None,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Rwkv6CausalLMOutput:
        """Logits [B, T, V] for `input_ids` [B, T] after `state` (None: from scratch).

        `attention_mask` is accepted for interface parity; padding (zeros) is not supported.
        """
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("rwkv6 does not support padding: attention_mask must be all ones")
        if use_cache is None:
            use_cache = bool(self.config.use_cache) and not self.training
        x = self.emb(input_ids)
        old = state if state is not None else self.zero_state(input_ids.shape[0])
        new: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x, att_shift, wkv, ffn_shift = block(x, *old[3 * i : 3 * i + 3])
            new.extend((att_shift, wkv, ffn_shift))
        logits = self.head(self.ln_out(x))
        loss = None
        if labels is not None:  # labels are the inputs: predict labels[:, 1:] (HF convention)
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1)
            )
        return Rwkv6CausalLMOutput(
            loss=loss, logits=logits, state=tuple(new) if use_cache or state is not None else None
        )

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """BlinkDL's RWKV-LM v6 initialisation (time_* schedules, orthogonal and zero matrices)."""
        if isinstance(module, TimeMix):
            _init_time_mix(module)
        elif isinstance(module, ChannelMix):
            _init_channel_mix(module)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.uniform_(module.weight, -1e-4, 1e-4)
        elif module is self.head:
            vocab, width = module.weight.shape
            _orthogonal_init(module.weight, gain=0.5 * math.sqrt(max(vocab / width, 1.0)))


def _ramp(width: int) -> torch.Tensor:
    return (torch.arange(width, dtype=torch.float32) / width).view(1, 1, width)


def _orthogonal_init(weight: torch.Tensor, gain: float) -> None:
    """A random orthogonal matrix from MKL's QR on one thread: its bits depend on the number of
    threads that factorise it (and MKL has no reproducible mode for QR)."""
    with fixed_threads(1):
        init.orthogonal_(weight, gain=gain)


def _orthogonal(linear: nn.Linear, scale: float) -> None:
    rows, cols = linear.weight.shape
    if scale == 0:
        init.zeros_(linear.weight)
    else:
        _orthogonal_init(linear.weight, gain=scale * math.sqrt(max(rows / cols, 1.0)))


def _init_time_mix(m: TimeMix) -> None:
    ratio_0_to_1 = m.layer_id / max(m.num_layers - 1, 1)
    ratio_1_to_almost0 = 1.0 - m.layer_id / m.num_layers
    ddd = _ramp(m.time_maa_x.shape[-1])
    for name in ("x", "w", "k"):
        init.copy_(getattr(m, f"time_maa_{name}"), 1.0 - ddd**ratio_1_to_almost0)
    init.copy_(m.time_maa_v, 1.0 - (ddd**ratio_1_to_almost0 + 0.3 * ratio_0_to_1))
    init.copy_(m.time_maa_r, 1.0 - ddd ** (0.5 * ratio_1_to_almost0))
    init.copy_(m.time_maa_g, 1.0 - ddd ** (0.5 * ratio_1_to_almost0))
    init.zeros_(m.time_maa_w1)
    init.uniform_(m.time_maa_w2, -0.01, 0.01)
    width = m.time_decay.shape[-1]
    n = torch.arange(width, dtype=torch.float32)
    speed = -6 + 5 * (n / max(width - 1, 1)) ** (0.7 + 1.3 * ratio_0_to_1)
    init.copy_(m.time_decay, speed.view(1, 1, width))
    init.zeros_(m.time_decay_w1)
    init.uniform_(m.time_decay_w2, -0.01, 0.01)
    zigzag = ((n + 1) % 3 - 1) * 0.1
    bonus = ratio_0_to_1 * (1 - n / max(width - 1, 1)) + zigzag
    init.copy_(m.time_faaaa, bonus.view_as(m.time_faaaa))
    for linear, scale in ((m.receptance, 1.0), (m.key, 0.1), (m.value, 1.0), (m.gate, 0.1)):
        _orthogonal(linear, scale)
    _orthogonal(m.output, 0.0)
    init.constant_(m.ln_x.weight, ((1 + m.layer_id) / m.num_layers) ** 0.7)
    init.zeros_(m.ln_x.bias)


def _init_channel_mix(m: ChannelMix) -> None:
    ratio_1_to_almost0 = 1.0 - m.layer_id / m.num_layers
    ddd = _ramp(m.time_maa_k.shape[-1])
    init.copy_(m.time_maa_k, 1.0 - ddd**ratio_1_to_almost0)
    init.copy_(m.time_maa_r, 1.0 - ddd**ratio_1_to_almost0)
    _orthogonal(m.key, 1.0)
    _orthogonal(m.receptance, 0.0)
    _orthogonal(m.value, 0.0)


AutoConfig.register(Rwkv6Config.model_type, Rwkv6Config, exist_ok=True)
AutoModelForCausalLM.register(Rwkv6Config, Rwkv6ForCausalLM, exist_ok=True)


def build_rwkv6(
    cfg: Mapping[str, Any], vocab_size: int, pad_id: int, bos_id: int, eos_id: int
) -> Rwkv6ForCausalLM:
    """A fresh RWKV-6 from a resolved entry: n_layer, n_embd, head_size, context (+ optional
    dim_ffn, mix_lora_rank, decay_lora_rank, chunk_size)."""
    config = Rwkv6Config(
        vocab_size=vocab_size,
        hidden_size=int(cfg["n_embd"]),
        num_hidden_layers=int(cfg["n_layer"]),
        head_size=int(cfg.get("head_size", 64)),
        intermediate_size=int(cfg["dim_ffn"]) if cfg.get("dim_ffn") else None,
        context_length=int(cfg["context"]),
        mix_lora_rank=int(cfg.get("mix_lora_rank", 32)),
        decay_lora_rank=int(cfg.get("decay_lora_rank", 64)),
        chunk_size=int(cfg.get("chunk_size", 32)),
        dropout=float(cfg.get("dropout", 0.0)),
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    return Rwkv6ForCausalLM(config)


def export_rwkv_pth(model: Rwkv6ForCausalLM, path: str | Path) -> Path:
    """Write the weights as BlinkDL's .pth (fp32 state dict); load it with
    `rwkv.model.RWKV(model=str(path.with_suffix("")), strategy="cpu fp32")`."""
    if int(model.config.head_size_divisor) != 8:
        raise ValueError(
            "export_rwkv_pth: the rwkv package hard-codes head_size_divisor 8 (ln_x eps 64e-5); "
            f"this model has {model.config.head_size_divisor}"
        )
    path = Path(path)
    if path.suffix != ".pth":
        path = path.with_name(path.name + ".pth")
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(weights, path)
    return path
