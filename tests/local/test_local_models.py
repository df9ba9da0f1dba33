"""The local models for real: Whisper and Piper through LiveKit's STT and TTS APIs (recognize,
synthesize, and the StreamAdapters an AgentSession wraps them in),
WAV reading, and the llama server's lifecycle. Models load once per module."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.metrics import STTMetrics, TTSMetrics
from livekit.agents.utils import merge_frames

from lkmetrics.analysis.wer import word_error_rate
from lkmetrics.errors import LkmetricsError, MissingExtraError
from lkmetrics.local import require_local_extra
from lkmetrics.local import stt as stt_module
from lkmetrics.local.llm_server import LlamaServer
from lkmetrics.local.speech import (
    frame_to_pcm16_mono,
    pcm16_to_float32,
    read_wav_pcm16_mono,
    synthesize_wav,
    write_wav_pcm16,
)
from lkmetrics.local.stt import WhisperSTT, load_whisper, transcribe, transcribe_short
from lkmetrics.local.tts import PiperTTS, load_piper
from tests.helpers.common import wait_gone

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
QUESTION = "What is the capital of France?"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def whisper() -> Any:
    """Whisper tiny.en, loaded once for the module."""
    require_local_extra()
    return load_whisper()


@pytest.fixture(scope="module")
def voice() -> Any:
    """The Piper voice, loaded once for the module."""
    return load_piper()


@pytest.fixture(scope="module")
def question_wav(voice: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QUESTION spoken by Piper, as a 22.05 kHz mono WAV."""
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    seconds = synthesize_wav(QUESTION, path, voice=voice)
    assert 1.0 < seconds < 4.0
    return path


def frames_of(pcm: np.ndarray[Any, Any], rate: int, channels: int = 1) -> list[rtc.AudioFrame]:
    """Cut interleaved PCM16 into 20 ms LiveKit frames, like a microphone track delivers."""
    step = rate // 50 * channels
    return [
        rtc.AudioFrame(
            pcm[i : i + step].tobytes(), rate, channels, len(pcm[i : i + step]) // channels
        )
        for i in range(0, len(pcm), step)
    ]


def recognize(stt: WhisperSTT, frames: list[rtc.AudioFrame]) -> tuple[str, list[STTMetrics]]:
    """Run LiveKit's STT.recognize on FRAMES; return the transcript and the metrics emitted."""
    metrics: list[STTMetrics] = []
    stt.on("metrics_collected", metrics.append)

    async def run() -> str:
        event = await stt.recognize(frames)
        assert event.request_id and event.alternatives
        assert metrics and metrics[-1].request_id == event.request_id
        return event.alternatives[0].text

    try:
        return asyncio.run(run()), metrics
    finally:
        stt.off("metrics_collected", metrics.append)


def assert_heard_question(text: str) -> None:
    """Whisper understood QUESTION (punctuation and case may differ)."""
    assert "capital" in text.lower() and "france" in text.lower(), text


def test_whisper_stt_understands_piper_and_livekit_emits_metrics(
    whisper: Any, question_wav: Path
) -> None:
    # Piper's own 22.05 kHz, so WhisperSTT has to resample too
    pcm = read_wav_pcm16_mono(question_wav, 22050)
    audio_seconds = len(pcm) / 22050
    stt = WhisperSTT(model=whisper)
    assert not stt.capabilities.streaming and not stt.capabilities.interim_results

    text, metrics = recognize(stt, frames_of(pcm, 22050))

    assert_heard_question(text)
    [m] = metrics
    assert m.duration > 0
    assert m.audio_duration == pytest.approx(audio_seconds, abs=0.03)
    assert not m.streamed
    assert m.metadata is not None
    assert (m.metadata.model_name, m.metadata.model_provider) == ("whisper-tiny.en", "local")


@pytest.mark.parametrize("line", [
    QUESTION,
    "Please turn off the lights in the kitchen.",
    "Tell me a short story about a dragon who learns to fly over the mountains.",
])
def test_a_line_that_fits_is_heard_in_the_short_window(whisper: Any, voice: Any, line: str,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "line.wav"
    synthesize_wav(line, path, voice=voice)
    audio = pcm16_to_float32(read_wav_pcm16_mono(path, 16000))

    short = transcribe_short(whisper, audio)

    assert short is not None, "a line under 9 s decodes in the 10 s window"
    text, confidence = short
    assert word_error_rate(line, text) == 0.0, text
    assert 0.5 < confidence <= 1.0
    assert transcribe(whisper, audio) == short  # what WhisperSTT uses


def test_the_guess_is_the_short_window_without_metrics_and_the_final_the_full_one(
        whisper: Any, question_wav: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LKMETRICS_WHISPER_FINAL=full's parts: WhisperSTT.guess gives the short window's text
    and emits no metrics; WhisperSTT(short_window=False) recognizes in the full window."""
    pcm = read_wav_pcm16_mono(question_wav, 22050)
    frames = frames_of(pcm, 22050)
    whole = stt_module.whisper_audio(merge_frames(frames))
    stt = WhisperSTT(model=whisper, short_window=False)
    metrics: list[STTMetrics] = []
    stt.on("metrics_collected", metrics.append)

    guessed = asyncio.run(stt.guess(frames))

    assert guessed is not None and not metrics
    short = transcribe_short(whisper, whole)
    assert short is not None and guessed.text == short[0], (guessed.text, short)
    assert_heard_question(guessed.text)
    stt.off("metrics_collected", metrics.append)
    text, [m] = recognize(stt, frames)
    assert_heard_question(text)
    assert m.duration > 0
    monkeypatch.setattr(stt_module, "transcribe_short", lambda *a: pytest.fail("short window"))
    assert recognize(stt, frames)[0] == text  # the full window only
    monkeypatch.undo()
    monkeypatch.setenv(stt_module.WHISPER_WINDOW_ENV, "30")  # the short window off: no guess
    assert asyncio.run(stt.guess(frames)) is None


def test_a_longer_line_takes_the_full_window(whisper: Any) -> None:
    gap = np.zeros(24000, dtype=np.float32)
    lines = [pcm16_to_float32(read_wav_pcm16_mono(REPO / f"lkmetrics/data/question{n}.wav",
                                                  16000)) for n in (1, 2, 3)]
    audio = np.concatenate([part for line in lines for part in (line, gap)])
    # ~10.5 s: no room for the padding in 10 s
    assert audio.size / 16000 > (stt_module.SHORT_WINDOW_FRAMES
                                 - stt_module.MIN_PADDING_FRAMES) / 100

    assert transcribe_short(whisper, audio) is None
    text, _ = transcribe(whisper, audio)
    for words in ("capital of france", "days", "color"):
        assert words in text.lower(), text


def test_a_repeating_decoding_falls_back_to_the_full_window(
        whisper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    audio = pcm16_to_float32(read_wav_pcm16_mono(REPO / "lkmetrics/data/question1.wav", 16000))
    frames = whisper.feature_extractor(audio).shape[-1]
    # a window with no padding after the speech: Whisper says the line again and again, up
    # to the token limit ("What is the capital of France? What is the capital of ...")
    monkeypatch.setattr(stt_module, "SHORT_WINDOW_FRAMES", frames)
    monkeypatch.setattr(stt_module, "MIN_PADDING_FRAMES", 0)

    assert transcribe_short(whisper, audio) is None
    text, _ = transcribe(whisper, audio)
    assert word_error_rate(QUESTION, text) == 0.0, text


def test_a_decoding_that_reaches_the_token_limit_falls_back(
        whisper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    audio = pcm16_to_float32(read_wav_pcm16_mono(REPO / "lkmetrics/data/question1.wav", 16000))
    assert transcribe_short(whisper, audio) is not None  # 8 tokens, under 10/s + 10
    monkeypatch.setattr(stt_module, "MAX_TOKENS_PER_SECOND", 0)
    monkeypatch.setattr(stt_module, "TOKEN_ALLOWANCE", 5)  # stops at 5 tokens: a cut line

    assert transcribe_short(whisper, audio) is None
    text, _ = transcribe(whisper, audio)
    assert word_error_rate(QUESTION, text) == 0.0, text


def test_silence_is_no_words(whisper: Any) -> None:
    text, _ = transcribe(whisper, np.zeros(16000, dtype=np.float32))
    assert word_error_rate("", text) is None and not re.search(r"\w", text), text


def test_whisper_stt_never_blocks_the_event_loop(whisper: Any, question_wav: Path) -> None:
    pcm = read_wav_pcm16_mono(question_wav, 16000)
    stt = WhisperSTT(model=whisper)

    async def run() -> tuple[float, float]:
        gaps: list[float] = []

        async def tick() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await stt.recognize(frames_of(pcm, 16000))
        took = time.perf_counter() - started
        await asyncio.sleep(0.05)  # let the ticker record the gap it is in
        ticker.cancel()
        return max(gaps), took

    worst_gap, took = asyncio.run(run())
    # on the loop, one gap would last the whole recognition (about half a second here)
    assert worst_gap < max(0.1, took / 3), (worst_gap, took)


def test_piper_tts_streams_sentences_and_livekit_emits_metrics(voice: Any) -> None:
    text = (
        "Paris is the capital of France. It is known for the Eiffel Tower, "
        "its museums and its cafes. Millions of people visit it every year."
    )
    tts = PiperTTS(voice=voice)
    assert tts.sample_rate == 22050 and not tts.capabilities.streaming
    metrics: list[TTSMetrics] = []
    tts.on("metrics_collected", metrics.append)

    async def run() -> tuple[list[rtc.AudioFrame], float]:
        frames: list[rtc.AudioFrame] = []
        started = time.perf_counter()
        first = 0.0
        async with tts.synthesize(text) as stream:
            async for ev in stream:
                first = first or time.perf_counter() - started
                frames.append(ev.frame)
        return frames, first

    frames, first_audio = asyncio.run(run())

    seconds = sum(f.duration for f in frames)
    assert 4.0 < seconds < 14.0  # about 13 characters a second of speech
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(22050, 1)}
    [m] = metrics
    assert m.audio_duration == pytest.approx(seconds, abs=0.01)
    assert 0 < m.ttfb <= first_audio + 0.01
    # three sentences: the first one is heard long before the last one is synthesized
    assert m.ttfb < m.duration / 2, (m.ttfb, m.duration)
    assert m.metadata is not None and m.metadata.model_provider == "local"
    assert m.characters_count == len(text)


def test_local_stt_and_tts_through_livekits_stream_apis(whisper: Any, voice: Any,
                                                      question_wav: Path) -> None:
    # What an AgentSession does with these non-streaming models: it wraps them in LiveKit's
    # StreamAdapters (Silero VAD cuts the STT's utterances, a sentence tokenizer feeds the TTS)
    from livekit.agents import stt as lk_stt
    from livekit.agents import tts as lk_tts
    from livekit.agents.utils import merge_frames
    from livekit.plugins import silero

    half_second = np.zeros(8000, dtype=np.int16)
    pcm = read_wav_pcm16_mono(question_wav, 16000)
    heard_frames = frames_of(np.concatenate([half_second, pcm, half_second, half_second]), 16000)
    listener = lk_stt.StreamAdapter(stt=WhisperSTT(model=whisper), vad=silero.VAD.load())
    speaker = lk_tts.StreamAdapter(tts=PiperTTS(voice=voice))
    stt_metrics: list[STTMetrics] = []
    tts_metrics: list[TTSMetrics] = []
    listener.on("metrics_collected", stt_metrics.append)
    speaker.on("metrics_collected", tts_metrics.append)
    sentences = ["Paris is the capital of France. ", "It is known for the Eiffel Tower."]

    async def run() -> tuple[list[Any], list[rtc.AudioFrame], str]:
        listening = listener.stream()
        for frame in heard_frames:
            listening.push_frame(frame)
        listening.end_input()
        events = [ev async for ev in listening]
        await listening.aclose()

        speaking = speaker.stream()
        for sentence in sentences:
            speaking.push_text(sentence)
        speaking.flush()
        speaking.end_input()
        spoken = [ev.frame async for ev in speaking]
        await speaking.aclose()
        # and what the TTS said, heard back by the STT
        said = await WhisperSTT(model=whisper).recognize(
            frames_of(frame_to_pcm16_mono(merge_frames(spoken), 16000), 16000))
        return events, spoken, said.alternatives[0].text

    events, spoken, said = asyncio.run(run())

    kinds = [ev.type for ev in events]
    assert kinds == [lk_stt.SpeechEventType.START_OF_SPEECH,
                     lk_stt.SpeechEventType.END_OF_SPEECH,
                     lk_stt.SpeechEventType.FINAL_TRANSCRIPT], kinds
    assert_heard_question(events[-1].alternatives[0].text)
    [m] = stt_metrics  # one utterance, one recognition, metered by LiveKit
    assert m.duration > 0 and len(pcm) / 16000 - 0.1 < m.audio_duration < len(pcm) / 16000 + 1.0

    assert {(f.sample_rate, f.num_channels) for f in spoken} == {(22050, 1)}
    seconds = sum(f.duration for f in spoken)
    assert 2.0 < seconds < 8.0
    assert all(t.ttfb > 0 for t in tts_metrics)
    # one synthesis, and one TTSMetrics, per sentence
    assert [t.characters_count for t in tts_metrics] == [len(x.strip()) for x in sentences]
    assert sum(t.audio_duration for t in tts_metrics) == pytest.approx(seconds, abs=0.05)
    # Piper samples its voice's noise anew each time, so a word may come out differently
    # ("Carishes the capital of France"); the sentences themselves are heard
    assert "capital of france" in said.lower() and "eiffel" in said.lower(), said


def test_a_44k_stereo_wav_is_read_as_16k_mono_and_understood(
    whisper: Any, question_wav: Path, tmp_path: Path
) -> None:
    mono = read_wav_pcm16_mono(question_wav, 44100)
    stereo = np.stack([mono, (mono.astype(np.int32) // 2).astype(np.int16)], axis=1).ravel()
    path = tmp_path / "stereo44k.wav"
    write_wav_pcm16(path, stereo, 44100, num_channels=2)

    pcm = read_wav_pcm16_mono(path, 16000)

    reference = read_wav_pcm16_mono(question_wav, 16000)
    assert pcm.dtype == np.int16 and abs(len(pcm) - len(reference)) <= 16
    text, _ = recognize(WhisperSTT(model=whisper), frames_of(pcm, 16000))
    assert_heard_question(text)


def _write_raw_wav(path: Path, payload: bytes, *, tag: int, width: int, rate: int) -> None:
    """A mono WAV with any format tag and sample width (wave can only write PCM)."""
    import struct

    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * width, width, width * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize("encoding", ["u8", "s24", "s32", "f32"])
def test_wav_sample_formats_decode_to_the_same_audio(
    encoding: str, question_wav: Path, tmp_path: Path
) -> None:
    ref = read_wav_pcm16_mono(question_wav, 22050).astype(np.int32)
    if encoding == "u8":
        payload, tag, width = ((ref >> 8) + 128).astype(np.uint8).tobytes(), 1, 1
    elif encoding == "s24":
        b = (ref << 8).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        payload, tag, width = b.tobytes(), 1, 3
    elif encoding == "s32":
        payload, tag, width = (ref << 16).astype("<i4").tobytes(), 1, 4
    else:
        payload, tag, width = (ref / 32768.0).astype("<f4").tobytes(), 3, 4
    path = tmp_path / f"{encoding}.wav"
    _write_raw_wav(path, payload, tag=tag, width=width, rate=22050)

    pcm = read_wav_pcm16_mono(path, 22050).astype(np.int32)

    tolerance = 256 if encoding == "u8" else 1
    assert len(pcm) == len(ref) and np.abs(pcm - ref).max() <= tolerance


def test_a_missing_module_names_itself_and_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)  # makes "import piper" fail
    with pytest.raises(MissingExtraError) as err:
        require_local_extra()
    # from a checkout, the set-up script (it builds llama.cpp with the flags it needs here)
    script = Path(__file__).resolve().parents[2] / "scripts" / "install.sh"
    assert "'piper'" in str(err.value)
    assert f"run: PYTHON={shlex.quote(sys.executable)} bash {shlex.quote(str(script))}" in str(
        err.value)


def test_without_a_checkout_the_hint_is_pip_with_the_llama_build_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    import lkmetrics.local as local

    monkeypatch.setattr(local, "__file__", str(tmp_path / "site" / "lkmetrics" / "local" /
                                               "__init__.py"))
    hint = local.install_hint()
    assert hint.startswith('CMAKE_ARGS="-DGGML_NATIVE=OFF ')
    assert hint.endswith(f'{shlex.quote(sys.executable)} -m pip install --no-cache-dir '
                         '"lkmetrics[local]"')
    # the same flags as the set-up script
    script = (Path(__file__).resolve().parents[2] / "scripts" / "install.sh").read_text()
    assert f'CMAKE_ARGS="{local.LLAMA_CMAKE_ARGS}"' in script


def test_reading_a_non_wav_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    with pytest.raises(LkmetricsError, match="not a WAV file"):
        read_wav_pcm16_mono(path, 16000)


# --- llama server ------------------------------------------------------------------------


def chat_request(server: LlamaServer, prompt: str, max_tokens: int, *,
                 stream: bool) -> urllib.request.Request:
    """A chat completion request; streamed ones ask for usage, as LiveKit's LLM does."""
    body: dict[str, Any] = {
        "model": server.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def stream_chat(server: LlamaServer, prompt: str, max_tokens: int = 16) -> dict[str, Any]:
    """One streamed chat completion asking for usage, as LiveKit's LLM sends it."""
    request = chat_request(server, prompt, max_tokens, stream=True)
    started = time.perf_counter()
    ttft, text, usage = None, "", None
    with NO_PROXY.open(request, timeout=60) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk["choices"]:
                delta = choice["delta"].get("content") or ""
                if delta and ttft is None:
                    ttft = time.perf_counter() - started
                text += delta
            usage = chunk.get("usage") or usage
    return {"ttft": ttft, "text": text, "usage": usage}


def complete(server: LlamaServer, prompt: str, max_tokens: int = 16) -> dict[str, Any]:
    """One unstreamed chat completion; the server's JSON answer."""
    request = chat_request(server, prompt, max_tokens, stream=False)
    with NO_PROXY.open(request, timeout=60) as resp:
        result: dict[str, Any] = json.loads(resp.read())
    return result


def test_llama_server_streams_a_completion_with_usage_and_stops(tmp_path: Path) -> None:
    with LlamaServer(tmp_path) as server:
        pid = server.pid
        assert pid is not None and server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v1") and "SmolLM2" in server.model

        streamed = stream_chat(server, QUESTION)
        plain = complete(server, QUESTION)

    assert streamed["ttft"] is not None and streamed["text"].strip()
    # usage in the stream equals what the server reports for the same request unstreamed
    assert streamed["usage"] == plain["usage"]
    assert streamed["usage"]["prompt_tokens"] > 5 and streamed["usage"]["completion_tokens"] > 0
    assert wait_gone(pid, 0)
    assert (tmp_path / "llama-server.log").read_text().strip()


def test_concurrent_requests_are_all_answered_none_cut_off(tmp_path: Path) -> None:
    """Two callers at once: the stock server cut the stream in progress off for the one
    waiting (interrupt_requests); each must get its whole answer and its usage."""
    import concurrent.futures

    with LlamaServer(tmp_path) as server, concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: stream_chat(server, QUESTION, 24), range(3)))
    for answer in answers:
        assert answer["ttft"] is not None and answer["text"].strip(), answers
        assert answer["usage"]["completion_tokens"] > 0, answers


def test_the_usage_chunk_comes_after_the_content_and_alone(tmp_path: Path) -> None:
    """No content chunk is held back to carry the usage: the usage is its own last chunk
    (no choices), and the finish chunk before it has none."""
    with LlamaServer(tmp_path) as server:
        request = chat_request(server, QUESTION, 12, stream=True)
        with NO_PROXY.open(request, timeout=60) as resp:
            chunks = [json.loads(line[6:]) for line in (r.decode().strip() for r in resp)
                      if line.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all("usage" not in c for c in chunks[:-1])
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") for c in chunks[:-1])


def test_each_chunk_is_passed_on_before_the_next_is_made() -> None:
    """The usage patch never holds a chunk back until the next one exists (that added one
    decode step to every time to first token)."""
    from types import SimpleNamespace

    from lkmetrics.local._llama_child import with_usage

    made: list[int] = []

    def chunks() -> Iterator[dict[str, Any]]:
        for i in range(3):
            made.append(i)
            yield {"id": "c", "created": 1, "model": "m", "choices": [{"text": str(i)}]}

    llama = SimpleNamespace(_lkmetrics_completion_tokens=3)
    stream = with_usage(llama, 7, chunks())
    for i in range(3):
        assert next(stream)["choices"][0]["text"] == str(i)
        assert made == list(range(i + 1))  # the next chunk is not made yet
    usage = next(stream)
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert next(stream, None) is None


def test_thread_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from lkmetrics.local.llm_server import THREADS_ENV, llama_threads

    assert llama_threads() == (1, 1)
    monkeypatch.setenv(THREADS_ENV, "2")
    assert llama_threads() == (2, 2)
    monkeypatch.setenv(THREADS_ENV, " 1,2 ")
    assert llama_threads() == (1, 2)
    command = LlamaServer(tmp_path, model_path=tmp_path / "m.gguf", port=1).command()
    assert command[command.index("--n_threads_batch") + 1] == "2"
    assert command[command.index("--interrupt_requests") + 1] == "False"
    for bad in ("0", "x", "1,2,3", "-1", "1,"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(LkmetricsError, match=THREADS_ENV):
            llama_threads()


def test_llama_server_stops_when_the_with_block_raises(tmp_path: Path) -> None:
    pid = None
    with pytest.raises(RuntimeError, match="boom"), LlamaServer(tmp_path) as server:
        pid = server.pid
        raise RuntimeError("boom")
    assert pid is not None and wait_gone(pid, 0)


def test_a_server_that_dies_at_start_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    server = LlamaServer(tmp_path, model_path=bogus, startup_timeout=60)
    with pytest.raises(LkmetricsError, match="exited with code"):
        server.start()
    assert server.pid is None


PARENT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from lkmetrics.local.llm_server import LlamaServer

    with LlamaServer(sys.argv[1]) as server:
        print(server.pid, flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A separate Python process that started a server and sleeps inside the ``with``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read() if proc.stderr else line
        yield proc, int(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_llama_server_stops_when_the_parent_gets_sigint(
    parent: tuple[subprocess.Popen[str], int],
) -> None:
    proc, server_pid = parent
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in stderr
    assert wait_gone(server_pid, 5)


def test_llama_server_exits_when_the_parent_is_killed(
    parent: tuple[subprocess.Popen[str], int],
) -> None:
    proc, server_pid = parent
    proc.kill()  # no atexit, no __exit__: the child's watchdog has to notice
    proc.wait()
    assert wait_gone(server_pid, 5)


def wheel_lookup(home: Path, **env: str) -> tuple[str, str]:
    """What scripts/wheel_cache.sh (sourced by install.sh) finds, run by bash: the wheel
    directory it builds into and the built wheel it would reuse ("" for none)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "wheel_cache.sh"
    shell = (f'LLAMA_VERSION=0.3.9 py_tag=cpython-311-linux-x86_64 flags_hash=abc123 && '
             f'source {shlex.quote(str(script))} && echo "$WHEEL_DIR" && cached_wheel')
    clean = {k: v for k, v in os.environ.items()
             if k not in ("LKMETRICS_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=30,
                          env={**clean, "HOME": str(home), **env})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return lines[0], lines[1] if len(lines) > 1 else ""


def test_built_wheels_live_in_the_cache_whatever_lkmetrics_home_is(tmp_path: Path) -> None:
    """Setting LKMETRICS_HOME before install.sh does not force the llama.cpp build again:
    the wheel goes to ${XDG_CACHE_HOME:-~/.cache}/lkmetrics/wheels, and one an earlier
    install.sh kept under the default app directory is reused."""
    home = tmp_path / "home"
    name = "llama-cpp-python-0.3.9-cpython-311-linux-x86_64-abc123"
    wheel_dir, found = wheel_lookup(home)
    assert wheel_dir == str(home / ".cache" / "lkmetrics" / "wheels" / name) and found == ""
    assert wheel_lookup(home, LKMETRICS_HOME=str(tmp_path / "elsewhere"))[0] == wheel_dir
    xdg = wheel_lookup(home, XDG_CACHE_HOME=str(tmp_path / "xdg"))[0]
    assert xdg == str(tmp_path / "xdg" / "lkmetrics" / "wheels" / name)
    # a wheel built by an earlier install.sh under the default app directory
    old = home / ".config" / "lkmetrics" / "wheels" / name
    old.mkdir(parents=True)
    (old / "llama_cpp_python-0.3.9-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
    _, found = wheel_lookup(home, LKMETRICS_HOME=str(tmp_path / "elsewhere"))
    assert found == str(old / "llama_cpp_python-0.3.9-cp311-cp311-linux_x86_64.whl")
    # the cache wins over the old place
    new = Path(wheel_dir)
    new.mkdir(parents=True)
    (new / "llama_cpp_python-0.3.9-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
    assert wheel_lookup(home)[1] == str(new / "llama_cpp_python-0.3.9-cp311-cp311-"
                                        "linux_x86_64.whl")
    # install.sh builds into the cache, not the app directory
    install = (Path(__file__).resolve().parents[2] / "scripts" / "install.sh").read_text()
    assert 'source "$ROOT/scripts/wheel_cache.sh"' in install
    assert 'mktemp -d "$WHEEL_CACHE/.build.XXXXXX"' in install
