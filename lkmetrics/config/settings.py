"""What an agent runs with (:class:`AgentSettings`), and how it travels to job processes: a
JSON file that ``LKMETRICS_SETTINGS`` names."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lkmetrics.config.defaults import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_LLM,
    DEFAULT_STT,
    DEFAULT_TTS,
    DEFAULT_VOICE,
)

# the environment variable naming the settings file a job process reads
SETTINGS_ENV = "LKMETRICS_SETTINGS"


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
