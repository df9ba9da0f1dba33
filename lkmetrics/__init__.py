"""lkmetrics: see where the time and the tokens of a LiveKit voice agent go.

``import lkmetrics`` loads nothing else: :func:`instrument` imports its implementation (and
the writers it asks for) when it is called, inside an agent that has loaded livekit already.
"""

from __future__ import annotations

import os
from typing import Any

from lkmetrics.version import __version__

__all__ = ["__version__", "instrument"]


def instrument(session: Any, *, output: str | os.PathLike[str] | None = None,
               db: str | os.PathLike[str] | None = None, record: bool = True,
               prometheus_port: int | None = None, prometheus_host: str = "127.0.0.1",
               otlp: str | None = None) -> str:
    """Record an ``AgentSession`` of an agent that LiveKit's CLI runs; returns its session id.

    Call it in the entrypoint before ``await session.start(...)``::

        lkmetrics.instrument(session, output="metrics.jsonl")

    The session gets the records ``lkmetrics console`` makes (component metrics, turns with
    their stages, usage, cost, errors, and a summary when it ends) in the store (``db``, else
    the default one; ``record=False``: none), in the JSON-lines file ``output``, on a
    Prometheus ``/metrics`` endpoint (``prometheus_port``; with LiveKit's
    ``AgentServer(prometheus_multiproc_dir=...)`` every job process's series on one port) and
    to an OTLP/HTTP collector (``otlp``, else ``OTEL_EXPORTER_OTLP_ENDPOINT``). Every job
    process of a worker may append to the same file and store. Handlers only enqueue; files
    are written on a thread of their own and closed when the job shuts down.

    Raises :class:`lkmetrics.errors.UsageError` for a bad argument or a second call on the
    same session.
    """
    from lkmetrics.agent.instrument import instrument as instrument_session

    return instrument_session(session, output=output, db=db, record=record,
                              prometheus_port=prometheus_port, prometheus_host=prometheus_host,
                              otlp=otlp)
