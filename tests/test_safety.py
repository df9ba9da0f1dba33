"""lkmetrics.safety, the one mechanism every command uses (issue 22): known secrets redacted
in every encoding, wherever records go (the pipeline's writers, the store); values made
printable; CSV cells neutralised; user files read with a type check, a size cap and a depth
limit."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from lkmetrics import safety
from lkmetrics.errors import UsageError
from lkmetrics.pipeline import Pipeline
from lkmetrics.store import Store
from tests.helpers.common import ListWriter
from tests.helpers.store import session_records, write_jsonl

KEY = "sk-proj-Zx81-secretvalue"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("leak", [
    KEY, f"Bearer {KEY}", b64(f"user:{KEY}"), b64(f"longer-user-name:{KEY}"), b64(f":{KEY}"),
    base64.urlsafe_b64encode(f"xy:{KEY}".encode()).decode(), KEY.encode().hex(),
    json.dumps({"k": KEY}), f"prefix{KEY}suffix",
])
def test_every_encoding_of_a_key_from_the_environment_is_masked(
        monkeypatch: pytest.MonkeyPatch, leak: str) -> None:
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", KEY)
    shown = safety.redact(f"error 401: {leak} (see docs)")
    assert "***" in shown and shown.startswith("error 401: ") and shown.endswith("(see docs)")
    for form in (KEY, b64(f":{KEY}")[2:-2], KEY.encode().hex()):
        assert form not in shown
    # no trace of the base64 run is left either
    assert leak.split()[-1] not in shown


def test_the_userinfo_of_a_url_given_is_masked_with_its_basic_encoding() -> None:
    safety.add_url("https://alice:s3cr3t-pass@gateway.example/v1")
    basic = b64("alice:s3cr3t-pass")
    shown = safety.redact(f"got Authorization: Basic {basic}; password s3cr3t-pass")
    assert "s3cr3t-pass" not in shown and basic.rstrip("=") not in shown
    # unknown credentials too: a Bearer token and URL userinfo never seen before
    shown = safety.redact("Bearer abcdefgh12345678 from http://u:p@h/")
    assert "abcdefgh12345678" not in shown and "u:p@" not in shown


def test_the_pipeline_redacts_every_record_before_any_writer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    writer = ListWriter()
    pipe = Pipeline([writer])
    pipe.put("s1", {"kind": "error", "error": f"401 Bearer {KEY}",
                    "detail": {"headers": [b64(f"me:{KEY}")]}})
    pipe.close()
    text = json.dumps(writer.records)
    assert writer.records[0]["kind"] == "error" and "401" in text
    assert KEY not in text and b64(f"me:{KEY}")[4:-4] not in text


def test_the_store_redacts_what_it_writes_and_keeps_an_import_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_SECRET", KEY)
    db = tmp_path / "m.db"
    store = Store.open(db)
    records = list(session_records("s_a", turns=1))
    records.insert(1, {**records[1], "seq": 99, "kind": "error", "error": f"echo {KEY}"})
    store.insert(records)
    store.close()
    assert KEY.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("m.db*"))
    assert os.stat(db).st_mode & 0o077 == 0  # readable by its owner only
    # an import of lkmetrics' own lines without a secret is kept byte for byte
    from tests.helpers.store import run

    clean = write_jsonl(tmp_path / "clean.jsonl", session_records("s_b", turns=2))
    monkeypatch.setenv("LKMETRICS_HOME", str(tmp_path / "h"))
    assert run("import", str(clean)).exit_code == 0
    out = run("export", "s_b", "--format", "jsonl").stdout
    assert out == clean.read_text()


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b\nsecond line\r\u202eevil"


def test_printable_escapes_every_control_character() -> None:
    shown = safety.printable(HOSTILE)
    assert all(c.isprintable() for c in shown)
    assert shown.startswith("\\x1b]0;pwned\\x07") and "\\n" in shown


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_that_start_a_formula_are_neutralised(cell: str) -> None:
    assert safety.csv_cell(cell) == "'" + cell
    assert safety.csv_cell(-5) == -5 and safety.csv_cell("a=1") == "a=1"


def test_hostile_files_are_one_usage_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 600 + "1]")
    for path, words in ((deep, "nested"), (fifo, "FIFO"), (zero, "device"),
                        (tmp_path, "directory"), (tmp_path / "nope", "No such file")):
        with pytest.raises(UsageError, match=words):
            safety.load_json(path, "--prices")
    with pytest.raises(UsageError, match="too large"):
        safety.load_json(big, "--prices", max_bytes=1000)
    assert safety.load_json(big, "--prices")[:2] == [1, 1]


def test_the_root_cause_is_named_first() -> None:
    """A wrapper's generic message ("Connection error.") after the cause it was raised from:
    EMFILE by its errno name, a malformed stream as such (issue 22, item 11)."""
    import errno

    from lkmetrics.errors import cause_first

    def wrapped(cause: BaseException) -> BaseException:
        try:
            try:
                raise cause
            except Exception as e:
                raise RuntimeError("Connection error.") from e
        except RuntimeError as outer:
            return outer

    emfile = wrapped(OSError(errno.EMFILE, "Too many open files"))
    assert cause_first(emfile, "Connection error.") == \
        "Too many open files (EMFILE); Connection error."
    bad = wrapped(json.JSONDecodeError("Expecting value", "x", 0))
    assert cause_first(bad, "Connection error.").startswith("malformed response stream")
    plain = RuntimeError("timed out")
    assert cause_first(plain, "timed out") == "timed out"  # its own cause: unchanged


def test_first_error_puts_the_component_failure_before_its_consequence() -> None:
    from lkmetrics.pipeline import FirstError

    tap = FirstError()
    assert tap.explain("timed out after 20s (no reply)") == "timed out after 20s (no reply)"
    tap.write({"kind": "llm", "ttft": 0.1})
    tap.write({"kind": "error", "source": "openai/x", "error_type": "llm_error",
               "message": "APIStatusError: 401 invalid key"})
    tap.write({"kind": "error", "error_type": "tts_error", "message": "later"})
    assert tap.explain("timed out after 20s (no reply)") == (
        "llm_error from openai/x: APIStatusError: 401 invalid key; then timed out after 20s "
        "(no reply)")


def test_the_cause_inside_an_exception_group_is_named() -> None:
    """anyio's connect raises "All connection attempts failed" from a group of the real
    OSErrors: EMFILE when no socket could be made (issue 22, item 11)."""
    import builtins
    import errno
    import typing

    from lkmetrics.agent.failures import cause
    from lkmetrics.errors import cause_first

    group: typing.Any = getattr(builtins, "ExceptionGroup", None)
    if group is None:
        pytest.skip("ExceptionGroup is Python 3.11's")

    def connect() -> None:
        raise OSError("All connection attempts failed") from group(
            "multiple connection attempts failed", [OSError(errno.EMFILE, "Too many open files")])

    err: BaseException | None = None
    try:
        try:
            connect()
        except OSError as e:
            raise ConnectionError("Connection error.") from e
    except ConnectionError as outer:
        err = outer
    assert err is not None
    assert cause(err) == ("Too many open files (EMFILE): raise the limit of open files "
                          "(ulimit -n) or run fewer at once")
    assert cause_first(err, "Connection error.") == \
        "Too many open files (EMFILE); Connection error."
