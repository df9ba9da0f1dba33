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
import re
from collections.abc import Mapping
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
ERROR = "error"
SUMMARY = "summary"
TOOL = "tool"

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
# the simulated caller's conversation dynamics in a turn record (numbers; ``None`` or absent:
# not measured): seconds from its barge-in onset to the agent's audio stopping, the counts of
# the turn, seconds both spoke at once, the word error rate of its line's transcript, and
# LiveKit's own agent_false_interruption events counted beside them
DYNAMICS_FIELDS = (
    "time_to_yield",
    "backchannels",
    "false_interruptions",
    "eot_mispredictions",
    "talk_over",
    "stt_wer",
    "livekit_false_interruptions",
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
    llm_model: str | None  # the model name sent to llm_base_url (the local server's alias)
    host: str
    pid: int
    lkmetrics_version: str
    livekit_agents_version: str
    room: str  # room modes
    turns: int  # simulate: the number of scripted turns
    bench_id: str  # bench voice: the bench run this session belongs to
    concurrency: int  # bench: callers (or requests) at once
    caller: int  # bench voice: which simulated caller, 1..concurrency
    agent: str  # --agent: the target as given
    agent_target: str  # --agent: the resolved module:NAME
    tools: list[str]  # --agent: the function tools its agents declare


class TurnStages(TypedDict):
    """A turn's end-to-end latency, stage by stage, in seconds (None: not measured).

    ``end_of_turn + llm_ttft + first_sentence + tts_ttfb + playback + unexplained - overlap``
    is LiveKit's ``e2e_latency``; ``delivery`` is what the caller heard on top of it.
    """

    end_of_turn: float | None  # end_of_turn_delay: the user stopped -> the turn is decided
    tools: float | None  # the turn is decided -> the last tool's output (LLM call + tools)
    llm_ttft: float | None  # llm_node_ttft: LLM start -> first token
    first_sentence: float | None  # llm_node_ttfs - llm_node_ttft: first token -> first sentence
    tts_ttfb: float | None  # tts_node_ttfb: first sentence sent to the TTS -> first audio
    playback: float | None  # playback_latency: first audio forwarded -> playback started
    unexplained: float | None  # e2e - the stages above, when that is not negative
    overlap: float | None  # the stages above - e2e, when they overlap (preemptive generation)
    delivery: float | None  # heard_latency - e2e_latency: playback start -> the caller hears


STAGE_NAMES = ("end_of_turn", "tools", "llm_ttft", "first_sentence", "tts_ttfb", "playback",
               "unexplained")


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def turn_stages(report: dict[str, Any], heard_latency: float | None = None,
                tools: float | None = None) -> TurnStages:
    """The stages of a turn from LiveKit's merged user and assistant reports.

    LiveKit times ``e2e_latency`` from the user's ``stopped_speaking_at`` to the agent's
    ``started_speaking_at``; inside it come the end-of-turn decision, the LLM's first token,
    the wait for the first complete sentence (``llm_node_ttfs`` is LLM start -> first sentence
    handed to the TTS), the TTS's first byte and the audio output's playback latency. What is
    left is ``unexplained`` (e.g. ``on_user_turn_completed``, scheduling); when the parts add
    up to more than e2e (the LLM started before the turn was decided), the excess is
    ``overlap``, never a negative remainder. A turn that called function tools has a
    ``tools`` stage before the reply's LLM: from the turn's decision to the last tool output
    (the LLM request that asked for the tools, and the tools themselves).
    """
    e2e = _seconds(report.get("e2e_latency"))
    ttft = _seconds(report.get("llm_node_ttft"))
    ttfs = _seconds(report.get("llm_node_ttfs"))
    first_sentence = None
    if ttft is not None and ttfs is not None:
        first_sentence = max(0.0, ttfs - ttft)
    stages: TurnStages = {
        "end_of_turn": _seconds(report.get("end_of_turn_delay")),
        "tools": _seconds(tools),
        "llm_ttft": ttft,
        "first_sentence": first_sentence,
        "tts_ttfb": _seconds(report.get("tts_node_ttfb")),
        "playback": _seconds(report.get("playback_latency")),
        "unexplained": None,
        "overlap": None,
        "delivery": None,
    }
    if e2e is not None:
        parts = (stages["end_of_turn"], stages["tools"], ttft, first_sentence, stages["tts_ttfb"],
                 stages["playback"])
        known = sum(v for v in parts if v is not None)
        rest = e2e - known
        stages["unexplained"] = max(0.0, rest)
        stages["overlap"] = max(0.0, -rest)
        heard = _seconds(heard_latency)
        if heard is not None:
            stages["delivery"] = heard - e2e
    return stages


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
    # simulated caller only: its speech end to the first audible agent sample, on its own clock
    heard_latency: float | None
    stages: TurnStages
    # USD since the previous turn: total, llm, stt, tts (None: a model without a known price)
    cost: dict[str, float | None] | None
    user_text: str | None
    agent_text: str | None
    interrupted: bool
    # --agent sessions add ``agent`` (the Agent class that answered) and, when the turn called
    # function tools, ``tools`` (each call's name, duration and ok)


class ToolBody(TypedDict):
    """One function tool call: its name, how long it ran, whether it failed, its turn."""

    kind: str  # TOOL
    name: str
    call_id: str
    duration: float | None  # seconds: the call received -> its output
    ok: bool
    turn: int  # the turn whose reply the output feeds
    agent: str | None  # the Agent class whose tool it is


def tool_record(*, name: str, call_id: str, duration: float | None, ok: bool, turn: int,
                agent: str | None) -> Record:
    body: ToolBody = {"kind": TOOL, "name": name, "call_id": call_id, "duration": duration,
                      "ok": ok, "turn": turn, "agent": agent}
    return cast(Record, body)


class UsageBody(TypedDict):
    """LiveKit's per-model usage (``ModelUsage.model_dump``), cumulative for the session."""

    kind: str  # USAGE
    usage: list[dict[str, Any]]


class ErrorBody(TypedDict):
    """An error a component reported to the session (LiveKit's ``error`` event)."""

    kind: str  # ERROR
    source: str | None  # provider/model of the component, when it has one
    error_type: str  # e.g. llm_error, stt_error, tts_error
    message: str
    recoverable: bool | None  # LiveKit retries a recoverable error
    created_at: float | None


def error_record(*, source: str | None, error_type: str, message: str,
                 recoverable: bool | None, created_at: float | None) -> Record:
    body: ErrorBody = {"kind": ERROR, "source": source, "error_type": error_type,
                       "message": message, "recoverable": recoverable,
                       "created_at": created_at}
    return cast(Record, body)


class FigureSummary(TypedDict):
    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    max: float | None
    sum: float  # the session's total: of a count figure (backchannels...), its count


class SummaryBody(TypedDict):
    """The last record of a session: its figures, token totals and final usage."""

    kind: str  # SUMMARY
    records: int
    turns: int
    figures: dict[str, FigureSummary]
    tokens: dict[str, int]
    usage: list[dict[str, Any]]
    cost: dict[str, Any]  # lkmetrics.cost: the session's and each turn's cost, or an error


def session_record(info: SessionBody) -> Record:
    body = dict(info)
    body["kind"] = SESSION
    return body


def turn_record(turn: int, item_id: str, report: dict[str, Any], *, user_text: str | None,
                agent_text: str | None, interrupted: bool,
                heard_latency: float | None = None,
                cost: dict[str, float | None] | None = None,
                tools: float | None = None,
                dynamics: dict[str, Any] | None = None) -> Record:
    """A ``turn`` body from the merged user and assistant ``ChatMessage.metrics`` reports, and
    the simulated caller's heard latency when a caller measured one; ``dynamics`` adds what
    the caller measured of the conversation (:data:`DYNAMICS_FIELDS`, ``yielded``,
    ``resumed``, ``barge_in``, ``spoken_text``, ``stt_text``, ``livekit_resumed``)."""
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
        "heard_latency": heard_latency,
        "stages": turn_stages(report, heard_latency, tools),
        "cost": cost,
        "user_text": user_text, "agent_text": agent_text, "interrupted": interrupted,
    }
    record = cast(Record, body)
    record.update(dynamics or {})
    return record


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


TOKEN_MAX = 2**40  # a token count beyond this is no count a server can have produced
USAGE_COUNTS = ("prompt_tokens", "prompt_cached_tokens", "completion_tokens", "total_tokens")
# the figures LiveKit and lkmetrics derive from completion_tokens
DERIVED_FROM_COMPLETION = ("tokens_per_second",)


def mark_impossible(body: Record) -> Record:
    """An ``llm`` record body whose usage counts are impossible (negative, not an integer, over
    2^40, as a misbehaving server or gateway may report): each such count null, its reason in
    ``invalid`` ({field: reason}), the rates derived from completion_tokens null too. The
    record and its timings are kept: a TTFT budget still sees them, and no figure is computed
    from a count that cannot be."""
    invalid: dict[str, str] = dict(body.get("invalid") or {})
    for name in USAGE_COUNTS:
        n = body.get(name)
        if n is None or name not in body:
            continue
        if type(n) is not int or not 0 <= n <= TOKEN_MAX:
            invalid[name] = f"{n!r} is not a token count (an integer from 0 to 2^40)"
            body[name] = None
    if "completion_tokens" in invalid:
        for name in DERIVED_FROM_COMPLETION:
            if name in body:
                invalid[name] = "derived from an invalid completion_tokens"
                body[name] = None
    if invalid:
        body["invalid"] = invalid
    return body


def metric_record(dump: dict[str, Any]) -> Record:
    """A record body for a LiveKit metric already dumped with ``model_dump(mode="json")``."""
    body: Record = {"kind": kind_of_metric(str(dump.get("type", "unknown")))}
    body.update(dump)
    if body["kind"] == LLM:
        mark_impossible(body)
        body["decode_rate"] = decode_rate(
            int(body.get("completion_tokens") or 0),
            float(dump.get("duration", 0.0)),
            float(dump.get("ttft", -1.0)),
        )
    return body


def convert_metric(ev: Any) -> Record:
    """A record body for a LiveKit metric object (anything with pydantic's ``model_dump``)."""
    return metric_record(ev.model_dump(mode="json"))


def to_json(record: Record) -> str:
    """One JSON line (without the newline), compact and stable."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


def model_label(record: Record) -> str | None:
    """``provider/model`` of a component metric, from LiveKit's ``metadata``."""
    meta = record.get("metadata")
    if not isinstance(meta, dict):  # what an older version may have stored
        return None
    name, provider = meta.get("model_name"), meta.get("model_provider")
    name = name if isinstance(name, str) else None
    provider = provider if isinstance(provider, str) else None
    if name and "/" in name:
        return str(name)  # LiveKit Inference: provider "livekit", name "openai/gpt-4.1-mini"
    if name and provider:
        return f"{provider}/{name}"
    return name or provider or None


# record kind -> the session stage whose model it measures (turn and EOU: the session's LLM)
STAGE_OF_KIND = {LLM: "llm", REALTIME: "llm", TURN: "llm", EOU: "llm", STT: "stt", TTS: "tts"}
# a tool record's "model" is its tool's name (reports group tool.duration by it: --by tool)
MODEL_KINDS = frozenset(STAGE_OF_KIND) | {TOOL}
_PORT_RE = re.compile(r":\d+$")
_QUANT_RE = re.compile(r"[.\-_](?:q\d\w*|f16|f32|bf16)$", re.IGNORECASE)


def _host(url: str) -> str:
    """The host of a URL, without port or credentials (a server's port is often ephemeral)."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def stage_identity(session: Mapping[str, Any] | None, stage: str) -> str | None:
    """The model identity of a session's stage (``llm``, ``stt``, ``tts``), or None.

    ``provider/model`` as the user named it; the local LLM is ``local/<model>`` (lowercase,
    without the quantisation suffix); an LLM behind ``--llm-base-url`` is
    ``<server host>/<model>``, never with the server's port.
    """
    if not session:
        return None
    value = session.get(stage)
    if not isinstance(value, str) or not value:
        return None
    if stage != "llm":
        return None if value == "local" else value
    served = session.get("llm_model")
    if value == "local":
        name = served if isinstance(served, str) and served else "llm"
        return "local/" + _QUANT_RE.sub("", name).lower()
    base = session.get("llm_base_url")
    if isinstance(base, str) and base:
        name = served if isinstance(served, str) and served else value.split("/", 1)[-1]
        return f"{_host(base)}/{name}"
    return value


def model_identity(record: Record, session: Mapping[str, Any] | None = None) -> str | None:
    """The one model identity of a record, used by the live view, the store and reports.

    With the session's opening record at hand, a component record counts under the model the
    session names for its stage, and turn and EOU records under the session's LLM; without
    it, LiveKit's ``provider/model`` metadata, with any port dropped from the provider.
    """
    stage = STAGE_OF_KIND.get(str(record.get("kind")))
    if record.get("kind") == TOOL:
        name = record.get("name")
        return name if isinstance(name, str) and name else None
    if stage is None:
        return model_label(record)
    found = stage_identity(session, stage)
    if found is not None:
        return found
    label = model_label(record)
    if label is None:
        return None
    provider, sep, name = label.partition("/")
    return _PORT_RE.sub("", provider) + sep + name


def usage_identity(entry: Mapping[str, Any], stages: Mapping[str, str | None] | None = None
                   ) -> str:
    """The model identity of a LiveKit usage entry (``llm_usage``, ...): its session's stage
    identity from ``stages`` (stage -> identity) when known, else ``provider/model`` with
    any port dropped from the provider."""
    stage = str(entry.get("type") or "").removesuffix("_usage")
    found = (stages or {}).get(stage)
    if found and found != "local":
        return found
    provider = _PORT_RE.sub("", str(entry.get("provider") or ""))
    model = str(entry.get("model") or "")
    if "/" in model:  # LiveKit Inference: provider "livekit", model "cartesia/sonic-3"
        return model
    return f"{provider}/{model}" if provider and model else (model or provider or "?")
