"""A recording process for the store tests: records through the real Pipeline + StoreWriter.

    python tests/store_recorder.py DB SESSION_ID COUNT INTERVAL_S [START_EVENT_FILE]

Puts a ``session`` record, then COUNT ``turn`` records INTERVAL_S apart, printing
``seq time`` after each put (so a parent knows what was handed to the writer and when), then
closes the pipeline with exit status ``ok``. With START_EVENT_FILE, prints ``ready`` and waits for
that file to exist first, so several recorders create one new store at the same moment.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lkmetrics.pipeline import Pipeline
from lkmetrics.store import StoreWriter


def main() -> None:
    db, sid, count, interval = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    start = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    if start is None:
        writer = StoreWriter(db)
    else:  # open the store only at the start line, then say so and wait for the start file
        print("ready", flush=True)
        while not start.exists():
            time.sleep(0.005)
        writer = StoreWriter(db)
    pipeline = Pipeline([writer])
    pipeline.put(sid, {"kind": "session", "command": "test", "llm": "openai/gpt-4.1-mini",
                       "stt": "deepgram/nova-3", "tts": "cartesia/sonic-3", "voice": "v",
                       "host": "test", "lkmetrics_version": "0.1.0",
                       "livekit_agents_version": "1.8.9"})
    for i in range(count):
        pipeline.put(sid, {"kind": "turn", "e2e_latency": 0.5 + (i % 100) / 100})
        print(i + 2, time.time(), flush=True)  # seq 1 is the session record
        if interval:
            time.sleep(interval)
    writer.exit_status = "ok"
    pipeline.close()
    if writer.errors or pipeline.errors:
        print("errors:", writer.errors, pipeline.errors, file=sys.stderr)
        raise SystemExit(3)


if __name__ == "__main__":
    main()
