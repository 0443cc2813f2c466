"""MusicGen through transformers' own loading code, on a tiny randomly initialised MusicGen saved
to a temporary folder, and seed 001's whole text -> audio -> MIDI -> (model) -> lo-fi path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import soundfile
import symusic

from midilm.audio.text2audio import (
    Musicgen,
    MusicgenUnavailable,
    load_musicgen,
    text_to_audio,
    text_to_lofi,
)
from midilm.specs.audio import AudioSpec


def save_tiny_musicgen(folder: Path) -> Path:
    """A MusicGen of ~0.2 M random weights (T5 text encoder, EnCodec at 16 kHz, 2 codebooks)
    and its processor, written with save_pretrained as the hub's checkpoints are."""
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
        T5Tokenizer,
    )

    words = ["rainy", "night", "piano", "lofi", "calm", "jazz"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("▁" + w, -1.0) for w in words] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz▁"]
    processor = MusicgenProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=16000),
        tokenizer=T5Tokenizer(vocab=vocab, extra_ids=0),
    )
    config = MusicgenConfig(
        text_encoder=T5Config(
            vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2
        ).to_dict(),
        audio_encoder=EncodecConfig(
            sampling_rate=16000,
            hidden_size=16,
            num_filters=4,
            codebook_size=64,
            num_lstm_layers=1,
            target_bandwidths=[1.5],
        ).to_dict(),
        decoder=MusicgenDecoderConfig(
            vocab_size=64,
            max_position_embeddings=256,
            num_hidden_layers=1,
            ffn_dim=32,
            num_attention_heads=2,
            hidden_size=16,
            num_codebooks=2,
            pad_token_id=64,
            bos_token_id=64,
        ).to_dict(),
    )
    torch.manual_seed(0)
    MusicgenForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_spec(audio_spec: AudioSpec, tmp_path_factory: pytest.TempPathFactory) -> AudioSpec:
    folder = save_tiny_musicgen(tmp_path_factory.mktemp("musicgen") / "tiny-musicgen")
    musicgen = dataclasses.replace(
        audio_spec.musicgen, model=str(folder), device="cpu", prompt_seconds=1.0
    )
    return dataclasses.replace(audio_spec, musicgen=musicgen)


@pytest.fixture(scope="module")
def tiny_musicgen(tiny_spec: AudioSpec) -> Musicgen:
    return load_musicgen(tiny_spec.musicgen.model, "cpu")


def test_text_to_audio_from_a_saved_folder(
    tiny_spec: AudioSpec, tiny_musicgen: Musicgen, tmp_path: Path
):
    model, processor = tiny_musicgen
    assert type(model).__name__ == "MusicgenForConditionalGeneration"
    assert type(processor).__name__ == "MusicgenProcessor"
    spec = tiny_spec.musicgen
    info = text_to_audio("rainy night piano", 0.5, tmp_path / "a.wav", spec, 7, tiny_musicgen)
    assert info["sample_rate"] == 16000 and info["seconds"] == 0.5
    audio, rate = soundfile.read(str(tmp_path / "a.wav"))
    assert rate == 16000 and audio.shape[0] == 8000 and abs(audio).max() > 0
    text_to_audio("rainy night piano", 0.5, tmp_path / "b.wav", spec, 7, tiny_musicgen)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    with pytest.raises(ValueError, match="allows"):
        text_to_audio("rain", 60.0, tmp_path / "c.wav", spec, 7, tiny_musicgen)


def test_unavailable_model_says_how_to_provide_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MusicgenUnavailable) as caught:
        load_musicgen("facebook/musicgen-small", "cpu")
    message = str(caught.value)
    assert "facebook/musicgen-small" in message and "hf download facebook/musicgen-small" in message
    assert "audio.musicgen.model" in message
    with pytest.raises(MusicgenUnavailable, match="no such folder"):
        load_musicgen("./no/such/musicgen", "cpu")


def repeat_phrase(prompt: Path) -> Path:
    """A stand-in for a midilm model's continuation: the prompt played twice."""
    score = symusic.Score(str(prompt))
    end = score.end()
    for track in score.tracks:
        track.notes.extend([symusic.Note(n.time + end, n.duration, n.pitch, n.velocity)
                            for n in track.notes])  # fmt: skip
    out = prompt.with_name("continued.mid")
    score.dump_midi(str(out))
    return out


def test_text_to_lofi_runs_the_whole_path(
    tiny_spec: AudioSpec, tiny_musicgen: Musicgen, tmp_path: Path
):
    result = text_to_lofi(
        "rainy night piano",
        tmp_path / "track.flac",
        8.0,
        seed=2,
        spec=tiny_spec,
        continue_midi=repeat_phrase,
        musicgen=tiny_musicgen,
    )
    parts = tmp_path / "track.parts"
    assert result["musicgen"]["seconds"] == 1.0 and (parts / "musicgen.wav").is_file()
    assert result["transcription"]["notes"] > 0 and (parts / "prompt.mid").is_file()
    assert result["continued"] and result["piano_midi"] == str(parts / "continued.mid")
    prompt_notes = symusic.Score(str(parts / "prompt.mid")).note_num()
    assert symusic.Score(result["piano_midi"]).note_num() == 2 * prompt_notes
    mix = result["mix"]
    assert mix["drums"]["source"] == "pattern" and mix["vinyl"]["source"] == "synthesized"
    assert soundfile.info(str(tmp_path / "track.flac")).duration == pytest.approx(8.0)
