"""conf/audio/default.yaml read into AudioSpec once; mistakes name the conf file."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from midilm.common.spec import ConfigError
from midilm.specs.audio import DEFAULT_CONF, audio_spec, load_audio_spec


def test_conf_group_reads_into_the_spec():
    cfg = yaml.safe_load(DEFAULT_CONF.read_text())
    spec = audio_spec({"audio": cfg})
    assert spec == load_audio_spec()
    assert spec.soundfont == "timgm6mb" and spec.sample_rate == 44100
    assert spec.lofi.tempi() == [84.0, 90.0, 96.0, 102.0, 108.0]  # seed 001's effective tempi
    assert spec.lofi.drums.velocities == (100, 92, 64)
    assert spec.musicgen.model == "facebook/musicgen-small"


def test_mistakes_name_the_conf_file():
    cfg = yaml.safe_load(DEFAULT_CONF.read_text())
    with pytest.raises(ConfigError, match=r"conf/audio/default\.yaml"):
        audio_spec({})
    with pytest.raises(ConfigError, match="unknown key"):
        audio_spec({"audio": {**cfg, "sample_rte": 48000}})
    with pytest.raises(ConfigError, match="sample_rate"):
        audio_spec({"audio": {**cfg, "sample_rate": 100}})
    lofi = dataclasses.replace(load_audio_spec().lofi, tempo_bpm=(100.0, 80.0))
    with pytest.raises(ConfigError, match="tempo_bpm"):
        lofi.tempi()
