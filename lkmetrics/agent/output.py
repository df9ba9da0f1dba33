"""A run's writers: the live view or JSON lines on stdout, ``--output``, and the store."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lkmetrics.config.defaults import OutputFormat
from lkmetrics.config.options import OutputOptions
from lkmetrics.errors import UsageError
from lkmetrics.pipeline import Pipeline, Writer

if TYPE_CHECKING:
    from lkmetrics.store import StoreWriter

log = logging.getLogger("lkmetrics")

EXIT_STATUS = {0: "ok", 130: "interrupted", 143: "terminated"}
MAX_ERRORS_SHOWN = 5


@dataclass
class Output:
    """The writers of one run and the pipeline feeding them."""

    fmt: OutputFormat
    writers: list[Writer] = field(default_factory=list)
    store: StoreWriter | None = None

    def pipeline(self) -> Pipeline:
        return Pipeline(self.writers)

    def abandon(self) -> None:
        """Close the writers opened so far (a later one failed to open)."""
        for w in self.writers:
            with contextlib.suppress(Exception):
                w.close()

    def close(self, pipeline: Pipeline, exit_code: int, status: str | None = None) -> None:
        """Drain the pipeline into the writers, record the exit status, report write errors.

        ``status`` overrides the one the exit code gives (e.g. ``timeout``)."""
        if self.store is not None:
            self.store.exit_status = status or EXIT_STATUS.get(exit_code, "error")
        pipeline.close()
        errors = list(pipeline.errors) + list(self.store.errors if self.store else [])
        import sys

        for message in errors[:MAX_ERRORS_SHOWN]:
            print(f"lkmetrics: could not write a record: {message}", file=sys.stderr)
        if len(errors) > MAX_ERRORS_SHOWN:
            print(f"lkmetrics: ... and {len(errors) - MAX_ERRORS_SHOWN} more write errors "
                  "(all of them are logged)", file=sys.stderr)


def open_output(opts: OutputOptions, show: list[str], *, console: Any = None) -> Output:
    """Writers for the format, ``--output`` and the store. Call before any livekit output."""
    from lkmetrics.render.jsonl import JsonlWriter, data_stream_for_json

    out = Output(opts.format)
    if opts.output is not None:
        try:
            out.writers.append(JsonlWriter.append_to(opts.output))
        except OSError as e:
            raise UsageError(f"cannot write --output {opts.output}: {e.strerror}.") from None
    from lkmetrics.fleet import open_fleet_writers

    # first: a port in use fails here, before a store is opened or anything starts
    out.writers += open_fleet_writers(prometheus_host=opts.prometheus_host,
                                      prometheus_port=opts.prometheus_port, otlp_url=opts.otlp)
    if opts.record:
        from lkmetrics import store

        try:
            out.store = store.StoreWriter(opts.db or store.default_db_path())
        except BaseException:
            out.abandon()
            raise
        out.writers.append(out.store)
    if opts.format is OutputFormat.json:
        out.writers.insert(0, JsonlWriter(data_stream_for_json()))
    elif opts.format is OutputFormat.table:
        from lkmetrics.render.live import TableWriter
        from lkmetrics.safety import console as safe_console

        out.writers.insert(0, TableWriter(console or safe_console(), show, view=opts.view))
    return out
