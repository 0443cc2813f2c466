"""The GPU check's resume step: `midilm train` on a synthetic repository, killed (SIGKILL) once
its first checkpoint exists and resumed, against an uninterrupted run of the same params (as
tests/train/test_resume.py does on CPU with real chorales).

The repository holds a MIDICompact tokenizer (our own: no MidiTok on the device) and random
documents packed as the pack stage packs them; the model is a small GPT trained on the device
(`train.device: cuda`, precision auto = bf16) with checkpoints every few steps. The killed run is
a real `python -m midilm train` process; the two others run in this process through the same
stage function.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from gpu_steps import Check

REPO = Path(__file__).resolve().parents[1]
KEY = "resume"
TOKENIZER = "midicompact"
GPU_RUN = {"steps": 300, "interval": 50, "context": 256, "n_layer": 4, "n_embd": 256, "n_head": 4}
DRY_RUN = {"steps": 60, "interval": 10, "context": 64, "n_layer": 2, "n_embd": 32, "n_head": 2}


def synthetic_repo(root: Path, device: str, run: dict[str, int]) -> dict[str, Any]:
    """Tokenizer, token stats and packed binidx of random documents under `root`, and the
    params of model KEY (written to root/params.yaml and returned)."""
    from midilm.common.io import write_json_atomic
    from midilm.common.params import load_params, to_plain
    from midilm.common.paths import Layout
    from midilm.specs.tokenizer import tokenizer_spec
    from midilm.store.binidx import BinIdxWriter, dtype_for_vocab
    from midilm.tokenize.factory import build_tokenizer

    params = to_plain(load_params(REPO / "params.yaml"))
    tokenizer = build_tokenizer(tokenizer_spec(params, TOKENIZER).build_cfg)
    layout, vocab = Layout(root), tokenizer.vocab_size
    tokens_dir, packed = layout.tokens_dir(TOKENIZER), layout.packed_dir(TOKENIZER)
    tokens_dir.mkdir(parents=True)
    packed.mkdir(parents=True)
    tokenizer.save(tokens_dir / "tokenizer.json")
    rng = np.random.default_rng(0)
    counts = {"train": 120, "valid": 12, "test": 12}
    per_split, splits = {}, {}
    dtype = dtype_for_vocab(vocab)
    for split, n_docs in counts.items():
        docs = [
            np.concatenate([[tokenizer.bos_id], rng.integers(3, vocab, int(n)), [tokenizer.eos_id]])
            for n in rng.integers(100, 400, n_docs)
        ]
        with BinIdxWriter(packed / split, dtype) as writer:
            for doc in docs:
                writer.add_document(doc)
        total = int(sum(len(d) for d in docs))
        per_split[split] = {"sequences": n_docs, "tokens": total, "notes": total // 4}
        splits[split] = {"documents": n_docs, "tokens": total}
    write_json_atomic(tokens_dir / "stats.json", {"vocab_size": vocab, "per_split": per_split})
    write_json_atomic(
        packed / "stats.json", {"vocab_size": vocab, "dtype": dtype.name, "splits": splits}
    )

    gpt = params["models"]["gpt"]
    size = {k: run[k] for k in ("context", "n_layer", "n_embd", "n_head")}
    entry = {**gpt, "name": KEY, "size": "check", "tokenizer": TOKENIZER, "dropout": 0.1,
             "sizes": {"check": size}, "train": {}}  # fmt: skip
    params["models"] = {KEY: entry}
    params["train"].update(
        steps=run["steps"], checkpoint_interval=run["interval"], eval_interval=run["interval"] * 2,
        eval_batches=2, batch_size=8, grad_accum=1, lr=3e-3, min_lr=3e-4, warmup_steps=5,
        device=device, threads=1, strategy="single", precision="auto", tf32=True,
        gradient_checkpointing=False, compile=False, dvclive=False,
        wandb={**params["train"]["wandb"], "mode": "disabled"},
    )  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return params


def _env() -> dict[str, str]:
    env = dict(os.environ, MIDILM_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    parts = [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    env.pop("WANDB_MODE", None)
    return env


def killed_run(root: Path, timeout: float) -> dict[str, Any]:
    """`python -m midilm train KEY` in `root`, SIGKILLed once a checkpoint exists."""
    checkpoints = root / "models" / KEY / "checkpoints"
    command = [sys.executable, "-m", "midilm", "train", KEY, "--params",
               str(root / "params.yaml"), "--root", str(root)]  # fmt: skip
    log_path = root / "killed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, env=_env(), stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while not list(checkpoints.glob("step-*")):
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2500:]
                    raise RuntimeError(f"training exited {process.returncode} before its first "
                                       f"checkpoint:\n{tail}")  # fmt: skip
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no checkpoint within {timeout:.0f} s")
                time.sleep(0.02)
            still_running = process.poll() is None
            process.send_signal(signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    saved = sorted(p.name for p in checkpoints.glob("step-*"))
    if not still_running:
        raise RuntimeError("training finished before it could be killed: raise the step count")
    return {"checkpoints_at_kill": saved, "exit_code": process.returncode}


def _outputs(root: Path) -> dict[str, bytes]:
    from midilm.common.io import read_json

    out = root / "models" / KEY
    metrics = read_json(out / "metrics.json")
    metrics.pop("speed", None)
    return {
        "weights": (out / "weights" / "model.safetensors").read_bytes(),
        "log": (out / "train_log.csv").read_bytes(),
        "metrics": repr(sorted(metrics.items())).encode(),
    }


def _differences(a: Path, b: Path) -> dict[str, float]:
    """Largest weight and loss differences between two finished runs."""
    import csv

    from safetensors.torch import load_file

    wa = load_file(str(a / "models" / KEY / "weights" / "model.safetensors"))
    wb = load_file(str(b / "models" / KEY / "weights" / "model.safetensors"))
    weight = max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)

    def losses(root: Path) -> list[float]:
        with open(root / "models" / KEY / "train_log.csv", newline="") as handle:
            return [float(r["train_loss"]) for r in csv.DictReader(handle)]

    loss = max(abs(x - y) for x, y in zip(losses(a), losses(b), strict=True))
    return {"max_weight_abs_diff": weight, "max_train_loss_abs_diff": loss}


def resume(check: Check, record: dict[str, Any]) -> None:
    """Kill after a checkpoint, resume, compare with an uninterrupted run byte for byte."""
    from midilm.common.paths import Layout
    from midilm.train.stage import run_train

    run = DRY_RUN if check.dry_run else GPU_RUN
    whole, broken = check.work / "resume_whole", check.work / "resume_killed"
    params = synthetic_repo(whole, check.device.type, run)
    shutil.copytree(whole, broken)
    record.update(run=run, tokenizer=TOKENIZER, device=check.device.type)
    start = time.perf_counter()
    record["killed"] = killed_run(broken, check.remaining() * 0.6)
    record["killed"]["seconds"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    metrics = run_train(params, Layout(whole))
    record["uninterrupted"] = {"seconds": round(time.perf_counter() - start, 2),
                               "val_loss": metrics.get("val_loss"),
                               "precision": metrics.get("precision")}  # fmt: skip
    start = time.perf_counter()
    run_train(params, Layout(broken))
    record["resumed"] = {"seconds": round(time.perf_counter() - start, 2)}
    same = _outputs(whole) == _outputs(broken)
    record["bitwise_equal"] = same
    if not same:
        record.update(_differences(whole, broken))
        raise AssertionError("the resumed run differs from the uninterrupted one (see record)")
