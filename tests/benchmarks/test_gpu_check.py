"""The GPU check's dry run: benchmarks/gpu_check.sh --dry-run executes every step on the CPU at
tiny sizes (fp32, DeepSpeed over gloo, NF4 skipped with its reason), so the script cannot rot
while no GPU is at hand; and its time budget fits the 9 minutes of issue 16."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402
import gpu_steps  # noqa: E402


def test_the_step_caps_fit_nine_minutes_with_the_install_and_the_start() -> None:
    plan = gpu_check.plan()
    assert plan["caps_total_s"] < gpu_check.LIMIT_S == 540
    assert plan["expected_total_s"] < plan["caps_total_s"]
    assert set(plan["steps"]) == {s.name for s in gpu_check.STEPS}
    assert all(s.expected_s <= s.budget_s for s in gpu_check.STEPS)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("gpu-check")
    site = tmp_path_factory.mktemp("site") / "site"
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_SITE=str(site),
               GPU_CHECK_TIMEOUT="1500")  # fmt: skip
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out), "--dry-run"],
        env=env, capture_output=True, text=True, timeout=1600, check=False,
    )  # fmt: skip
    log = (out / "gpu_check.log").read_text(errors="replace")
    assert done.returncode == 0, f"exit {done.returncode}\n{log[-4000:]}\n{done.stderr[-2000:]}"
    return json.loads((out / "gpu_check_cpu_dry_run.json").read_text()), log


@pytest.mark.slow
def test_the_dry_run_executes_every_step(dry_run: tuple[dict[str, Any], str]) -> None:
    result, log = dry_run
    steps = result["steps"]
    assert result["dry_run"] is True
    assert set(steps) == {s.name for s in gpu_check.STEPS}
    failed = {k: v.get("traceback", v.get("error")) for k, v in steps.items()
              if v["status"] not in ("ok", "skipped")}  # fmt: skip
    assert not failed, failed
    assert [k for k, v in steps.items() if v["status"] == "skipped"] == []
    assert steps["train_seqgan"]["lengths"]["32"]["adversarial_batch_seconds"] > 0
    assert "gpu_check: resume ok" in log

    env = steps["environment"]
    assert env["versions"]["torch"] and env["source_digest"]
    assert env["install"]["installed"] == []  # the dry run brings no wheel of its own
    assert steps["matmul_peak"]["best_tflops"] > 0

    mfu = steps["gpt_mfu"]
    assert set(mfu["variants"]) == {"stage_b2", "fused_flash_b2", "fused_b4", "compiled_fused_b4"}
    for variant in mfu["variants"].values():
        assert variant["tokens_per_s"] > 0 and variant["mfu"] > 0, variant
    assert mfu["variants"]["compiled_fused_b4"]["compile"] is True
    assert mfu["variants"]["fused_b4"]["fused_adamw"] is True

    zero2 = steps["deepspeed_zero2"]["variants"]
    assert zero2["zero2"]["strategy"] == "deepspeed" and zero2["zero2"]["precision"] == "fp32"
    assert zero2["zero2+checkpointing"]["gradient_checkpointing"] is True

    for family in gpu_steps.FAMILIES:
        trained = steps[f"train_{family}"]
        assert trained["tokens_per_s"] > 0 and trained["peak_memory_mb"] > 0
        assert 5.2 < trained["loss_last"] < 8.5  # untrained: about ln(501) = 6.2

    kernel = steps["rwkv6_kernel"]
    assert kernel["regimes"]["mild_decay"]["within_tolerance"]
    assert kernel["regimes"]["strong_decay"]["within_tolerance"]  # the pairwise score path
    assert (
        kernel["model"]["within_tolerance"] and kernel["model"]["logits_relative_error_fp32"] < 1e-4
    )

    lora = steps["qlora"]
    assert lora["nf4"]["status"] == "skipped" and "CUDA" in lora["nf4"]["reason"]
    assert lora["quantize"] == "none" and lora["lora_b_trained"] and lora["base_weight_unchanged"]

    generation = steps["generation"]["families"]
    for family in gpu_steps.FAMILIES:
        for context in steps["generation"]["contexts"]:
            alone, batched = (
                generation[family][f"alone_{context}"],
                generation[family][f"batched_{context}"],
            )
            assert alone["new_tokens"] == 8 and batched["new_tokens"] == 16
            assert batched["decode_tokens_per_s"] > 0

    resume = steps["resume"]
    assert resume["bitwise_equal"] is True
    assert resume["killed"]["checkpoints_at_kill"]
    assert steps["imports"]["not_on_device"] == []
    assert result["outcome"]["ok"]
