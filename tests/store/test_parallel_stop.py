"""Stopping a parallel import part-way ends its worker processes at once, even when the
command line has turned SIGTERM into KeyboardInterrupt (which a forked worker inherits)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any, cast

import pytest

from lkmetrics.store import parsing
from lkmetrics.store.parallel import parallel_parse
from tests.helpers.store import session_records, write_jsonl

pytestmark = pytest.mark.timeout(60)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def test_workers_blocked_on_full_pipes_end_when_the_import_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = [r for i in range(60) for r in session_records(f"s_{i:03d}", turns=40, seed=i)]
    src = write_jsonl(tmp_path / "big.jsonl", recs)
    monkeypatch.setattr(parsing, "CHUNK_BYTES", 30_000)  # many chunks: the pipes fill up
    old = signal.signal(signal.SIGTERM, _as_ctrl_c)  # what every command installs
    try:
        parsed = cast(Generator[Any, None, None], parallel_parse(src, 2, lambda n: None))
        next(parsed)
        time.sleep(1.0)  # the workers parse ahead until their pipes are full
        done = threading.Event()

        def close() -> None:
            parsed.close()  # its finally ends the workers
            done.set()

        closer = threading.Thread(target=close, daemon=True)
        start = time.monotonic()
        closer.start()
        assert done.wait(20), "the import's workers did not end after it stopped"
        assert time.monotonic() - start < 10
    finally:
        signal.signal(signal.SIGTERM, old)
