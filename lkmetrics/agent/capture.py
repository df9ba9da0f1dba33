"""The only place that subscribes to LiveKit events; it turns them into records.

Handlers run on the agent's event loop, so each one does O(1) work: it hands the LiveKit
object to :meth:`Pipeline.put` together with a converter, and the pipeline thread does the
``model_dump`` and everything after. Only current (non-deprecated) APIs are used: the
components' own ``metrics_collected``, ``ChatMessage.metrics`` through
``conversation_item_added``, and ``session_usage_updated``.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Iterable
from typing import Any

from livekit.agents import llm as lk_llm
from livekit.agents.metrics import EOUMetrics
from livekit.agents.voice import AgentSession
from livekit.agents.voice.events import (
    AgentFalseInterruptionEvent,
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    FunctionToolsExecutedEvent,
    SessionUsageUpdatedEvent,
)

from lkmetrics.cost.compute import LiveTurnCost
from lkmetrics.errors import cause_first
from lkmetrics.pipeline import Pipeline
from lkmetrics.records import (
    Record,
    SessionBody,
    convert_metric,
    error_record,
    metric_record,
    session_record,
    tool_record,
    turn_record,
    usage_record,
)


def merge_counts(into: dict[str, Any], note: dict[str, Any]) -> None:
    """Fold a note into another: counts (ints) add up, anything else is replaced."""
    for key, value in note.items():
        old = into.get(key)
        if type(value) is int and type(old) is int:
            into[key] = old + value
        else:
            into[key] = value


def caller_dynamics(notes: dict[str, Any], livekit: dict[str, Any]) -> dict[str, Any]:
    """The turn record's conversation-dynamics fields: the caller's notes, ``stt_wer`` of
    what it said against what the STT heard, and LiveKit's own interruption events."""
    out = dict(notes)
    spoken, heard = out.get("spoken_text"), out.get("stt_text")
    if isinstance(spoken, str) and isinstance(heard, str):
        from lkmetrics.analysis.wer import word_error_rate

        out["stt_wer"] = word_error_rate(spoken, heard)
    if "talk_over" in out:  # the caller measured this reply: LiveKit's events count from 0
        out["livekit_false_interruptions"] = 0
    out.update(livekit)
    return out


def new_session_id() -> str:
    return "s_" + secrets.token_hex(6)


def _convert_error(ev: Any) -> Record:
    """An ``error`` record from LiveKit's ErrorEvent (its error may hold an exception)."""
    err = ev.error
    model, provider = getattr(ev.source, "model", None), getattr(ev.source, "provider", None)
    source = f"{provider}/{model}" if model and provider else (model or provider or None)
    cause = getattr(err, "error", err)
    return error_record(source=str(source) if source else None,
                        error_type=str(getattr(err, "type", type(err).__name__)),
                        message=cause_first(cause, f"{type(cause).__name__}: {cause}")[:500],
                        recoverable=getattr(err, "recoverable", None),
                        created_at=getattr(ev, "created_at", None))


class Capture:
    """Captures one AgentSession into a pipeline under one session id."""

    def __init__(self, pipeline: Pipeline, session_id: str | None = None) -> None:
        self.pipeline = pipeline
        self.session_id = session_id or new_session_id()
        self._last_user: lk_llm.ChatMessage | None = None
        self._turn = 0
        self._last_usage: str | None = None
        self._heard: float | None = None  # pipeline thread: the caller's note for the next turn
        self._notes: dict[str, Any] = {}  # pipeline thread: the caller's other notes, likewise
        self._livekit: dict[str, Any] = {}  # pipeline thread: LiveKit's interruption events
        self._cost = LiveTurnCost()  # pipeline thread: each turn's cost from the usage so far
        self._components: list[Any] = []
        self._recent: deque[Any] = deque(maxlen=32)  # the last metrics objects recorded
        self._session: AgentSession[Any] | None = None
        self.name_agents = False  # --agent: each turn and tool names the Agent class
        self._tools: list[Record] = []  # pipeline thread: the tool calls of the coming turn
        self._tools_done: float | None = None  # pipeline thread: when their last output came

    # -- wiring --

    def start(self, info: SessionBody) -> None:
        """Emit the session's opening record (models, versions, host...)."""
        self.pipeline.put(self.session_id, session_record(info), self._convert_session)

    def attach(self, session: AgentSession[Any], components: Iterable[Any]) -> None:
        """Subscribe to the session and its components. Call after ``session.start()`` so
        LiveKit's own handlers (which stamp ``speech_id``) run before ours."""
        self._session = session
        # LiveKit's default turn detector (an inference.TurnDetector object, reachable through
        # the public session.turn_detection) emits its own eot metrics; the modes given as
        # strings ("vad", "stt", "manual", ...) emit none. lkmetrics sets no detector on the
        # Agent and never swaps it with update_options, so the session's is the one in use.
        detector = session.turn_detection
        if hasattr(detector, "on") and hasattr(detector, "off"):
            components = [*components, detector]
        self.attach_more(components)
        session.on("conversation_item_added", self._on_item)
        session.on("session_usage_updated", self._on_usage)
        session.on("error", self._on_error)
        session.on("close", self._on_close)
        session.on("function_tools_executed", self._on_tools)
        session.on("agent_false_interruption", self._on_false_interruption)

    def attach_more(self, components: Iterable[Any]) -> None:
        """Subscribe to components built after :meth:`attach` (an LLM the agent's code builds
        while its session runs)."""
        for comp in components:
            if comp is None or comp in self._components or not hasattr(comp, "on"):
                continue
            comp.on("metrics_collected", self._on_metrics)
            self._components.append(comp)

    def detach(self) -> None:
        for comp in self._components:
            comp.off("metrics_collected", self._on_metrics)
        self._components.clear()
        if self._session is not None:
            self._session.off("conversation_item_added", self._on_item)
            self._session.off("session_usage_updated", self._on_usage)
            self._session.off("error", self._on_error)
            self._session.off("close", self._on_close)
            self._session.off("function_tools_executed", self._on_tools)
            self._session.off("agent_false_interruption", self._on_false_interruption)
            self._session = None

    def end(self) -> None:
        """Close the session's record stream: its summary follows what was captured."""
        self.detach()
        self.pipeline.end_session(self.session_id)

    # -- loop-side handlers: enqueue only --

    def _on_metrics(self, ev: Any) -> None:
        # a wrapper re-emits its models' metrics as its own (llm.FallbackAdapter): when both
        # are captured (the agent's code built the models, the session got the adapter), the
        # same metrics object comes twice and is recorded once
        if any(ev is seen for seen in self._recent):
            return
        self._recent.append(ev)
        self.pipeline.put(self.session_id, ev, convert_metric)

    def _agent_name(self) -> str | None:
        if not self.name_agents or self._session is None:
            return None
        agent = getattr(self._session, "_agent", None)  # current_agent raises between agents
        return type(agent).__name__ if agent is not None else None

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        self.pipeline.put(self.session_id, (ev.item, self._agent_name()), self._convert_item)

    def _on_tools(self, ev: FunctionToolsExecutedEvent) -> None:
        agent = self._agent_name()
        for call, out in ev.zipped():
            self.pipeline.put(self.session_id, (call, out, agent), self._convert_tool)

    def _on_usage(self, ev: SessionUsageUpdatedEvent) -> None:
        self.pipeline.put(self.session_id, ev.usage, self._convert_usage)

    def _on_error(self, ev: ErrorEvent) -> None:
        self.pipeline.put(self.session_id, ev, _convert_error)

    def _on_close(self, ev: CloseEvent) -> None:
        self.end()

    def _on_false_interruption(self, ev: AgentFalseInterruptionEvent) -> None:
        self.pipeline.put(self.session_id, bool(ev.resumed), self._convert_false_interruption)

    def note_heard(self, latency: float) -> None:
        """The simulated caller's heard latency for the reply now playing. O(1), loop-safe.

        The caller hears the reply's first audio before LiveKit adds the reply to the chat
        (``conversation_item_added`` follows the end of playback), and both go through the
        one queue in that order, so the note is folded into the next assistant turn record.
        A reply without audio gets no note (``heard_latency`` None), and a note is used once.
        """
        self.pipeline.put(self.session_id, latency, self._convert_heard)

    def note(self, fields: dict[str, Any]) -> None:
        """The simulated caller's measurements for the reply now playing or coming (time to
        yield, backchannels, what it said...). O(1), loop-safe; folded into the next assistant
        turn record as :meth:`note_heard` is, counts added up."""
        self.pipeline.put(self.session_id, fields, self._convert_note)

    # -- pipeline-thread converters --

    def _convert_heard(self, latency: float) -> None:
        self._heard = latency

    def _convert_note(self, fields: dict[str, Any]) -> None:
        merge_counts(self._notes, fields)

    def _convert_false_interruption(self, resumed: bool) -> None:
        merge_counts(self._livekit, {"livekit_false_interruptions": 1,
                                     "livekit_resumed": resumed})

    def _convert_tool(self, item: tuple[Any, Any, str | None]) -> Record:
        call, out, agent = item
        done = float(out.created_at)
        self._tools_done = max(done, self._tools_done or done)
        record = tool_record(name=str(call.name), call_id=str(call.call_id),
                             duration=max(0.0, done - float(call.created_at)),
                             ok=not out.is_error, turn=self._turn + 1, agent=agent)
        self._tools.append(record)
        return record

    def _tools_stage(self, user_report: dict[str, Any]) -> float | None:
        """The turn's decision -> the last tool output, when the turn called tools."""
        done, self._tools_done = self._tools_done, None
        stopped = user_report.get("stopped_speaking_at")
        if done is None or not isinstance(stopped, int | float):
            return None
        decided = stopped + float(user_report.get("end_of_turn_delay") or 0.0) + float(
            user_report.get("on_user_turn_completed_delay") or 0.0)
        return max(0.0, done - decided)

    def _convert_item(self, item_agent: tuple[Any, str | None]) -> Record | None:
        item, agent = item_agent
        if not isinstance(item, lk_llm.ChatMessage):
            return None
        report: dict[str, Any] = dict(item.metrics or {})
        if item.role == "user":
            self._last_user = item
            if "end_of_turn_delay" not in report:
                return None  # a typed turn: no end of utterance to measure
            eou = EOUMetrics(
                timestamp=item.created_at,
                end_of_utterance_delay=report.get("end_of_turn_delay") or 0.0,
                transcription_delay=report.get("transcription_delay") or 0.0,
                on_user_turn_completed_delay=report.get("on_user_turn_completed_delay") or 0.0,
            )
            return metric_record(eou.model_dump(mode="json"))
        if item.role != "assistant":
            return None
        self._turn += 1
        user = self._last_user
        self._last_user = None
        user_report: dict[str, Any] = dict(user.metrics or {}) if user else {}
        heard, self._heard = self._heard, None
        notes, self._notes = self._notes, {}
        livekit, self._livekit = self._livekit, {}
        record = turn_record(self._turn, item.id, {**user_report, **report},
                             user_text=user.text_content if user else None,
                             agent_text=item.text_content, interrupted=item.interrupted,
                             heard_latency=heard, cost=self._cost.turn(),
                             tools=self._tools_stage(user_report),
                             dynamics=caller_dynamics(notes, livekit))
        if agent is not None:
            record["agent"] = agent
        if self._tools:
            record["tools"] = [{"name": t["name"], "duration": t["duration"], "ok": t["ok"]}
                               for t in self._tools]
            self._tools = []
        return record

    def _convert_usage(self, usage: Any) -> Record | None:
        dump = [u.model_dump(mode="json") for u in usage.model_usage]
        key = json.dumps(dump, sort_keys=True)
        if key == self._last_usage:
            return None
        self._last_usage = key
        record = usage_record(dump)
        self._cost.add(record)
        return record

    def _convert_session(self, record: Record) -> Record:
        self._cost.add(record)
        return record
