"""Settings from flags, environment and .env; model-string parsing and validation.

Nothing here imports livekit, so every check runs before the (slow) agent stack loads.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from lkmetrics.errors import UsageError

DEFAULT_STT = "deepgram/nova-3-general"
DEFAULT_LLM = "openai/gpt-4.1-mini"
DEFAULT_TTS = "cartesia/sonic-3"
DEFAULT_VOICE = "9626c31c-bec5-4cca-baa8-f8ba9e84c8bc"
DEFAULT_INSTRUCTIONS = "You are a helpful agent."

# the environment variable naming the settings file a job process reads
SETTINGS_ENV = "LKMETRICS_SETTINGS"


class OutputFormat(str, Enum):
    """Every output format of every command; each command takes some of them."""

    table = "table"
    json = "json"
    csv = "csv"
    jsonl = "jsonl"
    none = "none"


@dataclass(frozen=True)
class AgentOptions:
    """The agent the user asked for on the command line (validated into AgentSettings)."""

    stt: str = DEFAULT_STT
    llm: str = DEFAULT_LLM
    tts: str = DEFAULT_TTS
    voice: str = DEFAULT_VOICE
    instructions: str = DEFAULT_INSTRUCTIONS
    greet: bool = True
    llm_base_url: str | None = None
    local: bool = False
    agent: str | None = None  # --agent TARGET: the user's agent instead of the built-in one
    typed: frozenset[str] = frozenset()  # the agent options typed on the command line


@dataclass(frozen=True)
class OutputOptions:
    """Where a run's records go: the format on stdout, --output, the store."""

    format: OutputFormat
    output: Path | None = None
    env_file: Path | None = None
    show: tuple[str, ...] = ()
    db: Path | None = None
    record: bool = True
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int | None = None  # serve /metrics there (0: any free port)
    otlp: str | None = None  # OTLP/HTTP collector (else OTEL_EXPORTER_OTLP_ENDPOINT)
    view: str = "recipe"  # the live table view: recipe or compact


@dataclass(frozen=True)
class FleetOptions:
    """Where a bench's figures also go: Prometheus /metrics and an OTLP collector."""

    prometheus_host: str = "127.0.0.1"
    prometheus_port: int | None = None
    otlp: str | None = None


@dataclass(frozen=True)
class ServerOptions:
    """The LiveKit server of the room modes (run, dev, connect)."""

    url: str | None = None
    api_key: str | None = None
    api_secret: str | None = None


_MODEL_RE = re.compile(r"^[A-Za-z0-9_.\-]+/[^\s/][^\s]*$")


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


_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]*@")


def mask_userinfo(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host``, wherever it appears."""
    return _USERINFO_RE.sub(r"\1***@", text)


def parse_url(option: str, url: str, schemes: tuple[str, ...], example: str) -> str:
    """A URL checked whole: one of ``schemes``, a host, no spaces, a valid port.

    Every message masks the userinfo (``user:password@``) of what it echoes.
    """
    from urllib.parse import urlsplit

    from lkmetrics.safety import add_url

    add_url(url)  # its credentials are masked wherever they come back
    shown = mask_userinfo(url)
    allowed = ", ".join(f"{s}://" for s in schemes)
    problem = None
    if any(c.isspace() or ord(c) < 32 for c in url):
        problem = "must not hold a space or a control character"
    else:
        try:
            parts = urlsplit(url)
            port = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as e:
            problem = f"must have a valid port ({e})"
        else:
            if parts.scheme.lower() not in schemes:
                problem = f"must be an {allowed.replace('://, ', ':// or ')} URL"
            elif not parts.hostname:
                problem = "must name a host"
            elif port == 0:
                problem = "must not use port 0"
    if problem:
        raise UsageError(f"{option} {problem}, e.g. {example} (got {shown!r}).")
    return url


def check_base_url(url: str | None) -> str | None:
    if url is None:
        return None
    parse_url("--llm-base-url", url, ("http", "https"), "http://127.0.0.1:8080/v1")
    return url.rstrip("/")


@dataclass
class AgentSettings:
    """What the agent runs with. Serialisable: it travels to job processes as JSON."""

    stt: str | None = DEFAULT_STT
    llm: str = DEFAULT_LLM
    tts: str | None = DEFAULT_TTS
    voice: str = DEFAULT_VOICE
    instructions: str = DEFAULT_INSTRUCTIONS
    greet: bool = True
    llm_base_url: str | None = None
    command: str = "console"
    show: list[str] = field(default_factory=list)
    llm_model: str | None = None  # the model name sent to --llm-base-url (default: from --llm)
    turn_detection: str | None = None  # None: LiveKit chooses; "vad": no model, no network
    otlp_url: str | None = None  # LiveKit's spans go there too (each process sets it up)
    agent: str | None = None  # --agent TARGET (lkmetrics.agent.user)
    replace: list[str] = field(default_factory=list)  # --agent: the stages typed, replaced
    # LiveKit's endpointing options the session starts with (TurnHandlingOptions'
    # "endpointing": min_delay, max_delay); empty: LiveKit's defaults (bench voice --sweep)
    endpointing: dict[str, float] = field(default_factory=dict)
    vad_min_silence: float | None = None  # silero.VAD's min_silence_duration (None: its own)

    def uses_inference(self) -> list[str]:
        """The stages that go through LiveKit Inference (and so need LiveKit credentials)."""
        stages = []
        if self.agent is not None:  # the user's own components need the user's own keys
            return [s for s in self.replace if s in _inference_stages(self)]
        if self.stt not in (None, "local"):
            stages.append("stt")
        if self.llm != "local" and self.llm_base_url is None:
            stages.append("llm")
        if self.tts not in (None, "local"):
            stages.append("tts")
        return stages

    def uses_local(self) -> bool:
        if self.agent is not None:
            return "local" in (getattr(self, s) for s in self.replace)
        return "local" in (self.stt, self.llm, self.tts)

    def to_env(self, directory: str) -> str:
        """Write the settings as JSON into a file in ``directory`` (private to this user);
        returns its path, which job processes find in SETTINGS_ENV. A file, not the variable
        itself: Linux refuses an environment string over 128 KiB (long --instructions)."""
        path = Path(directory) / "settings.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f)
        return str(path)

    @classmethod
    def from_env(cls) -> AgentSettings:
        """The settings whose file SETTINGS_ENV names (defaults when it is not set)."""
        path = os.environ.get(SETTINGS_ENV)
        if not path:
            return cls()
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**data)


def _inference_stages(settings: AgentSettings) -> list[str]:
    return AgentSettings(stt=settings.stt, llm=settings.llm, tts=settings.tts,
                         llm_base_url=settings.llm_base_url).uses_inference()


# --agent: the options that replace a stage of the user's agent when typed
REPLACING = {"stt": ("stt",), "llm": ("llm",), "tts": ("tts",), "voice": ("tts",),
             "llm_base_url": ("llm",), "local": ("stt", "llm", "tts")}


def load_env_file(path: Path | None) -> Path | None:
    """Load ``path`` (explicit: must exist) or ``./.env`` (optional) into the environment.

    Variables already set in the environment win over the file.
    """
    if path is not None:
        if not path.is_file():
            raise UsageError(
                f"--env-file {path} does not exist; create it (see .env.example) "
                "or leave the option out to read ./.env."
            )
        _load_dotenv(path, "--env-file " + str(path))
        return path
    default = Path(".env")
    if default.is_file():
        _load_dotenv(default, "./.env")
        return default
    return None


def _load_dotenv(path: Path, what: str) -> None:
    """Load a .env file that must be UTF-8 text (a binary file is a usage error)."""
    from dotenv import load_dotenv

    from lkmetrics.safety import read_bytes

    data = read_bytes(path, what.split(" ")[0], max_bytes=1024 * 1024)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not a text file (not UTF-8); pass a .env file of "
                         "NAME=value lines (see .env.example).") from None
    if "\x00" in text:
        raise UsageError(f"{what} is not a text file (it holds NUL bytes); pass a .env file "
                         "of NAME=value lines (see .env.example).")
    import io

    load_dotenv(stream=io.StringIO(text), override=False)


def check_credentials(settings: AgentSettings) -> None:
    """LiveKit Inference needs LIVEKIT_API_KEY and LIVEKIT_API_SECRET; say which is missing."""
    stages = settings.uses_inference()
    if not stages:
        return
    for var in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        if not os.environ.get(var):
            models = ", ".join(f"--{s} {getattr(settings, s)}" for s in stages)
            raise UsageError(
                f"{var} is not set; LiveKit Inference ({models}) needs it. Set it in the "
                "environment or in .env (read from the current directory, or --env-file), "
                "or use --local / --llm-base-url for models that need no LiveKit key."
            )


def check_server_url(url: str | None, command: str) -> str:
    if not url:
        raise UsageError(
            f"`lkmetrics {command}` needs a LiveKit server URL: pass --url wss://... or set "
            "LIVEKIT_URL in the environment or in .env."
        )
    return parse_url("--url", url, ("ws", "wss", "http", "https"), "wss://my-project.livekit.cloud")


ROOM_COMMANDS = ("run", "dev", "connect")


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
    server = server or ServerOptions()
    # typer already read LIVEKIT_* from the environment; .env may have added them since
    url = server.url or os.environ.get("LIVEKIT_URL")
    api_key = server.api_key or os.environ.get("LIVEKIT_API_KEY")
    api_secret = server.api_secret or os.environ.get("LIVEKIT_API_SECRET")
    for var, value in (("LIVEKIT_URL", url), ("LIVEKIT_API_KEY", api_key),
                       ("LIVEKIT_API_SECRET", api_secret)):
        if value:
            os.environ[var] = value
    if command in ROOM_COMMANDS:
        check_server_url(url, command)
    check_credentials(settings)
    if settings.uses_local():
        from lkmetrics.local import require_local_extra

        require_local_extra()
        settings.turn_detection = "vad"  # offline: no turn-detector model to fetch
    return settings


def strip_userinfo(url: str | None) -> str | None:
    """The URL without ``user:password@``: records never carry credentials."""
    if url is None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))
