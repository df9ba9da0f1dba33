"""``bench voice --sweep NAME=V1,V2,...``: one run per value of one of LiveKit's endpointing
settings, and per value e2e latency against the premature end-of-turn rate. Parsing, applying a
value to a stack's settings, and the sweep's rows; no livekit import."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lkmetrics.config.settings import AgentSettings
from lkmetrics.errors import UsageError

MAX_VALUES = 20
MAX_SECONDS = 10.0

# NAME -> what it sets: LiveKit's endpointing (TurnHandlingOptions' "endpointing" key) or the
# Silero VAD's option (the VAD loaded with it)
SETTINGS: dict[str, str] = {
    "min_endpointing_delay": "endpointing.min_delay",
    "max_endpointing_delay": "endpointing.max_delay",
    "min_silence_duration": "vad.min_silence_duration",
}


@dataclass(frozen=True)
class Sweep:
    """One setting and the values it takes, one run each."""

    name: str
    values: tuple[float, ...]

    def applied(self, settings: AgentSettings, value: float) -> AgentSettings:
        """A copy of ``settings`` with this setting at ``value``."""
        out = copy.deepcopy(settings)
        where = SETTINGS[self.name]
        if where.startswith("endpointing."):
            out.endpointing = {**out.endpointing, where.split(".", 1)[1]: value}
        else:
            out.vad_min_silence = value
        return out


def parse_sweep(spec: str | None) -> Sweep | None:
    """``NAME=V1,V2,...`` -> Sweep (None: no --sweep); one UsageError line when bad."""
    if spec is None:
        return None
    names = ", ".join(SETTINGS)
    name, sep, raw = spec.partition("=")
    name = name.strip()
    if not sep or not raw.strip():
        raise UsageError(f"--sweep expects NAME=V1,V2,... in seconds, e.g. "
                         f"min_endpointing_delay=0.2,0.5,0.8 (got {spec!r}).")
    if name not in SETTINGS:
        raise UsageError(f"--sweep: unknown setting {name!r}; one of {names}.")
    values: list[float] = []
    for item in raw.split(","):
        try:
            value = float(item.strip().removesuffix("s"))
        except ValueError:
            raise UsageError(f"--sweep {name}: {item.strip()!r} is not a number of seconds "
                             f"(e.g. {name}=0.2,0.5,0.8).") from None
        low_ok = value > 0 if name == "min_silence_duration" else value >= 0
        if not (math.isfinite(value) and low_ok and value <= MAX_SECONDS):
            low = "above 0" if name == "min_silence_duration" else "at least 0"
            raise UsageError(f"--sweep {name}: each value must be {low} and at most "
                             f"{MAX_SECONDS:g} seconds (got {item.strip()}).")
        if value in values:
            raise UsageError(f"--sweep {name}: {value:g} is given twice.")
        values.append(value)
    if len(values) > MAX_VALUES:
        raise UsageError(f"--sweep {name}: at most {MAX_VALUES} values (got {len(values)}).")
    return Sweep(name, tuple(values))


def rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Per swept run (VoiceRun with a ``sweep``), in run order: its value, e2e p50/p95, the
    premature end-of-turn rate (eot_mispredictions per line answered) and turns answered."""
    out: list[dict[str, Any]] = []
    for run in runs:
        if run.sweep is None:
            continue
        e2e = run.stats("e2e")
        early = run.eot_total()
        out.append({"name": run.sweep[0], "value": run.sweep[1], "stt": run.stt,
                    "llm": run.llm, "tts": run.tts, "concurrency": run.concurrency,
                    "e2e_p50": e2e["p50"], "e2e_p95": e2e["p95"],
                    "eot_mispredictions": early, "eot_rate": run.eot_rate(),
                    "turns_answered": run.turns_ok, "turns": run.planned})
    return out
