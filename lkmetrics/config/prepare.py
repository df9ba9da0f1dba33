"""The command line validated into :class:`~lkmetrics.config.settings.AgentSettings`: model
strings, ``--agent`` and the options it replaces, the server and credentials, the local
models' extra. Nothing here imports livekit."""

from __future__ import annotations

import re

from lkmetrics.config.credentials import check_credentials, check_server_url, server_to_env
from lkmetrics.config.defaults import DEFAULT_LLM, DEFAULT_STT, DEFAULT_TTS
from lkmetrics.config.options import AgentOptions, ServerOptions
from lkmetrics.config.settings import AgentSettings
from lkmetrics.config.urls import check_base_url
from lkmetrics.errors import UsageError

_MODEL_RE = re.compile(r"^[A-Za-z0-9_.\-]+/[^\s/][^\s]*$")

# --agent: the options that replace a stage of the user's agent when typed
REPLACING = {"stt": ("stt",), "llm": ("llm",), "tts": ("tts",), "voice": ("tts",),
             "llm_base_url": ("llm",), "local": ("stt", "llm", "tts")}

ROOM_COMMANDS = ("run", "dev", "connect")


def parse_model(option: str, value: str, *, allow_none: bool) -> str | None:
    """Validate a ``provider/model`` string; ``none`` (where allowed) gives None.

    ``local`` selects the built-in offline model for that stage.
    """
    v = value.strip()
    if allow_none and v.lower() == "none":
        return None
    if v.lower() == "local":
        return "local"
    if not _MODEL_RE.match(v):
        extra = ", 'local'" + (" or 'none'" if allow_none else "")
        example = {"--llm": DEFAULT_LLM, "--stt": DEFAULT_STT, "--tts": DEFAULT_TTS}[option]
        raise UsageError(
            f"{option} expects PROVIDER/MODEL, e.g. {example}{extra} (got {value!r})."
        )
    return v


def make_settings(command: str, agent: AgentOptions, show: tuple[str, ...] = ()) -> AgentSettings:
    """Validated agent settings from the command line (no livekit import)."""
    stt, llm, tts = (("local",) * 3) if agent.local else (agent.stt, agent.llm, agent.tts)
    settings = AgentSettings(
        stt=parse_model("--stt", stt, allow_none=True),
        llm=parse_model("--llm", llm, allow_none=False) or "local",
        tts=parse_model("--tts", tts, allow_none=True),
        voice=agent.voice,
        instructions=agent.instructions,
        greet=agent.greet,
        llm_base_url=check_base_url(agent.llm_base_url),
        command=command,
        show=[s.lower() for s in show],
    )
    if settings.llm == "local" and settings.llm_base_url is not None:
        raise UsageError("--llm local starts its own server; leave out --llm-base-url.")
    if agent.agent is not None:
        from lkmetrics.target import parse_target

        if "instructions" in agent.typed or "greet" in agent.typed:
            flag = "--instructions" if "instructions" in agent.typed else "--greet/--no-greet"
            raise UsageError(f"{flag} applies to the built-in agent; --agent {agent.agent} "
                             "runs with its own (edit the agent instead).")
        parse_target(agent.agent)
        settings.agent = agent.agent
        settings.replace = sorted({s for opt in agent.typed for s in REPLACING.get(opt, ())})
    return settings


def prepare(command: str, agent: AgentOptions, show: tuple[str, ...] = (),
            server: ServerOptions | None = None) -> AgentSettings:
    """Validate every option and credential (after .env is read); nothing here imports livekit.

    LiveKit server credentials reach LiveKit through the environment, never argv.
    """
    settings = make_settings(command, agent, show)
    url = server_to_env(server or ServerOptions())
    if command in ROOM_COMMANDS:
        check_server_url(url, command)
    check_credentials(settings)
    if settings.uses_local():
        from lkmetrics.local import require_local_extra

        require_local_extra()
        settings.turn_detection = "vad"  # offline: no turn-detector model to fetch
    return settings
