"""Providers with scripted latency that drive LiveKit's real metric code (in the manner of
livekit/agents' tests/fake_*.py), plus synthetic "speech" audio.

- EnergyVAD looks at the real frames it is given: loud frames are speech, silent ones are not.
- ScriptedSTT is a non-streaming STT: LiveKit buffers the utterance (StreamAdapter + VAD) and
  calls ``recognize``, which answers after ``delay`` seconds; LiveKit emits STTMetrics.
- ScriptedTTS answers after ``ttfb`` seconds with real PCM of ``audio_per_char`` per
  character; LiveKit measures TTFB and emits TTSMetrics.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, stt, tts, vad
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.utils import AudioBuffer, merge_frames

RATE = 16000


def tone(seconds: float, rate: int = RATE, freq: float = 220.0, amp: int = 8000) -> np.ndarray:
    """A loud tone standing in for an utterance (int16 mono)."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16)


def tone_wav(path: Path, seconds: float = 1.0) -> Path:
    """A spoken-like tone of ``seconds`` then 0.5 s of silence, as a 16 kHz mono WAV at
    ``path`` (what a scripted caller says)."""
    from lkmetrics.local.speech import write_wav_pcm16

    write_wav_pcm16(path, np.concatenate([tone(seconds), np.zeros(RATE // 2, dtype=np.int16)]),
                    RATE)
    return path


class EnergyVAD(vad.VAD):
    def __init__(self, *, min_speech: float = 0.06, min_silence: float = 0.3,
                 threshold: float = 500.0, raw_runs: bool = False) -> None:
        """RAW_RUNS: fill INFERENCE_DONE's raw_accumulated_speech/silence as Silero does (off
        by default: LiveKit then moves its own end-of-speech anchors, and the scripted
        sessions' stage timings were pinned without them)."""
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.1))
        self.min_speech = min_speech
        self.min_silence = min_silence
        self.threshold = threshold
        self.raw_runs = raw_runs

    @property
    def model(self) -> str:
        return "energy"

    @property
    def provider(self) -> str:
        return "fake"

    def stream(self) -> vad.VADStream:
        return _EnergyVADStream(self)


class _EnergyVADStream(vad.VADStream):
    async def _main_task(self) -> None:
        v = self._vad
        assert isinstance(v, EnergyVAD)
        speaking = False
        speech_s = silence_s = run_loud = run_quiet = 0.0
        index = 0
        buffered: list[rtc.AudioFrame] = []
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):
                speaking, speech_s, silence_s, buffered = False, 0.0, 0.0, []
                continue
            t0 = time.perf_counter()
            samples = np.frombuffer(bytes(item.data), dtype=np.int16)
            rms = float(np.sqrt(np.mean(samples.astype(np.float32) ** 2))) if samples.size else 0.0
            loud = rms > v.threshold
            index += item.samples_per_channel
            dur = item.duration
            # like Silero's raw_accumulated_*: the run of loud (or quiet) audio before this frame
            raw_speech, raw_silence = (run_loud, run_quiet) if v.raw_runs else (0.0, 0.0)
            if loud:
                speech_s += dur
                silence_s = 0.0
                run_loud, run_quiet = run_loud + dur, 0.0
            else:
                silence_s += dur
                run_loud, run_quiet = 0.0, run_quiet + dur
            if speaking:
                buffered.append(item)
            ev_type = vad.VADEventType.INFERENCE_DONE
            ev = vad.VADEvent(type=ev_type, samples_index=index, timestamp=time.time(),
                              speech_duration=speech_s, silence_duration=silence_s,
                              frames=[item], probability=1.0 if loud else 0.0,
                              inference_duration=time.perf_counter() - t0, speaking=speaking,
                              raw_accumulated_speech=raw_speech,
                              raw_accumulated_silence=raw_silence)
            self._event_ch.send_nowait(ev)
            if not speaking and loud and speech_s >= v.min_speech:
                speaking = True
                buffered = [item]
                self._event_ch.send_nowait(vad.VADEvent(
                    type=vad.VADEventType.START_OF_SPEECH, samples_index=index,
                    timestamp=time.time(), speech_duration=speech_s, silence_duration=0.0,
                    frames=[item], speaking=True))
            elif speaking and silence_s >= v.min_silence:
                speaking = False
                self._event_ch.send_nowait(vad.VADEvent(
                    type=vad.VADEventType.END_OF_SPEECH, samples_index=index,
                    timestamp=time.time(), speech_duration=speech_s,
                    silence_duration=silence_s, frames=buffered, speaking=False))
                speech_s = 0.0
                buffered = []
            elif not loud and not speaking:
                speech_s = 0.0


class ScriptedSTT(stt.STT[Any]):
    def __init__(self, transcripts: list[str], *, delay: float = 0.1) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.transcripts = list(transcripts)
        self.delay = delay
        self.audio_seconds: list[float] = []

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "fake"

    def speed_up(self, k: float) -> ScriptedSTT:
        other = copy.copy(self)
        other.delay = self.delay / k
        return other

    async def _recognize_impl(self, buffer: AudioBuffer, *, language: object = None,
                              conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
                              ) -> stt.SpeechEvent:
        frame = merge_frames(buffer)
        self.audio_seconds.append(frame.duration)
        await asyncio.sleep(self.delay)
        text = self.transcripts.pop(0) if self.transcripts else ""
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                               request_id=uuid.uuid4().hex,
                               alternatives=[stt.SpeechData(text=text,
                                                            language=LanguageCode("en"))])


class ScriptedTTS(tts.TTS[Any]):
    def __init__(self, *, ttfb: float = 0.15, audio_per_char: float = 0.01,
                 sample_rate: int = 24000, lead_in: float = 0.0) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False),
                         sample_rate=sample_rate, num_channels=1)
        self.ttfb = ttfb
        self.audio_per_char = audio_per_char
        self.lead_in = lead_in  # seconds of silence before the speech, as some voices have

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "fake"

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
                   ) -> tts.ChunkedStream:
        return _ScriptedStream(tts=self, input_text=text, conn_options=conn_options)


class _ScriptedStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        t = self._tts
        assert isinstance(t, ScriptedTTS)
        output_emitter.initialize(request_id=uuid.uuid4().hex, sample_rate=t.sample_rate,
                                  num_channels=1, mime_type="audio/pcm")
        await asyncio.sleep(t.ttfb)
        seconds = max(0.05, len(self.input_text) * t.audio_per_char)
        pcm = tone(seconds, rate=t.sample_rate, freq=330.0, amp=3000)
        pcm = np.concatenate([np.zeros(int(t.lead_in * t.sample_rate), dtype=np.int16), pcm])
        step = t.sample_rate // 10
        for i in range(0, len(pcm), step):
            output_emitter.push(pcm[i:i + step].tobytes())
        output_emitter.flush()
