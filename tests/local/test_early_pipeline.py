"""What makes the local pipeline's turns shorter, on scripted parts with known timings:
Whisper started during the VAD's closing silence (EarlyStreamAdapter), Piper started on a
reply's first clause (ClauseTokenizer), and the thread settings read from the environment."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import stt
from livekit.agents.language import LanguageCode

from lkmetrics.errors import LkmetricsError
from lkmetrics.local import env_threads
from lkmetrics.local.stt import EarlyStreamAdapter
from lkmetrics.local.tts import ClauseTokenizer, split_clauses
from tests.helpers.fakes import RATE, EnergyVAD, ScriptedSTT, tone

FRAME = 0.02  # seconds of audio per pushed frame, pushed in real time


def frames(samples: np.ndarray) -> list[rtc.AudioFrame]:
    n = int(RATE * FRAME)
    return [rtc.AudioFrame(data=samples[i:i + n].tobytes(), sample_rate=RATE, num_channels=1,
                           samples_per_channel=len(samples[i:i + n]))
            for i in range(0, len(samples) - n + 1, n)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


async def speak(adapter: stt.STT[Any], audio: list[np.ndarray],
                events: list[tuple[float, str, str]] | None = None
                ) -> tuple[float, list[tuple[float, str]]]:
    """Push AUDIO in real time into a stream of ADAPTER; return when the last loud frame was
    pushed and each final transcript with the time it came. EVENTS gets every transcript
    event (time, type, text)."""
    stream = adapter.stream()
    finals: list[tuple[float, str]] = []
    last_loud = 0.0

    async def read() -> None:
        async for ev in stream:
            if ev.alternatives and events is not None:
                events.append((time.perf_counter(), ev.type.value, ev.alternatives[0].text))
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                finals.append((time.perf_counter(), ev.alternatives[0].text))

    reader = asyncio.create_task(read())
    start = time.perf_counter()
    pushed = 0.0
    for part in audio:
        for frame in frames(part):
            stream.push_frame(frame)
            pushed += FRAME
            if np.abs(np.frombuffer(bytes(frame.data), np.int16)).max() > 1000:
                last_loud = time.perf_counter()
            await asyncio.sleep(max(0.0, start + pushed - time.perf_counter()))
    await asyncio.sleep(0.3)
    stream.end_input()
    await asyncio.wait_for(reader, 10)
    await stream.aclose()
    return last_loud, finals


def test_whisper_starts_in_the_closing_silence_so_the_turn_ends_with_the_vad() -> None:
    """STT takes 0.4 s and the VAD ends speech after 0.5 s of silence: the plain adapter gives
    the transcript at 0.5 + 0.4 s after the speech, the early one at max(0.5, 0.1 + 0.4)."""
    audio = [silence(0.2), tone(0.8), silence(1.4)]

    async def run(early: bool) -> float:
        vad = EnergyVAD(min_silence=0.5, raw_runs=True)
        scripted = ScriptedSTT(["what is the capital of france"], delay=0.4)
        adapter = (EarlyStreamAdapter(stt=scripted, vad=vad, early_silence=0.1) if early
                   else stt.StreamAdapter(stt=scripted, vad=vad))
        last_loud, finals = await speak(adapter, audio)
        assert [text for _, text in finals] == ["what is the capital of france"]
        return finals[0][0] - last_loud

    plain = asyncio.run(run(early=False))
    early = asyncio.run(run(early=True))
    assert 0.85 <= plain <= 1.3, plain
    assert 0.45 <= early <= 0.75, early
    assert plain - early >= 0.25


def test_speech_that_resumes_drops_the_early_transcript_and_keeps_one_segment() -> None:
    """A 0.3 s pause (longer than the early start, shorter than the VAD's silence): the
    recognition started in the pause is dropped, and the one transcript covers both halves."""
    scripted = ScriptedSTT(["first", "second"], delay=0.4)
    adapter = EarlyStreamAdapter(stt=scripted, vad=EnergyVAD(min_silence=0.5, raw_runs=True),
                                 early_silence=0.1)
    audio = [silence(0.2), tone(0.6), silence(0.3), tone(0.6), silence(1.4)]
    _, finals = asyncio.run(speak(adapter, audio))
    assert [text for _, text in finals] == ["first"]  # one segment, one transcript
    assert len(scripted.audio_seconds) == 2  # the dropped early start, then the kept one
    assert scripted.audio_seconds[0] < 0.9 < 1.4 < scripted.audio_seconds[1]


def test_the_early_transcript_goes_out_as_a_preflight_before_the_vad_ends_the_speech() -> None:
    """STT 0.4 s, early start after 0.1 s, the VAD's silence 0.8 s: LiveKit gets the text as a
    preflight transcript 0.5 s after the speech (its preemptive generation starts then) and
    the same text as the final one when the VAD ends the speech, 0.8 s after it."""
    events: list[tuple[float, str, str]] = []
    adapter = EarlyStreamAdapter(stt=ScriptedSTT(["hello there"], delay=0.4),
                                 vad=EnergyVAD(min_silence=0.8, raw_runs=True),
                                 early_silence=0.1)
    last_loud, _ = asyncio.run(speak(adapter, [silence(0.2), tone(0.8), silence(1.6)], events))
    assert [(kind, text) for _, kind, text in events] == [
        ("preflight_transcript", "hello there"), ("final_transcript", "hello there")]
    preflight, final = (t - last_loud for t, _, _ in events)
    assert 0.45 <= preflight <= 0.7, preflight
    assert 0.75 <= final <= 1.05, final
    assert final - preflight >= 0.15


def test_speech_after_a_preflight_makes_it_stale_and_one_final_covers_the_line() -> None:
    """A 0.6 s pause: long enough for the early transcript to go out as a preflight (0.1 +
    0.4 s), shorter than the VAD's 0.8 s. The caller goes on: an interim transcript tells
    LiveKit the preflight is stale, and the next preflight and the final transcript are of
    the whole line."""
    events: list[tuple[float, str, str]] = []
    scripted = ScriptedSTT(["first half", "the whole line"], delay=0.4)
    adapter = EarlyStreamAdapter(stt=scripted, vad=EnergyVAD(min_silence=0.8, raw_runs=True),
                                 early_silence=0.1)
    audio = [silence(0.2), tone(0.6), silence(0.6), tone(0.6), silence(1.8)]
    asyncio.run(speak(adapter, audio, events))
    assert [(kind, text) for _, kind, text in events] == [
        ("preflight_transcript", "first half"), ("interim_transcript", "first half"),
        ("preflight_transcript", "the whole line"), ("final_transcript", "the whole line")]
    assert scripted.audio_seconds[1] > 1.6  # the final one heard both halves


def guesser(texts: list[str | Exception], delay: float, calls: list[float]) -> Any:
    """A guess (WhisperSTT.guess's shape) that takes DELAY seconds and gives TEXTS in turn
    (an exception is raised; "" is no guess); CALLS gets the seconds of audio of each call."""
    async def guess(frames: list[rtc.AudioFrame]) -> stt.SpeechData | None:
        calls.append(sum(f.duration for f in frames))
        await asyncio.sleep(delay)
        text = texts.pop(0) if texts else ""
        if isinstance(text, Exception):
            raise text
        return stt.SpeechData(language=LanguageCode("en"), text=text) if text else None
    return guess


def test_with_a_guess_the_preflight_is_the_guess_and_the_final_the_recognition() -> None:
    """Guess 0.1 s, recognition 0.4 s, early start after 0.1 s, the VAD's silence 0.8 s: the
    guess goes out as the preflight ~0.2 s after the speech, the recognition's text (here
    another one, as a surer model may hear) is the final, at the VAD's end; the guess is not
    a recognition (one STT call)."""
    events: list[tuple[float, str, str]] = []
    calls: list[float] = []
    scripted = ScriptedSTT(["a color of the sky"], delay=0.4)
    adapter = EarlyStreamAdapter(stt=scripted, vad=EnergyVAD(min_silence=0.8, raw_runs=True),
                                 early_silence=0.1,
                                 guess=guesser(["a color of this guy"], 0.1, calls))
    last_loud, _ = asyncio.run(speak(adapter, [silence(0.2), tone(0.8), silence(1.6)], events))
    assert [(kind, text) for _, kind, text in events] == [
        ("preflight_transcript", "a color of this guy"), ("final_transcript", "a color of the sky")]
    preflight, final = (t - last_loud for t, _, _ in events)
    assert 0.15 <= preflight <= 0.4, preflight
    assert 0.75 <= final <= 1.05, final
    assert len(calls) == 1 and len(scripted.audio_seconds) == 1
    assert calls[0] == pytest.approx(scripted.audio_seconds[0])  # the same audio


def test_a_guess_that_ends_after_the_vad_is_not_sent_and_speech_after_one_makes_it_stale(
) -> None:
    """A guess slower than the VAD's silence gives no preflight and is not waited for: the
    final is recognized at the VAD's end (0.4 + 0.1 s, not 0.1 + 0.6 + 0.1 s); a pause long
    enough for a guess but not for the VAD: the caller goes on, the guess's preflight is
    marked stale, and the final covers the whole line."""
    events: list[tuple[float, str, str]] = []
    slow = EarlyStreamAdapter(stt=ScriptedSTT(["hello there"], delay=0.1),
                              vad=EnergyVAD(min_silence=0.4, raw_runs=True), early_silence=0.1,
                              guess=guesser(["hello there"], 0.6, []))
    last_loud, [(final, _)] = asyncio.run(
        speak(slow, [silence(0.2), tone(0.8), silence(1.6)], events))
    assert [(kind, text) for _, kind, text in events] == [("final_transcript", "hello there")]
    assert 0.4 <= final - last_loud <= 0.7, final - last_loud

    events.clear()
    scripted = ScriptedSTT(["first half", "the whole line"], delay=0.2)
    adapter = EarlyStreamAdapter(stt=scripted, vad=EnergyVAD(min_silence=0.8, raw_runs=True),
                                 early_silence=0.1,
                                 guess=guesser(["first half", "the whole line"], 0.1, []))
    audio = [silence(0.2), tone(0.6), silence(0.6), tone(0.6), silence(1.8)]
    asyncio.run(speak(adapter, audio, events))
    assert [(kind, text) for _, kind, text in events] == [
        ("preflight_transcript", "first half"), ("interim_transcript", "first half"),
        ("preflight_transcript", "the whole line"), ("final_transcript", "the whole line")]
    assert scripted.audio_seconds[-1] > 1.6  # the final one heard both halves


@pytest.mark.parametrize("guess", ["", RuntimeError("onnx went away")])
def test_without_a_guess_the_recognition_is_the_preflight(guess: str | Exception) -> None:
    """No guess (a line too long for the short window), or a guess that fails: the early
    recognition's text goes out as the preflight when it ends before the VAD, as without a
    guess, and the final follows; a failed guess does not end the stream."""
    events: list[tuple[float, str, str]] = []
    adapter = EarlyStreamAdapter(stt=ScriptedSTT(["hello there", "again"], delay=0.3),
                                 vad=EnergyVAD(min_silence=0.8, raw_runs=True),
                                 early_silence=0.1, guess=guesser([guess, ""], 0.05, []))
    audio = [silence(0.2), tone(0.8), silence(1.4), tone(0.6), silence(1.6)]
    asyncio.run(speak(adapter, audio, events))
    assert [(kind, text) for _, kind, text in events] == [
        ("preflight_transcript", "hello there"), ("final_transcript", "hello there"),
        ("preflight_transcript", "again"), ("final_transcript", "again")]


@pytest.mark.parametrize(("text", "pieces"), [
    ("The capital of France is Paris, a city famous for its art and its food.",
     ["The capital of France is Paris,", "a city famous for its art and its food."]),
    ("Yes, sure. I can help you with that, just tell me what you need!",
     ["Yes, sure.", "I can help you with that,", "just tell me what you need!"]),
    ("The moon is about 384,400 kilometers away; light takes a second.",
     ["The moon is about 384,400 kilometers away;", "light takes a second."]),
    ("Hello there", ["Hello there"]),
])
def test_replies_are_cut_into_clauses_long_enough_to_say(text: str, pieces: list[str]) -> None:
    assert split_clauses(text) == pieces
    assert ClauseTokenizer().tokenize(text) == pieces


def test_the_first_clause_is_sent_before_the_sentence_ends() -> None:
    async def run() -> list[str]:
        stream = ClauseTokenizer().stream()
        out: list[str] = []

        async def read() -> None:
            async for ev in stream:
                out.append(ev.token)

        reader = asyncio.create_task(read())
        for token in ["The capital", " of France", " is Paris,", " a"]:
            stream.push_text(token)
        await asyncio.sleep(0.05)
        seen_before_end = list(out)
        stream.push_text(" city famous for its food.")
        stream.end_input()
        await reader
        return [*seen_before_end, "|", *out]

    assert asyncio.run(run()) == ["The capital of France is Paris,", "|",
                                  "The capital of France is Paris,",
                                  "a city famous for its food."]


def test_thread_counts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lkmetrics.local.stt import WHISPER_THREADS_ENV, whisper_threads
    from lkmetrics.local.tts import PIPER_THREADS_ENV, piper_threads

    for env, read in ((WHISPER_THREADS_ENV, whisper_threads), (PIPER_THREADS_ENV, piper_threads)):
        monkeypatch.delenv(env, raising=False)
        default = read()
        monkeypatch.setenv(env, "1")
        assert read() == 1 != default or default == 1
        monkeypatch.setenv(env, " 0 ")
        assert read() == 0
        for bad in ("x", "-1", "1,2", "257", "1.5", "9" * 100_000):
            monkeypatch.setenv(env, bad)
            with pytest.raises(LkmetricsError, match=env) as caught:
                read()
            assert len(str(caught.value)) < 200  # a huge value is quoted cut short
    monkeypatch.setenv("X_THREADS", "3")
    assert env_threads("X_THREADS", (1, 1)) == (3, 3)


def test_whisper_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lkmetrics.local.stt import (
        SHORT_WINDOW_FRAMES,
        WHISPER_WINDOW_ENV,
        transcribe_short,
        whisper_window_frames,
    )

    monkeypatch.delenv(WHISPER_WINDOW_ENV, raising=False)
    assert whisper_window_frames() == SHORT_WINDOW_FRAMES == 1000
    monkeypatch.setenv(WHISPER_WINDOW_ENV, " 15 ")
    assert whisper_window_frames() == 1500
    monkeypatch.setenv(WHISPER_WINDOW_ENV, "30")  # Whisper's own window: the short one is off
    assert transcribe_short(object(), None) is None
    monkeypatch.setenv(WHISPER_WINDOW_ENV, "010")  # leading zeros as before
    assert whisper_window_frames() == 1000
    for bad in ("x", "1", "31", "-5", "10.5", "10s", "²", "7" * 5000):
        monkeypatch.setenv(WHISPER_WINDOW_ENV, bad)
        with pytest.raises(LkmetricsError, match=f"{WHISPER_WINDOW_ENV} must be whole seconds"
                           ) as caught:
            whisper_window_frames()
        assert len(str(caught.value)) < 200  # a huge value is quoted cut short


def test_whisper_final_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from lkmetrics.local.stt import WHISPER_FINAL_ENV, whisper_final_window

    monkeypatch.delenv(WHISPER_FINAL_ENV, raising=False)
    assert whisper_final_window() == "short"
    monkeypatch.setenv(WHISPER_FINAL_ENV, " Full ")
    assert whisper_final_window() == "full"
    for bad in ("x", "30", "fullest", "x" * 100_000):
        monkeypatch.setenv(WHISPER_FINAL_ENV, bad)
        with pytest.raises(LkmetricsError, match=f"{WHISPER_FINAL_ENV} must be short or full"
                           ) as caught:
            whisper_final_window()
        assert len(str(caught.value)) < 200  # a huge value is quoted cut short


@pytest.mark.parametrize("text,loops", [
    ("What is it? What is it?", True),
    ("one two three one two three four", True),
    ("What is the capital of France? What is the capital of France?", True),
    ("no no no no", False),  # a word said again is speech, not a loop
    ("I think, I think that is fine.", False),
    ("What is the capital of France?", False),
    ("", False),
])
def test_repeats_itself(text: str, loops: bool) -> None:
    from lkmetrics.local.stt import repeats_itself

    assert repeats_itself(text) is loops
