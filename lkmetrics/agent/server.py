"""Builds the AgentServer, Agent and AgentSession from settings, with capture attached.

Only imported once an agent is about to run: it loads livekit.
"""

from __future__ import annotations

import os
import platform
import threading
from dataclasses import dataclass
from typing import Any

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, inference
from livekit.agents import __version__ as livekit_agents_version
from livekit.agents import llm as lk_llm
from livekit.agents import stt as lk_stt
from livekit.agents import tts as lk_tts
from livekit.agents import vad as lk_vad
from livekit.plugins import openai, silero  # plugins must register on the main thread

from lkmetrics.agent.capture import Capture
from lkmetrics.agent.relay import RELAY_ENV, RelayWriter, in_owner_process
from lkmetrics.config.settings import AgentSettings
from lkmetrics.config.urls import strip_userinfo
from lkmetrics.pipeline import Pipeline
from lkmetrics.records import SessionBody
from lkmetrics.version import __version__

GREETING = "Greet the user and offer your assistance."
LOCAL_MAX_TOKENS = 48


class MetricsAgent(Agent):
    """The recipe's agent: helpful, and it greets the user on entering (when asked to)."""

    def __init__(self, instructions: str, *, greet: bool) -> None:
        super().__init__(instructions=instructions)
        self._greet = greet

    async def on_enter(self) -> None:
        if self._greet:
            self.session.generate_reply(instructions=GREETING)


@dataclass
class Components:
    stt: lk_stt.STT[Any] | None
    llm: lk_llm.LLM[Any]
    tts: lk_tts.TTS[Any] | None
    vad: lk_vad.VAD | None

    def all(self) -> list[Any]:
        return [c for c in (self.stt, self.llm, self.tts, self.vad) if c is not None]


# -- process-wide state: the pipeline that records go to --

_owner_pipeline: Pipeline | None = None
_job_pipeline: Pipeline | None = None
_lock = threading.Lock()


def set_owner_pipeline(pipeline: Pipeline | None) -> None:
    """Called by the CLI: sessions that run in this process capture into ``pipeline``."""
    global _owner_pipeline
    _owner_pipeline = pipeline


def process_pipeline() -> Pipeline:
    """The pipeline for a session in this process: the CLI's own, or in a job process a
    pipeline whose only writer relays records to the CLI process."""
    global _job_pipeline
    if _owner_pipeline is not None and in_owner_process():
        return _owner_pipeline
    with _lock:
        if _job_pipeline is None:
            path = os.environ.get(RELAY_ENV)
            relay = RelayWriter(path) if path else None
            _job_pipeline = Pipeline([relay] if relay else [], summarise=False,
                                     on_session_end=relay.end_session if relay else None)
        return _job_pipeline


# -- models --


def load_models(settings: AgentSettings, userdata: dict[Any, Any]) -> None:
    """Load what is slow to load, once per process (the server's setup function)."""
    userdata["vad"] = load_vad(settings)
    if settings.stt == "local":
        from lkmetrics.local.stt import load_whisper

        userdata["whisper"] = load_whisper()
    if settings.tts == "local":
        from lkmetrics.local.tts import load_piper

        userdata["piper"] = load_piper()


def load_vad(settings: AgentSettings) -> Any:
    """Silero's VAD, with the settings' ``min_silence_duration`` when they give one."""
    if settings.vad_min_silence is not None:
        return silero.VAD.load(min_silence_duration=settings.vad_min_silence)
    return silero.VAD.load()


def model_name(model: str) -> str:
    """The model part of ``provider/model`` (what an OpenAI-compatible server expects)."""
    return model.split("/", 1)[1] if "/" in model else model


def build_components(settings: AgentSettings, userdata: dict[Any, Any]) -> Components:
    stt: lk_stt.STT[Any] | None = None
    if settings.stt == "local":
        from lkmetrics.local.stt import EarlyStreamAdapter, WhisperSTT, whisper_final_window

        # Whisper starts during the VAD's closing silence, not after it; with
        # LKMETRICS_WHISPER_FINAL=full its short window's transcript is only the preflight
        # and the final one comes from the full window
        full = whisper_final_window() == "full"
        whisper = WhisperSTT(model=userdata.get("whisper"), short_window=not full)
        stt = EarlyStreamAdapter(stt=whisper, vad=userdata["vad"],
                                 guess=whisper.guess if full else None)
    elif settings.stt is not None:
        stt = inference.STT(model=settings.stt)

    llm: lk_llm.LLM[Any]
    if settings.llm_base_url is not None:
        extra: dict[str, Any] = {}
        if settings.llm == "local":  # SmolLM2 rambles: keep spoken replies short
            # llama-cpp-python's server knows only the older max_tokens field
            extra["extra_body"] = {"max_tokens": LOCAL_MAX_TOKENS}
        llm = openai.LLM(
            model=settings.llm_model or model_name(settings.llm),
            base_url=settings.llm_base_url,
            api_key=os.environ.get("OPENAI_API_KEY") or "no-key",
            **extra,
        )
    else:
        llm = inference.LLM(model=settings.llm)

    tts: lk_tts.TTS[Any] | None = None
    if settings.tts == "local":
        from lkmetrics.local.tts import streaming_piper

        tts = streaming_piper(userdata.get("piper"))  # Piper starts on the first clause
    elif settings.tts is not None:
        tts = inference.TTS(model=settings.tts, voice=settings.voice)

    vad = userdata.get("vad")
    return Components(stt=stt, llm=llm, tts=tts, vad=vad)


def session_info(settings: AgentSettings, *, room: str | None = None,
                 turns: int | None = None) -> SessionBody:
    """What the session's opening record says: models, versions, host and process."""
    info: SessionBody = {
        "kind": "session",
        "command": settings.command,
        "stt": settings.stt,
        "llm": settings.llm,
        "tts": settings.tts,
        "voice": settings.voice if settings.tts else None,
        "llm_base_url": strip_userinfo(settings.llm_base_url),
        "llm_model": settings.llm_model,
        "host": platform.node(),
        "pid": os.getpid(),
        "lkmetrics_version": __version__,
        "livekit_agents_version": livekit_agents_version,
    }
    if room is not None:
        info["room"] = room
    if turns is not None:
        info["turns"] = turns
    return info


async def start_session(
    settings: AgentSettings,
    components: Components,
    capture: Capture,
    *,
    mic: Any = None,
    speaker: Any = None,
    **start_kwargs: Any,
) -> AgentSession[Any]:
    """Start an AgentSession with the components and attach the capture to it.

    ``mic``/``speaker`` replace room audio (``simulate``); without them LiveKit picks the
    room or the console."""
    parts: dict[str, Any] = {"llm": components.llm, "vad": components.vad}
    turn_handling: dict[str, Any] = {}
    if settings.turn_detection is not None:
        turn_handling["turn_detection"] = settings.turn_detection
    if settings.endpointing:
        turn_handling["endpointing"] = dict(settings.endpointing)
    if turn_handling:
        parts["turn_handling"] = turn_handling
    if components.stt is not None:
        parts["stt"] = components.stt
    if components.tts is not None:
        parts["tts"] = components.tts
    if mic is not None:
        # the simulated caller hears the agent through no room, so nothing echoes back:
        # LiveKit's AEC warm-up (no interruptions in the first 3 s the agent speaks, as it
        # does for its own simulations) would make the first barge-in unmeasurable
        parts["aec_warmup_duration"] = None
    session: AgentSession[Any] = AgentSession(**parts)
    agent = MetricsAgent(settings.instructions, greet=settings.greet)
    if mic is not None:
        session.input.audio = mic
        session.output.audio = speaker
        start_kwargs.setdefault("record", False)
    await session.start(agent, **start_kwargs)
    capture.attach(session, components.all())
    return session


# -- the server --


def setup(proc: JobProcess) -> None:
    setup_process(proc, proc.userdata)


def setup_process(proc: JobProcess, userdata: dict[Any, Any]) -> None:
    """What every job process does first; the models go to ``userdata``."""
    from lkmetrics.agent import quiet

    quiet.install()
    settings = AgentSettings.from_env()
    if settings.otlp_url:  # LiveKit's spans of this process's sessions go to the collector
        import atexit

        from lkmetrics.fleet import start_livekit_tracing

        atexit.register(start_livekit_tracing(settings.otlp_url))
    load_models(settings, userdata)


async def entrypoint(ctx: JobContext) -> None:
    settings = AgentSettings.from_env()
    pipeline = process_pipeline()
    capture = Capture(pipeline)
    capture.start(session_info(settings, room=ctx.room.name))
    components = build_components(settings, ctx.proc.userdata)

    async def _flush() -> None:
        import asyncio

        capture.end()
        await asyncio.to_thread(pipeline.flush)

    ctx.add_shutdown_callback(_flush)
    await start_session(settings, components, capture, room=ctx.room)


def build_server() -> AgentServer:
    """The server LiveKit's ``cli.run_app`` runs. Settings travel in the environment, so job
    processes (``run``/``dev`` on Linux) build exactly the same agent."""
    settings = AgentSettings.from_env()
    if settings.agent is not None:  # --agent: the user's, hosted (lkmetrics.agent.host)
        from lkmetrics.agent import host

        return host.build_server(settings)
    server = AgentServer(setup_fnc=setup)
    server.rtc_session(entrypoint)
    return server
