"""The OTLP writer: the same figures as OTel metrics over OTLP/HTTP, and LiveKit's own spans to
the same collector through its tracer-provider hook.

Instrument names follow the GenAI semantic conventions where one exists
(``gen_ai.client.operation.duration``, ``gen_ai.client.operation.time_to_first_chunk``,
``gen_ai.client.token.usage``) and are ``lkmetrics.*`` otherwise; every histogram gets an
explicit bucket View. Exports run on the SDK's own threads: an unreachable collector never
blocks the pipeline thread, and its failure is reported once, not once per export.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from lkmetrics.config.urls import mask_userinfo
from lkmetrics.errors import UsageError
from lkmetrics.fleet.series import (
    SERIES,
    TOKEN_BUCKETS,
    ZERO_ON_SESSION,
    Observer,
    latency_buckets,
)
from lkmetrics.records import Record

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

Report = Callable[[str], None]

GEN_AI_OPERATION = "chat"
CACHED_TOKENS = "lkmetrics.llm.cached_tokens"
_TOKEN_TYPE = {"prompt": "input", "completion": "output"}
# loggers the OTLP/HTTP exporters log every failed attempt on; lkmetrics reports once instead
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_otlp_url(url: str | None) -> str | None:
    """``--otlp`` or else ``OTEL_EXPORTER_OTLP_ENDPOINT``; validated, or None when neither.
    Every message masks the URL's userinfo."""
    url = url or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            "--otlp expects the http(s) URL of an OTLP/HTTP collector, e.g. "
            f"http://127.0.0.1:4318 (got {mask_userinfo(url)!r})."
        )
    from lkmetrics.config.urls import parse_url

    # the rest checked whole, as every URL option is: no spaces, a valid port
    return parse_url("--otlp", url, ("http", "https"), "http://127.0.0.1:4318")


def signal_url(base: str, signal: str) -> str:
    """The URL for one signal (``metrics``, ``traces``): ``BASE/v1/SIGNAL``, as for
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; a URL already ending in ``/v1/<signal>`` is re-pointed."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    for known in ("/v1/metrics", "/v1/traces", "/v1/logs"):
        if path.endswith(known):
            path = path[: -len(known)]
            break
    return urlunsplit(parts._replace(path=f"{path}/v1/{signal}"))


class _FailureLog(logging.Filter):
    """Swallows the exporters' per-attempt log lines, keeping the last as the failure reason."""

    def __init__(self) -> None:
        super().__init__()
        self.last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            self.last = record.getMessage()
            return False
        return True


_failure_log = _FailureLog()
_filter_lock = threading.Lock()


def _quiet_exporter_logs() -> None:
    with _filter_lock:
        for name in _EXPORTER_LOGGERS:
            logger = logging.getLogger(name)
            if _failure_log not in logger.filters:
                logger.addFilter(_failure_log)


class ExportHealth:
    """Notes each export's outcome; reports the first failure once through ``report``."""

    def __init__(self, url: str, report: Report) -> None:
        self.url = url
        self.report = report
        self._lock = threading.Lock()
        self.reported = False
        self.failures = 0
        self.successes = 0

    def record(self, signal: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self.successes += 1
                return
            self.failures += 1
            if self.reported:
                return
            self.reported = True
        reason = _failure_log.last or "no response"
        self.report(
            f"lkmetrics: OTLP export of {signal} to {mask_userinfo(self.url)} failed "
            f"({reason}); the agent keeps running and exports keep being retried in the "
            "background (reported once)."
        )


def _capture_reasons(exporter: Any) -> Any:
    """Note why each HTTP export failed (refused, timed out, HTTP 404...), for the report.

    The SDK's client keeps the reason in its result but logs only "timeout, max retries or
    shutdown"; this wraps its (private) ``_client.export`` when present, and does nothing
    otherwise.
    """
    client: Any = getattr(exporter, "_client", None)
    send = getattr(client, "export", None)
    if send is None:
        return exporter

    def export(data: bytes) -> Any:
        result = send(data)
        if not getattr(result, "success", True):
            status = getattr(result, "status_code", None)
            error = getattr(result, "error", None)
            if status is not None:
                _failure_log.last = f"HTTP {status} {getattr(result, 'reason', '') or ''}".strip()
            elif error is not None:
                _failure_log.last = _short(error)
        return result

    client.export = export
    return exporter


def _short(error: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, e.g. "Connection refused"."""
    while error.__context__ is not None or error.__cause__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    text = str(error)
    if "Errno 111" in text or "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "no answer before the export timeout"
    return f"{type(error).__name__}: {text}"[:200]


def _metric_exporter(url: str, health: ExportHealth, timeout: float) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import MetricExportResult

    class Exporter(OTLPMetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float | None = 10_000,
                   **kwargs: Any) -> MetricExportResult:
            try:
                result = super().export(metrics_data, timeout_millis, **kwargs)
            except Exception as e:  # never let it reach the SDK's logger either
                _failure_log.last = f"{type(e).__name__}: {e}"
                result = MetricExportResult.FAILURE
            health.record("metrics", result is MetricExportResult.SUCCESS)
            return result

    return _capture_reasons(Exporter(endpoint=signal_url(url, "metrics"), timeout=timeout))


def _span_exporter(url: str, health: ExportHealth, timeout: float) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    class Exporter(OTLPSpanExporter):
        def export(self, spans: Any, *args: Any, **kwargs: Any) -> SpanExportResult:
            try:
                result = super().export(spans, *args, **kwargs)
            except Exception as e:
                _failure_log.last = f"{type(e).__name__}: {e}"
                result = SpanExportResult.FAILURE
            health.record("spans", result is SpanExportResult.SUCCESS)
            return result

    return _capture_reasons(Exporter(endpoint=signal_url(url, "traces"), timeout=timeout))


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "lkmetrics")})


class OtlpWriter:
    """A Writer recording OTel metrics, pushed to ``url`` every ``interval`` seconds.

    Its MeterProvider is private (the global one is left alone). ``close`` pushes the last
    figures, waiting at most about ``timeout`` seconds; not at all once the collector failed.
    """

    def __init__(self, url: str, *, budgets: Iterable[float] = (), interval: float = 5.0,
                 timeout: float = 3.0, report: Report = _stderr) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

        _quiet_exporter_logs()
        self.url = url
        self.health = ExportHealth(url, report)
        self.buckets = latency_buckets(budgets)
        self._exporter = _metric_exporter(url, self.health, timeout)
        reader = PeriodicExportingMetricReader(
            self._exporter,
            export_interval_millis=interval * 1000,
            export_timeout_millis=timeout * 1000,
        )
        views = [View(instrument_name=s.otel,
                      aggregation=ExplicitBucketHistogramAggregation(self.buckets))
                 for s in SERIES if s.histogram]
        views.append(View(instrument_name="gen_ai.client.token.usage",
                          aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS)))
        self.provider: MeterProvider = MeterProvider(
            metric_readers=[reader], resource=_resource(), views=views
        )
        meter = self.provider.get_meter("lkmetrics")
        self._instruments: dict[str, Any] = {}
        # gen_ai.client.token.usage is a histogram per call, by the semantic conventions
        self._histograms = {s.key for s in SERIES if s.histogram or s.key == "llm.tokens"}
        for s in SERIES:
            inst: Any
            if s.key in self._histograms:
                inst = meter.create_histogram(s.otel, unit=s.unit, description=s.help)
            else:
                inst = meter.create_counter(s.otel, unit=s.unit, description=s.help)
            self._instruments[s.key] = inst
        self._cached = meter.create_counter(CACHED_TOKENS, unit="{token}",
                                            description="Prompt tokens served from the cache.")
        self._sinks: dict[tuple[str, str, str, str | None],
                          tuple[Callable[[float, dict[str, str]], None], dict[str, str]]] = {}
        self._zeroed: set[tuple[str, str]] = set()
        self._observer = Observer()
        self._closed = False

    def _sink(self, key: str, model: str, provider: str, token_kind: str | None,
              tool: str | None = None
              ) -> tuple[Callable[[float, dict[str, str]], None], dict[str, str]]:
        """The instrument method and attributes for one series and label set (cached)."""
        k = (key, model, provider, token_kind or tool)
        sink = self._sinks.get(k)
        if sink is not None:
            return sink
        attrs: dict[str, str]
        if key.startswith("llm."):
            attrs = {"gen_ai.operation.name": GEN_AI_OPERATION, "gen_ai.provider.name": provider,
                     "gen_ai.request.model": model}
        else:
            attrs = {"model": model, "provider": provider}
        if tool is not None:
            attrs["gen_ai.tool.name"] = tool
        if token_kind == "cached":
            method = self._cached.add
        elif token_kind is not None:
            attrs["gen_ai.token.type"] = _TOKEN_TYPE[token_kind]
            method = self._instruments[key].record
        elif key in self._histograms:
            method = self._instruments[key].record
        else:
            method = self._instruments[key].add
        sink = self._sinks[k] = (method, attrs)
        return sink

    def write(self, record: Record) -> None:
        for o in self._observer.observe(record):
            method, attrs = self._sink(o.key, o.model, o.provider, o.token_kind, o.tool)
            method(o.value, attrs)
            if o.key == "sessions" and (o.model, o.provider) not in self._zeroed:
                self._zeroed.add((o.model, o.provider))
                for key in ZERO_ON_SESSION:
                    add, zero_attrs = self._sink(key, o.model, o.provider, None)
                    add(0, zero_attrs)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export now (off the pipeline thread: it waits for the collector)."""
        return bool(self.provider.force_flush(int(timeout * 1000)))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.health.failures and not self.health.successes:
            self._exporter.shutdown()  # a dead collector: skip the final export's retries
        self.provider.shutdown()


def start_livekit_tracing(url: str, *, timeout: float = 3.0, report: Report = _stderr
                          ) -> Callable[[], None]:
    """Send LiveKit's own spans to the collector at ``url`` (OTLP/HTTP ``/v1/traces``) through
    ``livekit.agents.telemetry.set_tracer_provider``. Call once in each process that runs an
    agent session (in run/dev: each job process). Returns the shutdown function, which flushes
    and points LiveKit back at the global OTel provider.

    LiveKit decides what its spans may carry (``allow_pii``: by default conversation text
    too, unless ``LIVEKIT_TELEMETRY_ALLOW_PII=false``).
    """
    from livekit.agents.telemetry import set_tracer_provider
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _quiet_exporter_logs()
    health = ExportHealth(url, report)
    exporter = _span_exporter(url, health, timeout)
    provider: TracerProvider = TracerProvider(resource=_resource())
    provider.add_span_processor(BatchSpanProcessor(exporter, export_timeout_millis=timeout * 1000))
    set_tracer_provider(provider)

    def shutdown() -> None:
        set_tracer_provider(trace.get_tracer_provider())
        if health.failures and not health.successes:
            exporter.shutdown()
        provider.shutdown()

    return shutdown
