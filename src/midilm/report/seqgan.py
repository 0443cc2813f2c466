"""T6: SeqGAN against MLE as the paper compares them (Table 1: NLL-oracle of the synthetic
experiment; Table 4: BLEU-4 and MSE of the music task), with the paper's reported values in
labelled rows; and its companion of measured memory and time against the sequence length.

The outputs read: outputs/seqgan/{oracle,music}/metrics.json (`Layout.seqgan_dir`), written by
the stages seqgan_oracle and seqgan_music; and benchmarks/results/seqgan_<device>.json, written
by benchmarks/bench_seqgan.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.report.inputs import read_input
from midilm.report.tables import Column, Table

ROWS = (("random", "random (untrained generator)"), ("mle", "MLE"), ("seqgan", "SeqGAN"))
PAPER_NLL = {"random": 10.310, "mle": 9.038, "seqgan": 8.736}  # Table 1
PAPER_MUSIC = {"mle": (0.9210, 22.38), "seqgan": (0.9406, 20.62)}  # Table 4: BLEU-4, MSE


def seqgan_table(params: dict[str, Any], layout: Layout) -> Table:
    """T6_seqgan: random, MLE and SeqGAN x NLL-oracle, BLEU-4, MSE, then the paper's values."""
    oracle = read_input(layout.seqgan_dir("oracle") / "metrics.json", "seqgan_oracle")
    music = read_input(layout.seqgan_dir("music") / "metrics.json", "seqgan_music")
    rows: list[list[Any]] = []
    for key, label in ROWS:
        nll = oracle["rows"][key]["nll_oracle"]
        tune = music["rows"][key]
        rows.append([f"{label} (this run)", nll, tune["bleu4"], tune["mse"]])
    real = music["rows"].get("valid split (real melodies)")
    if real:
        rows.append(["real melodies, valid split (this run)", None, real["bleu4"], real["mse"]])
    rows.append(["oracle's own samples (this run)", oracle["oracle"]["nll_of_its_own_samples"],
                 None, None])  # fmt: skip
    for key, label in ROWS:
        bleu, mse = PAPER_MUSIC.get(key, (None, None))
        rows.append([f"{label}, Yu et al. 2017 (reported)", PAPER_NLL[key], bleu, mse])
    o, m = oracle["sizes"], music["sizes"]
    return Table(
        "SeqGAN against MLE: synthetic oracle (NLL-oracle) and melodies (BLEU-4, MSE)",
        [Column("generator"), Column("NLL-oracle", 3), Column("BLEU-4", 4), Column("MSE", 2)],
        rows,
        notes=[
            "NLL-oracle: mean negative log-likelihood per token, under the oracle LSTM, of "
            f"{oracle['nll_samples']:,} sequences of each generator (lower is better); oracle: "
            f"{oracle['oracle']['source']}, vocab {o['vocab']}, length {o['length']}, "
            f"{o['train_sequences']:,} training sequences. The paper's values are of its own "
            "oracle: comparable only when the reference oracle is loaded (seqgan.oracle.weights).",
            "BLEU-4: corpus BLEU (NLTK's corpus_bleu, uniform weights, no smoothing) of "
            f"{music['eval_samples']:,} generated melodies, each against all "
            f"{music['test_references']:,} test melodies; MSE: squared pitch difference per step "
            "to the nearest test melody, averaged (docs/metrics.md, SeqGAN). Melodies: "
            f"{m['length']} samples every 0.4 s of {m['train_sequences']:,} training windows.",
            f"Roll-out policy: oracle {oracle['rollout_policy']}; music {music['rollout_policy']}.",
            "Sizes (oracle / music): MLE epochs "
            f"{o['mle_epochs']} / {m['mle_epochs']}, discriminator pre-training "
            f"{o['d_pretrain_rounds']} / {m['d_pretrain_rounds']} rounds of {o['d_epochs']} / "
            f"{m['d_epochs']} epochs on {o['negatives']:,} / {m['negatives']:,} negatives, "
            f"adversarial batches {o['adversarial_batches']} / {m['adversarial_batches']} "
            f"({o['rollouts']} / {m['rollouts']} roll-outs of {o['g_batch_size']} / "
            f"{m['g_batch_size']} sequences, {o['d_rounds']} / {m['d_rounds']} discriminator "
            "rounds each); the paper: 120, 50 x 3 on 10,000, 200 (16 x 64, 5).",
        ],
    )


def benchmark_file(layout: Layout) -> Path:
    """benchmarks/bench_seqgan.py's result: a GPU's when one was measured, else the CPU's."""
    results = layout.root / "benchmarks" / "results"
    gpu = results / "seqgan_cuda.json"
    return gpu if gpu.exists() else results / "seqgan_cpu.json"


def seqgan_speed_from_benchmark(params: dict[str, Any], layout: Layout) -> Table:
    """T6_seqgan_speed from the committed benchmark result (`benchmark_file`)."""
    path = benchmark_file(layout)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing input of T6_seqgan_speed; run `python benchmarks/bench_seqgan.py`."
        )
    return seqgan_speed_table(read_json(path))


def seqgan_speed_table(data: dict[str, Any]) -> Table:
    """T6_seqgan_speed: the rows of benchmarks/bench_seqgan.py's JSON (measured)."""
    rows = []
    for row in data["rows"]:
        if "error" in row:
            rows.append([row["length"], None, None, None, None, row["error"]])
            continue
        rows.append([row["length"], row["rollout_sequences"], row["g_step_seconds"],
                     row["adversarial_batch_seconds"], row["peak_memory_mb"], ""])  # fmt: skip
    sizes = data["sizes"]
    return Table(
        "SeqGAN: one adversarial batch against the sequence length (measured)",
        [Column("length"), Column("roll-out sequences"), Column("generator step s", 2),
         Column("adversarial batch s", 2), Column("peak memory MB", 0), Column("note")],
        rows,
        notes=[
            f"Measured on {data['device']} ({data['threads']} threads): one generator step "
            f"({sizes['g_batch']} sequences x {sizes['rollouts']} roll-outs of every prefix) and "
            f"{sizes['d_rounds']} x {sizes['d_epochs']} discriminator epochs on "
            f"{sizes['positives']} + {sizes['positives']} sequences; discriminator filters x "
            f"{sizes['filter_scale']}. Peak memory: GPU allocator peak, or the process's peak "
            "resident set on CPU (interpreter and torch included).",
        ],
    )  # fmt: skip
