"""The record model: one JSON object per fact, written to stdout, files and the store.

A record is a flat dict. Every record carries the envelope fields ``schema``, ``kind``,
``session_id``, ``seq`` and ``time``. A component metric (kind ``llm``, ``stt``, ``tts``,
``vad``, ``eou``, ...) is LiveKit's own ``model_dump(mode="json")`` merged with the envelope
(and, for ``llm``, the derived ``decode_rate``), so it validates back into
``livekit.agents.metrics.AgentMetrics``. This module never imports livekit.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1

Record = dict[str, Any]

# LiveKit's metric type tag -> our record kind
KIND_BY_TYPE: dict[str, str] = {
    "llm_metrics": "llm",
    "stt_metrics": "stt",
    "tts_metrics": "tts",
    "vad_metrics": "vad",
    "eou_metrics": "eou",
    "realtime_model_metrics": "realtime",
    "eot_inference_metrics": "eot",
    "interruption_metrics": "interruption",
    "decision_metrics": "decision",
    "avatar_metrics": "avatar",
}

# figures of a turn record, copied from the ChatMessage.metrics reports
TURN_FIELDS = (
    "e2e_latency",
    "end_of_turn_delay",
    "transcription_delay",
    "on_user_turn_completed_delay",
    "llm_node_ttft",
    "llm_node_tps",
    "llm_node_ttfs",
    "tts_node_ttfb",
    "playback_latency",
    "started_speaking_at",
    "stopped_speaking_at",
)


def kind_of_metric(metric_type: str) -> str:
    """The record kind for a LiveKit metric ``type`` tag (unknown tags keep their stem)."""
    return KIND_BY_TYPE.get(metric_type, metric_type.removesuffix("_metrics"))


def decode_rate(completion_tokens: int, duration: float, ttft: float) -> float | None:
    """Tokens per second after the first token: ``completion_tokens / (duration - ttft)``.

    LiveKit's ``tokens_per_second`` divides by the whole duration, so it includes the wait for
    the first token; this is the rate the model actually decodes at. ``None`` when undefined.
    """
    if completion_tokens <= 0 or ttft < 0:
        return None
    window = duration - ttft
    if window <= 0:
        return None
    return completion_tokens / window


def metric_record(dump: dict[str, Any]) -> Record:
    """A record body for a LiveKit metric already dumped with ``model_dump(mode="json")``."""
    body: Record = {"kind": kind_of_metric(str(dump.get("type", "unknown")))}
    body.update(dump)
    if body["kind"] == "llm":
        body["decode_rate"] = decode_rate(
            int(dump.get("completion_tokens", 0)),
            float(dump.get("duration", 0.0)),
            float(dump.get("ttft", -1.0)),
        )
    return body


def to_json(record: Record) -> str:
    """One JSON line (without the newline), compact and stable."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


def model_label(record: Record) -> str | None:
    """``provider/model`` of a component metric, from LiveKit's ``metadata``."""
    meta = record.get("metadata") or {}
    name = meta.get("model_name")
    provider = meta.get("model_provider")
    if name and "/" in name:
        return str(name)  # LiveKit Inference: provider "livekit", name "openai/gpt-4.1-mini"
    if name and provider:
        return f"{provider}/{name}"
    return name or provider or None
