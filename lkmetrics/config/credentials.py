"""The LiveKit server and credentials: from the flags or the environment (``.env`` included)
into the environment, where LiveKit reads them (never argv), and a clear line for one that
is missing."""

from __future__ import annotations

import os

from lkmetrics.config.options import ServerOptions
from lkmetrics.config.settings import AgentSettings
from lkmetrics.config.urls import parse_url
from lkmetrics.errors import UsageError


def server_to_env(server: ServerOptions) -> str | None:
    """Put the server's URL, key and secret (flags win over the environment) into the
    environment; returns the URL (None when neither gave one)."""
    # typer already read LIVEKIT_* from the environment; .env may have added them since
    url = server.url or os.environ.get("LIVEKIT_URL")
    api_key = server.api_key or os.environ.get("LIVEKIT_API_KEY")
    api_secret = server.api_secret or os.environ.get("LIVEKIT_API_SECRET")
    for var, value in (("LIVEKIT_URL", url), ("LIVEKIT_API_KEY", api_key),
                       ("LIVEKIT_API_SECRET", api_secret)):
        if value:
            os.environ[var] = value
    return url


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
