"""Parsing a large import file in worker processes, each reading its own chunks, while the
importing process writes: the rows come back in file order, in constant memory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lkmetrics.errors import StoreError
from lkmetrics.store import parsing
from lkmetrics.store.parsing import Parsed
from lkmetrics.store.sources import Progress

if TYPE_CHECKING:
    from multiprocessing.connection import Connection


def _dumps(parsed: Parsed) -> bytes:
    """Pickle a parsed chunk without the memo: its objects are acyclic and not shared."""
    import io
    import pickle

    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo: faster to write, and to read back
    pickler.dump(parsed)
    return buf.getvalue()


def _line_start(f: BinaryIO, offset: int) -> int:
    """The offset of the first line that starts at or after ``offset``."""
    if offset <= 0:
        return 0
    f.seek(offset - 1)
    if f.read(1) != b"\n":
        f.readline()  # the line under way belongs to the chunk before
    return f.tell()


def _parse_worker(
    path: str, index: int, step: int, chunks: int, chunk_bytes: int, out: Connection,
    readers: list[Connection],
) -> None:
    """Parse chunks ``index``, ``index + step``, ... of a file and send them, in order.

    Chunk ``j`` holds the lines that start within bytes ``[j, j + 1) * chunk_bytes``; the
    last one runs to the end of the file. A worker reads the file itself, so the parent
    only receives parsed rows; line numbers are relative to the chunk.
    """
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    # the parent's terminate() must end it: a SIGTERM handler inherited through fork (the
    # command line turns SIGTERM into KeyboardInterrupt) would have it try to send the error
    # down a full pipe nobody reads any more, and the parent's join wait for ever
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for reader in readers:
        # the parent's ends of the pipes, inherited by a fork: closed, so that a send fails
        # (and this worker exits) when the parent is gone, instead of blocking for ever
        reader.close()
    try:
        known: dict[str, Any] = {}  # the sessions this worker has seen, across its chunks
        with open(path, "rb") as f:
            for j in range(index, chunks, step):
                start = _line_start(f, j * chunk_bytes)
                end = _line_start(f, (j + 1) * chunk_bytes) if j + 1 < chunks else -1
                f.seek(start)
                data = f.read(end - start) if end >= 0 else f.read()
                out.send_bytes(_dumps(parsing.parse_chunk(data, 1, known)))
    except BaseException as e:  # the parent raises it
        try:
            payload = pickle.dumps(e)
        except Exception:
            payload = pickle.dumps(StoreError(f"{type(e).__name__}: {e}"))
        with contextlib.suppress(OSError):  # the parent is gone
            out.send_bytes(payload)
    finally:
        out.close()


def parallel_parse(path: Path, workers: int, progress: Progress) -> Iterator[Parsed]:
    """Parse a file in ``workers`` processes, each reading its own chunks; yield in order.

    A worker blocks on its pipe until this process takes its next chunk, so at most a
    chunk or two per worker are in flight: memory stays constant whatever the file size.
    """
    import multiprocessing
    import pickle

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx: Any = multiprocessing.get_context(method)
    chunk_bytes = parsing.CHUNK_BYTES
    size = path.stat().st_size
    chunks = max(1, -(-size // chunk_bytes))
    workers = max(1, min(workers, chunks))
    conns: list[Connection] = []
    procs: list[Any] = []
    try:
        for i in range(workers):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_parse_worker,
                args=(str(path), i, workers, chunks, chunk_bytes, send, [*conns, recv]),
                name=f"lkmetrics-import-{i}", daemon=True,
            )
            proc.start()
            send.close()
            conns.append(recv)
            procs.append(proc)
        first = 1
        for j in range(chunks):
            try:
                item = pickle.loads(conns[j % workers].recv_bytes())
            except EOFError:
                raise StoreError(
                    f"an import worker stopped unexpectedly while reading {path}; "
                    "run the same import again (nothing is duplicated)."
                ) from None
            if isinstance(item, BaseException):
                raise item
            batch, bad, lines = item
            yield batch, [(first - 1 + n, why) for n, why in bad], lines
            first += lines
            # the consumer has written the chunk; its size here is the byte range it was
            # cut from, which is the real one to within a line
            progress(min(size, (j + 1) * chunk_bytes) - j * chunk_bytes)
    finally:
        for conn in conns:  # first: a worker blocked sending gets a broken pipe and exits
            conn.close()
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
