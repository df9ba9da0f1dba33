"""lkmetrics: see where the time and the tokens of a LiveKit voice agent go."""

__version__ = "0.1.0"
