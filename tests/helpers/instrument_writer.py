"""One job process of the multi-process append test.

``python tests/instrument_writer.py OUTPUT DB RECORDS GO`` waits for the file GO (so every
process starts at once), opens the writers ``lkmetrics.instrument`` would (one shared pipeline
for the options), puts RECORDS component-metric records of one session about a millisecond
apart (so the processes' writes overlap), every tenth longer than 8 KiB, then ends the session
and lets go (the summary, then the store commit), as a job's shutdown does. Prints the session
id."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lkmetrics.agent.capture import new_session_id
from lkmetrics.agent.instrument import check_options, close_all, instrument_pipeline, release
from lkmetrics.records import metric_record, session_record


def main() -> None:
    output, db, count, go = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(go):
        time.sleep(0.01)
    opts = check_options(output=output, db=db, record=True, prometheus_port=None,
                         prometheus_host="127.0.0.1", otlp=None)
    shared = instrument_pipeline(opts)
    sid = new_session_id()
    pipeline = shared.pipeline
    pipeline.put(sid, session_record({"kind": "session", "command": "instrument",
                                      "llm": "openai/gpt-4.1-mini", "pid": os.getpid()}))
    for i in range(count):
        pad = "x" * (9000 if i % 10 == 0 else 40)  # every tenth line longer than 8 KiB
        pipeline.put(sid, metric_record({
            "type": "llm_metrics", "label": "livekit.agents.inference.llm.LLM",
            "request_id": f"{sid}-{i}-{pad}", "timestamp": 1.0e9 + i, "duration": 0.5,
            "ttft": 0.25, "cancelled": False, "completion_tokens": 10, "prompt_tokens": 20,
            "prompt_cached_tokens": 0, "total_tokens": 30, "tokens_per_second": 20.0}))
        time.sleep(0.001)
    pipeline.end_session(sid)
    release(shared)
    close_all()
    print(sid, flush=True)


if __name__ == "__main__":
    main()
