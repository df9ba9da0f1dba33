"""``lkmetrics simulate``: ``script`` (what the caller says), ``caller`` (the paced microphone,
the real-time speaker and the turn driver), ``run`` (one session) and ``command`` (the whole
command). Only ``caller`` and ``run`` import livekit."""
