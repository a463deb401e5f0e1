"""The Sink interface the forwarder drives, and the thread-safe hand-off of delivery results.

A sink takes outbox records (:meth:`Sink.send`) and later reports, for each, that it was delivered
(``ack``) or refused (``fail``, with a reason). Reports may come from inside a library callback that holds
the library's lock (paho's ``on_publish``) or from another thread, so they are only appended to a deque
there and the event loop is woken once (``call_soon_threadsafe``); the forwarder collects them with
:meth:`Sink.take_results` in the loop thread.

A sink also says whether its transport is connected (``connected``) and why not (``last_error``); the
forwarder turns that, with timing rules, into the up/down state others observe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

__all__ = ["Result", "Sink"]


class Result(NamedTuple):
    """The fate of one record at one sink: ``ok`` (acknowledged) or not, with a reason."""

    record_id: str
    ok: bool
    reason: str = ""


class Sink(ABC):
    """Base of every northbound sink. Subclasses implement start/stop/send and call :meth:`_report`."""

    type: ClassVar[str] = "?"

    def __init__(self, name: str) -> None:
        self.name = name
        self._results: deque[Result] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: Callable[[], None] | None = None
        self._wake_thread: int | None = None
        self._kicked = False
        self._state_lock = threading.Lock()
        self._connected = False
        self.last_error: str | None = None
        self.connected_at: float | None = None  # time.time() of the last successful connect
        self.disconnected_at: float | None = None  # time.time() of the last loss (or failed attempt)
        self.connects = 0

    # ------------------------------------------------------------------ for the forwarder

    def bind(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        """Called by the forwarder before start: where to post results and whom to wake."""
        self._loop = loop
        self._wake = wake
        self._wake_thread = threading.get_ident()  # the loop's thread (bind runs in it)

    @property
    def connected(self) -> bool:
        return self._connected

    @abstractmethod
    async def start(self) -> None:
        """Begin connecting; return at once (the connection comes up in the background)."""

    @abstractmethod
    async def stop(self, timeout: float = 5.0) -> None:
        """Close cleanly (after waiting up to ``timeout`` for outstanding acknowledgements)."""

    @abstractmethod
    def send(self, record: Any, buffered: bool) -> None:
        """Hand over one outbox record; its Result is reported later (never raises for transport trouble)."""

    def send_many(self, records: Sequence[Any], buffered: Sequence[bool]) -> None:
        """:meth:`send` for each record, in order (``buffered[i]`` for ``records[i]``); a sink may
        override it to hand a batch over in one go."""
        for record, flag in zip(records, buffered, strict=True):
            self.send(record, flag)

    def window(self) -> int:
        """How many records may await acknowledgement at once (the forwarder's window is capped by it)."""
        return 1 << 30

    def take_results(self) -> list[Result]:
        """Every result reported since the last call (loop thread)."""
        self._kicked = False  # reset before draining: a report racing with us kicks again
        out = []
        while self._results:
            out.append(self._results.popleft())
        return out

    def take_delivered(self) -> tuple[list[str], list[Result]]:
        """:meth:`take_results` as the forwarder uses it: the ids of the records delivered, and the
        results of the others. A sink may override it to skip building a Result per delivered record."""
        delivered: list[str] = []
        failed: list[Result] = []
        for r in self.take_results():
            if r.ok:
                delivered.append(r.record_id)
            else:
                failed.append(r)
        return delivered, failed

    def describe(self) -> dict[str, Any]:
        """A small summary for status output (no secrets)."""
        return {
            "name": self.name,
            "type": self.type,
            "connected": self.connected,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ for subclasses (any thread)

    def _report(self, result: Result) -> None:
        self._results.append(result)
        self._kick()

    def _set_connected(self, up: bool, error: str | None = None) -> None:
        with self._state_lock:
            if up:
                self.connected_at = time.time()
                self.connects += 1
                self.last_error = None
            else:
                self.disconnected_at = time.time()
                if error:
                    self.last_error = error
            self._connected = up
        self._kick(force=True)

    def _kick(self, force: bool = False) -> None:
        if (self._kicked and not force) or self._loop is None or self._wake is None:
            return
        self._kicked = True
        # RuntimeError: the loop closed during shutdown, nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            if threading.get_ident() == self._wake_thread:
                self._loop.call_soon(self._wake)  # in the loop already: no write to its self-pipe
            else:
                self._loop.call_soon_threadsafe(self._wake)
