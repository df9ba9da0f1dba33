"""The Prometheus writer: records -> histograms and counters in a private registry, served on
``/metrics`` by prometheus-client's own HTTP server thread."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lkmetrics.errors import UsageError
from lkmetrics.fleet.series import (
    LABELS,
    SERIES,
    ZERO_ON_SESSION,
    Observer,
    latency_buckets,
)
from lkmetrics.records import Record

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

SUGGESTED_PORT = 9464  # the port OpenTelemetry's Prometheus exporter uses by convention


def check_port(port: int) -> None:
    """Reject a port out of range or privileged (below 1024), before anything starts.

    Port 0 asks the system for any free port (tests use it).
    """
    if not 0 <= port <= 65535:
        raise UsageError(
            f"--prometheus-port must be within 1024-65535, e.g. {SUGGESTED_PORT} (got {port})."
        )
    if 0 < port < 1024:
        raise UsageError(
            f"--prometheus-port {port} is a privileged port (below 1024); choose one within "
            f"1024-65535, e.g. {SUGGESTED_PORT}."
        )


class PrometheusWriter:
    """A Writer feeding Prometheus series; ``serve`` exposes them on ``/metrics``.

    ``write`` runs on the pipeline thread and only updates in-memory metrics; scrapes are
    answered by prometheus-client's server thread.
    """

    def __init__(self, budgets: Iterable[float] = ()) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        self.buckets = latency_buckets(budgets)
        self._metrics: dict[str, Any] = {}
        self._histograms: set[str] = set()
        for s in SERIES:
            labels = [*LABELS, s.label] if s.label else list(LABELS)
            if s.histogram:
                self._metrics[s.key] = Histogram(s.prom, s.help, labels, registry=self.registry,
                                                 buckets=self.buckets)
                self._histograms.add(s.key)
            else:
                self._metrics[s.key] = Counter(s.prom, s.help, labels, registry=self.registry)
        self._children: dict[tuple[str, str, str, str | None], Any] = {}  # key, labels
        self._observer = Observer()
        self._server: Any = None
        self.host: str | None = None
        self.port: int | None = None

    def _child(self, key: str, model: str, provider: str, extra: str | None = None) -> Any:
        """The series' child for a label set (``extra``: the token kind or the tool name)."""
        k = (key, model, provider, extra)
        child = self._children.get(k)
        if child is None:
            labels = (model, provider) if extra is None else (model, provider, extra)
            child = self._children[k] = self._metrics[key].labels(*labels)
        return child

    def write(self, record: Record) -> None:
        for o in self._observer.observe(record):
            child = self._child(o.key, o.model, o.provider, o.token_kind or o.tool)
            if o.key in self._histograms:
                child.observe(o.value)
            else:
                child.inc(o.value)
            if o.key == "sessions":
                for key in ZERO_ON_SESSION:
                    self._child(key, o.model, o.provider)

    def exposition(self) -> bytes:
        """The current text exposition, as a scrape would get it."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the port. Raises UsageError."""
        from prometheus_client import start_http_server

        check_port(port)
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except socket.gaierror as e:
            raise UsageError(
                f"--prometheus-host {host!r} is not an address this machine can listen on "
                f"({e.strerror})."
            ) from None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"--prometheus-port {port} is already in use on {host}; choose a free port "
                    f"(each worker on a machine needs its own)."
                ) from None
            if e.errno == errno.EACCES:
                raise UsageError(
                    f"--prometheus-port {port}: permission denied on {host}; choose one within "
                    f"1024-65535, e.g. {SUGGESTED_PORT}."
                ) from None
            raise UsageError(
                f"--prometheus-host {host!r}: cannot listen on port {port} ({e.strerror or e})."
            ) from None
        self._server = server
        self.host = host
        self.port = int(server.server_port)
        return self.port

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
