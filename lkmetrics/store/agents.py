"""Which user agent (``--agent``) each session ran: read from the sessions' opening records
(the sessions table has no column for it; the records' unique (session_id, seq) index finds
them), and the sessions of one agent for ``report --agent NAME``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from lkmetrics.errors import NotFoundError
from lkmetrics.store.db import in_lists

if TYPE_CHECKING:
    from lkmetrics.store import Store

_SELECT = ("SELECT session_id, json_extract(json, '$.agent'), "
           "json_extract(json, '$.agent_target') FROM records WHERE kind = 'session'")


def agent_labels(store: Store, session_ids: Sequence[str]) -> dict[str, str]:
    """``module:NAME`` of each of these sessions that ran a user agent."""
    out: dict[str, str] = {}
    with store.errors():
        for chunk, marks in in_lists(session_ids):
            for sid, given, target in store.conn.execute(
                    f"{_SELECT} AND session_id IN ({marks})", chunk):
                if given is not None or target is not None:
                    out[str(sid)] = str(target or given)
    return out


def names_of(given: str | None, target: str | None) -> set[str]:
    """Every name a session's agent answers to: the target as given, its file and file name,
    the resolved ``module:NAME``, its module and its NAME."""
    names: set[str] = set()
    for value in (given, target):
        if not value:
            continue
        names.add(value)
        head, _, tail = value.rpartition(":")
        if head and tail.isidentifier():
            names.update({head, tail})
            value = head
        names.add(PurePath(value).name)
    return names


def agent_sessions(store: Store, name: str) -> list[str]:
    """The sessions whose agent answers to ``name`` (see :func:`names_of`)."""
    store.require_sessions()
    with store.errors():
        rows = store.conn.execute(_SELECT).fetchall()
    found = [str(sid) for sid, given, target in rows if name in names_of(given, target)]
    if not found:
        known = sorted({str(t or g) for _, g, t in rows if g or t})
        hint = f" (agents recorded: {', '.join(known)})" if known else (
            "; run a command with --agent first")
        raise NotFoundError(f"no session of agent {name!r} in {store.path}{hint}.")
    return found
