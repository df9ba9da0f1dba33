"""Whether an agent's prompt fits the local LLM's context window (``--local``).

The local server (llama.cpp, :mod:`lkmetrics.local.llm_server`) holds ``LOCAL_CONTEXT``
tokens. An agent written for a cloud model may carry instructions longer than that (a menu, a
knowledge base); llama.cpp then fails each request mid-stream and the agent retries in
silence. :func:`prompt_tokens` counts the instructions with the server's own tokenizer (its
chat template leaves tool schemas out), so the caller can refuse once, naming the sizes.
"""

from __future__ import annotations

import json
import urllib.request

from lkmetrics.errors import LkmetricsError

LOCAL_CONTEXT = 2048  # tokens: LlamaServer's n_ctx


class PromptTooLong(LkmetricsError):
    """The agent's instructions do not fit the local model's context."""


def prompt_tokens(base_url: str, text: str, timeout: float = 10.0) -> int:
    """Tokens of ``text`` by the llama.cpp server at ``base_url`` (``.../v1``)."""
    root = base_url.rstrip("/").removesuffix("/v1")
    request = urllib.request.Request(
        f"{root}/extras/tokenize/count", data=json.dumps({"input": text}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (localhost)
        return int(json.loads(response.read())["count"])


def check_fits(who: str, tokens: int, reply_tokens: int, context: int = LOCAL_CONTEXT) -> None:
    """Raise :class:`PromptTooLong` when ``tokens`` plus a reply do not fit ``context``."""
    if tokens + reply_tokens > context:
        raise PromptTooLong(
            f"{who}'s instructions are {tokens:,} tokens; the local LLM (--local) holds "
            f"{context:,}, {reply_tokens} of them kept for the caller's words and the reply. "
            "Use --llm-base-url (or "
            "--llm) with a model of a larger context, or keep --local for STT and TTS only "
            "(--stt local --tts local).")
