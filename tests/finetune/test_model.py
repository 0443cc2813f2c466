"""Loading a base by path, LoRA on the seven projections, QLoRA and hub errors, RoPE scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from midilm.common.spec import ConfigError
from midilm.finetune.model import (
    TARGET_MODULES,
    BaseLoading,
    BaseModelUnavailable,
    QuantizationUnavailable,
    adapted_modules,
    apply_lora,
    load_base,
    load_base_tokenizer,
    parameter_counts,
    quantization_config,
)
from tests.finetune.conftest import finetune_spec


def loading(base: str | None, **size: Any) -> BaseLoading:
    spec = finetune_spec(base, **size)
    return BaseLoading.of(spec.finetune, spec.context)


def test_lora_wraps_exactly_the_seven_projections_of_every_layer(tiny_base: Path) -> None:
    base = load_base(tiny_base, loading(str(tiny_base)))
    tokenizer = load_base_tokenizer(tiny_base)
    layers = base.config.num_hidden_layers
    total_before = sum(p.numel() for p in base.parameters())
    model = apply_lora(base, finetune_spec(str(tiny_base)).finetune)

    assert adapted_modules(model) == {i: sorted(TARGET_MODULES) for i in range(layers)}
    lora_a = [n for n, _ in model.named_modules() if n.endswith("lora_A.default")]
    assert len(lora_a) == 7 * layers
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * 7 * layers  # A and B of each adapter
    n_trainable, n_total = parameter_counts(model)
    assert n_total == total_before + n_trainable
    assert tokenizer.pad_token_id is not None


def test_missing_local_folder_is_a_clear_error() -> None:
    with pytest.raises(BaseModelUnavailable, match=r"no such folder.*conf/model/finetune.yaml"):
        load_base("./no/such/base", loading("./no/such/base"))


def test_hub_name_offline_without_cache_names_the_model_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "meta-llama/Llama-2-7b-hf"
    with pytest.raises(BaseModelUnavailable) as info:
        load_base(name, loading(name), cache_dir=tmp_path / "empty-cache")
    message = str(info.value)
    assert name in message
    assert "HF_HUB_OFFLINE=1" in message
    assert f"hf download {name}" in message
    assert "base_model: null" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: NF4 is allowed there")
def test_qlora_without_cuda_is_a_clear_error(tiny_llama: Path) -> None:
    cfg = loading(str(tiny_llama), quantize="nf4")
    with pytest.raises(QuantizationUnavailable, match=r"CUDA GPU.*quantize: none"):
        quantization_config(cfg)
    with pytest.raises(QuantizationUnavailable):
        load_base(tiny_llama, cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA (bitsandbytes NF4) needs CUDA")
def test_qlora_loads_nf4_with_double_quant_and_bf16_compute(tiny_llama: Path) -> None:
    import bitsandbytes as bnb

    spec = finetune_spec(str(tiny_llama), quantize="nf4", dtype="auto", gradient_checkpointing=True)
    base = load_base(tiny_llama, BaseLoading.of(spec.finetune, spec.context), "cuda")
    quant = base.config.quantization_config
    assert quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    assert quant.bnb_4bit_compute_dtype == torch.bfloat16
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in base.modules())
    model = apply_lora(base, spec.finetune)
    ids = torch.tensor([[1, 5, 6, 7, 8]], device="cuda")
    model(input_ids=ids).logits.float().sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_quantize_mode_is_checked() -> None:
    assert quantization_config(loading(None)) is None
    with pytest.raises(ConfigError, match="'int3' is not one of"):
        loading(None, quantize="int3")


def test_rope_scaling_for_a_context_beyond_the_model(tiny_llama: Path) -> None:
    native = load_base(tiny_llama, loading(str(tiny_llama)))
    assert native.config.rope_parameters["rope_type"] == "default"

    long_cfg = loading(str(tiny_llama), context=1024, rope_scaling="linear")
    scaled = load_base(tiny_llama, long_cfg)
    rope = scaled.config.rope_parameters
    assert rope["rope_type"] == "linear" and rope["factor"] == pytest.approx(4.0)
    ids = torch.randint(4, 100, (1, 600))
    with torch.no_grad():
        assert torch.isfinite(scaled(input_ids=ids).logits).all()
        # positions inside the native range now rotate differently (interpolated)
        assert not torch.allclose(
            scaled(input_ids=ids[:, :50]).logits, native(input_ids=ids[:, :50]).logits
        )

    fitting = loading(str(tiny_llama), context=128, rope_scaling="linear")
    assert load_base(tiny_llama, fitting).config.rope_parameters["rope_type"] == "default"
