"""An in-process session with a scripted caller: real audio in, paced in real time, and an
audio sink that plays the agent out at real-time pace. Used by ``lkmetrics simulate``.

The input produces a 20 ms 16-bit PCM frame every 20 ms of wall time, from the current
utterance or silence, exactly like a microphone would, so VAD, endpointing and STT see a
real stream and every latency LiveKit measures is the one a caller would experience.

Heard latency is the caller's own clock: from the moment its last speech sample left the
microphone to the moment the first audible sample of the agent's reply plays on its speaker.
A frame the microphone delivers at time t holds the FRAME_MS of audio that ended at t (as a
real microphone's buffer does), so a sample k samples before the frame's end was spoken at
t - k / rate; the speaker plays frames back to back from the first one it receives, so a
sample is heard when the audio before it has played (or when it arrives, if later).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import llm as lk_llm
from livekit.agents.voice import io
from livekit.agents.voice.events import AgentStateChangedEvent, ConversationItemAddedEvent

from lkmetrics.agent import failures
from lkmetrics.agent.capture import merge_counts
from lkmetrics.simulate.script import (
    INPUT_RATE,
    Behaviour,
    Utterance,
    audible_bounds,
    split_in_two,
)

FRAME_MS = 20


class PacedAudioInput(io.AudioInput):
    """A microphone made of PCM samples: one frame per FRAME_MS of wall time."""

    def __init__(self, sample_rate: int = INPUT_RATE, frame_ms: int = FRAME_MS) -> None:
        super().__init__(label="lkmetrics-caller")
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate * frame_ms // 1000
        self._frame_s = frame_ms / 1000
        self._pending: deque[np.ndarray] = deque()
        self._queued: list[tuple[int, asyncio.Future[None]]] = []
        self._marks: list[tuple[int, Callable[[float], None]]] = []  # speech ends to report
        self._emitted = 0  # speech samples emitted so far
        self._total = 0  # speech samples queued so far
        self._next_t: float | None = None
        self._closed = False

    def say(self, pcm: np.ndarray, on_speech_end: Callable[[float], None] | None = None,
            on_speech_start: Callable[[float], None] | None = None) -> asyncio.Future[None]:
        """Queue int16 mono samples at ``sample_rate``; the future resolves once all of them
        have been emitted. ``on_speech_end`` gets the ``time.monotonic()`` at which the last
        audible sample was spoken (trailing silence is not speech), once it has been emitted;
        ``on_speech_start`` the time the first audible one was."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pcm = np.asarray(pcm, dtype=np.int16)
        bounds = audible_bounds(pcm)
        if on_speech_start is not None and bounds is not None:
            self._marks.append((self._total + bounds[0] + 1, on_speech_start))
        if on_speech_end is not None and bounds is not None:
            self._marks.append((self._total + bounds[1], on_speech_end))
        for i in range(0, len(pcm), self.samples_per_frame):
            chunk = pcm[i : i + self.samples_per_frame]
            if len(chunk) < self.samples_per_frame:
                chunk = np.pad(chunk, (0, self.samples_per_frame - len(chunk)))
            self._pending.append(chunk)
            self._total += len(chunk)
        self._queued.append((self._total, fut))
        return fut

    def close(self) -> None:
        self._closed = True

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        now = time.monotonic()
        if self._next_t is None:
            self._next_t = now
        delay = self._next_t - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_t += self._frame_s
        if self._pending:
            data = self._pending.popleft()
            self._emitted += len(data)
        else:
            data = np.zeros(self.samples_per_frame, dtype=np.int16)
        while self._marks and self._marks[0][0] <= self._emitted:
            end, report = self._marks.pop(0)
            report(time.monotonic() - (self._emitted - end) / self.sample_rate)
        while self._queued and self._queued[0][0] <= self._emitted:
            _, fut = self._queued.pop(0)
            if not fut.done():
                fut.set_result(None)
        return rtc.AudioFrame(
            data=data.tobytes(),
            sample_rate=self.sample_rate,
            num_channels=1,
            samples_per_channel=len(data),
        )


class RealtimeSpeaker(io.AudioOutput):
    """An audio sink that "plays" at real-time pace and reports playback like a speaker.

    It pauses and resumes as LiveKit asks (``resume_false_interruption``), and tells a
    listener (:meth:`listen`) what the caller hears: ``("audible", t)`` at a segment's first
    audible sample, ``("stopped", t)`` when its audio stops early (paused or cleared),
    ``("resumed", t)`` and ``("ended", t)`` when the segment is over, ``t`` on
    ``time.monotonic()``."""

    def __init__(self, sample_rate: int | None = None) -> None:
        super().__init__(label="lkmetrics-speaker", capabilities=io.AudioOutputCapabilities(
            pause=True), sample_rate=sample_rate)
        self._start: float | None = None
        self._pushed = 0.0
        self._paused_at: float | None = None
        self._interrupted = False
        self._changed = asyncio.Event()
        self._flush_task: asyncio.Task[None] | None = None
        self._segment_heard = False
        self.frames: list[rtc.AudioFrame] = []
        self.keep_frames = False
        self._on_audible: Callable[[float], None] | None = None
        self._listener: Callable[[str, float], None] | None = None

    def expect_audio(self, on_audible: Callable[[float], None] | None) -> None:
        """Call ``on_audible(t)`` once, with the ``time.monotonic()`` at which the first audible
        sample received from now on plays; None stops listening."""
        self._on_audible = on_audible

    def listen(self, listener: Callable[[str, float], None] | None) -> None:
        """Tell ``listener(event, t)`` what the caller hears (see the class docstring)."""
        self._listener = listener

    def _tell(self, event: str, t: float) -> None:
        if self._listener is not None:
            self._listener(event, t)

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._flush_task is not None and not self._flush_task.done():
            await self._flush_task
        now = time.monotonic()
        if self._start is None:
            self._start = now
            self._segment_heard = False
            self.on_playback_started(created_at=time.time())
        if self._on_audible is not None or not self._segment_heard:
            samples = np.frombuffer(bytes(frame.data), dtype=np.int16)
            bounds = audible_bounds(samples)
            if bounds is not None:
                at = max(now, self._start + self._pushed)
                at += bounds[0] // frame.num_channels / frame.sample_rate
                if not self._segment_heard:
                    self._segment_heard = True
                    self._tell("audible", at)
                if self._on_audible is not None:
                    report, self._on_audible = self._on_audible, None
                    report(at)
        self._pushed += frame.duration
        if self.keep_frames:
            self.frames.append(frame)

    def flush(self) -> None:
        super().flush()
        if self._start is None:
            return
        self._flush_task = asyncio.create_task(self._play_out())

    def clear_buffer(self) -> None:
        if self._start is not None and not self._interrupted:
            self._interrupted = True
            if self._paused_at is None:  # a paused speaker had already gone quiet
                self._tell("stopped", time.monotonic())
            self._changed.set()

    def pause(self) -> None:
        if self._start is not None and self._paused_at is None and not self._interrupted:
            self._paused_at = time.monotonic()
            self._tell("stopped", self._paused_at)
            self._changed.set()

    def resume(self) -> None:
        if self._start is not None and self._paused_at is not None and not self._interrupted:
            now = time.monotonic()
            self._start += now - self._paused_at  # the rest plays from now on
            self._paused_at = None
            self._tell("resumed", now)
            self._changed.set()

    @property
    def active(self) -> bool:
        """A segment is under way (playing, paused or being cleared)."""
        return self._start is not None

    @property
    def playing(self) -> bool:
        """A segment is under way and not paused or cleared (a gap between sentences, while
        the TTS catches up, counts as playing)."""
        return self._start is not None and self._paused_at is None and not self._interrupted

    async def _play_out(self) -> None:
        assert self._start is not None
        while not self._interrupted:
            self._changed.clear()
            if self._paused_at is not None:
                await self._changed.wait()
                continue
            remaining = self._start + self._pushed - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        now = time.monotonic()
        interrupted = self._interrupted
        heard_until = self._paused_at if self._paused_at is not None else now
        played = max(0.0, min(self._pushed, heard_until - self._start))
        ended = now if interrupted else self._start + self._pushed
        self._start, self._pushed, self._paused_at = None, 0.0, None
        self._interrupted = False
        self._tell("ended", min(ended, now))
        self.on_playback_finished(playback_position=played, interrupted=interrupted)

    def take_frames(self) -> list[rtc.AudioFrame]:
        frames, self.frames = self.frames, []
        return frames


class ProviderFailed(Exception):
    """An LLM, STT or TTS request failed for good; the message names the provider and why."""


@dataclass
class Line:
    """A line of the caller's script: its audio and, when known, its words."""

    pcm: np.ndarray  # int16 mono at the microphone's rate
    text: str | None = None
    behaviour: Behaviour | None = None  # its own steps (--scenario), over the caller's
    pause: float | None = None  # seconds of silence after its reply (None: the caller's)


def lines_of(utterances: Sequence[Utterance]) -> list[Line]:
    """The caller's lines of a script (its audio, words, steps and pauses)."""
    return [Line(u.pcm, u.text, u.behaviour, u.pause) for u in utterances]


@dataclass
class Speaking:
    """Something the caller is saying: when its speech started and ended (monotonic)."""

    done: asyncio.Future[None] | None = None  # all its audio has left the microphone
    onset: float | None = None
    end: float | None = None
    text: str | None = None
    wer_noted: bool = False
    pause_mid: float | None = None  # said in two halves with this pause between


@dataclass
class TurnResult:
    index: int
    ok: bool
    error: str | None = None
    heard: str | None = None
    said: str | None = None
    seconds: float = 0.0
    timed_out: bool = False  # the session's exit status is then ``timeout``
    heard_latency: float | None = None  # speech end to the first audible reply sample
    # what the caller measured of the conversation's dynamics (the turn record's fields:
    # time_to_yield, yielded, barge_in, backchannels, false_interruptions, resumed,
    # eot_mispredictions, talk_over, spoken_text, stt_text)
    dynamics: dict[str, Any] = field(default_factory=dict)


def overlap(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    """Seconds during which an interval of ``a`` and one of ``b`` both run."""
    total = 0.0
    for a0, a1 in a:
        for b0, b1 in b:
            total += max(0.0, min(a1, b1) - max(a0, b0))
    return total


@dataclass
class Caller:
    """Drives a started session turn by turn and waits for each reply, behaving as
    ``behaviour`` says and measuring what it hears on its own clock."""

    session: Any
    mic: PacedAudioInput
    speaker: RealtimeSpeaker
    # told each turn's heard latency on the loop, as it is measured (Capture.note_heard)
    on_heard: Callable[[float], None] | None = None
    # the endpoints the user gave, by LLM/STT/TTS, to name in a failure
    base_urls: dict[str, str | None] = field(default_factory=dict)
    failure: str | None = None  # a request LiveKit gave up on, in one line
    _failed: asyncio.Event = field(default_factory=asyncio.Event)
    # told the caller's measurements on the loop, as they are made (Capture.note)
    on_note: Callable[[dict[str, Any]], None] | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    backchannel: np.ndarray | None = None  # what --backchannel says (int16 mono)
    _replies: asyncio.Queue[lk_llm.ChatMessage] = field(default_factory=asyncio.Queue)
    _log: list[tuple[float, str, lk_llm.ChatMessage]] = field(default_factory=list)
    _new_item: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _speech: list[list[float]] = field(default_factory=list)  # the caller's [onset, end]
    _agent: list[list[float]] = field(default_factory=list)  # this segment's audio [from, to]
    _line: Speaking | None = None  # the line whose reply is awaited
    _barge: Speaking | None = None  # the next line, said over the reply
    _bc: Speaking | None = None  # a backchannel, until the agent stops or the reply ends
    _next: Line | None = None  # the line a barge-in says
    _reply_at: float | None = None  # when this turn's reply became audible, until it ends
    _reply_task: asyncio.Task[None] | None = None
    _heard: float | None = None
    _turn_notes: dict[str, Any] = field(default_factory=dict)
    _segment: dict[str, Any] = field(default_factory=dict)
    _steps: Behaviour | None = None  # this turn's steps (its line's over ``behaviour``)

    def __post_init__(self) -> None:
        self.session.on("conversation_item_added", self._on_item)
        self.session.on("agent_state_changed", self._on_state)
        self.session.on("error", self._on_error)
        self.speaker.listen(self._on_audio)
        if getattr(self.session, "agent_state", None) not in ("speaking", "thinking"):
            self._idle.set()
        if self.behaviour.backchannel is not None and self.backchannel is None:
            raise ValueError("--backchannel needs the backchannel's audio")

    def steps(self, line: Line) -> Behaviour:
        """How the caller behaves around ``line``: its own steps over the caller's."""
        return line.behaviour.over(self.behaviour) if line.behaviour else self.behaviour

    @property
    def _now(self) -> Behaviour:
        """The steps of the turn under way."""
        return self._steps if self._steps is not None else self.behaviour

    @property
    def _measuring(self) -> bool:
        b = self._now
        return b.barge_in is not None or b.backchannel is not None or b.pause_mid is not None

    def _note(self, note: dict[str, Any]) -> None:
        merge_counts(self._turn_notes, note)
        if self.on_note is not None:
            self.on_note(note)

    # -- events (on the loop: O(1) work, plus a scan of this turn's few items) --

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, lk_llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        now = time.monotonic()
        self._log.append((now, item.role, item))
        self._new_item.set()
        if item.role == "assistant":
            self._replies.put_nowait(item)
            return
        line = self._line
        if line is None or line.end is None or line.wer_noted or line.onset is None:
            return
        # the commit of the caller's whole line: what the STT heard of it, in every part
        line.wer_noted = True
        onset = line.onset
        heard = " ".join((m.text_content or "").strip() for t, role, m in self._log
                         if role == "user" and t >= onset).strip()
        note: dict[str, Any] = {"stt_text": heard}
        if line.text is not None:
            note["spoken_text"] = line.text
        self._note(note)

    def _on_error(self, ev: Any) -> None:
        """A request LiveKit gave up on (after its retries) ends the turn waiting for it.
        (``failures`` is imported with this module: an import here fails when the cause is
        that no file can be opened, EMFILE, and the turn waited out its timeout.)"""
        if failures.is_final(ev) and self.failure is None:
            self.failure = failures.describe(ev, self.base_urls)
            self._failed.set()

    async def _until(self, aw: Any, timeout: float) -> Any:
        """Await ``aw`` for at most ``timeout`` seconds; raises :class:`ProviderFailed` as soon
        as a provider fails for good, asyncio.TimeoutError when the time is up."""
        if self.failure is not None:
            raise ProviderFailed(self.failure)
        task = asyncio.ensure_future(aw)
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            done, _ = await asyncio.wait({task, failed}, timeout=max(0.0, timeout),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if self.failure is not None:
            raise ProviderFailed(self.failure)
        raise asyncio.TimeoutError

    def _on_state(self, ev: AgentStateChangedEvent) -> None:
        if ev.new_state in ("speaking", "thinking"):
            self._idle.clear()
        else:
            self._idle.set()

    def _on_audio(self, event: str, t: float) -> None:
        if event == "audible":
            self._agent = [[t, math.inf]]
            self._segment = {}
            line = self._line
            if line is not None and line.end is not None and self._heard is None \
                    and t >= line.end:
                self._heard = t - line.end
                self._reply_at = t
                if self.on_heard is not None:
                    self.on_heard(self._heard)
                if self._now.backchannel is not None:  # counted from zero
                    self._note({"backchannels": 0, "false_interruptions": 0})
                if self._measuring and self._reply_task is None:
                    self._reply_task = asyncio.ensure_future(self._during_reply(t))
        elif event == "stopped":
            if self._agent and self._agent[-1][1] == math.inf:
                self._agent[-1][1] = t
            barge = self._barge
            if barge is not None and barge.onset is not None and t >= barge.onset \
                    and "time_to_yield" not in self._segment:
                self._segment["time_to_yield"] = t - barge.onset
                self._note({"time_to_yield": t - barge.onset, "yielded": True})
            elif self._bc is not None and self._bc.onset is not None and t >= self._bc.onset \
                    and barge is None:
                self._bc = None
                self._segment["false_interruptions"] = 1
                self._note({"false_interruptions": 1, "resumed": False})
        elif event == "resumed":
            if self._agent:
                self._agent.append([t, math.inf])
            if self._segment.get("false_interruptions"):
                self._note({"resumed": True})
        elif event == "ended":
            self._segment_ended(t)

    def _segment_ended(self, t: float) -> None:
        reply_at, self._reply_at = self._reply_at, None
        barge_in = self._now.barge_in
        if reply_at is not None and self._next is not None and self._barge is None \
                and barge_in is not None and t < reply_at + barge_in:
            self._note({"barge_in": f"no barge-in (reply ended at {t - reply_at:.1f} s)"})
        for span in self._agent:
            span[1] = min(span[1], t)
        if self._barge is not None and "time_to_yield" not in self._segment:
            self._segment["time_to_yield"] = None
            self._note({"yielded": False})
        if self._measuring and self._agent:
            caller = [(a, b if b is not None else t) for a, b in self._speech]
            agent = [(a, b) for a, b in self._agent]
            self._note({"talk_over": round(overlap(agent, caller), 4)})
        self._agent = []
        self._bc = None

    # -- what the caller says --

    def _say(self, pcm: np.ndarray, speaking: Speaking, *, first: bool = True,
             last: bool = True) -> asyncio.Future[None]:
        span: list[Any] = [None, None]

        def started(t: float) -> None:
            span[0] = t
            self._speech.append(span)
            if first:
                speaking.onset = t

        def ended(t: float) -> None:
            span[1] = t
            if last:
                speaking.end = t
                self._line_ended(speaking, t)

        return self.mic.say(pcm, ended, started)

    def speak(self, line: Line) -> Speaking:
        """Start saying a line (in two halves with --pause-mid)."""
        pause = self.steps(line).pause_mid
        speaking = Speaking(text=line.text, pause_mid=pause)
        if pause is None:
            speaking.done = self._say(line.pcm, speaking)
        else:
            first, second = split_in_two(line.pcm, self.mic.sample_rate)
            self._say(first, speaking, last=False)
            self.mic.say(np.zeros(int(pause * self.mic.sample_rate), dtype=np.int16))
            speaking.done = self._say(second, speaking, first=False)
        return speaking

    def _line_ended(self, speaking: Speaking, t: float) -> None:
        if speaking.pause_mid is None or speaking.onset is None:
            return
        onset = speaking.onset
        early = sum(1 for at, role, _ in self._log if role == "user" and onset <= at < t)
        self._note({"eot_mispredictions": early})

    async def _during_reply(self, heard_at: float) -> None:
        """While the reply plays: the backchannel and the barge-in, each at its time."""
        b = self._now
        steps = sorted((delay, what) for delay, what in ((b.backchannel, "backchannel"),
                                                         (b.barge_in, "barge-in"))
                       if delay is not None)
        for delay, what in steps:
            wait = heard_at + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not self.speaker.playing:
                if what == "barge-in" and self._next is not None and self.speaker.active:
                    self._note({"barge_in": "no barge-in (reply paused at "
                                            f"{time.monotonic() - heard_at:.1f} s)"})
                continue
            if what == "backchannel" and self.backchannel is not None:
                self._bc = Speaking()
                self._say(self.backchannel, self._bc)
                self._note({"backchannels": 1})
            elif what == "barge-in" and self._next is not None:
                self._barge = self.speak(self._next)

    # -- the conversation --

    async def wait_greeting(self, timeout: float) -> None:
        """Wait for the agent's greeting to be said in full (its reply, then idle)."""

        async def greeted() -> None:
            await self._replies.get()
            await self._idle.wait()

        await self._until(greeted(), timeout)

    async def settle(self, grace: float, timeout: float) -> None:
        """Let an agent that speaks on its own (a greeting in ``on_enter``) finish: after
        ``grace`` seconds, wait while it is busy, then forget its replies."""
        await asyncio.sleep(grace)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        while not self._replies.empty():
            self._replies.get_nowait()

    async def _item(self, role: str, after: Callable[[int, float], bool], deadline: float
                    ) -> int:
        """The index in the log of the first item of ``role`` that ``after(index, time)``
        accepts, waiting for it until ``deadline``."""
        seen = 0
        while True:
            for i in range(seen, len(self._log)):
                at, r, _ = self._log[i]
                if r == role and after(i, at):
                    return i
            seen = len(self._log)
            self._new_item.clear()
            await asyncio.wait_for(self._new_item.wait(), max(0.0, deadline - time.monotonic()))

    async def turn(self, index: int, line: Line | np.ndarray, timeout: float,
                   on_audio: Callable[[list[rtc.AudioFrame]], None] | None = None, *,
                   speaking: Speaking | None = None, next_line: Line | None = None
                   ) -> tuple[TurnResult, Speaking | None]:
        """Say ``line`` (or go on with ``speaking``, already under way), then wait for the
        agent's reply to be said in full, or cut into with ``next_line`` (--barge-in).
        Returns the result and the next line when it was started over the reply."""
        if isinstance(line, np.ndarray):
            line = Line(line)
        t0 = time.monotonic()
        deadline = t0 + timeout
        self._turn_notes, self._heard, self._next = {}, None, next_line
        self._steps = self.steps(line)
        self._barge = self._bc = None
        speaking = speaking or self.speak(line)
        self._line = speaking
        start = len(self._log)
        try:
            assert speaking.done is not None
            await self._until(asyncio.shield(speaking.done), timeout)
            end = speaking.end if speaking.end is not None else time.monotonic()
            commit = await self._until(self._item("user", lambda i, at: at >= end, deadline),
                                       deadline - time.monotonic())
            reply = await self._until(
                self._item("assistant", lambda i, at: i > commit, deadline),
                deadline - time.monotonic())
            await self._until(self._idle.wait(), deadline - time.monotonic())
        except ProviderFailed as e:
            return TurnResult(index, False, str(e), self._heard_text(speaking, start), None,
                              time.monotonic() - t0, heard_latency=self._heard,
                              dynamics=self._turn_notes), None
        except asyncio.TimeoutError:
            text = self._heard_text(speaking, start)
            what = "no transcript" if text is None else "no reply"
            return TurnResult(index, False, f"timed out after {timeout:.0f} s ({what})", text,
                              None, time.monotonic() - t0, timed_out=True,
                              heard_latency=self._heard, dynamics=self._turn_notes), None
        finally:
            await self._end_reply()
        message = self._log[reply][2]
        if on_audio is not None:
            on_audio(self.speaker.take_frames())
        result = TurnResult(index, True, None, self._heard_text(speaking, start),
                            message.text_content,
                            time.monotonic() - t0, heard_latency=self._heard,
                            dynamics=self._turn_notes)
        return result, self._barge

    def _heard_text(self, speaking: Speaking, start: int) -> str | None:
        """The last transcript of the line (since its onset, or this turn's start)."""
        since = speaking.onset
        users = [m.text_content or "" for i, (at, role, m) in enumerate(self._log)
                 if role == "user" and (at >= since if since is not None else i >= start)]
        return users[-1] if users else None

    async def _end_reply(self) -> None:
        task, self._reply_task = self._reply_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def converse(self, lines: Sequence[Line], timeout: float, pause: float, *,
                       on_turn: Callable[[TurnResult], None] | None = None,
                       on_audio: Callable[[int, Line], Callable[[list[rtc.AudioFrame]], None]]
                       | None = None) -> list[TurnResult]:
        """Every line in turn; stops at the first turn that fails."""
        if self.backchannel is None and any(self.steps(ln).backchannel is not None
                                            for ln in lines):
            raise ValueError("a backchannel step needs the backchannel's audio")
        results: list[TurnResult] = []
        speaking: Speaking | None = None
        for i, line in enumerate(lines, start=1):
            next_line = lines[i] if self.steps(line).barge_in is not None and i < len(lines) \
                else None
            save = on_audio(i, line) if on_audio is not None else None
            result, speaking = await self.turn(i, line, timeout, save, speaking=speaking,
                                               next_line=next_line)
            results.append(result)
            if on_turn is not None:
                on_turn(result)
            if not result.ok:
                break
            if speaking is None and i < len(lines):
                await asyncio.sleep(line.pause if line.pause is not None else pause)
        return results
