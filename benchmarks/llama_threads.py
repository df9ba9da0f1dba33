"""Which llama.cpp thread settings keep the local LLM's time to first token steady.

    python benchmarks/llama_threads.py [--requests 8] [--settings 1,1 1,2 2,2]

For each (decode threads, prompt threads) setting, starts the local SmolLM2 server as
lkmetrics does (``LlamaServer``) and streams chat completions of a voice-agent-sized prompt,
quiet and then with one core kept busy by a spinning process this script starts and stops,
with one caller and with two at once. Prints TTFT p50/p95 (first content chunk, measured by
a plain HTTP client) and each busy/quiet ratio. ``1,2`` is llama-cpp-python's own default
on a 2-core machine (half the cores for decoding, all for the prompt). A benchmark, not a
test: a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

from lkmetrics.figures import percentile
from lkmetrics.local.llm_server import LlamaServer

SYSTEM = ("You are a helpful voice assistant. Your replies are spoken aloud, so keep them "
          "short and conversational, without lists, markdown or emojis. Answer in one short "
          "sentence and ask a follow-up question when it helps the user.")
QUESTIONS = ["What is the capital of France?", "How far away is the moon?",
             "Can you recommend a good book?", "What should I cook for dinner tonight?"]


def spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy(cores: int) -> Iterator[None]:
    procs = [mp.get_context("spawn").Process(target=spin, daemon=True) for _ in range(cores)]
    for p in procs:
        p.start()
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
            p.join()


def ttft(base_url: str, model: str, question: str) -> float:
    url = urlparse(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
    body = json.dumps({"model": model, "stream": True, "max_tokens": 16, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]})
    start = time.perf_counter()
    conn.request("POST", f"{url.path}/chat/completions", body,
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    first = None
    for raw in resp:
        line = raw.decode().strip()
        if line.startswith("data: {") and first is None:
            delta = json.loads(line[6:])["choices"]
            if delta and delta[0].get("delta", {}).get("content"):
                first = time.perf_counter() - start
    conn.close()
    return first if first is not None else float("nan")


def measure(base_url: str, model: str, requests: int, callers: int) -> list[float]:
    out: list[float] = []
    lock = threading.Lock()

    def caller(k: int) -> None:
        for i in range(requests // callers):
            t = ttft(base_url, model, QUESTIONS[(i + k) % len(QUESTIONS)])
            with lock:
                out.append(t)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def fmt(values: list[float]) -> str:
    ok = sorted(v for v in values if v == v)
    if not ok:
        return "no answer"
    return f"p50 {percentile(ok, 50) * 1000:6.0f} ms  p95 {percentile(ok, 95) * 1000:6.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--settings", nargs="+", default=["1,1", "1,2", "2,2"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as logs:
        for setting in args.settings:
            threads, batch = (int(x) for x in setting.split(","))
            with LlamaServer(logs, n_threads=threads, n_threads_batch=batch) as server:
                measure(server.base_url, server.model, 2, 1)  # warm up
                for callers in (1, 2):
                    quiet = measure(server.base_url, server.model, args.requests, callers)
                    with busy(1):
                        loaded = measure(server.base_url, server.model, args.requests, callers)
                    ratio = statistics.median(loaded) / statistics.median(quiet)
                    rows.append((setting, callers, fmt(quiet), fmt(loaded), ratio))
                    print(f"threads {setting}  callers {callers}  quiet {rows[-1][2]}  "
                          f"one core busy {rows[-1][3]}  busy/quiet p50 {ratio:4.2f}x",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
