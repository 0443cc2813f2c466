"""The `listen` parameter group (conf/listen/default.yaml), read once into a frozen spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from midilm.common.spec import from_mapping, section

CONF_FILE = "conf/listen/default.yaml"


@dataclass(frozen=True)
class ListenSpec:
    """How a listening test is drawn and how its stimuli are prepared."""

    seed: int  # draws and orders every participant's session
    samples_per_model: int  # generated clips of each model per participant
    real_per_participant: int  # real test pieces (the hidden reference) per participant
    anchors: int  # degraded anchors made, from the first real pieces by id
    anchors_per_participant: int
    clip_seconds: float  # every stimulus is cut to at most this long (with a fade-out)
    anchor_segment_seconds: float  # anchor: the piece cut into segments this long, shuffled
    anchor_lowpass_hz: float  # anchor: then low-passed here (MUSHRA's 3.5 kHz anchor)
    anchor_snr_db: float  # anchor: then white noise added at this signal-to-noise ratio

    def __post_init__(self) -> None:
        counts = (self.samples_per_model, self.real_per_participant, self.anchors_per_participant)
        if min(counts) < 0 or self.anchors < 0:
            raise ValueError(f"{CONF_FILE}: stimulus counts must be >= 0")
        if self.real_per_participant < 1:
            raise ValueError(
                f"{CONF_FILE}: real_per_participant must be >= 1 (real pieces are the hidden "
                "reference every model is compared with)"
            )
        if self.clip_seconds <= 1 or self.anchor_segment_seconds <= 0:
            raise ValueError(f"{CONF_FILE}: clip_seconds > 1 and anchor_segment_seconds > 0")
        if self.anchor_lowpass_hz <= 0:
            raise ValueError(f"{CONF_FILE}: anchor_lowpass_hz must be > 0")


def listen_spec(params: Mapping[str, Any]) -> ListenSpec:
    return from_mapping(ListenSpec, section(params, "listen", where=CONF_FILE), CONF_FILE)
