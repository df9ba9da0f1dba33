"""The default models and the output formats: what the help shows, kept apart from the option
objects (whose dataclasses cost more to create than ``lkmetrics --help`` takes to load)."""

from __future__ import annotations

from enum import Enum

DEFAULT_STT = "deepgram/nova-3-general"
DEFAULT_LLM = "openai/gpt-4.1-mini"
DEFAULT_TTS = "cartesia/sonic-3"
DEFAULT_VOICE = "9626c31c-bec5-4cca-baa8-f8ba9e84c8bc"
DEFAULT_INSTRUCTIONS = "You are a helpful agent."


class OutputFormat(str, Enum):
    """Every output format of every command; each command takes some of them."""

    table = "table"
    json = "json"
    csv = "csv"
    jsonl = "jsonl"
    none = "none"
