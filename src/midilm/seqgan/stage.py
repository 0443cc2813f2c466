"""Stages `seqgan_oracle` and `seqgan_music`: SeqGAN's synthetic oracle experiment ->
outputs/seqgan/oracle/, and its music task on the split's melodies -> outputs/seqgan/music/ and
outputs/samples/seqgan/; the measured speed -> outputs/speed/seqgan-{oracle,music}.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midilm.common.paths import Layout
from midilm.seqgan.music import run_music_task
from midilm.seqgan.oracle import run_oracle_experiment
from midilm.specs.seqgan import seqgan_spec


def run_seqgan_oracle(params: Mapping[str, Any], layout: Layout) -> dict[str, Any]:
    """The oracle experiment; returns outputs/seqgan/oracle/metrics.json's content."""
    spec = seqgan_spec(params)
    oracle_dir, speed_file = layout.seqgan_dir("oracle"), layout.speed_file("seqgan", "oracle")
    return run_oracle_experiment(spec, oracle_dir, speed_file)


def run_seqgan_music(params: Mapping[str, Any], layout: Layout) -> dict[str, Any]:
    """The music task; returns outputs/seqgan/music/metrics.json's content."""
    spec = seqgan_spec(params)
    return run_music_task(
        spec,
        layout,
        layout.seqgan_dir("music"),
        layout.samples_dir("seqgan"),
        layout.speed_file("seqgan", "music"),
    )
