"""The GPU check (issue 16): every accelerator code path of midilm in one time-boxed run, one JSON.

    bash benchmarks/gpu_check.sh OUT_DIR              # on a CUDA machine (installs carried wheels)
    python benchmarks/gpu_check.py --dry-run --out D  # CPU: every step at tiny sizes (the test)

Steps, in order (`gpu_steps.py`, `gpu_resume.py`): environment, measured matmul peak, the ~85 M
GPT at context 1024 (tokens/s and MFU: the stage's settings, then fused AdamW, flash-only SDPA,
a larger micro-batch, torch.compile), DeepSpeed ZeRO-2 bf16 on one GPU with and without
gradient checkpointing, each family's training step at its thesis size (gpt, mistral, llama,
mamba, rwkv6, seqgan when present), RWKV-6's chunked WKV against the recurrent reference,
QLoRA (NF4 + bf16 + double quantization; plain LoRA where bitsandbytes cannot run), generation
tokens/s per family alone and batched at contexts 512 and 4096, and exact resume of
`midilm train` after SIGKILL. Each step runs under its own time limit (SIGALRM in this process;
subprocesses get what is left of it); a failure or a timeout is recorded with the tail of its
traceback and the next step runs. The JSON is rewritten after every step (atomically), so a run
stopped from outside still leaves every finished step.

Time budget on an H200 (seconds; `STEPS` below): each step's cap and its expected time, estimated
from its FLOPs at 25-40 % of the measured ~790 TFLOP/s bf16 peak where compute bound, and from
kernel launches (~10 us each from Python) where launch bound (Mamba's sequential scan,
token-by-token decoding), plus imports and model builds; the caps add up to less than 9 minutes
with the wheel install and this process's start, the expected times to about 5.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# MKL's strict reproducible mode before MKL's first call, as midilm.models.runtime sets it: the
# resume step compares a run of this process with one of a fresh process byte for byte
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # the device machine runs from the copied tree
    sys.path.insert(1, str(REPO / "src"))

import gpu_resume  # noqa: E402
import gpu_steps  # noqa: E402

from midilm.common.io import write_json_atomic  # noqa: E402

LIMIT_S = 540  # the whole run, wheel install included, must end within 9 minutes on an H200
INSTALL_S = 15  # gpu_check.sh: pip --target of the carried wheels (~25 MB)
STARTUP_S = 10  # this process: import torch, transformers, midilm
# per step in a dry run (a shared 2-core CPU; the H200 caps do not apply). DeepSpeed gets more:
# on a CPU it JIT-builds a C++ communication op when the shared build cache lacks it
DRY_CAP_S = 150


@dataclass(frozen=True)
class Step:
    name: str
    budget_s: int  # cap on an H200: the step is stopped there
    expected_s: int  # estimate on an H200
    estimate: str  # how the expectation was reached
    run: Callable[[gpu_steps.Check, dict[str, Any]], None]
    dry_cap_s: int = DRY_CAP_S  # its cap in a dry run


STEPS: list[Step] = [
    Step("environment", 10, 3, "device queries and package versions", gpu_steps.environment),
    Step("matmul_peak", 10, 3, "20 bf16 8192^3 matmuls (1.1 TFLOP each, ~1.4 ms)",
         gpu_steps.matmul_peak),
    Step("gpt_mfu", 90, 70,
         "4 variants x 13 steps of 1.5-3.1e13 FLOP (625 MFLOP/token x 24-48 x 1024 tokens) at "
         ">=25% of peak: ~6 s, 4 model builds ~8 s, torch.compile (inductor, fwd+bwd of 12 "
         "layers) ~40-60 s", gpu_steps.gpt_mfu),
    Step("deepspeed_zero2", 60, 36,
         "2 subprocesses: imports incl. deepspeed ~10 s, NCCL and ZeRO init ~6 s, 13 steps of "
         "1.5e13 FLOP (x4/3 recomputed with checkpointing) ~2 s", gpu_steps.deepspeed_zero2,
         dry_cap_s=300),
    Step("train_gpt", 20, 6, "4 steps of 2.0e13 FLOP (with recompute) ~0.5 s, build ~3 s",
         gpu_steps.train_family("gpt")),
    Step("train_mistral", 20, 8,
         "679 MFLOP/token x 49k tokens x4/3 = 4.4e13 FLOP/step, 4 steps ~1 s, build ~3 s",
         gpu_steps.train_family("mistral")),
    Step("train_llama", 20, 8,
         "736 MFLOP/token x 49k tokens x4/3 = 4.8e13 FLOP/step, 4 steps ~1 s, build ~3 s",
         gpu_steps.train_family("llama")),
    Step("train_mamba", 70, 40,
         "launch bound: sequential scan ~8 kernels x 2048 steps x 24 layers, x4 with "
         "checkpointing and backward = 1.6 M launches ~16 s/step; 1 warm-up + 1 timed step",
         gpu_steps.train_family("mamba")),
    Step("train_rwkv6", 20, 6,
         "450 MFLOP/token x 12k tokens = 5.5e12 FLOP/step plus 16 WKV chunks x 20 layers of "
         "small kernels; 4 steps ~1 s, build ~3 s", gpu_steps.train_family("rwkv6")),
    Step("train_seqgan", 20, 10, "one adversarial batch of the paper's sizes at length 32",
         gpu_steps.train_seqgan),
    Step("rwkv6_kernel", 20, 8,
         "WKV at 4x512x8x64: fp64 recurrent reference 512 steps fwd+bwd <1 s per regime; "
         "model check 128 tokens one by one x 20 layers ~1.5 s", gpu_steps.rwkv6_kernel),
    Step("qlora", 40, 20,
         "168 M-parameter Llama: build + save ~4 s, bitsandbytes import and NF4 load ~5 s, "
         "4 steps of 4k tokens (4e12 FLOP) <1 s", gpu_steps.qlora),
    Step("generation", 55, 35,
         "decode latency bound ~5-10 ms/token: 64 tokens x 2 modes x 2 contexts x 5 families "
         "~5 s; Mamba's sequential prefill of 4032 tokens ~6 s x 2; 5 builds ~10 s",
         gpu_steps.generation),
    Step("resume", 45, 25,
         "one `midilm train` subprocess (imports ~8 s, CUDA init ~2 s), 3 runs x 300 steps of "
         "a 3 M GPT x ~8 ms", gpu_resume.resume),
    Step("imports", 10, 2, "module scan", gpu_steps.imports),
]  # fmt: skip


def plan() -> dict[str, Any]:
    """The time budget, written into the JSON."""
    caps = sum(s.budget_s for s in STEPS) + INSTALL_S + STARTUP_S
    expected = sum(s.expected_s for s in STEPS) + INSTALL_S + STARTUP_S
    if caps >= LIMIT_S:
        raise AssertionError(f"step budgets add up to {caps} s, not under {LIMIT_S} s")
    return {
        "limit_s": LIMIT_S,
        "caps_total_s": caps,
        "expected_total_s": expected,
        "install_s": INSTALL_S,
        "startup_s": STARTUP_S,
        "method": (
            "compute-bound steps: model FLOPs (6N + 12LdT per token, x4/3 with gradient "
            "checkpointing) at 25-40% of the ~790 TFLOP/s bf16 matmul rate measured on an "
            "H200; launch-bound steps (Mamba's sequential scan, token-by-token decoding, small "
            "WKV kernels): kernel launches x ~10 us; plus imports (~6-10 s a process), model "
            "builds (~2-3 s) and torch.compile (~40-60 s)"
        ),
        "steps": {
            s.name: {"budget_s": s.budget_s, "expected_s": s.expected_s, "estimate": s.estimate}
            for s in STEPS
        },
    }


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise StepTimeout in this (main) thread once `seconds` have passed."""

    def expire(signum: int, frame: Any) -> None:
        raise gpu_steps.StepTimeout(f"stopped at its time limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def device_slug(device: torch.device, dry_run: bool) -> str:
    if dry_run:
        return "cpu_dry_run"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def traceback_tail(exc: BaseException, chars: int = 2500) -> str:
    return "".join(traceback.format_exception(exc))[-chars:]


def release(device: torch.device) -> None:
    """Free what a step left on the device so the next step's peak memory is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_step(step: Step, check: gpu_steps.Check, record: dict[str, Any]) -> None:
    """Run one step under its time limit; its outcome goes into `record`."""
    cap = step.dry_cap_s if check.dry_run else step.budget_s
    check.deadline = time.monotonic() + cap
    start = time.perf_counter()
    try:
        with time_limit(cap):
            step.run(check, record)
        record["status"] = "ok"
    except gpu_steps.Skipped as skip:
        record.update(status="skipped", reason=str(skip))
    except gpu_steps.StepTimeout as exc:
        record.update(status="timeout", error=str(exc), traceback=traceback_tail(exc))
    except Exception as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500],
                      traceback=traceback_tail(exc))  # fmt: skip
    finally:
        record["seconds"] = round(time.perf_counter() - start, 2)
        record["cap_s"] = cap
        with contextlib.suppress(Exception):
            release(check.device)


@dataclass
class Report:
    path: Path
    content: dict[str, Any] = field(default_factory=dict)

    def write(self) -> None:
        write_json_atomic(self.path, self.content)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, every step")
    parser.add_argument("--steps", default=None, help="comma-separated subset of the steps")
    parser.add_argument("--install-report", type=Path, default=None,
                        help="gpu_wheels.py install's JSON, copied into the result")  # fmt: skip
    parser.add_argument("--commit", default=os.environ.get("GPU_CHECK_COMMIT"),
                        help="the commit checked (the device's copy may have no .git)")  # fmt: skip
    args = parser.parse_args()
    names = args.steps.split(",") if args.steps else [s.name for s in STEPS]
    unknown = sorted(set(names) - {s.name for s in STEPS})
    if unknown:
        parser.error(f"--steps: unknown {unknown}; choose from {[s.name for s in STEPS]}")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device is visible: run on a GPU machine, or pass --dry-run")

    device = torch.device("cpu") if args.dry_run else torch.device("cuda", 0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        check = gpu_steps.Check(device=device, dry_run=args.dry_run, work=Path(work),
                                commit=args.commit, install_report=args.install_report)  # fmt: skip
        report = Report(args.out / f"gpu_check_{device_slug(device, args.dry_run)}.json")
        report.content = {
            "check": "gpu_check",
            "dry_run": args.dry_run,
            "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "sizes": asdict(check.sizes),
            "plan": plan(),
            "steps": {},
        }
        for step in STEPS:
            if step.name not in names:
                continue
            record: dict[str, Any] = {"status": "running"}
            report.content["steps"][step.name] = record
            report.write()  # a run killed now still shows which step it was in
            print(f"gpu_check: {step.name} ...", flush=True)
            run_step(step, check, record)
            print(f"gpu_check: {step.name} {record['status']} in {record['seconds']} s", flush=True)
            report.content["total_seconds"] = round(time.perf_counter() - started, 2)
            report.write()
        outcome: dict[str, list[str]] = {}
        for name, record in report.content["steps"].items():
            outcome.setdefault(record["status"], []).append(name)
        report.content["outcome"] = outcome
        report.write()
    print(json.dumps({"result": str(report.path), "outcome": outcome}, indent=2))


if __name__ == "__main__":
    main()
