"""The option objects the command line fills (validated later, in
:mod:`lkmetrics.config.prepare`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lkmetrics.config.defaults import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_LLM,
    DEFAULT_STT,
    DEFAULT_TTS,
    DEFAULT_VOICE,
    OutputFormat,
)


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
