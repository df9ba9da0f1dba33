"""Entry point of the llama server child: a parent watchdog, streamed usage, llama_cpp.server.

Run by LlamaServer as ``python -m lkmetrics.local._llama_child ARGS``, ARGS being those of
``python -m llama_cpp.server``. Two additions to the stock server:

* the process exits as soon as its parent is gone, so even a SIGKILLed parent (which runs no
  atexit hook) leaves no server behind;
* a streamed chat completion ends with an OpenAI-style usage chunk (``choices: []`` plus
  ``usage``, after the last content chunk, holding none back), which llama-cpp-python 0.3.x
  never sends; LiveKit's LLM metrics read their
  prompt and completion token counts from it. It is sent whether or not the request asked
  for ``stream_options.include_usage``, which the stock server does not parse.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

PARENT_ENV = "LKMETRICS_PARENT_PID"
_log = logging.getLogger("lkmetrics.llama_child")


def watch_parent(parent: int, interval: float = 0.5) -> None:
    """Exit this process at once when PARENT is no longer our parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="lkmetrics-parent-watch").start()


def with_usage(llama: Any, prompt_tokens: int, chunks: Iterator[Any]) -> Iterator[Any]:
    """``chunks`` as they come, then a usage chunk; ``llama`` counts the completion tokens."""
    # every chunk passes at once (holding one back until the next exists would add a
    # decode step to the time to first token); the usage follows as a chunk of its own,
    # as OpenAI sends it: no choices, only usage
    last: Any = None
    for chunk in chunks:
        yield chunk
        last = chunk
    if last is not None:
        completion = int(llama._lkmetrics_completion_tokens)
        yield {
            "id": last["id"],
            "object": last.get("object", "text_completion"),
            "created": last["created"],
            "model": last["model"],
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            },
        }


def too_long(llama: Any, prompt: Any) -> None:
    """Raise llama_cpp's own context-window error before a streamed completion starts.

    llama_cpp raises it from inside the stream, after the server has answered 200, so the
    client sees a broken stream; raised here, the server's error handler answers 400 with
    OpenAI's ``context_length_exceeded`` (the prompt's size and the window's)."""
    tokens = prompt if isinstance(prompt, list) else llama.tokenize(
        str(prompt).encode("utf-8"), special=True)
    window = int(llama.n_ctx())
    if len(tokens) >= window:
        raise ValueError(f"Requested tokens ({len(tokens)}) exceed context window of {window}")


def add_stream_usage() -> None:
    """Patch llama_cpp so streamed chat completions end with a usage chunk."""
    import llama_cpp
    import llama_cpp.llama_chat_format as chat_format

    llama_cls: Any = llama_cpp.Llama
    original_generate = llama_cls.generate
    original_create_completion = llama_cls.create_completion
    original_to_chat = chat_format._convert_text_completion_chunks_to_chat

    def generate(self: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
        # counts what _create_completion counts: every sampled token but the end-of-generation
        for token in original_generate(self, *args, **kwargs):
            if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                self._lkmetrics_completion_tokens = (
                    getattr(self, "_lkmetrics_completion_tokens", 0) + 1
                )
            yield token

    def create_completion(self: Any, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            too_long(self, prompt)
        result = original_create_completion(self, prompt, *args, **kwargs)
        if not kwargs.get("stream") or not isinstance(prompt, list):
            return result
        self._lkmetrics_completion_tokens = 0
        return with_usage(self, len(prompt), result)

    def to_chat(chunks: Iterator[Any]) -> Iterator[Any]:
        seen: dict[str, Any] = {}

        def track() -> Iterator[Any]:
            for chunk in chunks:
                if not chunk.get("choices") and "usage" in chunk:
                    seen.update(chunk)  # the usage chunk: sent after the chat chunks
                    continue
                yield chunk

        yield from original_to_chat(track())
        if "usage" in seen:
            yield {
                "id": "chat" + seen["id"],
                "model": seen["model"],
                "created": seen["created"],
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": seen["usage"],
            }

    llama_cls.generate = generate
    llama_cls.create_completion = create_completion
    chat_format._convert_text_completion_chunks_to_chat = to_chat


def main() -> None:
    """Start the watchdog, patch in streamed usage, run llama_cpp.server with our argv."""
    parent = os.environ.get(PARENT_ENV)
    if parent:
        watch_parent(int(parent))
    try:
        add_stream_usage()
    except Exception:  # a newer llama_cpp moved things: serve without usage, say so
        _log.exception("lkmetrics: could not add usage to streamed completions")
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
