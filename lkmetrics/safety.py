"""What leaves the process is safe, one mechanism for every command: known secrets redacted
(:func:`redact`), values shown in a terminal printable (:func:`printable`, :func:`text`,
:func:`console`), CSV cells neutralised (:func:`csv_writer`), and user files read with a
regular-file check, a size cap and a depth limit (:func:`read_text`, :func:`load_json`).

Secrets: every value lkmetrics knows to be one -- the API keys and secrets of the environment
(which ``.env`` and the ``--api-key``/``--api-secret`` flags fill), the userinfo of every URL
it was given (:func:`add_url`), anything :func:`add_secret` registered -- and the encodings a
provider may echo them in: Basic and Bearer (base64, at any alignment inside a longer base64
string, standard and URL-safe), percent-encoding, hex. Also any ``Bearer``/``Basic`` credential
and URL userinfo, known or not.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import io
import json
import os
import re
import stat
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from lkmetrics.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

MASK = "***"
MIN_SECRET = 4  # shorter values are not masked (they would mask ordinary words)

# environment variables whose value is a secret: LIVEKIT_API_KEY, OPENAI_API_KEY, *_TOKEN ...
_SECRET_NAME = re.compile(r"(?i)(^|_)(API_?KEY|KEY|SECRET|TOKEN|PASSWORD|PASSWD|PWD|"
                          r"CREDENTIALS?|AUTH)($|_)")
_NOT_SECRET_NAME = re.compile(r"(?i)^(OLDPWD|PWD|SSH_AUTH_SOCK|XAUTHORITY)$")
# credentials whatever their value: "Bearer xyz", "Basic xyz", scheme://user:pass@
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)(\s+|%20)[A-Za-z0-9+/_.~=-]{6,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@\"'<>]*@")
_KEY_FIELD = re.compile(r"(?i)([\"']?(?:api[_-]?key|api[_-]?secret|password|secret|"
                        r"access[_-]?token)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&}]{4,})")

# cheap checks before the regular expressions (most texts hold none of these words)
_KEY_WORDS = ("api_key", "api-key", "apikey", "secret", "password", "access_token",
              "access-token", "accesstoken")
_AUTH_WORDS = ("bearer", "basic", "token ", "token%20", "token\t")
_lock = threading.Lock()
_registered: set[str] = set()
_cache: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)
_env_cache: tuple[object, set[str]] = (None, set())


def add_secret(value: str | None) -> None:
    """Remember ``value`` as a secret for the rest of the process."""
    if value and len(value) >= MIN_SECRET:
        with _lock:
            _registered.add(value)


def add_url(url: str | None) -> None:
    """Remember the userinfo of ``url`` (its password, and ``user:password`` whole)."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        add_secret(password)
        add_secret(unquote(password))
        if user is not None:
            add_secret(f"{user}:{password}")
            add_secret(f"{unquote(user)}:{unquote(password)}")
    elif user:  # a token given as the user name (https://TOKEN@host)
        add_secret(user)
        add_secret(unquote(user))


def env_secrets(environ: Any = None) -> set[str]:
    """The values of the environment variables named like secrets."""
    environ = os.environ if environ is None else environ
    return {v for k, v in environ.items()
            if v and len(v) >= MIN_SECRET and _SECRET_NAME.search(k)
            and not _NOT_SECRET_NAME.match(k)}


def _b64_cores(raw: bytes) -> Iterator[str]:
    """The base64 characters that depend only on ``raw``, for each of the three alignments
    ``raw`` can have inside a longer base64 string (``Basic base64(user:KEY)``)."""
    n = len(raw)
    for k in range(3):
        enc = base64.b64encode(b"\x00" * k + raw).decode()
        core = enc[-(-8 * k // 6): 8 * (k + n) // 6]
        if len(core) >= MIN_SECRET:
            yield core
            yield core.replace("+", "-").replace("/", "_")


def variants(secret: str) -> set[str]:
    """``secret`` and the encodings it may come back in."""
    out = {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}
    raw = secret.encode()
    out.update(_b64_cores(raw))
    for basic in (b":" + raw, raw + b":"):
        enc = base64.b64encode(basic).decode().rstrip("=")
        out.update((enc, enc.replace("+", "-").replace("/", "_")))
    out.add(binascii.hexlify(raw).decode())
    return {v for v in out if len(v) >= MIN_SECRET}


def _env_snapshot() -> set[str]:
    """:func:`env_secrets`, recomputed only when the environment changed (redact runs on
    every record and every imported line)."""
    global _env_cache
    data = getattr(os.environ, "_data", None)
    key = tuple(data.items()) if isinstance(data, dict) else None
    if key is None or key != _env_cache[0]:
        _env_cache = (key, env_secrets())
    return _env_cache[1]


def _pattern() -> re.Pattern[str] | None:
    global _cache
    with _lock:
        known = frozenset(_registered | _env_snapshot())
        if known == _cache[0]:
            return _cache[1]
    forms: set[str] = set()
    for s in known:
        forms |= variants(s)
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    pattern = re.compile(alternatives) if forms else None
    with _lock:
        _cache = (known, pattern)
    return pattern


_RUN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=-")


def _mask_runs(text: str, pattern: re.Pattern[str]) -> str:
    """Mask each match together with the word or base64 run it sits in (no edge of an encoded
    secret is left)."""
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        start, end = m.start(), m.end()
        if start < last:
            continue
        while start > last and text[start - 1] in _RUN:
            start -= 1
        while end < len(text) and text[end] in _RUN:
            end += 1
        out.append(text[last:start])
        out.append(MASK)
        last = end
    out.append(text[last:])
    return "".join(out)


def redact(text: str) -> str:
    """``text`` with every known secret (in every encoding) and every credential masked."""
    if not text:
        return text
    pattern = _pattern()
    if pattern is not None and pattern.search(text):
        text = _mask_runs(text, pattern)
    if "@" in text and "://" in text:
        text = _USERINFO.sub(rf"\1{MASK}@", text)
    lower = text.lower()
    if any(w in lower for w in _AUTH_WORDS):
        text = _BEARER.sub(rf"\1\2{MASK}", text)
    if any(w in lower for w in _KEY_WORDS):
        text = _KEY_FIELD.sub(rf"\1{MASK}", text)
    return text


def redact_value(value: Any) -> Any:
    """A JSON-like value with :func:`redact` applied to every string in it (keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingStream:
    """A text stream that redacts what is written to it (stdout, stderr, files)."""

    def __init__(self, inner: IO[str]) -> None:
        self.inner = inner

    def write(self, s: str) -> int:
        self.inner.write(redact(s))
        return len(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.contextmanager
def redacted_streams() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` redacted while the block runs (every command's output,
    LiveKit's log lines included); on a stream that cannot encode Unicode, what it cannot
    encode is written backslash-escaped."""
    saved = sys.stdout, sys.stderr
    for stream in saved:  # a terminal that is not UTF-8: never an UnicodeEncodeError
        if not unicode_ok(stream) and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):
                stream.reconfigure(errors="backslashreplace")
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


# -- the terminal -----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}" if ord(c) < 256
                                                     else f"\\u{ord(c):04x}")


def printable(value: object) -> str:
    """``value`` as text that cannot drive a terminal or break a table row: control characters
    (ESC, OSC, BEL, C1, newlines, bidi overrides) shown escaped (``\\x1b``, ``\\n``), and any
    known secret masked."""
    return _CONTROL.sub(_escape_char, redact(str(value)))


def text(value: object, style: str = "") -> Text:
    """A Rich ``Text`` of :func:`printable` ``value``: never parsed as markup."""
    from rich.text import Text

    return Text(printable(value), style=style)


def console(**kwargs: Any) -> Console:
    """A Rich console for values: strings are never parsed as markup, emoji codes or
    highlighting, and every string it renders (table cells, titles) is :func:`printable`. (On a
    stream whose encoding is not UTF, Rich itself draws boxes in ASCII.)"""
    from rich.console import Console

    class SafeConsole(Console):
        def render_str(self, text: str, **kw: Any) -> Any:
            kw["markup"] = False
            kw["emoji"] = False
            kw["highlight"] = False
            return super().render_str(printable(text), **kw)

    kwargs.setdefault("markup", False)
    kwargs.setdefault("emoji", False)
    kwargs.setdefault("highlight", False)
    return SafeConsole(**kwargs)


def unicode_ok(stream: Any) -> bool:
    """Whether ``stream`` can encode box drawing and the symbols tables use."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "┌─│✓█▁…→·".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# -- CSV --------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run (OWASP): a string starting with ``=``, ``+``,
    ``-``, ``@``, tab or carriage return gets a leading ``'``; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START[:6]):
        return "'" + value
    return value


class _SafeWriter:
    """Rows end in ``\n``; a cell holding a carriage return is quoted too (the csv module
    quotes only the characters of its line terminator, so rows are written with ``\r\n``
    and that ending replaced)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._buf = io.StringIO()
        self._w = csv.writer(self._buf, lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([csv_cell(redact_value(v)) for v in row])
        line = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        self._out.write(line[:-2] + "\n")

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: IO[str]) -> _SafeWriter:
    """The CSV writer of every command: cells neutralised (:func:`csv_cell`) and redacted."""
    return _SafeWriter(out)


# -- files the user gives ----------------------------------------------------------------------

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64


def read_text(path: Path | str, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (:func:`read_bytes`); a file
    that is not text is one UsageError too."""
    try:
        return read_bytes(path, what, max_bytes=max_bytes).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not a text file (not UTF-8).") from None


def read_bytes(path: Path | str, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; a FIFO (never waited on), a device
    (a symlink to /dev/zero), a directory, a missing or too large file is one UsageError."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UsageError(f"cannot read {what} {p} ({e.strerror or e}).") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else
                    "a FIFO" if stat.S_ISFIFO(info.st_mode) else
                    "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
            raise UsageError(f"{what} {p} is {kind}, not a regular file; pass a file.")
        if info.st_size > max_bytes:
            raise UsageError(f"{what} {p} is too large ({info.st_size:,} bytes; at most "
                             f"{max_bytes:,}).")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:  # a file growing while read
                raise UsageError(f"{what} {p} is too large (more than {max_bytes:,} bytes).")
            chunks.append(chunk)
    except OSError as e:
        raise UsageError(f"cannot read {what} {p} ({e.strerror or e}).") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of brackets and braces in JSON ``text`` (strings skipped)."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(_STRING.sub("", text)):
        if m.group(0) in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_depth(text: str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """UsageError when JSON ``text`` nests deeper than ``max_depth`` (before parsing it: a
    deep document is a RecursionError in the parser or in whatever walks it)."""
    if ("[" * (max_depth + 1) in text or "{" * (max_depth + 1) in text
            or json_depth(text) > max_depth):
        raise UsageError(f"{what} is nested more than {max_depth} levels deep; it is not a "
                         "file lkmetrics reads.")


def loads(text: str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON ``text`` nested at most ``max_depth`` deep; anything else is one UsageError."""
    check_depth(text, what, max_depth=max_depth)
    try:
        return json.loads(text)
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply.") from None
    except ValueError as e:
        raise UsageError(f"{what} is not valid JSON ({e}).") from None


def load_json(path: Path | str, what: str, *, max_bytes: int = MAX_FILE_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON file read with :func:`read_text` and parsed with :func:`loads`."""
    return loads(read_text(path, what, max_bytes=max_bytes), f"{what} {path}",
                 max_depth=max_depth)


def create_private(path: Path) -> None:
    """Create ``path`` (if missing) readable and writable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.close(fd)
