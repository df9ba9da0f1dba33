"""A daemon thread draining a queue: the shape behind the pipeline and the store recorder.

``enqueue`` is a lock-free ``SimpleQueue`` append (safe on the agent's event loop); ``stop`` asks
the thread to finish what was put before it and joins it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from lkmetrics.errors import Stopped

_STOP = object()


class QueueThread:
    """Subclasses set their state, then call ``super().__init__`` (which starts the thread),
    and implement :meth:`run` with :meth:`get`."""

    def __init__(self, name: str) -> None:
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopping = False
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()

    def enqueue(self, item: Any) -> None:
        """Enqueue ``item``. O(1), never blocks, never does I/O."""
        self._q.put_nowait(item)

    def get(self, timeout: float | None = None) -> Any:
        """The next item (raises :class:`Stopped` at the stop mark, ``queue.Empty`` on
        timeout). Called only from :meth:`run`."""
        item = self._q.get() if timeout is None else self._q.get(timeout=timeout)
        if item is _STOP:
            raise Stopped
        return item

    def stop(self, timeout: float | None = None) -> bool:
        """Let the thread finish what is queued and join it; False if already stopped."""
        if self._stopping:
            return False
        self._stopping = True
        self._q.put_nowait(_STOP)
        self._thread.join(timeout)
        return True

    def run(self) -> None:  # pragma: no cover - every subclass implements it
        raise NotImplementedError
