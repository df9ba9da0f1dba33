"""A real local HTTP server speaking OpenAI's streaming chat-completions API, with scripted
time to first token, inter-token gap and usage. Used by ``inference.LLM`` (through
``LIVEKIT_INFERENCE_URL``) and by the OpenAI plugin (through ``--llm-base-url``).

Run standalone (for subprocess and pty tests): ``python tests/llm_server.py --ttft 0.3``;
it prints its base URL on the first line of stdout.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    ttft: float = 0.05
    gap: float = 0.01
    tokens: int = 8
    prompt_tokens: int = 42
    text: str = "Paris is the capital of France."
    fail_every: int = 0  # > 0: every Nth chat request (N, 2N, ...) gets HTTP 500
    pieces: list[str] | None = None  # the streamed pieces, instead of ``tokens`` cuts of text
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    # tools to call, one per request that answers a user message ("" calls none): the model
    # asks for the tool, and the request that carries its output gets ``text``
    tool_calls: list[str] = field(default_factory=list)
    # an HTTP status (401, 404, ...; 0: 200) every chat request gets, with an OpenAI-style error
    # body: ``status_message``, else ``error`` with the request's Authorization for "{auth}"
    status: int = 0
    status_message: str | None = None
    error: str = "invalid credentials: {auth}"
    usage: dict[str, Any] | None = None  # the usage chunk sent instead of the real counts
    raw: bytes | None = None  # the whole event-stream body sent after the first chunk
    drip: float = 0.0  # > 0: after the first chunk, an SSE comment every ``drip`` s, forever


_LOCK = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "test-model",
                                                          "object": "model"}]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        script = self.server.script
        with _LOCK:
            script.requests.append(body)
            script.auth.append(self.headers.get("Authorization", ""))
            number = len(script.requests)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": "not found"})
            return
        if script.status:
            auth = self.headers.get("Authorization", "")
            message = script.status_message or script.error.format(auth=auth)
            self._json(script.status, {"error": {"message": message,
                                                 "type": "invalid_request_error"}})
            return
        if script.fail_every and number % script.fail_every == 0:
            self._json(500, {"error": {"message": f"scripted failure of request {number}",
                                       "type": "server_error"}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        rid = f"chatcmpl-{number}"
        model = body.get("model", "test-model")
        pieces = list(script.pieces) if script.pieces else _split(script.text, script.tokens)

        def chunk(delta: dict[str, Any], finish: str | None = None,
                  usage: dict[str, int] | None = None) -> None:
            payload: dict[str, Any] = {
                "id": rid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model,
                "choices": [] if usage else [{"index": 0, "delta": delta,
                                               "finish_reason": finish}],
            }
            if usage:
                payload["usage"] = usage
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        messages = body.get("messages") or [{}]
        tool = None
        with _LOCK:
            if script.tool_calls and messages[-1].get("role") == "user":
                tool = script.tool_calls.pop(0) or None
        time.sleep(script.ttft)
        if tool is not None:
            chunk({"role": "assistant", "content": None, "tool_calls": [{
                "index": 0, "id": f"call_{number}", "type": "function",
                "function": {"name": tool, "arguments": "{}"}}]})
            chunk({}, finish="tool_calls")
            chunk({}, usage={"prompt_tokens": script.prompt_tokens, "completion_tokens": 5,
                             "total_tokens": script.prompt_tokens + 5})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        chunk({"role": "assistant", "content": pieces[0]})
        if script.raw is not None or script.drip:
            self._hostile(script)
            return
        for piece in pieces[1:]:
            time.sleep(script.gap)
            chunk({"content": piece})
        chunk({}, finish="stop")
        chunk({}, usage=script.usage or {"prompt_tokens": script.prompt_tokens,
                                         "completion_tokens": script.tokens,
                                         "total_tokens": script.prompt_tokens + script.tokens})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


    def _hostile(self, script: Script) -> None:
        """A malformed stream (``raw``) or one that never ends (``drip``)."""
        try:
            if script.raw is not None:
                self.wfile.write(script.raw)
                self.wfile.flush()
            while script.drip:
                time.sleep(script.drip)
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except OSError:  # the client gave up
            pass
        self.close_connection = True


def _split(text: str, n: int) -> list[str]:
    """``text`` in ``n`` consecutive non-empty pieces (their concatenation is ``text``)."""
    n = max(1, min(n, len(text)))
    step = len(text) / n
    cuts = [round(i * step) for i in range(n)] + [len(text)]
    return [text[cuts[i]:cuts[i + 1]] for i in range(n)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bench llm opens dozens of connections at once
    script: Script


class LLMServer:
    """Start on a free port on 127.0.0.1; ``url`` is the base URL ending in /v1."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.script = self.script
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttft", type=float, default=0.05)
    ap.add_argument("--gap", type=float, default=0.01)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--tool-call", action="append", default=[],
                    help="A tool to call (repeatable, in order; '' calls none).")
    a = ap.parse_args()
    srv = LLMServer(Script(ttft=a.ttft, gap=a.gap, tokens=a.tokens, fail_every=a.fail_every,
                           tool_calls=list(a.tool_call)))
    print(srv.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.close()
