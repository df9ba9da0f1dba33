"""Fleet view: a worker's figures as Prometheus series (``--prometheus-port``) and as OTel
metrics over OTLP/HTTP (``--otlp``), for dashboards across many workers.

Both are Writers on the record pipeline (``lkmetrics.sink.Pipeline``): they see every record of
every session the process handles, including run/dev job processes' records through the relay.
This package never imports livekit at module level; prometheus-client and the OTel SDK load
only when a writer is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from lkmetrics.fleet.otlp import OtlpWriter, resolve_otlp_url, start_livekit_tracing
from lkmetrics.fleet.prometheus import PrometheusWriter, check_port
from lkmetrics.fleet.series import LATENCY_BUCKETS, SERIES, latency_buckets
from lkmetrics.pipeline import Writer

DEFAULT_PROMETHEUS_HOST = "127.0.0.1"

__all__ = [
    "DEFAULT_PROMETHEUS_HOST",
    "LATENCY_BUCKETS",
    "SERIES",
    "OtlpWriter",
    "PrometheusWriter",
    "budget_thresholds",
    "check_fleet_options",
    "latency_buckets",
    "open_fleet_writers",
    "start_livekit_tracing",
]


def budget_thresholds(specs: Sequence[str]) -> list[float]:
    """The limits (seconds) of ``--fail-over`` budgets on time figures, as extra buckets."""
    from lkmetrics.analysis.budgets import parse_budget

    return [b.limit for b in map(parse_budget, specs) if b.figure.unit == "s"]


def check_fleet_options(prometheus_port: int | None, otlp_url: str | None) -> str | None:
    """Validate the fleet options before anything starts; the OTLP URL in use, if any."""
    url = resolve_otlp_url(otlp_url)
    if prometheus_port is not None:
        check_port(prometheus_port)
    return url


def open_fleet_writers(
    *,
    prometheus_host: str = DEFAULT_PROMETHEUS_HOST,
    prometheus_port: int | None,
    otlp_url: str | None,
    budgets: Sequence[float] = (),
    otlp_interval: float = 5.0,
    report: Callable[[str], None] | None = None,
) -> list[Writer]:
    """The fleet writers asked for, validated and started; call before LiveKit starts.

    ``prometheus_port`` None: no endpoint (0: any free port). ``otlp_url`` None falls back to
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; neither: no OTLP. Raises UsageError (exit 2) for a port in
    use, privileged or out of range, an address that cannot be listened on, or a bad URL.
    """
    url = resolve_otlp_url(otlp_url)  # validate everything before starting anything
    if prometheus_port is not None:
        check_port(prometheus_port)
    writers: list[Writer] = []
    try:
        if prometheus_port is not None:
            prom = PrometheusWriter(budgets)
            prom.serve(prometheus_host, prometheus_port)
            writers.append(prom)
        if url is not None:
            otlp = OtlpWriter(url, budgets=budgets, interval=otlp_interval)
            if report is not None:
                otlp.health.report = report
            writers.append(otlp)
    except BaseException:
        for w in writers:
            with contextlib.suppress(Exception):
                w.close()
        raise
    return writers
