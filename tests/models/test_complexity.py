"""T7's measurement: the KV cache grows with the context, a recurrent state does not."""

from __future__ import annotations

from midilm.models.complexity import measure_complexity
from tests.models.families import TINY


def test_kv_cache_grows_linearly_and_recurrent_state_is_constant() -> None:
    entries = {key: TINY[key] for key in ("gpt2", "mistral", "mamba", "rwkv6")}
    entries["mistral"] = {**entries["mistral"], "sliding_window": None}  # full attention
    rows = measure_complexity(entries, [16, 64], vocab_size=50, device="cpu", repeats=3, warmup=1)
    assert [(r["model"], r["context"]) for r in rows] == [
        (key, length) for key in entries for length in (16, 64)
    ]
    size = {(r["model"], r["context"]): r["cache_bytes"] for r in rows}
    # gpt2: 2 layers x (keys + values) x 32 channels x float32 per token
    assert size["gpt2", 16] == 16 * 2 * 2 * 32 * 4 and size["gpt2", 64] == 4 * size["gpt2", 16]
    assert size["mistral", 64] == 4 * size["mistral", 16]  # GQA: 2 of 4 heads cached
    assert size["mistral", 16] == size["gpt2", 16] // 2
    assert size["mamba", 64] == size["mamba", 16] > 0
    # rwkv6: per layer two shifts [32] and a WKV state [2 heads, 16, 16], float32
    assert size["rwkv6", 64] == size["rwkv6", 16] == 2 * (2 * 32 + 2 * 16 * 16) * 4
    assert all(r["ms_per_token"] > 0 and r["device"] == "cpu" for r in rows)
    assert {r["family"] for r in rows} == {"gpt2", "mistral", "mamba", "rwkv6"}


def test_a_sliding_window_bounds_mistrals_cache() -> None:
    rows = measure_complexity({"mistral": TINY["mistral"]}, [16, 64], 50, "cpu", repeats=1)
    assert rows[0]["cache_bytes"] == rows[1]["cache_bytes"]  # window 8 < 16 tokens
