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
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import llm as lk_llm
from livekit.agents.voice import io
from livekit.agents.voice.events import AgentStateChangedEvent, ConversationItemAddedEvent

from lkmetrics.simulate.script import INPUT_RATE

FRAME_MS = 20
# a sample louder than this (int16, about -54 dBFS) is speech or agent audio, not silence
AUDIBLE = 64


def audible_bounds(samples: np.ndarray) -> tuple[int, int] | None:
    """The index of the first audible sample and one past the last one, or None if silent."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > AUDIBLE)
    if loud.size == 0:
        return None
    return int(loud[0]), int(loud[-1]) + 1


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

    def say(self, pcm: np.ndarray, on_speech_end: Callable[[float], None] | None = None
            ) -> asyncio.Future[None]:
        """Queue int16 mono samples at ``sample_rate``; the future resolves once all of them
        have been emitted. ``on_speech_end`` gets the ``time.monotonic()`` at which the last
        audible sample was spoken (trailing silence is not speech), once it has been emitted."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pcm = np.asarray(pcm, dtype=np.int16)
        bounds = audible_bounds(pcm)
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
    """An audio sink that "plays" at real-time pace and reports playback like a speaker."""

    def __init__(self, sample_rate: int | None = None) -> None:
        super().__init__(label="lkmetrics-speaker", capabilities=io.AudioOutputCapabilities(
            pause=True), sample_rate=sample_rate)
        self._start: float | None = None
        self._pushed = 0.0
        self._interrupted = asyncio.Event()
        self._flush_task: asyncio.Task[None] | None = None
        self.frames: list[rtc.AudioFrame] = []
        self.keep_frames = False
        self._on_audible: Callable[[float], None] | None = None

    def expect_audio(self, on_audible: Callable[[float], None] | None) -> None:
        """Call ``on_audible(t)`` once, with the ``time.monotonic()`` at which the first audible
        sample received from now on plays; None stops listening."""
        self._on_audible = on_audible

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._flush_task is not None and not self._flush_task.done():
            await self._flush_task
        now = time.monotonic()
        if self._start is None:
            self._start = now
            self.on_playback_started(created_at=time.time())
        if self._on_audible is not None:
            samples = np.frombuffer(bytes(frame.data), dtype=np.int16)
            bounds = audible_bounds(samples)
            if bounds is not None:
                at = max(now, self._start + self._pushed)
                at += bounds[0] // frame.num_channels / frame.sample_rate
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
        if self._start is not None:
            self._interrupted.set()

    async def _play_out(self) -> None:
        assert self._start is not None
        remaining = self._start + self._pushed - time.monotonic()
        interrupted = False
        if remaining > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._interrupted.wait(), remaining)
                interrupted = True
        played = min(self._pushed, time.monotonic() - self._start)
        self._start, self._pushed = None, 0.0
        self._interrupted.clear()
        self.on_playback_finished(playback_position=played, interrupted=interrupted)

    def take_frames(self) -> list[rtc.AudioFrame]:
        frames, self.frames = self.frames, []
        return frames


class ProviderFailed(Exception):
    """An LLM, STT or TTS request failed for good; the message names the provider and why."""


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


@dataclass
class Caller:
    """Drives a started session turn by turn and waits for each reply."""

    session: Any
    mic: PacedAudioInput
    speaker: RealtimeSpeaker
    _replies: asyncio.Queue[lk_llm.ChatMessage] = field(default_factory=asyncio.Queue)
    _users: list[str] = field(default_factory=list)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    # told each turn's heard latency on the loop, as it is measured (Capture.note_heard)
    on_heard: Callable[[float], None] | None = None
    # the endpoints the user gave, by LLM/STT/TTS, to name in a failure
    base_urls: dict[str, str | None] = field(default_factory=dict)
    failure: str | None = None  # a request LiveKit gave up on, in one line
    _failed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.session.on("conversation_item_added", self._on_item)
        self.session.on("agent_state_changed", self._on_state)
        self.session.on("error", self._on_error)
        if getattr(self.session, "agent_state", None) not in ("speaking", "thinking"):
            self._idle.set()

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, lk_llm.ChatMessage):
            if item.role == "assistant":
                self._replies.put_nowait(item)
            elif item.role == "user":
                self._users.append(item.text_content or "")

    def _on_error(self, ev: Any) -> None:
        """A request LiveKit gave up on (after its retries) ends the turn waiting for it."""
        from lkmetrics.agent import failures

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

    async def turn(self, index: int, pcm: np.ndarray, timeout: float,
                   on_audio: Callable[[list[rtc.AudioFrame]], None] | None = None) -> TurnResult:
        """Speak ``pcm``, then wait for the agent's reply to be said in full."""
        while not self._replies.empty():
            self._replies.get_nowait()
        users_before = len(self._users)
        t0 = time.monotonic()
        spoke: list[float] = []
        heard: list[float] = []

        def speech_ended(t: float) -> None:
            spoke.append(t)

        def audible(t: float) -> None:
            if spoke:  # audio before the caller has finished is not an answer to it
                heard.append(t - spoke[0])
                if self.on_heard is not None:
                    self.on_heard(heard[0])

        self.speaker.expect_audio(audible)
        try:
            deadline = t0 + timeout
            await self._until(self.mic.say(pcm, speech_ended), timeout)
            reply = await self._until(self._replies.get(), deadline - time.monotonic())
            await self._until(self._idle.wait(), deadline - time.monotonic())
        except ProviderFailed as e:
            self.speaker.expect_audio(None)
            text = self._users[-1] if len(self._users) > users_before else None
            return TurnResult(index, False, str(e), text, None, time.monotonic() - t0)
        except asyncio.TimeoutError:
            self.speaker.expect_audio(None)
            text = self._users[-1] if len(self._users) > users_before else None
            what = "no transcript" if text is None else "no reply"
            return TurnResult(index, False, f"timed out after {timeout:.0f}s ({what})", text,
                              None, time.monotonic() - t0, timed_out=True)
        self.speaker.expect_audio(None)
        text = self._users[-1] if len(self._users) > users_before else None
        if on_audio is not None:
            on_audio(self.speaker.take_frames())
        return TurnResult(index, True, None, text, reply.text_content, time.monotonic() - t0,
                          heard_latency=heard[0] if heard else None)
