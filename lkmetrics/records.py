"""The record model: one JSON object per fact, written to stdout, files and the store.

A record is a flat dict. Every record carries the envelope fields ``schema``, ``kind``,
``session_id``, ``seq`` and ``time``. A component metric (kind ``llm``, ``stt``, ``tts``,
``vad``, ``eou``, ...) is LiveKit's own ``model_dump(mode="json")`` merged with the envelope
(and, for ``llm``, the derived ``decode_rate``), so it validates back into
``livekit.agents.metrics.AgentMetrics``. lkmetrics' own kinds (``session``, ``turn``,
``usage``, ``summary``) have their shapes declared here and are built only here.
This module never imports livekit.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict, cast

SCHEMA_VERSION = 1

Record = dict[str, Any]

# record kinds
SESSION = "session"
LLM = "llm"
STT = "stt"
TTS = "tts"
VAD = "vad"
EOU = "eou"
REALTIME = "realtime"
EOT = "eot"
TURN = "turn"
USAGE = "usage"
SUMMARY = "summary"

# LiveKit's metric type tag -> our record kind
KIND_BY_TYPE: dict[str, str] = {
    "llm_metrics": LLM,
    "stt_metrics": STT,
    "tts_metrics": TTS,
    "vad_metrics": VAD,
    "eou_metrics": EOU,
    "realtime_model_metrics": REALTIME,
    "eot_inference_metrics": EOT,
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


class SessionBody(TypedDict, total=False):
    """The first record of a session: what ran, where, with which versions."""

    kind: str  # SESSION
    command: str
    stt: str | None
    llm: str
    tts: str | None
    voice: str | None
    llm_base_url: str | None
    host: str
    pid: int
    lkmetrics_version: str
    livekit_agents_version: str
    room: str  # room modes
    turns: int  # simulate: the number of scripted turns
    bench_id: str  # bench voice: the bench run this session belongs to
    concurrency: int  # bench: callers (or requests) at once
    caller: int  # bench voice: which simulated caller, 1..concurrency


class TurnBody(TypedDict):
    """One agent reply: LiveKit's per-turn report (``ChatMessage.metrics``) and the texts."""

    kind: str  # TURN
    turn: int
    item_id: str
    e2e_latency: float | None
    end_of_turn_delay: float | None
    transcription_delay: float | None
    on_user_turn_completed_delay: float | None
    llm_node_ttft: float | None
    llm_node_tps: float | None
    llm_node_ttfs: float | None
    tts_node_ttfb: float | None
    playback_latency: float | None
    started_speaking_at: float | None
    stopped_speaking_at: float | None
    user_text: str | None
    agent_text: str | None
    interrupted: bool
    # simulated caller only: its speech end to the first audible agent sample, on its own clock
    heard_latency: float | None


class UsageBody(TypedDict):
    """LiveKit's per-model usage (``ModelUsage.model_dump``), cumulative for the session."""

    kind: str  # USAGE
    usage: list[dict[str, Any]]


class FigureSummary(TypedDict):
    count: int
    p50: float | None
    p95: float | None
    max: float | None


class SummaryBody(TypedDict):
    """The last record of a session: its figures, token totals and final usage."""

    kind: str  # SUMMARY
    records: int
    turns: int
    figures: dict[str, FigureSummary]
    tokens: dict[str, int]
    usage: list[dict[str, Any]]


def session_record(info: SessionBody) -> Record:
    body = dict(info)
    body["kind"] = SESSION
    return body


def turn_record(turn: int, item_id: str, report: dict[str, Any], *, user_text: str | None,
                agent_text: str | None, interrupted: bool,
                heard_latency: float | None = None) -> Record:
    """A ``turn`` body from the merged user and assistant ``ChatMessage.metrics`` reports, and
    the simulated caller's heard latency when a caller measured one."""
    body: TurnBody = {
        "kind": TURN, "turn": turn, "item_id": item_id,
        "e2e_latency": report.get("e2e_latency"),
        "end_of_turn_delay": report.get("end_of_turn_delay"),
        "transcription_delay": report.get("transcription_delay"),
        "on_user_turn_completed_delay": report.get("on_user_turn_completed_delay"),
        "llm_node_ttft": report.get("llm_node_ttft"),
        "llm_node_tps": report.get("llm_node_tps"),
        "llm_node_ttfs": report.get("llm_node_ttfs"),
        "tts_node_ttfb": report.get("tts_node_ttfb"),
        "playback_latency": report.get("playback_latency"),
        "started_speaking_at": report.get("started_speaking_at"),
        "stopped_speaking_at": report.get("stopped_speaking_at"),
        "user_text": user_text, "agent_text": agent_text, "interrupted": interrupted,
        "heard_latency": heard_latency,
    }
    return cast(Record, body)


def usage_record(usage: list[dict[str, Any]]) -> Record:
    body: UsageBody = {"kind": USAGE, "usage": usage}
    return cast(Record, body)


def summary_record(body: SummaryBody) -> Record:
    return cast(Record, body)


def envelope(session_id: str, seq: int, t: float, body: Record) -> Record:
    """The record: the envelope fields first, then the body."""
    record: Record = {"schema": SCHEMA_VERSION, "kind": body.get("kind"),
                      "session_id": session_id, "seq": seq, "time": t}
    record.update(body)
    return record


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
    if body["kind"] == LLM:
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
